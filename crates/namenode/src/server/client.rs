//! Answers clients: one arm per [`ClientRequest`]. Writes go through the journal as entries
//! carrying the caller and the (client id, call id) retry key; reads run on the journal's
//! actor; replica locations come from the block map.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dfs_proto::client_nn::{
    AdminState, BadReplica, BlockHealth as WireHealth, ContentSummary as WireSummary, DatanodeStatus, LocatedBlocks,
    ReplicaHealth, ReplicaHealthState, ServerDefaults,
};
use dfs_proto::rpc::{RemoteError, Request};
use dfs_proto::transfer::{CHUNK_LEN, MAX_PACKET_DATA_LEN};
use dfs_proto::{ClientRequest, ClientResponse, DatanodeInfo, LocatedBlock};

use super::convert::{self, block, from_wire, journal_error, ns_error};
use super::{now_ms, recovery, MirrorOf, Shared};
use crate::blockmap::ReplicaState;
use crate::namespace::{Block, Caller, Entry, Op, Outcome, Reply};

type Answer = Result<ClientResponse, RemoteError>;
/// A read of the namespace as the caller.
type ReadFn = Box<dyn FnOnce(&crate::namespace::Namespace, &Caller) -> Answer + Send>;

/// Listing pages hold at most this many entries (HDFS `dfs.ls.limit`, 1000).
const LIST_LIMIT_MAX: u32 = 1000;
/// How long `Complete` waits for the last block's first finalized replica before telling the
/// client to call again.
const COMPLETE_WAIT: Duration = Duration::from_millis(200);

