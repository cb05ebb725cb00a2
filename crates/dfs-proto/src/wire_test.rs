//! Every message type: one value of each variant round-trips; every strict prefix of an
//! encoding fails to decode; random and mutated bytes never panic, and whatever decodes
//! re-encodes to the same bytes (the encoding is canonical).

use crate::block::{DatanodeInfo, ExtendedBlock, LocatedBlock};
use crate::client_nn::*;
use crate::codec::Message;
use crate::dn_nn::*;
use crate::rpc::{RemoteError, Request, RequestHeader, Response};
use crate::transfer::{BlockChecksumResponse, Op, OpResponse, Packet, PacketHeader, PipelineAck, Status, WriteStage};
use ::rpc::wire_check::{self, covers, round_trip, Corpus};

/// Fewer samples would mean a protocol lost its examples.
const MIN_SAMPLES: usize = 70;
/// Mutation rounds; a failure names its seed.
const SEEDS: u64 = 3000;

fn blk(id: u64) -> ExtendedBlock {
    ExtendedBlock { id, gs: id + 1000, len: id * 7 }
}

fn dn(i: u8) -> DatanodeInfo {
    DatanodeInfo {
        id: format!("dn{i}"),
        data_addr: format!("127.0.0.{i}:9866"),
        http_addr: format!("127.0.0.{i}:9864"),
        rack: "/r1".into(),
    }
}

fn located(id: u64) -> LocatedBlock {
    LocatedBlock { block: blk(id), offset: id << 27, locations: vec![dn(1), dn(2)], corrupt: id.is_multiple_of(2) }
}

fn status(name: &str) -> FileStatus {
    FileStatus {
        name: name.into(),
        kind: FileKind::File,
        length: 12345,
        owner: "ann".into(),
        group: "staff".into(),
        perm: 0o644,
        replication: 3,
        block_size: 128 << 20,
        mtime_ms: 1_700_000_000_000,
        atime_ms: 1_700_000_000_001,
        file_id: 5 << 10 | 1,
        children: 0,
        under_construction: true,
    }
}

fn client_requests() -> Vec<ClientRequest> {
    use ClientRequest::*;
    let p = || "/a/b".to_string();
    let c = || "DFSClient_1".to_string();
    vec![
        Mkdirs { path: p(), perm: 0o755, create_parent: true },
        Create {
            path: p(),
            perm: 0o644,
            overwrite: false,
            create_parent: true,
            replication: 3,
            block_size: 128 << 20,
            client_name: c(),
        },
        AddBlock { path: p(), client_name: c(), previous: Some(blk(1)), excluded: vec!["dn3".into()] },
        Complete { path: p(), client_name: c(), last: None },
        AbandonBlock { path: p(), client_name: c(), block: blk(2) },
        Append { path: p(), client_name: c(), new_block: true },
        UpdateBlockForPipeline { block: blk(3), client_name: c() },
        UpdatePipeline { client_name: c(), old_block: blk(3), new_block: blk(4), new_nodes: vec!["dn1".into()] },
        Rename { src: p(), dst: "/c".into(), overwrite: true },
        Delete { path: p(), recursive: true },
        SetPermission { path: p(), perm: 0o1777 },
        SetOwner { path: p(), owner: Some("bob".into()), group: None },
        SetReplication { path: p(), replication: 2 },
        SetTimes { path: p(), mtime_ms: None, atime_ms: Some(9) },
        RenewLease { client_name: c() },
        RecoverLease { path: p(), client_name: c() },
        GetFileInfo { path: p() },
        List { path: p(), start_after: "x".into(), limit: 1000 },
        GetContentSummary { path: p() },
        GetBlockLocations { path: p(), offset: 10, length: u64::MAX },
        ReportBadBlocks { blocks: vec![BadReplica { block: blk(5), datanode: "dn2".into() }] },
        GetBlockHealth { path: p() },
        GetServerDefaults,
        RefreshNodes,
        DatanodeReport,
        Truncate { path: p(), new_length: (1 << 20) + 17, client_name: c() },
        Concat { target: p(), srcs: vec!["/a/c".into(), "/a/d".into()] },
    ]
}

