//! Guarantee: the README's WebHDFS curl session works as shown. Every `$ ` line of the console
//! block under "### WebHDFS" runs (bash, in a temp dir) against a fresh `herd up`, with the
//! README's addresses (NameNode HTTP 127.0.0.1:9870, RPC 127.0.0.1:8020) replaced by the test
//! cluster's; its output must match the lines that follow it, where `...` stands for any text.

mod common;

use common::fs::FsCluster;
use std::process::Command;

/// The (command, expected output lines) pairs of the README's WebHDFS console block.
fn session() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(common::python::repo().join("README.md")).expect("README.md");
    let section = readme.split("### WebHDFS").nth(1).expect("a ### WebHDFS section");
    let block = section.split("```console\n").nth(1).expect("a console block").split("```").next().unwrap();
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in block.lines() {
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_string(), Vec::new())),
            None => steps.last_mut().expect("output after a command").1.push(line.to_string()),
        }
    }
    assert!(steps.len() >= 10, "the README's session looks cut short: {steps:?}");
    steps
}

/// `expected` with `...` as a wildcard.
fn matches(expected: &str, got: &str) -> bool {
    let parts: Vec<&str> = expected.split("...").collect();
    if parts.len() == 1 {
        return expected == got;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !got.starts_with(first) || !got.ends_with(last) || got.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &got[first.len()..got.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn the_readme_curl_session_works_as_shown() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(std::env::var("HERD_EXTERNAL_CLIENTS").as_deref() != Ok("required"), "curl is missing");
        eprintln!("skipping: no curl");
        return;
    }
    let c = FsCluster::start(3);
    let http = c.http_addr("namenode", "1");
    let v = c.cluster_json().unwrap();
    let rpc = v["processes"].as_array().unwrap().iter().find(|p| p["role"] == "namenode").unwrap()["addrs"]["rpc"]
        .as_str()
        .unwrap()
        .to_string();
    let work = tempfile::tempdir().unwrap();
    let fix = |s: &str| s.replace("127.0.0.1:9870", &http).replace("127.0.0.1%3A8020", &rpc.replace(':', "%3A"));
    for (cmd, expected) in session() {
        let cmd = fix(&cmd);
        let out = Command::new("bash").arg("-c").arg(&cmd).current_dir(work.path()).output().expect("bash");
        let got = String::from_utf8_lossy(&out.stdout);
        let got: Vec<&str> = got.lines().collect();
        let expected: Vec<String> = expected.iter().map(|e| fix(e)).collect();
        assert!(out.status.success(), "$ {cmd}\nexit {}: {}", out.status, String::from_utf8_lossy(&out.stderr));
        assert_eq!(got.len(), expected.len(), "$ {cmd}\nwanted:\n{}\ngot:\n{}", expected.join("\n"), got.join("\n"));
        for (e, g) in expected.iter().zip(&got) {
            assert!(matches(e, g), "$ {cmd}\nwanted: {e}\ngot:    {g}");
        }
    }
}
