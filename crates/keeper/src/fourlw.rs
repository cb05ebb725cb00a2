//! Four-letter words on the client port, answered in ZooKeeper 3.8's text formats.

use crate::core::KeeperCore;
use crate::tree::NodeKind;

/// The version clients see; kazoo and others parse the leading numbers.
pub const ZK_VERSION: &str = concat!("3.8.4-herd-", env!("CARGO_PKG_VERSION"), ", built on 2026-11-22 00:00 UTC");

pub const WORDS: [&str; 10] = ["ruok", "srvr", "stat", "mntr", "conf", "envi", "cons", "wchs", "dump", "isro"];

/// Whether the first four bytes of a connection are a four-letter word rather than a length.
pub fn word_of(head: [u8; 4]) -> Option<&'static str> {
    WORDS.iter().copied().find(|w| w.as_bytes() == head)
}

pub fn answer(core: &KeeperCore, word: &str) -> String {
    if !core.config().four_letter_words.allows(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    let tree = core.tree();
    let mode = core.mode();
    match word {
        "ruok" => "imok".to_owned(),
        "isro" => if mode == "read-only" { "ro" } else { "rw" }.to_owned(),
        "srvr" => server_lines(core, mode, None),
        "stat" => {
            let mut clients = String::from("Clients:\n");
            for l in core.connection_lines() {
                clients.push_str(&l);
                clients.push('\n');
            }
            clients.push('\n');
            server_lines(core, mode, Some(clients))
        }
        "mntr" => {
            let (watches, _) = core.watches().counts();
            let ephemerals: usize = tree.ephemerals().values().map(|s| s.len()).sum();
            let rows: Vec<(&str, String)> = vec![
                ("zk_version", ZK_VERSION.to_owned()),
                ("zk_server_state", mode.to_owned()),
                ("zk_avg_latency", "0.0".into()),
                ("zk_max_latency", "0".into()),
                ("zk_min_latency", "0".into()),
                ("zk_packets_received", core.counters().received.to_string()),
                ("zk_packets_sent", core.counters().sent.to_string()),
                ("zk_num_alive_connections", core.connection_count().to_string()),
                ("zk_outstanding_requests", core.outstanding().to_string()),
                ("zk_znode_count", tree.node_count().to_string()),
                ("zk_watch_count", watches.to_string()),
                ("zk_ephemerals_count", ephemerals.to_string()),
                ("zk_approximate_data_size", tree.approximate_data_size().to_string()),
                ("zk_open_file_descriptor_count", open_fds().to_string()),
                ("zk_max_file_descriptor_count", max_fds().to_string()),
                ("zk_uptime", core.uptime().as_millis().to_string()),
                ("zk_global_sessions", tree.sessions().len().to_string()),
                ("zk_last_zxid", format!("0x{:x}", tree.last_zxid())),
            ];
            rows.into_iter().map(|(k, v)| format!("{k}\t{v}\n")).collect()
        }
        "conf" => {
            let c = core.config();
            format!(
                "clientPort={}\nsecureClientPort={}\ndataDir={}\ndataDirSize=0\ndataLogDir={}\ndataLogSize=0\n\
                 tickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\n\
                 clientPortListenBacklog=-1\nserverId={}\n",
                c.client_addr.port(),
                c.secure_client_port.map_or(-1, i32::from),
                c.data_dir.display(),
                c.data_dir.display(),
                c.tick_time_ms,
                c.max_client_cnxns,
                c.min_session_timeout(),
                c.max_session_timeout(),
                c.server_id
            )
        }
        "envi" => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!(
                "Environment:\nzookeeper.version={ZK_VERSION}\nhost.name={}\nherd.version={}\nos.name=Linux\n\
                 os.arch={}\nuser.dir={}\n",
                host.trim(),
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH,
                std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()
            )
        }
        "cons" => {
            let mut s = String::new();
            for l in core.connection_lines() {
                s.push_str(&l);
                s.push('\n');
            }
            s.push('\n');
            s
        }
        "wchs" => {
            let (total, paths) = core.watches().counts();
            format!(
                "{} connections watching {paths} paths\nTotal watches:{total}\n",
                core.watches().connections_watching()
            )
        }
        "dump" => {
            let sessions = core.live_sessions();
            let mut s = format!("SessionTracker dump:\nSession Sets ({})/{}:\n", sessions.len(), sessions.len());
            for (sid, to) in &sessions {
                s.push_str(&format!("0x{sid:x}\t{}ms\n", to.as_millis()));
            }
            let eph = tree.ephemerals();
            s.push_str(&format!("ephemeral nodes dump:\nSessions with Ephemerals ({}):\n", eph.len()));
            let mut sids: Vec<&i64> = eph.keys().collect();
            sids.sort();
            for sid in sids {
                s.push_str(&format!("0x{sid:x}:\n"));
                for p in &eph[sid] {
                    debug_assert!(matches!(
                        crate::tree::node_kind(tree.get(p).map_or(0, |n| n.stat.ephemeral_owner)),
                        NodeKind::Ephemeral(_)
                    ));
                    s.push_str(&format!("\t{p}\n"));
                }
            }
            s.push_str("Connections dump:\n");
            s
        }
        _ => format!("{word} is not a four-letter word herd knows.\n"),
    }
}

fn server_lines(core: &KeeperCore, mode: &str, clients: Option<String>) -> String {
    let tree = core.tree();
    format!(
        "Zookeeper version: {ZK_VERSION}\n{}Latency min/avg/max: 0/0.0/0\nReceived: {}\nSent: {}\nConnections: {}\n\
         Outstanding: {}\nZxid: 0x{:x}\nMode: {mode}\nNode count: {}\n",
        clients.unwrap_or_default(),
        core.counters().received,
        core.counters().sent,
        core.connection_count(),
        core.outstanding(),
        tree.last_zxid(),
        tree.node_count()
    )
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn max_fds() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own and has no other effect.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0;
    if ok {
        r.rlim_cur
    } else {
        0
    }
}