fn client_responses() -> Vec<ClientResponse> {
    use ClientResponse::*;
    let mut dir = status("d");
    dir.kind = FileKind::Dir;
    vec![
        Done,
        Bool { value: true },
        Status { status: status("") },
        FileInfo { status: None },
        Block { block: blk(6) },
        Located { block: located(7) },
        Appended { status: status(""), last: Some(located(8)) },
        Listing { entries: vec![dir, status("f")], remaining: 3 },
        ContentSummary {
            summary: crate::client_nn::ContentSummary { length: 1, files: 2, dirs: 3, space_consumed: 3 },
        },
        LocatedBlocks {
            blocks: crate::client_nn::LocatedBlocks {
                file_length: 99,
                blocks: vec![located(1), located(2)],
                under_construction: true,
                last_block: Some(located(2)),
                last_block_complete: false,
            },
        },
        BlockHealth {
            blocks: vec![crate::client_nn::BlockHealth {
                block: blk(9),
                expected_replication: 3,
                replicas: vec![
                    ReplicaHealth { datanode: dn(1), state: ReplicaHealthState::Live },
                    ReplicaHealth { datanode: dn(2), state: ReplicaHealthState::Corrupt },
                    ReplicaHealth { datanode: dn(3), state: ReplicaHealthState::Decommissioning },
                    ReplicaHealth { datanode: dn(4), state: ReplicaHealthState::Stale },
                ],
            }],
        },
        ServerDefaults {
            defaults: crate::client_nn::ServerDefaults {
                block_size: 128 << 20,
                replication: 3,
                bytes_per_checksum: 512,
                write_packet_size: 64 << 10,
            },
        },
        DatanodeReport {
            datanodes: vec![crate::client_nn::DatanodeStatus {
                datanode: dn(1),
                incarnation: 7,
                state: crate::client_nn::AdminState::Decommissioning,
                capacity: 100,
                free: 40,
                blocks: 12,
            }],
        },
    ]
}

fn replica(id: u64, state: ReplicaState) -> ReportedReplica {
    ReportedReplica { id, gs: id, len: 512 * id, state }
}

fn commands() -> Vec<DatanodeCommand> {
    use DatanodeCommand::*;
    vec![
        Transfer { namenode_epoch: 5, block: blk(1), targets: vec![dn(2), dn(3)] },
        Invalidate { namenode_epoch: 5, blocks: vec![blk(2), blk(3)] },
        Reregister { namenode_epoch: 5 },
    ]
}

fn datanode_requests() -> Vec<DatanodeRequest> {
    use DatanodeRequest::*;
    let id = || "dn1".to_string();
    vec![
        Register {
            id: id(),
            incarnation: -3,
            data_addr: "127.0.0.1:9866".into(),
            http_addr: "127.0.0.1:9864".into(),
            rack: "/r1".into(),
            capacity: 1 << 40,
            used: 1 << 30,
        },
        Heartbeat { id: id(), incarnation: 4, capacity: 10, used: 5, free: 4, active_transfers: 2, failed_volumes: 1 },
        BlockReport {
            id: id(),
            incarnation: 4,
            replicas: vec![replica(1, ReplicaState::Finalized), replica(2, ReplicaState::Rbw)],
        },
        IncrementalBlockReport {
            id: id(),
            incarnation: 4,
            received: vec![replica(3, ReplicaState::Finalized)],
            deleted: vec![blk(4)],
            receiving: vec![replica(5, ReplicaState::Rbw)],
        },
        ReportBadBlocks { id: id(), incarnation: 4, blocks: vec![blk(6)] },
    ]
}

fn datanode_responses() -> Vec<DatanodeResponse> {
    vec![
        DatanodeResponse::Done,
        DatanodeResponse::Registered { namenode_epoch: 9 },
        DatanodeResponse::Commands { response: HeartbeatResponse { namenode_epoch: 9, commands: commands() } },
    ]
}

fn ops() -> Vec<Op> {
    let stages = [WriteStage::Create, WriteStage::Append, WriteStage::Recovery, WriteStage::Transfer];
    let mut v: Vec<Op> = stages
        .iter()
        .map(|&stage| Op::WriteBlock {
            block: blk(1),
            new_gs: 1002,
            targets: vec![dn(2), dn(3)],
            client_name: "DFSClient_1".into(),
            stage,
            namenode_epoch: 0,
        })
        .collect();
    v.push(Op::ReadBlock { block: blk(2), offset: 700, len: 1000, verify: true });
    v.push(Op::CopyBlock { block: blk(3) });
    v.push(Op::InitRecovery { block: blk(4), recovery_id: 9, namenode_epoch: 3 });
    v.push(Op::FinishRecovery { block: blk(5), namenode_epoch: 3 });
    v.push(Op::BlockChecksum { block: blk(6) });
    v
}

fn all_statuses() -> Vec<Status> {
    use Status::*;
    vec![Success, Error, ErrorChecksum, ErrorInvalid, ErrorExists, ErrorDiskFull, ErrorStale]
}

fn header() -> RequestHeader {
    RequestHeader { call_id: 42, client_id: [7; 16], user: "ann".into(), groups: vec!["staff".into(), "g".into()] }
}

