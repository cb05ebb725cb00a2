//! Every message type, as dfs-proto's wire tests do it: one value of each variant round-trips;
//! every strict prefix of an encoding fails to decode; trailing bytes are refused; random and
//! mutated bytes never panic, and whatever decodes re-encodes to the same bytes.

use crate::am_nm::*;
use crate::am_rm::*;
use crate::client_rm::*;
use crate::ids::*;
use crate::nm_rm::*;
use crate::records::*;
use crate::token::ContainerToken;
use crate::umbilical::*;
use rpc::codec::Message;
use rpc::frame::{RemoteError, Request, RequestHeader, Response};
use rpc::wire_check::{self, covers, round_trip, Corpus};
use std::fmt::Debug;

/// Fewer samples would mean a protocol lost its examples.
const MIN_SAMPLES: usize = 50;
/// Mutation rounds; a failure names its seed.
const SEEDS: u64 = 2000;

fn app() -> ApplicationId {
    ApplicationId { cluster_ts: 1_700_000_000_000, seq: 7 }
}

fn attempt() -> ApplicationAttemptId {
    ApplicationAttemptId { app: app(), attempt: 2 }
}

fn cid(seq: u64) -> ContainerId {
    ContainerId { attempt: attempt(), epoch: 3, seq }
}

fn node(i: u16) -> NodeId {
    NodeId { host: format!("nm{i}"), port: 8041 + i }
}

fn res() -> Resource {
    Resource { memory_mb: 1536, vcores: 2 }
}

fn token(seq: u64) -> ContainerToken {
    let mut t = ContainerToken {
        container_id: cid(seq),
        node_id: node(1),
        resource: res(),
        app_attempt: attempt(),
        rm_epoch: 0x2_0000_0001,
        mac: [0; 32],
    };
    t.sign(b"secret");
    t
}

fn task_attempt(kind: TaskType, index: u32) -> TaskAttemptId {
    TaskAttemptId { task: TaskId { app: app(), kind, index }, attempt: 1 }
}

fn container_status(seq: u64, state: ContainerState, exit: i32) -> ContainerStatus {
    ContainerStatus { container_id: cid(seq), state, exit_status: exit, diagnostics: format!("exit {exit}") }
}

fn launch() -> ContainerLaunchContext {
    ContainerLaunchContext {
        command: vec!["herd".into(), "task".into()],
        env: vec![EnvVar { name: "CONTAINER_ID".into(), value: cid(2).to_string() }],
        files: vec![LocalResource { path: "/user/ann/.staging/job.json".into(), local_name: "job.json".into() }],
    }
}

fn node_report(state: NodeState) -> NodeReport {
    NodeReport {
        node_id: node(2),
        rack: "/r1".into(),
        http_addr: "nm2:8042".into(),
        state,
        health_report: "ERROR disk".into(),
        capability: Resource { memory_mb: 8192, vcores: 8 },
        used: res(),
        containers: 1,
        last_health_update_ms: 1_700_000_000_123,
    }
}

fn app_report(state: ApplicationState, final_status: FinalApplicationStatus) -> ApplicationReport {
    ApplicationReport {
        app_id: app(),
        user: "ann".into(),
        queue: "default".into(),
        name: "wordcount".into(),
        state,
        final_status,
        current_attempt: Some(attempt()),
        am_host: "nm1".into(),
        am_rpc_port: 40123,
        tracking_url: String::new(),
        diagnostics: "d".into(),
        progress: Progress::from_ppm(500_000),
        start_ms: 1,
        finish_ms: Some(2),
    }
}

fn client_requests() -> Vec<ApplicationClientRequest> {
    use ApplicationClientRequest::*;
    vec![
        SubmitApplication {
            submission: ApplicationSubmission {
                name: "wordcount".into(),
                queue: "default".into(),
                am_launch: launch(),
                am_resource: res(),
                max_attempts: 2,
            },
        },
        GetApplicationReport { app_id: app() },
        ListApplications { states: vec![ApplicationState::Running, ApplicationState::Accepted] },
        KillApplication { app_id: app() },
        GetClusterNodes { states: vec![] },
    ]
}

