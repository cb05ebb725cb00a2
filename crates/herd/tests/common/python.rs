//! The Python of the repo's venv (`.venv`, which `cargo xtask test` fills from
//! tests/kazoo/requirements.txt), for tests that drive Python clients.
#![allow(dead_code)] // each test file uses a different part

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python if it can import every one of `modules`; `None` (the test skips) when not,
/// unless `HERD_EXTERNAL_CLIENTS=required` (CI), which makes it a failure.
pub fn venv_with(modules: &[&str]) -> Option<PathBuf> {
    let python = repo().join(".venv/bin/python");
    let imports = format!("import {}", modules.join(", "));
    let ok = python.exists()
        && Command::new(&python).args(["-c", &imports]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    let why = format!("{} cannot `{imports}`; `cargo xtask test` installs them", python.display());
    assert!(std::env::var("HERD_EXTERNAL_CLIENTS").as_deref() != Ok("required"), "{why}");
    eprintln!("skipping: {why}");
    None
}

/// Runs `cmd` to its end, killing it after `limit`; its output (stdout then stderr) and whether
/// it succeeded.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let out = super::capture(child.stdout.take().expect("stdout"));
    let err = super::capture(child.stderr.take().expect("stderr"));
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The pipes close when the child is gone; give the readers a moment to drain them.
    std::thread::sleep(Duration::from_millis(200));
    let text = format!("{}{}", out.lock().unwrap(), err.lock().unwrap());
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("{text}\n(killed after {limit:?})")),
    }
}