fn corpus() -> Corpus {
    covers(client_requests().iter().map(|m| m.wire_tag()), ClientRequest::WIRE_TAGS, "ClientRequest");
    covers(client_responses().iter().map(|m| m.wire_tag()), ClientResponse::WIRE_TAGS, "ClientResponse");
    covers(datanode_requests().iter().map(|m| m.wire_tag()), DatanodeRequest::WIRE_TAGS, "DatanodeRequest");
    covers(datanode_responses().iter().map(|m| m.wire_tag()), DatanodeResponse::WIRE_TAGS, "DatanodeResponse");
    covers(commands().iter().map(|m| m.wire_tag()), DatanodeCommand::WIRE_TAGS, "DatanodeCommand");
    covers(ops().iter().map(|m| m.wire_tag()), Op::WIRE_TAGS, "Op");
    covers(all_statuses().iter().map(|m| m.wire_tag()), Status::WIRE_TAGS, "Status");

    let mut out = Vec::new();
    let reqs: Vec<_> = client_requests().into_iter().map(|body| Request { header: header(), body }).collect();
    round_trip(&reqs, &mut out);
    let mut resps: Vec<_> = client_responses().into_iter().map(|b| Response { call_id: 42, result: Ok(b) }).collect();
    resps.push(Response {
        call_id: 43,
        result: Err(RemoteError::new("java.io.FileNotFoundException", "File /a does not exist.")),
    });
    round_trip(&resps, &mut out);
    let reqs: Vec<_> = datanode_requests().into_iter().map(|body| Request { header: header(), body }).collect();
    round_trip(&reqs, &mut out);
    let resps: Vec<_> = datanode_responses().into_iter().map(|b| Response { call_id: 1, result: Ok(b) }).collect();
    round_trip(&resps, &mut out);
    round_trip(&commands(), &mut out);
    round_trip(&ops(), &mut out);
    let op_resps: Vec<_> = all_statuses()
        .into_iter()
        .map(|status| OpResponse { status, message: format!("{status:?}"), first_chunk_offset: 512 })
        .collect();
    round_trip(&op_resps, &mut out);
    round_trip(
        &[
            BlockChecksumResponse { bytes_per_crc: 512, crc_per_block: 0, md5: [0xab; 16] },
            BlockChecksumResponse { bytes_per_crc: 512, crc_per_block: 262_144, md5: *b"0123456789abcdef" },
        ],
        &mut out,
    );
    round_trip(
        &[
            Packet::build(0, 0, vec![], true, false),
            Packet::build(1, 700, (0..1000u32).map(|i| i as u8).collect(), false, true),
            Packet::build(2, 1 << 30, vec![9; 64 << 10], false, false),
        ],
        &mut out,
    );
    round_trip(
        &[PipelineAck { seqno: 3, statuses: vec![] }, PipelineAck { seqno: 4, statuses: all_statuses() }],
        &mut out,
    );
    // Op frames: the version prefix decodes too.
    for op in ops() {
        let frame = op.to_frame().unwrap();
        assert_eq!(Op::from_body(&frame[4..]).unwrap(), op);
        let mut r: &[u8] = &frame;
        assert_eq!(Op::read_from(&mut r).unwrap(), op);
        out.push((frame[4..].to_vec(), |b| Op::from_body(b).ok().map(|op| op.to_frame().unwrap()[4..].to_vec())));
    }
    out
}

#[test]
fn every_variant_round_trips() {
    let corpus = corpus();
    assert!(corpus.len() > MIN_SAMPLES, "{} samples", corpus.len());
    wire_check::every_sample_round_trips(&corpus);
}

#[test]
fn every_strict_prefix_fails_to_decode() {
    wire_check::every_strict_prefix_fails(&corpus());
}

#[test]
fn trailing_bytes_are_refused() {
    wire_check::trailing_bytes_are_refused(&corpus());
}

#[test]
fn random_and_mutated_bytes_never_panic_and_decode_canonically() {
    wire_check::mutations_never_panic_and_decode_canonically(&corpus(), SEEDS);
}

#[test]
fn hostile_lengths_are_refused_without_allocating() {
    // A List request claiming a 4 GiB path: refused from the count, not by running out of memory.
    let mut b = header().to_bytes();
    b.push(ClientRequest::List { path: String::new(), start_after: String::new(), limit: 0 }.wire_tag());
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(Request::<ClientRequest>::from_bytes(&b).is_err());
    // A block report claiming 2^32-1 replicas with 100 bytes behind it.
    let mut b = vec![DatanodeRequest::BlockReport { id: String::new(), incarnation: 0, replicas: vec![] }.wire_tag()];
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    b.extend_from_slice(&[0; 100]);
    assert!(DatanodeRequest::from_bytes(&b).is_err());
    // A packet header announcing more data than a packet may carry.
    let too_long = crate::transfer::MAX_PACKET_DATA_LEN as u32 + 1;
    let h = PacketHeader { seqno: 0, offset_in_block: 0, last: false, sync: false, data_len: too_long };
    assert!(PacketHeader::from_bytes(&h.to_bytes()).is_err());
}