fn client_responses() -> Vec<ApplicationClientResponse> {
    use ApplicationClientResponse::*;
    use ApplicationState as S;
    use FinalApplicationStatus as F;
    let all = [
        (S::New, F::Undefined),
        (S::NewSaving, F::Undefined),
        (S::Submitted, F::Undefined),
        (S::Accepted, F::Undefined),
        (S::Running, F::Undefined),
        (S::Finished, F::Succeeded),
        (S::Failed, F::Failed),
        (S::Killed, F::Killed),
    ];
    covers(all.iter().map(|(s, _)| s.wire_tag()), S::WIRE_TAGS, "ApplicationState");
    covers(all.iter().map(|(_, f)| f.wire_tag()), F::WIRE_TAGS, "FinalApplicationStatus");
    use NodeState as N;
    let nodes =
        [N::New, N::Running, N::Unhealthy, N::Decommissioned, N::Lost, N::Rebooted, N::Decommissioning, N::Shutdown];
    covers(nodes.iter().map(|n| n.wire_tag()), N::WIRE_TAGS, "NodeState");
    let mut unstarted = app_report(S::Accepted, F::Undefined);
    unstarted.current_attempt = None;
    unstarted.finish_ms = None;
    vec![
        Submitted { app_id: app() },
        Report { report: app_report(S::Running, F::Undefined) },
        Applications { reports: all.iter().map(|&(s, f)| app_report(s, f)).chain([unstarted]).collect() },
        KillRequested { completed: true },
        Nodes { nodes: nodes.iter().map(|&s| node_report(s)).collect() },
    ]
}

fn am_requests() -> Vec<ApplicationMasterRequest> {
    use ApplicationMasterRequest::*;
    vec![
        RegisterApplicationMaster { attempt: attempt(), host: "nm1".into(), rpc_port: 40123, tracking_url: "".into() },
        Allocate {
            attempt: attempt(),
            last_response_id: 4,
            asks: vec![
                ResourceRequest {
                    priority: 20,
                    resource: res(),
                    nodes: vec!["nm1".into(), "nm2".into()],
                    racks: vec!["/r1".into()],
                    relax_locality: true,
                    count: 3,
                },
                ResourceRequest {
                    priority: 10,
                    resource: res(),
                    nodes: vec![],
                    racks: vec![],
                    relax_locality: false,
                    count: 0,
                },
            ],
            releases: vec![cid(4)],
            blacklist_additions: vec![node(3)],
            blacklist_removals: vec![node(4)],
            progress: Progress::DONE,
        },
        FinishApplicationMaster {
            attempt: attempt(),
            final_status: FinalApplicationStatus::Failed,
            diagnostics: "task failed 4 times".into(),
            tracking_url: "".into(),
        },
    ]
}

fn am_responses() -> Vec<ApplicationMasterResponse> {
    use ApplicationMasterResponse::*;
    vec![
        Registered { max_resource: Resource { memory_mb: 8192, vcores: 8 }, rm_epoch: 9 },
        Allocated {
            response_id: 5,
            allocated: vec![
                Container { token: token(2), priority: 20, node_http_addr: "nm1:8042".into() },
                Container { token: token(3), priority: 20, node_http_addr: "nm1:8042".into() },
            ],
            completed: vec![container_status(4, ContainerState::Complete, exit_status::ABORTED)],
            updated_nodes: vec![node_report(NodeState::Lost)],
            available: res(),
            cluster_nodes: 3,
            rm_epoch: 9,
        },
        Finished { unregistered: true },
    ]
}

fn nm_requests() -> Vec<ResourceTrackerRequest> {
    use ResourceTrackerRequest::*;
    let states = [ContainerState::New, ContainerState::Running, ContainerState::Complete];
    covers(states.iter().map(|s| s.wire_tag()), ContainerState::WIRE_TAGS, "ContainerState");
    vec![
        RegisterNodeManager {
            id: "nm1".into(),
            incarnation: -5,
            resource: Resource { memory_mb: 8192, vcores: 8 },
            ctl_addr: node(1),
            http_addr: "nm1:8042".into(),
            shuffle_addr: "nm1:13562".into(),
            rack: "/default-rack".into(),
            running: vec![container_status(2, ContainerState::Running, exit_status::INVALID)],
        },
        NodeHeartbeat {
            id: "nm1".into(),
            incarnation: 5,
            statuses: states.iter().enumerate().map(|(i, &s)| container_status(i as u64, s, -(i as i32))).collect(),
            health: NodeHealth { healthy: false, report: "ERROR disk full".into() },
            last_rm_epoch: 9,
        },
    ]
}

