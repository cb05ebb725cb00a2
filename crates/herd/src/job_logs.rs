//! An application's container logs, gathered from the NodeManagers as YARN's `yarn logs` does
//! for an app whose logs are not aggregated: the ResourceManager names every node
//! (GetClusterNodes), each node's HTTP server lists the app's containers whose logs it holds
//! (`nodemanager::logs`), and every file is printed under YARN's header. Nodes that are LOST or
//! do not answer are skipped with a line on stderr: their logs are not reachable, which is not
//! an error of the others.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use compute_proto::records::{NodeReport, NodeState};
use compute_proto::{ApplicationClientRequest, ApplicationClientResponse, ApplicationId, ContainerId};
use nodemanager::logs;
use rpc::{Caller, Protocol, RetryPolicy, RpcClient};

/// Prints the logs of `app` (only `container`'s, only `file`'s when given) to `out`. Blocking:
/// call it off the async runtime.
pub fn print_logs(
    rm_addr: &str,
    user: &str,
    app: ApplicationId,
    container: Option<ContainerId>,
    file: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if let Some(f) = file {
        anyhow::ensure!(logs::FILES.contains(&f), "unknown log file {f:?}: stdout or stderr");
    }
    if let Some(c) = container {
        anyhow::ensure!(c.app() == app, "container {c} does not belong to {app}");
    }
    let nodes = cluster_nodes(rm_addr, user)?;
    let mut printed = 0usize;
    let mut skipped = 0usize;
    for node in &nodes {
        let name = node.node_id.to_string();
        if node.state == NodeState::Lost {
            eprintln!("skipping node {name}: it is LOST");
            skipped += 1;
            continue;
        }
        if node.http_addr.is_empty() {
            eprintln!("skipping node {name}: it serves no HTTP (started without --listen-http)");
            skipped += 1;
            continue;
        }
        let found = match logs::list(&node.http_addr, app) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("skipping node {name}: {e}");
                skipped += 1;
                continue;
            }
        };
        for c in found.iter().filter(|c| container.is_none_or(|want| want == c.id)) {
            for f in c.files.iter().filter(|f| file.is_none_or(|want| want == f.name)) {
                // Past the client's bound, the end of the log is what a reader wants.
                let start = (f.length > logs::FETCH_MAX).then(|| -(logs::FETCH_MAX as i64));
                let bytes = match logs::fetch(&node.http_addr, app, c.id, &f.name, start) {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("skipping {} of {} on {name}: {e}", f.name, c.id);
                        continue;
                    }
                };
                if start.is_some() {
                    eprintln!(
                        "{} of {} is {} bytes: only its last {} are printed",
                        f.name,
                        c.id,
                        f.length,
                        bytes.len()
                    );
                }
                print_file(out, c.id, &name, &f.name, &bytes)?;
                printed += 1;
            }
        }
    }
    out.flush()?;
    if printed == 0 {
        let what = match (container, file) {
            (Some(c), Some(f)) => format!("no {f} of {c}"),
            (Some(c), None) => format!("no logs of {c}"),
            (None, Some(f)) => format!("no {f} of any container of {app}"),
            (None, None) => format!("no logs of {app}"),
        };
        bail!("{what} on any of {} nodes ({skipped} skipped)", nodes.len());
    }
    Ok(())
}

/// YARN's header, the bytes, and its footer.
fn print_file(out: &mut dyn Write, id: ContainerId, node: &str, file: &str, bytes: &[u8]) -> std::io::Result<()> {
    writeln!(out, "Container: {id} on {node}")?;
    writeln!(out, "{}", "=".repeat(60))?;
    writeln!(out, "LogType:{file}")?;
    writeln!(out, "LogLength:{}", bytes.len())?;
    writeln!(out, "Log Contents:")?;
    out.write_all(bytes)?;
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        writeln!(out)?;
    }
    writeln!(out, "End of LogType:{file}")?;
    writeln!(out)
}

