//! Guarantee: `herd up --netns` puts every role in a network namespace of its own, clients in
//! the machine's namespace reach it through its client namespace, and `herd chaos partition`
//! cuts real links: a DataNode cut off leaves the NameNode's view while the file system keeps
//! serving, and rejoins once healed; a keeper cut one way and healed leaves an ensemble that
//! serves. Stopping `herd up` deletes its namespaces; after a kill -9 the next `herd up
//! --netns` on the dir deletes those left behind and starts.

mod common;

use std::process::Command;

use common::up::Up;

/// put `local` as `remote`, get it back, compare.
fn round_trip(c: &Up, remote: &str, body: &[u8]) {
    let local = c.dir.join(format!("in-{}", remote.trim_start_matches('/')));
    std::fs::write(&local, body).unwrap();
    c.herd_ok(&["fs", "put", local.to_str().unwrap(), remote]);
    let back = c.dir.join(format!("out-{}", remote.trim_start_matches('/')));
    c.herd_ok(&["fs", "get", remote, back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), body, "{remote} came back different");
}

#[test]
fn partitions_cut_real_links_and_namespaces_are_cleaned_up() {
    if !common::netns_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let mut c = Up::start(&dir, &["--netns", "--keepers", "3", "--datanodes", "3", "--nodemanagers", "0"]);

    // Every role has a namespace of its own, and listens on its own address there.
    let file = c.cluster_file().unwrap();
    let procs = file["processes"].as_array().unwrap();
    let mut spaces: Vec<&str> = procs.iter().map(|p| p["netns"].as_str().expect("a netns per role")).collect();
    spaces.sort();
    spaces.dedup();
    assert_eq!(spaces.len(), procs.len(), "{file}");
    for p in procs {
        let ip = p["ip"].as_str().expect("an ip per role");
        for (key, addr) in p["addrs"].as_object().unwrap() {
            assert!(addr.as_str().unwrap().starts_with(&format!("{ip}:")), "{key}={addr} of {p}");
        }
    }
    assert_eq!(file["netns"]["client"], format!("{}-client", c.prefix));
    let left = c.namespaces_left();
    assert_eq!(left.len(), procs.len() + 2, "a namespace per role, the client's and the switch's: {left:?}");

    // Clients in the machine's namespace: they enter the client namespace themselves.
    c.herd_ok(&["status"]);
    round_trip(&c, "/before.txt", b"before any partition\n");

    // A DataNode cut off both ways leaves the view; the file system serves without it.
    let cut = c.herd_ok(&["chaos", "partition", "datanode:2"]);
    assert!(cut.contains("cut datanode:2") && cut.contains("client") && cut.contains("both ways"), "{cut}");
    c.wait_live_datanodes(2);
    let status = c.herd(&["status"]);
    let s = String::from_utf8_lossy(&status.stdout).into_owned();
    let view = s.lines().find(|l| l.contains("group=datanode")).unwrap_or_else(|| panic!("no datanode view in\n{s}"));
    assert!(!view.contains("2@"), "datanode 2 still in the view: {view}");
    round_trip(&c, "/during.txt", b"written while datanode 2 was cut off\n");

    // Healed, it rejoins.
    let healed = c.herd_ok(&["chaos", "heal"]);
    assert!(healed.contains("healed the cut datanode:2 -> client"), "{healed}");
    c.wait_live_datanodes(3);
    c.wait_for("datanode 2 back in the view", |c| {
        let s = String::from_utf8_lossy(&c.herd(&["status"]).stdout).into_owned();
        s.lines().any(|l| l.contains("group=datanode") && l.contains("2@")).then_some(())
    });

    // A keeper cut one way: only its own packets are dropped.
    let cut = c.herd_ok(&["chaos", "partition", "keeper:3", "--one-way"]);
    assert!(cut.contains("one way"), "{cut}");
    let rules = Command::new("ip")
        .args(["netns", "exec", &format!("{}-keeper1", c.prefix), "nft", "list", "table", "inet", "herd"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    let k3_ip = procs.iter().find(|p| p["role"] == "keeper" && p["id"] == "3").unwrap()["ip"].as_str().unwrap();
    assert!(rules.contains(&format!("ip saddr {k3_ip} drop")) && !rules.contains("daddr"), "{rules}");
    // The majority serves meanwhile.
    round_trip(&c, "/one-way.txt", b"keeper 3 cut one way\n");
    let healed = c.herd_ok(&["chaos", "heal", "keeper:3"]);
    assert!(healed.contains("healed the cut keeper:3 -> keeper:1"), "{healed}");
    c.wait_for("herd status all well after healing keeper 3", |c| c.herd(&["status"]).status.success().then_some(()));
    round_trip(&c, "/after.txt", b"after healing\n");

    // Stopped, it deletes its namespaces.
    c.stop();
    assert!(c.namespaces_left().is_empty(), "left after SIGTERM: {:?}", c.namespaces_left());
    drop(c);

    // kill -9 leaves the namespaces; the next `herd up --netns` on the dir removes them.
    let mut c = Up::start(&dir, &["--netns", "--keepers", "3", "--datanodes", "3", "--nodemanagers", "0"]);
    c.kill9();
    assert!(!c.namespaces_left().is_empty(), "a kill -9'd herd up cannot have deleted its namespaces");
    drop(c);
    let mut c = Up::start(&dir, &["--netns", "--keepers", "3", "--datanodes", "3", "--nodemanagers", "0"]);
    assert!(c.stderr.lock().unwrap().contains("an interrupted run left"), "{}", c.output());
    c.herd_ok(&["status"]);
    let out = c.herd_ok(&["fs", "cat", "/after.txt"]);
    assert_eq!(out, "after healing\n");
    c.stop();
    assert!(c.namespaces_left().is_empty(), "left after SIGTERM: {:?}", c.namespaces_left());
}