fn nm_responses() -> Vec<ResourceTrackerResponse> {
    use ResourceTrackerResponse::*;
    vec![
        Registered { rm_epoch: 9 },
        Heartbeat {
            containers_to_kill: vec![cid(5)],
            finished_apps: vec![app()],
            finished_attempts: vec![ApplicationAttemptId { app: app(), attempt: 1 }],
            resync: true,
            rm_epoch: 9,
        },
    ]
}

fn cm_requests() -> Vec<ContainerManagementRequest> {
    use ContainerManagementRequest::*;
    vec![
        StartContainer { token: token(2), launch: launch() },
        StopContainer { container_id: cid(2) },
        GetContainerStatus { container_id: cid(2) },
    ]
}

fn cm_responses() -> Vec<ContainerManagementResponse> {
    use ContainerManagementResponse::*;
    vec![
        Started { container_id: cid(2) },
        Stopped,
        Status { status: container_status(2, ContainerState::Complete, exit_status::KILLED_BY_APPMASTER) },
    ]
}

fn umbilical_requests() -> Vec<UmbilicalRequest> {
    use UmbilicalRequest::*;
    let phases = [Phase::Starting, Phase::Map, Phase::Shuffle, Phase::Sort, Phase::Reduce, Phase::Cleanup];
    covers(phases.iter().map(|p| p.wire_tag()), Phase::WIRE_TAGS, "Phase");
    let map = task_attempt(TaskType::Map, 3);
    let reduce = task_attempt(TaskType::Reduce, 0);
    let mut v: Vec<UmbilicalRequest> = phases
        .iter()
        .map(|&phase| StatusUpdate {
            attempt: map,
            status: TaskStatus {
                progress: Progress::from_fraction(0.25),
                phase,
                counters: vec![Counter {
                    group: "org.apache.hadoop.mapreduce.TaskCounter".into(),
                    name: "MAP_INPUT_RECORDS".into(),
                    value: 1 << 40,
                }],
                state_text: "reading".into(),
            },
        })
        .collect();
    v.extend([
        GetTask { container_id: cid(2) },
        Done { attempt: map, shuffle_addr: "127.0.0.1:13562".into() },
        CanCommit { attempt: reduce },
        FatalError { attempt: map, message: "exit 1".into(), stderr_tail: "Traceback ...\n".into() },
        ReportFetchFailure { attempt: reduce, map_attempt: map },
        GetMapCompletionEvents { attempt: reduce, from_event_id: 10, max: 100 },
        GetJobReport,
    ]);
    v
}

fn umbilical_responses() -> Vec<UmbilicalResponse> {
    use UmbilicalResponse::*;
    let statuses =
        [MapEventStatus::Succeeded, MapEventStatus::Failed, MapEventStatus::Killed, MapEventStatus::Obsolete];
    covers(statuses.iter().map(|s| s.wire_tag()), MapEventStatus::WIRE_TAGS, "MapEventStatus");
    let map = TaskSpec::Map {
        attempt: task_attempt(TaskType::Map, 3),
        split: FileSplit { path: "/in/a.txt".into(), start: 128 << 20, length: 128 << 20 },
        reduces: 4,
    };
    let reduce = TaskSpec::Reduce { attempt: task_attempt(TaskType::Reduce, 1), maps: 10 };
    covers([map.wire_tag(), reduce.wire_tag()], TaskSpec::WIRE_TAGS, "TaskSpec");
    vec![
        Ack,
        Task { task: Some(map) },
        Task { task: Some(reduce) },
        Task { task: None },
        Feedback { task_found: false },
        CommitAllowed { allowed: true },
        MapCompletionEvents {
            events: statuses
                .iter()
                .enumerate()
                .map(|(i, &status)| MapCompletionEvent {
                    event_id: i as u32,
                    map_attempt: task_attempt(TaskType::Map, i as u32),
                    status,
                    shuffle_addr: "nm1:13562".into(),
                })
                .collect(),
        },
        JobReport { json: "{\"state\":\"RUNNING\"}".into() },
    ]
}

fn header() -> RequestHeader {
    RequestHeader { call_id: 42, client_id: [7; 16], user: "ann".into(), groups: vec!["staff".into()] }
}