/// Every node the RM knows, in node id order.
fn cluster_nodes(rm_addr: &str, user: &str) -> anyhow::Result<Vec<NodeReport>> {
    let policy = RetryPolicy {
        io_timeout: Duration::from_secs(10),
        retry_for: Duration::from_secs(10),
        first_pause: Duration::from_millis(50),
    };
    let mut rm = RpcClient::new(rm_addr, Protocol::ClientResourceManager, Caller::new(user, Vec::new()), policy);
    let answer: ApplicationClientResponse = rm
        .call(&ApplicationClientRequest::GetClusterNodes { states: Vec::new() })
        .with_context(|| format!("asking the ResourceManager at {rm_addr} for its nodes"))?;
    let ApplicationClientResponse::Nodes { mut nodes } = answer else {
        bail!("the ResourceManager at {rm_addr} answered GetClusterNodes with {answer:?}");
    };
    nodes.sort_by_key(|n| n.node_id.to_string());
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use compute_proto::records::Resource;
    use compute_proto::{ApplicationAttemptId, NodeId};
    use nodemanager::logs::LogServer;
    use rpc::frame::{self, Request, Response, MAX_FRAME_LEN};
    use std::io::Read;
    use std::net::TcpListener;

    fn node(host_port: u16, http_addr: &str, state: NodeState) -> NodeReport {
        NodeReport {
            node_id: NodeId { host: "127.0.0.1".into(), port: host_port },
            rack: "/default-rack".into(),
            http_addr: http_addr.into(),
            state,
            health_report: String::new(),
            capability: Resource { memory_mb: 1024, vcores: 1 },
            used: Resource { memory_mb: 0, vcores: 0 },
            containers: 0,
            last_health_update_ms: 0,
        }
    }

    /// A fake RM answering GetClusterNodes with `nodes`, on connections until the test ends.
    fn fake_rm(nodes: Vec<NodeReport>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let mut pre = [0u8; 6];
                if c.read_exact(&mut pre).is_err() {
                    continue;
                }
                assert_eq!(Protocol::from_preamble(pre).unwrap(), Protocol::ClientResourceManager);
                while let Ok(req) = frame::read_message::<Request<ApplicationClientRequest>>(&mut c, MAX_FRAME_LEN) {
                    assert!(matches!(req.body, ApplicationClientRequest::GetClusterNodes { .. }));
                    let r = Response {
                        call_id: req.header.call_id,
                        result: Ok(ApplicationClientResponse::Nodes { nodes: nodes.clone() }),
                    };
                    if frame::write_message(&mut c, &r, MAX_FRAME_LEN).is_err() {
                        break;
                    }
                }
            }
        });
        addr
    }

    #[test]
    fn prints_every_reachable_nodes_logs_under_yarns_header() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let app = ApplicationId { cluster_ts: 1_700_000_000_000, seq: 3 };
        let attempt = ApplicationAttemptId { app, attempt: 1 };
        let (c1, c2) = (ContainerId::new(attempt, 0, 1).unwrap(), ContainerId::new(attempt, 0, 2).unwrap());
        for (c, out, err) in [(c1, "one\n", "warn 1"), (c2, "two\n", "")] {
            let d = dir.path().join(app.to_string()).join(c.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("stdout"), out).unwrap();
            std::fs::write(d.join("stderr"), err).unwrap();
        }
        let server = rt.block_on(LogServer::start("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf())).unwrap();
        let http = server.local_addr().to_string();
        // A port nobody listens on: bound, then closed.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let rm = fake_rm(vec![
            node(1, &http, NodeState::Running),
            node(2, &closed, NodeState::Running),
            node(3, "10.255.255.1:1", NodeState::Lost),
        ]);

        let mut out = Vec::new();
        print_logs(&rm, "alice", app, None, None, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let sep = "=".repeat(60);
        let want = format!(
            "Container: {c1} on 127.0.0.1:1\n{sep}\nLogType:stderr\nLogLength:6\nLog Contents:\nwarn 1\nEnd of LogType:stderr\n\n\
             Container: {c1} on 127.0.0.1:1\n{sep}\nLogType:stdout\nLogLength:4\nLog Contents:\none\nEnd of LogType:stdout\n\n\
             Container: {c2} on 127.0.0.1:1\n{sep}\nLogType:stderr\nLogLength:0\nLog Contents:\nEnd of LogType:stderr\n\n\
             Container: {c2} on 127.0.0.1:1\n{sep}\nLogType:stdout\nLogLength:4\nLog Contents:\ntwo\nEnd of LogType:stdout\n\n"
        );
        assert_eq!(text, want);

        // One container, one file.
        let mut out = Vec::new();
        print_logs(&rm, "alice", app, Some(c2), Some("stdout"), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("Container: {c2} on 127.0.0.1:1\n{sep}\nLogType:stdout\nLogLength:4\nLog Contents:\ntwo\nEnd of LogType:stdout\n\n")
        );

        // Nothing to print is an error that says so; so are a bad file name and another app's container.
        let other = ApplicationId { cluster_ts: 1_700_000_000_000, seq: 4 };
        let e = print_logs(&rm, "alice", other, None, None, &mut Vec::new()).unwrap_err();
        assert!(
            e.to_string().contains("no logs of application_1700000000000_0004 on any of 3 nodes (2 skipped)"),
            "{e}"
        );
        let e = print_logs(&rm, "alice", app, None, Some("syslog"), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("unknown log file"), "{e}");
        let foreign = ContainerId::new(ApplicationAttemptId { app: other, attempt: 1 }, 0, 1).unwrap();
        let e = print_logs(&rm, "alice", app, Some(foreign), None, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("does not belong to"), "{e}");
        rt.block_on(server.shutdown());
    }
}
