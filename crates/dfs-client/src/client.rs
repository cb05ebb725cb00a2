//! [`Dfs`]: one client of one NameNode. Metadata calls are made here; writers and readers hold
//! a clone of its shared core.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dfs_proto::client_nn::{BadReplica, BlockHealth, ContentSummary, DatanodeStatus, LocatedBlocks, ServerDefaults};
use dfs_proto::rpc::Protocol;
use dfs_proto::rpc_client::{Caller, RetryPolicy, RpcClient};
use dfs_proto::{ClientRequest, ClientResponse, FileStatus};

use crate::checksum::FileChecksum;
use crate::error::{DfsError, Result};
use crate::lease::LeaseRenewer;
use crate::reader::FileReader;
use crate::writer::FileWriter;

/// How a client behaves; the defaults are HDFS's.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Connect, read and write timeout of every DataNode socket.
    pub datanode_timeout: Duration,
    /// How long one NameNode call keeps retrying a broken connection.
    pub namenode_retry_for: Duration,
    /// Data bytes per packet (at most 256 KiB).
    pub packet_len: usize,
    /// Packets sent and not yet acknowledged, at most.
    pub window_packets: usize,
    /// How often the lease of open files is renewed (HDFS: half the 60 s soft limit; herd's
    /// soft limit is 60 s, renewed every 10 s).
    pub lease_renew_interval: Duration,
    /// How long `close` keeps asking the NameNode to complete a file whose last block has no
    /// finalized replica reported yet.
    pub complete_wait: Duration,
    /// Pipeline recoveries one block may go through before the write fails.
    pub max_recoveries_per_block: usize,
    /// Pipelines tried for one new block (each failure excludes a DataNode).
    pub max_block_attempts: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            datanode_timeout: Duration::from_secs(60),
            namenode_retry_for: Duration::from_secs(30),
            packet_len: dfs_proto::transfer::MAX_PACKET_DATA_LEN,
            window_packets: 64,
            lease_renew_interval: Duration::from_secs(10),
            complete_wait: Duration::from_secs(60),
            max_recoveries_per_block: 5,
            max_block_attempts: 5,
        }
    }
}

/// What `create` makes; `None` takes the NameNode's default.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Replace an existing file (never a directory).
    pub overwrite: bool,
    pub replication: Option<u16>,
    pub block_size: Option<u64>,
    /// Permission bits (HDFS's default 0o644 after the umask).
    pub perm: u16,
    /// Create missing parent directories.
    pub create_parent: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions { overwrite: false, replication: None, block_size: None, perm: 0o644, create_parent: true }
    }
}

/// A client of one NameNode, cheap to clone (clones share the connection and the lease).
#[derive(Clone)]
pub struct Dfs {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// std Mutex: calls are sequential on one connection (the RPC client has one in flight).
    /// A call holds it for the call's length, which the retry policy bounds.
    rpc: Mutex<RpcClient>,
    /// This client's lease holder name (HDFS `DFSClient_<id>`).
    pub(crate) client_name: String,
    pub(crate) config: ClientConfig,
    pub(crate) lease: LeaseRenewer,
}

impl Inner {
    /// One call to the NameNode.
    pub(crate) fn call(&self, req: ClientRequest) -> Result<ClientResponse> {
        let mut rpc = self.rpc.lock().unwrap_or_else(|p| p.into_inner());
        Ok(rpc.call::<ClientRequest, ClientResponse>(&req)?)
    }

    pub(crate) fn call_done(&self, what: &'static str, req: ClientRequest) -> Result<()> {
        match self.call(req)? {
            ClientResponse::Done => Ok(()),
            other => Err(unexpected(what, other)),
        }
    }

    pub(crate) fn call_bool(&self, what: &'static str, req: ClientRequest) -> Result<bool> {
        match self.call(req)? {
            ClientResponse::Bool { value } => Ok(value),
            other => Err(unexpected(what, other)),
        }
    }