/// One protocol's samples, as request and response envelopes.
fn protocol<Q, A>(reqs: Vec<Q>, resps: Vec<A>, out: &mut Corpus)
where
    Q: Message + PartialEq + Debug,
    A: Message + PartialEq + Debug,
{
    let reqs: Vec<_> = reqs.into_iter().map(|body| Request { header: header(), body }).collect();
    round_trip(&reqs, out);
    let mut resps: Vec<_> = resps.into_iter().map(|b| Response { call_id: 42, result: Ok(b) }).collect();
    let refused = RemoteError::new(crate::errors::APPLICATION_ATTEMPT_NOT_FOUND, "attempt 1 is not current");
    resps.push(Response { call_id: 43, result: Err(refused) });
    round_trip(&resps, out);
}

fn corpus() -> Corpus {
    covers(client_requests().iter().map(|m| m.wire_tag()), ApplicationClientRequest::WIRE_TAGS, "client requests");
    covers(client_responses().iter().map(|m| m.wire_tag()), ApplicationClientResponse::WIRE_TAGS, "client responses");
    covers(am_requests().iter().map(|m| m.wire_tag()), ApplicationMasterRequest::WIRE_TAGS, "AM requests");
    covers(am_responses().iter().map(|m| m.wire_tag()), ApplicationMasterResponse::WIRE_TAGS, "AM responses");
    covers(nm_requests().iter().map(|m| m.wire_tag()), ResourceTrackerRequest::WIRE_TAGS, "NM requests");
    covers(nm_responses().iter().map(|m| m.wire_tag()), ResourceTrackerResponse::WIRE_TAGS, "NM responses");
    covers(cm_requests().iter().map(|m| m.wire_tag()), ContainerManagementRequest::WIRE_TAGS, "CM requests");
    covers(cm_responses().iter().map(|m| m.wire_tag()), ContainerManagementResponse::WIRE_TAGS, "CM responses");
    covers(umbilical_requests().iter().map(|m| m.wire_tag()), UmbilicalRequest::WIRE_TAGS, "umbilical requests");
    covers(umbilical_responses().iter().map(|m| m.wire_tag()), UmbilicalResponse::WIRE_TAGS, "umbilical responses");

    let mut out = Vec::new();
    protocol(client_requests(), client_responses(), &mut out);
    protocol(am_requests(), am_responses(), &mut out);
    protocol(nm_requests(), nm_responses(), &mut out);
    protocol(cm_requests(), cm_responses(), &mut out);
    protocol(umbilical_requests(), umbilical_responses(), &mut out);
    round_trip(&[token(1), token(u64::from(u32::MAX) + 1)], &mut out);
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
fn values_past_their_limits_are_refused() {
    // A container id whose epoch has 25 bits, or whose number has 41.
    let id = cid(1).to_bytes();
    let epoch_at = ApplicationAttemptId::MIN_WIRE;
    let mut b = id.clone();
    b[epoch_at..epoch_at + 4].copy_from_slice(&(ContainerId::EPOCH_MAX + 1).to_be_bytes());
    assert!(ContainerId::from_bytes(&b).is_err());
    let mut b = id.clone();
    b[epoch_at + 4..].copy_from_slice(&(ContainerId::SEQ_MAX + 1).to_be_bytes());
    assert!(ContainerId::from_bytes(&b).is_err());
    // A progress over 1.
    assert!(Progress::from_bytes(&1_000_001u32.to_be_bytes()).is_err());
    assert_eq!(Progress::from_bytes(&1_000_000u32.to_be_bytes()).unwrap(), Progress::DONE);
    assert_eq!(Progress::from_fraction(2.0), Progress::DONE);
    assert_eq!(Progress::from_fraction(f64::NAN).ppm(), 0);
    // A heartbeat claiming 2^32-1 container statuses with 100 bytes behind it.
    let mut b = vec![ResourceTrackerRequest::NodeHeartbeat {
        id: String::new(),
        incarnation: 0,
        statuses: vec![],
        health: NodeHealth { healthy: true, report: String::new() },
        last_rm_epoch: 0,
    }
    .wire_tag()];
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    b.extend_from_slice(&[0; 100]);
    assert!(ResourceTrackerRequest::from_bytes(&b).is_err());
}
