//! `cargo xtask`: the project's own commands.
//!
//! `cargo xtask test` is the one command that runs every test on a fresh machine: it installs
//! the external clients the tests use (Debian's ZooKeeper C and Java clients; kazoo and its test
//! suite in a venv), runs the Rust tests with nextest, then the kazoo suite against herd, gated
//! on tests/kazoo/known_failures.txt.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_owned()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Debian's ZooKeeper client packages: `cli_mt` (C) and `zkCli.sh` (Java).
fn install_debian_clients() -> Result<()> {
    let zkcli = Path::new("/usr/share/zookeeper/bin/zkCli.sh");
    if have("cli_mt") && zkcli.exists() {
        return Ok(());
    }
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut c)
    };
    apt(&["update", "-q"])?;
    apt(&["install", "-y", "-q", "--no-install-recommends", "zookeeper", "zookeeper-bin"])
}

/// A venv with kazoo 2.11.0 and its test extra, rebuilt when requirements.txt changes.
fn install_kazoo(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".venv");
    let python = venv.join("bin/python");
    let req = root.join("tests/kazoo/requirements.txt");
    let stamp = venv.join(".requirements.installed");
    let wanted = std::fs::read_to_string(&req).context("reading tests/kazoo/requirements.txt")?;
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r"]).arg(&req))?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

fn test(args: &[String]) -> Result<()> {
    let root = root();
    let skip_kazoo = args.iter().any(|a| a == "--no-kazoo");
    let t0 = Instant::now();
    install_debian_clients().context("installing Debian's ZooKeeper clients")?;
    let python = install_kazoo(&root).context("installing kazoo")?;
    eprintln!("xtask: external clients ready after {:?}", t0.elapsed());

    run(Command::new("cargo").current_dir(&root).args(["build", "--workspace", "--all-targets"]))?;
    let mut rust = Command::new("cargo");
    rust.current_dir(&root).env("HERD_EXTERNAL_CLIENTS", "required");
    if have("cargo-nextest") {
        rust.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        rust.args(["test", "--workspace", "--no-fail-fast"]);
    }
    run(&mut rust)?;
    eprintln!("xtask: rust tests passed after {:?}", t0.elapsed());

    if !skip_kazoo {
        let herd = root.join("target/debug/herd");
        run(Command::new(&python).current_dir(&root).arg("tests/kazoo/run.py").arg("--herd-bin").arg(&herd))?;
        eprintln!("xtask: kazoo suite matched its known-failures list after {:?}", t0.elapsed());
    }
    eprintln!("xtask: all tests passed in {:?}", t0.elapsed());
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask test [--no-kazoo]");
            std::process::exit(2);
        }
    }
}