    pub(crate) fn block_locations(&self, path: &str, offset: u64, length: u64) -> Result<LocatedBlocks> {
        match self.call(ClientRequest::GetBlockLocations { path: path.to_string(), offset, length })? {
            ClientResponse::LocatedBlocks { blocks } => Ok(blocks),
            other => Err(unexpected("getBlockLocations", other)),
        }
    }

    pub(crate) fn server_defaults(&self) -> Result<ServerDefaults> {
        match self.call(ClientRequest::GetServerDefaults)? {
            ClientResponse::ServerDefaults { defaults } => Ok(defaults),
            other => Err(unexpected("getServerDefaults", other)),
        }
    }
}

pub(crate) fn unexpected(call: &'static str, answer: ClientResponse) -> DfsError {
    let mut answer = format!("{answer:?}");
    answer.truncate(200);
    DfsError::Unexpected { call, answer }
}

/// Refuses a relative path: the library speaks absolute paths only (the shell resolves
/// relative ones against the user's home).
pub(crate) fn check_path(path: &str) -> Result<()> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(DfsError::Invalid(format!("{path}: not an absolute path")))
    }
}

impl Dfs {
    /// A client of the NameNode at `namenode_addr` (`host:port`) acting as `user`. No
    /// connection is made until the first call.
    pub fn connect(namenode_addr: &str, user: &str) -> Result<Dfs> {
        Dfs::connect_with(namenode_addr, user, ClientConfig::default())
    }

    /// [`Dfs::connect`] with a configuration.
    pub fn connect_with(namenode_addr: &str, user: &str, config: ClientConfig) -> Result<Dfs> {
        if namenode_addr.is_empty() {
            return Err(DfsError::Invalid("empty NameNode address".into()));
        }
        let caller = Caller::new(user, Vec::new());
        let client_name = format!("DFSClient_herd_{}", hex(&caller.client_id[..8]));
        let policy = RetryPolicy { retry_for: config.namenode_retry_for, ..RetryPolicy::default() };
        let rpc = RpcClient::new(namenode_addr, Protocol::ClientNamenode, caller, policy);
        let lease = LeaseRenewer::new(config.lease_renew_interval);
        Ok(Dfs { inner: Arc::new(Inner { rpc: Mutex::new(rpc), client_name, config, lease }) })
    }

    /// A client of the NameNode named in `dir/cluster.json` (written by `herd up`).
    pub fn from_cluster_dir(dir: &Path, user: &str) -> Result<Dfs> {
        Dfs::connect(&crate::cluster::namenode_addr(dir)?, user)
    }

