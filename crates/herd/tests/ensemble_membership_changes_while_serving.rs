//! Guarantee: an ensemble changes its members while it serves. A new keeper joins through the
//! reconfig op and catches up by snapshot (the log it missed is compacted away); a member leaves
//! and is stopped, and the others go on; nothing written before or during is lost, and a client
//! that moves to another member keeps its session, while writes through the member it left are
//! answered SessionMoved.

mod common;

use common::KeeperProc;
use keeper_proto::client::{four_letter_word, ClientError, SyncClient};
use keeper_proto::ErrorCode;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="; // super:test

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Member {
    id: u64,
    client: SocketAddr,
    peer: u16,
}

fn start(dir: &std::path::Path, m: &Member, all: &[&Member]) -> KeeperProc {
    let mut args = vec![
        "--id".to_owned(),
        m.id.to_string(),
        "--zk-property".into(),
        "reconfigEnabled=true".into(),
        "--zk-property".into(),
        format!("zookeeper.DigestAuthenticationProvider.superDigest={SUPER_DIGEST}"),
        // Snapshots every 200 entries, so the log a joiner missed is gone and it needs one.
        "--zk-property".into(),
        "snapCount=200".into(),
    ];
    for p in all {
        args.push("--peer".into());
        args.push(format!("{}=127.0.0.1:{}", p.id, p.peer));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    KeeperProc::start_at(&dir.join(format!("k{}", m.id)), &m.client.to_string(), &args)
}

/// Retries `f` until it succeeds or `secs` pass.
fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn connect(addr: SocketAddr) -> Result<SyncClient, String> {
    SyncClient::connect(addr, 10_000, None).map_err(|e| e.to_string())
}

fn mode(addr: SocketAddr) -> String {
    four_letter_word(addr, "srvr")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned)))
        .unwrap_or_default()
}

#[test]
fn a_keeper_joins_by_snapshot_and_another_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let members: Vec<Member> = (1..=4)
        .map(|id| Member { id, client: format!("127.0.0.1:{}", free_port()).parse().unwrap(), peer: free_port() })
        .collect();
    let founders: Vec<&Member> = members[..3].iter().collect();
    let mut procs: Vec<KeeperProc> = founders.iter().map(|m| start(dir.path(), m, &founders)).collect();

    let mut c = eventually(30, "ensemble serving", || {
        let mut c = connect(members[0].client)?;
        c.create("/before", b"", 0).map_err(|e| e.to_string())?;
        Ok(c)
    });
    // Enough writes that the founders snapshot and compact their logs past what a joiner needs.
    for i in 0..1000 {
        c.create(&format!("/before/n{i}"), format!("v{i}").as_bytes(), 0).unwrap();
    }

    // A fourth keeper starts knowing the ensemble; it finds a member with a log and waits to be
    // added rather than starting an ensemble of its own.
    let all: Vec<&Member> = members.iter().collect();
    procs.push(start(dir.path(), &members[3], &all));
    assert_ne!(mode(members[3].client), "leader");

    c.add_auth("digest", b"super:test").unwrap();
    let joiner = format!("server.4=127.0.0.1:{}:{}:participant;{}", members[3].peer, free_port(), members[3].client);
    let (config, _) = c.reconfig(&joiner, "", "", -1).unwrap();
    let config = String::from_utf8(config).unwrap();
    assert!(config.contains(&joiner), "{config}");

    // The joiner serves everything written before it existed.
    let mut c4 = eventually(30, "new member serving", || {
        let mut c4 = connect(members[3].client)?;
        c4.get("/before/n999", false).map_err(|e| e.to_string())?;
        Ok(c4)
    });
    assert_eq!(c4.get("/before/n500", false).unwrap().0, b"v500");
    assert_eq!(c4.children("/before", false).unwrap().len(), 1000);
    assert!(
        procs[3].stderr().contains("installed snapshot"),
        "the new member caught up without a snapshot; its log: {}",
        procs[3].stderr()
    );
    // A write through the new member reaches everyone.
    c4.create("/from-4", b"x", 0).unwrap();
    let mut c2 = connect(members[1].client).unwrap();
    c2.sync("/from-4").unwrap();
    assert_eq!(c2.get("/from-4", false).unwrap().0, b"x");

    // Member 1 leaves and is stopped; the other three go on.
    let (config, _) = c.reconfig("", "1", "", -1).unwrap();
    assert!(!String::from_utf8_lossy(&config).contains("server.1="));
    drop(c);
    procs[0].kill9();
    eventually(30, "writes after member 1 left", || {
        let mut c = connect(members[1].client)?;
        c.create("/after", b"", 0).map_err(|e| e.to_string())
    });
    let mut c4 = eventually(10, "member 4 after member 1 left", || connect(members[3].client));
    c4.sync("/after").unwrap();
    assert!(c4.exists("/after", false).unwrap().is_some());
    assert_eq!(c4.children("/before", false).unwrap().len(), 1000);

    // A session moves from member 2 to member 3: it stays, and member 2 drops its old
    // connection, so nothing more is written for the session through member 2.
    let mut old = connect(members[1].client).unwrap();
    old.create("/mine", b"", 1).unwrap();
    let resume = (old.session_id, old.passwd.clone());
    let mut moved = SyncClient::connect(members[2].client, 10_000, Some(resume)).unwrap();
    moved.create("/moved", b"", 0).unwrap();
    match old.create("/stale", b"", 0) {
        Err(ClientError::Keeper(ErrorCode::SessionMoved, _)) | Err(ClientError::Io(_)) => {}
        other => panic!("a write through the member the session left: {other:?}"),
    }
    assert!(moved.exists("/mine", false).unwrap().is_some(), "the ephemeral survives the move");
    assert!(moved.exists("/stale", false).unwrap().is_none());
}
