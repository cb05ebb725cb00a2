//! Guarantee: each `herd chaos` command does to the process it names what it says — kill -9
//! (the supervisor restarts the role), SIGSTOP and SIGCONT, a disk filled until ENOSPC and
//! freed by `heal` — and a target it cannot hit gets a clear error: an unknown role, a missing
//! id, no running task, a partition of a loopback cluster, fill-disk of a disk that is not the
//! DataNode's own.

mod common;

use common::up::{text, Up};

fn state_of(pid: u64) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap()
}

fn err(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn each_command_hits_its_target_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let mut c = Up::start(&dir, &["--disk-mb", "256", "--datanodes", "2", "--nodemanagers", "1"]);
    let pid_of = |c: &mut Up, role: &str, id: &str| -> u64 {
        let v = c.cluster_file().unwrap();
        let p = v["processes"].as_array().unwrap().iter().find(|p| p["role"] == role && p["id"] == id).cloned();
        p.unwrap()["pid"].as_u64().unwrap()
    };

    // kill: the DataNode dies and its supervisor starts another.
    let before = pid_of(&mut c, "datanode", "1");
    let said = c.herd_ok(&["chaos", "kill", "datanode:1"]);
    assert!(said.contains(&format!("killed datanode:1 (pid {before}) with SIGKILL")), "{said}");
    c.wait_for("datanode 1 restarted", |c| {
        let v = c.cluster_file()?;
        let p = v["processes"].as_array()?.iter().find(|p| p["role"] == "datanode" && p["id"] == "1")?.clone();
        (p["state"] == "running" && p["pid"].as_u64() != Some(before)).then_some(())
    });

    // pause / resume: the NodeManager is stopped, then runs again.
    let nm = pid_of(&mut c, "nodemanager", "nm1");
    let said = c.herd_ok(&["chaos", "pause", "nodemanager:1"]);
    assert!(said.contains("paused nodemanager:nm1"), "{said}");
    assert_eq!(state_of(nm), 'T');
    let said = c.herd_ok(&["chaos", "resume", "nodemanager"]);
    assert!(said.contains("resumed nodemanager:nm1"), "{said}");
    assert_ne!(state_of(nm), 'T');
    assert!(err(&c.herd(&["chaos", "resume", "nodemanager"])).contains("no paused nodemanager"));

    // fill-disk: the DataNode's own disk has no room left until heal frees it.
    let said = c.herd_ok(&["chaos", "fill-disk", "datanode:2"]);
    assert!(said.contains("filled the disk of datanode:2"), "{said}");
    let free = |p: &std::path::Path| {
        let out = std::process::Command::new("df").args(["--output=avail", "-B1"]).arg(p).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse::<u64>().unwrap()
    };
    assert!(free(&dir.join("datanode-2")) < 1 << 20, "{}", free(&dir.join("datanode-2")));
    let said = c.herd_ok(&["chaos", "pause", "keeper"]);
    assert!(said.contains("paused keeper:1"), "{said}");
    let healed = c.herd_ok(&["chaos", "heal"]);
    assert!(healed.contains("freed the disk of datanode:2") && healed.contains("resumed keeper:1"), "{healed}");
    assert!(free(&dir.join("datanode-2")) > 200 << 20);
    assert_eq!(c.herd_ok(&["chaos", "heal"]).trim(), "nothing to heal");

    // Targets that cannot be hit.
    assert!(err(&c.herd(&["chaos", "kill", "datanodes:1"])).contains("no role \"datanodes\""));
    assert!(err(&c.herd(&["chaos", "kill", "datanode:9"])).contains("there are datanode:1, datanode:2"));
    assert!(err(&c.herd(&["chaos", "kill", "task"])).contains("no running task"));
    assert!(err(&c.herd(&["chaos", "partition", "datanode:1"])).contains("herd up --netns"));
    assert!(err(&c.herd(&["chaos", "fill-disk", "namenode"])).contains("herd up --disk-mb"));
    c.wait_for("herd status all well", |c| c.herd(&["status"]).status.success().then_some(()));
}