    /// The lease holder name this client writes under.
    pub fn client_name(&self) -> &str {
        &self.inner.client_name
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The file or directory at `path`, `None` if nothing is there.
    pub fn status(&self, path: &str) -> Result<Option<FileStatus>> {
        check_path(path)?;
        match self.inner.call(ClientRequest::GetFileInfo { path: path.to_string() })? {
            ClientResponse::FileInfo { status } => Ok(status),
            other => Err(unexpected("getFileInfo", other)),
        }
    }

    /// A directory's entries sorted by name (every page), or a file itself (named "").
    pub fn list(&self, path: &str) -> Result<Vec<FileStatus>> {
        check_path(path)?;
        const PAGE: u32 = 1000;
        let mut all: Vec<FileStatus> = Vec::new();
        let mut start_after = String::new();
        loop {
            let (entries, remaining) = self.list_page(path, &start_after, PAGE)?;
            let Some(last) = entries.last() else { break };
            // A page that does not move forward would loop forever.
            if last.name.is_empty() || last.name <= start_after {
                all.extend(entries);
                break;
            }
            start_after = last.name.clone();
            all.extend(entries);
            if remaining == 0 {
                break;
            }
        }
        Ok(all)
    }

    /// One page of a directory listing (HDFS `getListing`): up to `limit` entries after the
    /// name `start_after` ("" from the start), and how many entries follow the page.
    pub fn list_page(&self, path: &str, start_after: &str, limit: u32) -> Result<(Vec<FileStatus>, u64)> {
        check_path(path)?;
        let req = ClientRequest::List { path: path.to_string(), start_after: start_after.to_string(), limit };
        match self.inner.call(req)? {
            ClientResponse::Listing { entries, remaining } => Ok((entries, remaining)),
            other => Err(unexpected("getListing", other)),
        }
    }

    /// HDFS `mkdirs`: true once the directory exists.
    pub fn mkdirs(&self, path: &str, perm: u16, create_parent: bool) -> Result<bool> {
        check_path(path)?;
        self.inner.call_bool("mkdirs", ClientRequest::Mkdirs { path: path.to_string(), perm, create_parent })
    }

    /// False if nothing was there.
    pub fn delete(&self, path: &str, recursive: bool) -> Result<bool> {
        check_path(path)?;
        self.inner.call_bool("delete", ClientRequest::Delete { path: path.to_string(), recursive })
    }

    /// HDFS `rename2`: `dst` is the new name (never "into" a directory; the shell does that).
    pub fn rename(&self, src: &str, dst: &str, overwrite: bool) -> Result<()> {
        check_path(src)?;
        check_path(dst)?;
        self.inner.call_done("rename", ClientRequest::Rename { src: src.to_string(), dst: dst.to_string(), overwrite })
    }

    pub fn set_permission(&self, path: &str, perm: u16) -> Result<()> {
        check_path(path)?;
        self.inner.call_done("setPermission", ClientRequest::SetPermission { path: path.to_string(), perm })
    }

    /// `None` leaves that one unchanged.
    pub fn set_owner(&self, path: &str, owner: Option<&str>, group: Option<&str>) -> Result<()> {
        check_path(path)?;
        let req = ClientRequest::SetOwner {
            path: path.to_string(),
            owner: owner.map(String::from),
            group: group.map(String::from),
        };
        self.inner.call_done("setOwner", req)
    }

    /// False if `path` is not a file.
    pub fn set_replication(&self, path: &str, replication: u16) -> Result<bool> {
        check_path(path)?;
        self.inner.call_bool("setReplication", ClientRequest::SetReplication { path: path.to_string(), replication })
    }

    /// `None` leaves that one unchanged.
    pub fn set_times(&self, path: &str, mtime_ms: Option<u64>, atime_ms: Option<u64>) -> Result<()> {
        check_path(path)?;
        self.inner.call_done("setTimes", ClientRequest::SetTimes { path: path.to_string(), mtime_ms, atime_ms })
    }

    pub fn content_summary(&self, path: &str) -> Result<ContentSummary> {
        check_path(path)?;
        match self.inner.call(ClientRequest::GetContentSummary { path: path.to_string() })? {
            ClientResponse::ContentSummary { summary } => Ok(summary),
            other => Err(unexpected("getContentSummary", other)),
        }
    }

    /// Per block of the file at `path`: its replicas and their states (for fsck).
    pub fn block_health(&self, path: &str) -> Result<Vec<BlockHealth>> {
        check_path(path)?;
        match self.inner.call(ClientRequest::GetBlockHealth { path: path.to_string() })? {
            ClientResponse::BlockHealth { blocks } => Ok(blocks),
            other => Err(unexpected("getBlockHealth", other)),
        }
    }

    /// The blocks of `[offset, offset + length)` of a file and where they are.
    pub fn block_locations(&self, path: &str, offset: u64, length: u64) -> Result<LocatedBlocks> {
        check_path(path)?;
        self.inner.block_locations(path, offset, length)
    }

    /// Starts lease recovery of a file; true once it is closed.
    pub fn recover_lease(&self, path: &str) -> Result<bool> {
        check_path(path)?;
        let req = ClientRequest::RecoverLease { path: path.to_string(), client_name: self.inner.client_name.clone() };
        self.inner.call_bool("recoverLease", req)
    }

    /// HDFS `truncate`: cuts the closed file at `path` to `new_length` bytes (never longer).
    /// True when that is done; false when its new last block is being cut on the DataNodes by
    /// a block recovery, after which the NameNode closes the file. Until then the file is under
    /// construction and keeps its old length: wait with [`Dfs::truncate_and_wait`], or poll
    /// [`Dfs::status`] until it is no longer under construction (as `hadoop fs -truncate -w`
    /// polls for the new length), before reading or appending.
    pub fn truncate(&self, path: &str, new_length: u64) -> Result<bool> {
        check_path(path)?;
        let req =
            ClientRequest::Truncate { path: path.to_string(), new_length, client_name: self.inner.client_name.clone() };
        self.inner.call_bool("truncate", req)
    }

    /// [`Dfs::truncate`], then waits until the file is closed at `new_length` (polling every
    /// 100 ms, for at most `timeout`).
    pub fn truncate_and_wait(&self, path: &str, new_length: u64, timeout: Duration) -> Result<()> {
        if self.truncate(path, new_length)? {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.status(path)? {
                Some(s) if !s.under_construction && s.length == new_length => return Ok(()),
                None => return Err(DfsError::Invalid(format!("{path}: deleted while being truncated"))),
                Some(_) if std::time::Instant::now() >= deadline => {
                    return Err(DfsError::TruncateNotDone { path: path.to_string(), new_length });
                }
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// HDFS `concat`: appends the blocks of `srcs`, in order, to `target` and removes `srcs`.
    /// All are closed files in one directory, the sources not empty (Hadoop's rules; the
    /// NameNode checks them).
    pub fn concat(&self, target: &str, srcs: &[&str]) -> Result<()> {
        check_path(target)?;
        for s in srcs {
            check_path(s)?;
        }
        let srcs = srcs.iter().map(|s| s.to_string()).collect();
        self.inner.call_done("concat", ClientRequest::Concat { target: target.to_string(), srcs })
    }

    /// HDFS `refreshNodes` (superuser): the NameNode re-reads its exclude file.
    pub fn refresh_nodes(&self) -> Result<()> {
        match self.inner.call(ClientRequest::RefreshNodes)? {
            ClientResponse::Done => Ok(()),
            other => Err(unexpected("refreshNodes", other)),
        }
    }

    /// HDFS `getDatanodeReport`: every registered DataNode and its state.
    pub fn datanode_report(&self) -> Result<Vec<DatanodeStatus>> {
        match self.inner.call(ClientRequest::DatanodeReport)? {
            ClientResponse::DatanodeReport { datanodes } => Ok(datanodes),
            other => Err(unexpected("getDatanodeReport", other)),
        }
    }

    pub fn server_defaults(&self) -> Result<ServerDefaults> {
        self.inner.server_defaults()
    }

    /// Tells the NameNode about replicas found corrupt.
    pub fn report_bad_blocks(&self, blocks: Vec<BadReplica>) -> Result<()> {
        self.inner.call_done("reportBadBlocks", ClientRequest::ReportBadBlocks { blocks })
    }

    /// Creates a file and opens it for writing (see [`FileWriter`]).
    pub fn create(&self, path: &str, opts: CreateOptions) -> Result<FileWriter> {
        check_path(path)?;
        FileWriter::create(self.inner.clone(), path, opts)
    }

    /// Reopens a file for writing at its end.
    pub fn append(&self, path: &str) -> Result<FileWriter> {
        check_path(path)?;
        FileWriter::append(self.inner.clone(), path)
    }

    /// Opens a file for reading.
    pub fn open(&self, path: &str) -> Result<FileReader> {
        check_path(path)?;
        FileReader::open(self.inner.clone(), path)
    }

    /// HDFS's file checksum of the file at `path` (`MD5-of-<n>MD5-of-512CRC32C`, see
    /// [`crate::checksum`]): one replica per block asked, the next on any error.
    pub fn file_checksum(&self, path: &str) -> Result<FileChecksum> {
        check_path(path)?;
        crate::checksum::file_checksum(&self.inner, path)
    }

    /// Hadoop's `globStatus`: the paths matching `pattern` with their statuses, sorted; empty
    /// if nothing matches (see [`crate::glob`]).
    pub fn glob(&self, pattern: &str) -> Result<Vec<(String, FileStatus)>> {
        crate::glob::glob_status(self, pattern)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
