//! `cargo xtask`: the project's own commands.
//!
//! `cargo xtask test` is the one command that runs every test on a fresh machine: it installs
//! the external clients the tests use (Debian's ZooKeeper C and Java clients; kazoo and its test
//! suite in a venv), runs the Rust tests with nextest, then the kazoo suite against herd, gated
//! on tests/kazoo/known_failures.txt.
//!
//! `cargo xtask bench keeper` puts herd's keeper and Apache ZooKeeper 3.8 side by side under the
//! same load, standalone and as 3-server ensembles (`bench.rs`); `cargo xtask bench
//! keeper-failover` times how long writes stop when an ensemble's leader is killed
//! (`failover.rs`). `ensemble.rs` starts and stops the servers of both, `zkwire.rs` is the small
//! ZooKeeper client the failover writer uses. `cargo xtask bench fs` (`fsbench.rs`) and `cargo
//! xtask bench mr` (`mrbench.rs`, on a corpus from `corpus.rs`) time herd's file system and
//! MapReduce on a `herd up` cluster (`upcluster.rs`) against the machine and Spark.

mod bench;
mod corpus;
mod ensemble;
mod failover;
mod fsbench;
mod mrbench;
mod upcluster;
mod zkwire;

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

/// Debian packages the tests use: ZooKeeper's C client (`cli_mt`, zookeeper-bin) and Java
/// client and server (`zkCli.sh`, zookeeper), nftables for partitions between test hosts,
/// libfaketime (faketime) to jump a keeper's wall clock, and curl for the README's WebHDFS
/// session.
fn install_debian_clients() -> Result<()> {
    let zkcli = Path::new("/usr/share/zookeeper/bin/zkCli.sh");
    let cli_mt = Path::new("/usr/lib/zookeeper/bin/cli_mt");
    let faketime = Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1");
    if cli_mt.exists() && zkcli.exists() && have("nft") && faketime.exists() && have("curl") {
        return Ok(());
    }
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut c)
    };
    apt(&["update", "-q"])?;
    apt(&[
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "zookeeper",
        "zookeeper-bin",
        "nftables",
        "faketime",
        "curl",
    ])
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
        // Once against one server, once against a 3-member ensemble (the harness's own default),
        // each gated on its own list of known failures.
        run(Command::new(&python).current_dir(&root).arg("tests/kazoo/run.py").arg("--herd-bin").arg(&herd))?;
        eprintln!("xtask: kazoo suite (1 server) matched its known-failures list after {:?}", t0.elapsed());
        run(Command::new(&python).current_dir(&root).arg("tests/kazoo/run.py").arg("--herd-bin").arg(&herd).args([
            "--cluster-size",
            "3",
            "--known-failures",
            "tests/kazoo/known_failures_ensemble.txt",
        ]))?;
        eprintln!("xtask: kazoo suite (3 servers) matched its known-failures list after {:?}", t0.elapsed());
    }
    eprintln!("xtask: all tests passed in {:?}", t0.elapsed());
    Ok(())
}

/// The `herd` binary under test (and the load generator): the one given with `--herd-bin`, or
/// else the release build, built now.
fn herd_binary(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(bin) = given {
        if !bin.is_file() {
            bail!("--herd-bin {}: no such file", bin.display());
        }
        return Ok(std::path::absolute(&bin)?);
    }
    let root = root();
    run(Command::new("cargo").current_dir(&root).args(["build", "--release", "-p", "herd"]))?;
    Ok(root.join("target/release/herd"))
}

/// Runs `f` in a fresh temporary directory, removed when `f` succeeds and kept (its path
/// printed) for the servers' logs when it fails.
fn with_scratch_dir<T>(name: &str, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let tmp = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let r = f(&tmp);
    match &r {
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(_) => eprintln!("xtask: logs kept in {}", tmp.display()),
    }
    r
}

/// The ensemble fault suites, each nemesis loop stretched to `--minutes` (default 30): the same
/// tests CI runs for seconds, with the same checkers.
fn soak_keeper(args: &[String]) -> Result<()> {
    let minutes: u64 = match args.iter().position(|a| a == "--minutes") {
        Some(i) => args.get(i + 1).context("--minutes needs a number")?.parse().context("--minutes")?,
        None => 30,
    };
    let root = root();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&root).env("HERD_SOAK_SECONDS", (minutes * 60).to_string());
    if have("cargo-nextest") {
        cmd.args(["nextest", "run", "-p", "herd", "--test", "ensemble_faults", "--no-capture"]);
    } else {
        cmd.args(["test", "-p", "herd", "--test", "ensemble_faults", "--", "--nocapture", "--test-threads=1"]);
    }
    run(&mut cmd)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match (args.first().map(String::as_str), args.get(1).map(String::as_str)) {
        (Some("test"), _) => test(&args[1..]),
        (Some("bench"), Some("keeper")) => bench::bench_keeper(&args[2..]),
        (Some("bench"), Some("keeper-failover")) => failover::bench_failover(&args[2..]),
        (Some("bench"), Some("fs")) => fsbench::bench_fs(&args[2..]),
        (Some("bench"), Some("mr")) => mrbench::bench_mr(&args[2..]),
        (Some("soak"), Some("keeper")) => soak_keeper(&args[2..]),
        _ => {
            eprintln!(
                "usage: cargo xtask test [--no-kazoo]\n       \
                 cargo xtask bench keeper [--seconds N] [--nodes 1|3|both] [--herd-bin PATH]\n       \
                 cargo xtask bench keeper-failover [--trials N] [--system herd|zk|both] [--herd-bin PATH]\n       \
                 cargo xtask bench fs [--size-mib N] [--rounds R] [--keep] [--herd-bin PATH]\n       \
                 cargo xtask bench mr [--sizes-gib 1,4] [--rounds R] [--skip-spark] [--skip-shell] [--sort-max-gib G] [--keep] [--herd-bin PATH]\n       \
                 cargo xtask soak keeper [--minutes N]"
            );
            std::process::exit(2);
        }
    }
}