pub async fn handle(shared: &Arc<Shared>, req: Request<ClientRequest>, peer: SocketAddr) -> Answer {
    let h = req.header;
    let entry = |op: Op| Entry {
        time_ms: now_ms(),
        user: h.user.clone(),
        groups: h.groups.clone(),
        client_id: h.client_id,
        call_id: h.call_id,
        op,
    };
    let (user, groups) = (h.user.clone(), h.groups.clone());
    let read = |f: ReadFn| {
        let (user, groups) = (user.clone(), groups.clone());
        async move { shared.journal.read(move |ns| f(ns, &Caller::new(&user, &groups))).await.map_err(journal_error)? }
    };
    match req.body {
        ClientRequest::Mkdirs { path, perm, create_parent } => {
            reply(propose(shared, entry(Op::Mkdirs { path, perm, create_parent })).await?)
        }
        ClientRequest::Create { path, perm, overwrite, create_parent, replication, block_size, client_name } => {
            let (replication, block_size) = defaults(shared, replication, block_size);
            let op = Op::Create {
                path: path.clone(),
                perm,
                overwrite,
                create_parent,
                replication,
                block_size,
                client_name,
                client_machine: peer.ip().to_string(),
            };
            let out = write(shared, entry(op), &path).await?;
            reply(out)
        }
        ClientRequest::AddBlock { path, client_name, previous, excluded } => {
            let op = Op::AddBlock { path: path.clone(), client_name, previous: previous.map(from_wire) };
            let out = write(shared, entry(op), &path).await?;
            let Reply::Block(b) = out.result.map_err(ns_error)? else { return Err(unexpected()) };
            let (replication, offset) = shared
                .journal
                .read(move |ns| {
                    let (file, _) = ns.file_of_block(b.id)?;
                    let f = ns.inode(file)?.file()?;
                    Some((f.replication, f.blocks.iter().take_while(|x| x.id != b.id).map(|x| x.len).sum::<u64>()))
                })
                .await
                .map_err(journal_error)?
                .ok_or_else(unexpected)?;
            let excluded: BTreeSet<String> = excluded.into_iter().collect();
            let st = shared.state();
            let targets = st.blocks.choose_targets(None, usize::from(replication), &excluded, &[]);
            let locations: Vec<DatanodeInfo> = targets.iter().filter_map(|t| st.info(t)).collect();
            drop(st);
            if locations.is_empty() {
                // HDFS answers the same: the block stays allocated; the client abandons it.
                return Err(RemoteError::new(
                    "java.io.IOException",
                    format!(
                        "File {path} could only be written to 0 of the 1 minReplication nodes. There are {} datanode(s) running and {} node(s) are excluded in this operation.",
                        shared.state().datanodes.len(),
                        excluded.len()
                    ),
                ));
            }
            Ok(ClientResponse::Located { block: LocatedBlock { block: block(b), offset, locations, corrupt: false } })
        }
        ClientRequest::Complete { path, client_name, last } => {
            if let Some(l) = last {
                if !wait_for_replica(shared, from_wire(l)).await {
                    return Ok(ClientResponse::Bool { value: false });
                }
            }
            let op = Op::Complete { path: path.clone(), client_name, last: last.map(from_wire) };
            reply(write(shared, entry(op), &path).await?)
        }
        ClientRequest::AbandonBlock { path, client_name, block } => {
            let op = Op::AbandonBlock { path: path.clone(), client_name, block_id: block.id };
            reply(write(shared, entry(op), &path).await?)
        }
        ClientRequest::Append { path, client_name, new_block } => {
            let op = Op::Append { path: path.clone(), client_name, client_machine: peer.ip().to_string(), new_block };
            let out = write(shared, entry(op), &path).await?;
            let Reply::Appended { status, last } = out.result.map_err(ns_error)? else { return Err(unexpected()) };
            let last = last.map(|b| {
                let offset = status.length - b.len;
                LocatedBlock { block: block(b), offset, locations: replicas_of(shared, b, true), corrupt: false }
            });
            Ok(ClientResponse::Appended { status: convert::status("", &status), last })
        }
        ClientRequest::UpdateBlockForPipeline { block: b, client_name } => {
            // The new stamp is the index of a lease renewal by the writer: it checks the lease
            // and exceeds every stamp given out before it (the UpdateBlock that follows must
            // not be older than its stamp, and is not: it comes later in the log).
            let known = shared
                .journal
                .read(move |ns| ns.file_of_block(b.id).map(|(_, cur)| cur))
                .await
                .map_err(journal_error)?;
            let Some(cur) = known else {
                return Err(RemoteError::new("java.io.IOException", format!("Block {} does not exist.", b.id)));
            };
            if cur.gs != b.gs {
                return Err(RemoteError::new(
                    "java.io.IOException",
                    format!("Block {} has stamp {}, not {}: another recovery came first", b.id, cur.gs, b.gs),
                ));
            }
            let out = propose(shared, entry(Op::RenewLease { client_name })).await?;
            out.result.map_err(ns_error)?;
            Ok(ClientResponse::Block { block: dfs_proto::ExtendedBlock { gs: out.index, ..b } })
        }
        ClientRequest::UpdatePipeline { client_name, old_block, new_block, new_nodes: _ } => {
            if old_block.id != new_block.id {
                return Err(convert::invalid("updatePipeline: the old and new block differ"));
            }
            let op =
                Op::UpdateBlock { block_id: new_block.id, client_name, new_gs: new_block.gs, new_len: new_block.len };
            let out = propose(shared, entry(op)).await?;
            shared.mirror(MirrorOf::BlockFile(new_block.id), Vec::new()).await.map_err(journal_error)?;
            reply(out)
        }
        ClientRequest::Rename { src, dst, overwrite } => {
            let out = propose(shared, entry(Op::Rename { src, dst, overwrite })).await?;
            let removed = out.removed_blocks.iter().map(|b| b.id).collect();
            shared.mirror(MirrorOf::Nothing, removed).await.map_err(journal_error)?;
            reply(out)
        }
        ClientRequest::Delete { path, recursive } => {
            let out = propose(shared, entry(Op::Delete { path, recursive })).await?;
            let removed = out.removed_blocks.iter().map(|b| b.id).collect();
            shared.mirror(MirrorOf::Nothing, removed).await.map_err(journal_error)?;
            reply(out)
        }
        ClientRequest::SetPermission { path, perm } => {
            reply(propose(shared, entry(Op::SetPermission { path, perm })).await?)
        }
        ClientRequest::SetOwner { path, owner, group } => {
            reply(propose(shared, entry(Op::SetOwner { path, owner, group })).await?)
        }
        ClientRequest::SetReplication { path, replication } => {
            let out = write(shared, entry(Op::SetReplication { path: path.clone(), replication }), &path).await?;
            reply(out)
        }
        ClientRequest::SetTimes { path, mtime_ms, atime_ms } => {
            reply(propose(shared, entry(Op::SetTimes { path, mtime_ms, atime_ms })).await?)
        }
        ClientRequest::RenewLease { client_name } => {
            reply(propose(shared, entry(Op::RenewLease { client_name })).await?)
        }
        ClientRequest::RecoverLease { path, client_name: _ } => {
            let out = propose(shared, entry(Op::BeginRecovery { path })).await?;
            if let Some(order) = out.recovery.clone() {
                recovery::spawn(shared.clone(), order);
            }
            reply(out)
        }
        ClientRequest::Truncate { path, new_length, client_name } => {
            // The file's blocks past the new end leave the block map, its last block waits
            // there as under construction, and the recovery that cuts it starts.
            let op =
                Op::Truncate { path: path.clone(), new_length, client_name, client_machine: peer.ip().to_string() };
            reply(write(shared, entry(op), &path).await?)
        }
        ClientRequest::Concat { target, srcs } => {
            // The moved blocks are mirrored as the target's (its replication); nothing is
            // removed, so no replica of them is invalidated.
            reply(write(shared, entry(Op::Concat { target: target.clone(), srcs }), &target).await?)
        }
        ClientRequest::GetFileInfo { path } => {
            read(Box::new(move |ns, c| {
                let s = ns.get_file_info(&path, c).map_err(ns_error)?;
                Ok(ClientResponse::FileInfo { status: s.map(|s| convert::status("", &s)) })
            }))
            .await
        }
        ClientRequest::List { path, start_after, limit } => {
            let limit = limit.clamp(1, LIST_LIMIT_MAX) as usize;
            read(Box::new(move |ns, c| {
                let l = ns.list(&path, c, &start_after, limit).map_err(ns_error)?;
                let entries = l.entries.iter().map(|(n, s)| convert::status(n, s)).collect();
                Ok(ClientResponse::Listing { entries, remaining: l.remaining })
            }))
            .await
        }
        ClientRequest::GetContentSummary { path } => {
            read(Box::new(move |ns, c| {
                let s = ns.content_summary(&path, c).map_err(ns_error)?;
                let summary =
                    WireSummary { length: s.length, files: s.files, dirs: s.dirs, space_consumed: s.space_consumed };
                Ok(ClientResponse::ContentSummary { summary })
            }))
            .await
        }
        ClientRequest::GetBlockLocations { path, offset, length } => {
            let fb = shared
                .journal
                .read(move |ns| ns.block_locations_of(&path, &Caller::new(&user, &groups)))
                .await
                .map_err(journal_error)?
                .map_err(ns_error)?;
            let mut located = Vec::new();
            let mut at = 0u64;
            let n = fb.blocks.len();
            let end = offset.saturating_add(length);
            let mut last_block = None;
            for (i, b) in fb.blocks.iter().enumerate() {
                let open = fb.last_open && i + 1 == n;
                let lb = located_block(shared, *b, at, open);
                // An open block's length grows: a reader asking from inside it gets it.
                if at < end && (at + b.len > offset || (open && at + b.len >= offset)) {
                    located.push(lb.clone());
                }
                if i + 1 == n {
                    last_block = Some(lb);
                }
                at += b.len;
            }
            let blocks = LocatedBlocks {
                file_length: fb.length,
                blocks: located,
                under_construction: fb.under_construction,
                last_block,
                last_block_complete: !fb.last_open,
            };
            Ok(ClientResponse::LocatedBlocks { blocks })
        }
        ClientRequest::ReportBadBlocks { blocks } => {
            report_bad(shared, &blocks);
            Ok(ClientResponse::Done)
        }
        ClientRequest::GetBlockHealth { path } => {
            let fb = shared
                .journal
                .read(move |ns| {
                    let c = Caller::new(&user, &groups);
                    let fb = ns.block_locations_of(&path, &c)?;
                    let repl = ns.get_file_info(&path, &c)?.map(|s| s.replication).unwrap_or(0);
                    Ok((fb, repl))
                })
                .await
                .map_err(journal_error)?
                .map_err(ns_error)?;
            let (fb, replication) = fb;
            let st = shared.state();
            let blocks = fb
                .blocks
                .iter()
                .map(|b| {
                    let replicas = st
                        .blocks
                        .health(b.id)
                        .map(|h| {
                            h.locations
                                .iter()
                                .map(|l| ReplicaHealth {
                                    datanode: st.info(&l.datanode).unwrap_or_else(|| unknown_datanode(&l.datanode)),
                                    state: if l.corrupt {
                                        ReplicaHealthState::Corrupt
                                    } else if l.decommissioning {
                                        ReplicaHealthState::Decommissioning
                                    } else if l.live {
                                        ReplicaHealthState::Live
                                    } else {
                                        ReplicaHealthState::Stale
                                    },
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    WireHealth { block: block(*b), expected_replication: replication, replicas }
                })
                .collect();
            Ok(ClientResponse::BlockHealth { blocks })
        }
        ClientRequest::RefreshNodes => {
            if !Caller::new(&user, &groups).is_superuser() {
                return Err(RemoteError::new(
                    "org.apache.hadoop.security.AccessControlException",
                    format!("Access denied for user {user}. Superuser privilege is required"),
                ));
            }
            let excluded = match &shared.config.exclude_file {
                Some(p) if p.exists() => super::read_exclude_file(p).map_err(|e| {
                    RemoteError::new("java.io.IOException", format!("reading the exclude file {}: {e}", p.display()))
                })?,
                _ => BTreeSet::new(),
            };
            tracing::info!(excluded = ?excluded, "refreshNodes");
            shared.state().set_excluded(excluded);
            Ok(ClientResponse::Done)
        }
        ClientRequest::DatanodeReport => {
            let st = shared.state();
            let datanodes = st
                .datanodes
                .iter()
                .filter_map(|(id, r)| {
                    let (_, capacity, free, blocks, decommissioning) = st.blocks.datanode_summary(id)?;
                    let state = match (decommissioning, st.blocks.decommission_done(id)) {
                        (false, _) => AdminState::InService,
                        (true, Ok(true)) => AdminState::Decommissioned,
                        (true, _) => AdminState::Decommissioning,
                    };
                    Some(DatanodeStatus {
                        datanode: r.info.clone(),
                        incarnation: r.incarnation,
                        state,
                        capacity,
                        free,
                        blocks: blocks as u64,
                    })
                })
                .collect();
            Ok(ClientResponse::DatanodeReport { datanodes })
        }
        ClientRequest::GetServerDefaults => Ok(ClientResponse::ServerDefaults {
            defaults: ServerDefaults {
                block_size: shared.config.block_size,
                replication: shared.config.replication,
                bytes_per_checksum: CHUNK_LEN as u32,
                write_packet_size: MAX_PACKET_DATA_LEN as u32,
            },
        }),
    }
}

fn defaults(shared: &Shared, replication: u16, block_size: u64) -> (u16, u64) {
    let r = if replication == 0 { shared.config.replication } else { replication };
    let b = if block_size == 0 { shared.config.block_size } else { block_size };
    (r, b)
}

async fn propose(shared: &Shared, e: Entry) -> Result<Outcome, RemoteError> {
    shared.journal.propose(e).await.map_err(journal_error)
}

/// Proposes an entry about the file at `path`, then mirrors that file's blocks and the blocks
/// the entry removed into the block map, and starts the lease recovery it ordered, if any.
async fn write(shared: &Arc<Shared>, e: Entry, path: &str) -> Result<Outcome, RemoteError> {
    let out = propose(shared, e).await?;
    let removed = out.removed_blocks.iter().map(|b| b.id).collect();
    shared.mirror(MirrorOf::Path(path.to_string()), removed).await.map_err(journal_error)?;
    if let Some(order) = out.recovery.clone() {
        recovery::spawn(shared.clone(), order);
    }
    Ok(out)
}

fn reply(out: Outcome) -> Answer {
    Ok(match out.result.map_err(ns_error)? {
        Reply::Done => ClientResponse::Done,
        Reply::Bool(value) => ClientResponse::Bool { value },
        Reply::Status(s) => ClientResponse::Status { status: convert::status("", &s) },
        Reply::Block(b) => ClientResponse::Block { block: block(b) },
        Reply::Appended { .. } => return Err(unexpected()),
    })
}

fn unexpected() -> RemoteError {
    RemoteError::new("java.io.IOException", "internal error: unexpected reply from the namespace")
}

fn unknown_datanode(id: &str) -> DatanodeInfo {
    DatanodeInfo { id: id.to_string(), data_addr: String::new(), http_addr: String::new(), rack: String::new() }
}

/// Waits (a little) until some DataNode has reported a finalized replica of `b` at its stamp
/// and length (HDFS's minimum replication of 1 for closing a file).
async fn wait_for_replica(shared: &Shared, b: Block) -> bool {
    let deadline = tokio::time::Instant::now() + COMPLETE_WAIT;
    loop {
        let ok = shared.state().blocks.health(b.id).is_some_and(|h| {
            h.locations
                .iter()
                .any(|l| l.state == ReplicaState::Finalized && l.gs == b.gs && l.len == b.len && !l.corrupt)
        });
        if ok || tokio::time::Instant::now() >= deadline {
            return ok;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Where a reader (or an appender) finds block `b`: good replicas first; for a block being
/// written, the replicas at its stamp whatever their state; if none is good, the corrupt ones.
fn replicas_of(shared: &Shared, b: Block, open: bool) -> Vec<DatanodeInfo> {
    located(shared, b, open).0
}

fn located(shared: &Shared, b: Block, open: bool) -> (Vec<DatanodeInfo>, bool) {
    let st = shared.state();
    let Some(h) = st.blocks.health(b.id) else { return (Vec::new(), false) };
    let mut good: Vec<&crate::blockmap::Location> = h
        .locations
        .iter()
        .filter(|l| !l.corrupt && if open { l.gs >= b.gs } else { l.gs == b.gs && l.state == ReplicaState::Finalized })
        .collect();
    // Live replicas before those on decommissioning DataNodes.
    good.sort_by_key(|l| l.decommissioning);
    let corrupt = good.is_empty();
    let chosen: Vec<&crate::blockmap::Location> =
        if corrupt { h.locations.iter().filter(|l| l.corrupt).collect() } else { good };
    let infos = chosen.iter().filter_map(|l| st.info(&l.datanode)).collect();
    (infos, corrupt && !chosen.is_empty())
}

fn located_block(shared: &Shared, b: Block, offset: u64, open: bool) -> LocatedBlock {
    let (locations, corrupt) = located(shared, b, open);
    LocatedBlock { block: block(b), offset, locations, corrupt }
}

pub(super) fn report_bad(shared: &Shared, blocks: &[BadReplica]) {
    let mut st = shared.state();
    for r in blocks {
        if st.blocks.report_corrupt(r.block.id, &r.datanode) {
            tracing::warn!(block = r.block.id, datanode = %r.datanode, "replica reported corrupt");
        }
    }
}
