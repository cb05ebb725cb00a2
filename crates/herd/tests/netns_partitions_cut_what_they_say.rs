//! The fault-injection network itself, checked before any fault suite relies on it: hosts in
//! their own namespaces reach each other; a partition stops exactly the traffic it names
//! (both ways, or one way); healing restores it. A keeper in one namespace serves a client in
//! another.

mod common;

use common::netns::Net;
use std::process::Stdio;

/// A TCP connect from `from` to a keeper on `to` (the keeper answers ruok).
fn ruok(net: &Net, from: usize, addr: &str) -> bool {
    // A dropped SYN is retried for a long time; two seconds is plenty on one machine.
    let out = net
        .command(from, "timeout")
        .arg("2")
        .arg(common::herd_bin())
        .args(["zk", "-s", addr, "word", "ruok"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout) == "imok"
}

#[test]
fn partitions_and_healing() {
    if !common::netns_or_skip() {
        return;
    }
    let net = Net::new(3);

    let dir = tempfile::tempdir().unwrap();
    let addr = format!("{}:2181", net.hosts[2].ip);
    let mut keeper = net
        .command(2, common::herd_bin().to_str().unwrap())
        .args(["keeper", "--data-dir"])
        .arg(dir.path())
        .args(["--client-addr", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(keeper.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("herd keeper ready"), "{line}");
    assert!(ruok(&net, 0, &addr));

    assert!(ruok(&net, 1, &addr));
    net.partition(&[0]);
    assert!(!ruok(&net, 0, &addr), "host 0 should be cut off");
    assert!(ruok(&net, 1, &addr), "hosts 1 and 2 should still talk");
    net.heal();
    assert!(ruok(&net, 0, &addr));

    // One way: 1's packets to 2 are dropped (a TCP handshake needs both ways, so 1 cannot
    // connect), while 0 is unaffected.
    net.cut_one_way(1, 2);
    assert!(!ruok(&net, 1, &addr));
    assert!(ruok(&net, 0, &addr));
    net.heal();
    assert!(ruok(&net, 1, &addr));
    let _ = keeper.kill();
    let _ = keeper.wait();
}
