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

/// Debian packages the tests use: ZooKeeper's C client (`cli_mt`, zookeeper-bin) and Java
/// client and server (`zkCli.sh`, zookeeper), and nftables for partitions between test hosts.
fn install_debian_clients() -> Result<()> {
    let zkcli = Path::new("/usr/share/zookeeper/bin/zkCli.sh");
    let cli_mt = Path::new("/usr/lib/zookeeper/bin/cli_mt");
    if cli_mt.exists() && zkcli.exists() && have("nft") {
        return Ok(());
    }
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut c)
    };
    apt(&["update", "-q"])?;
    apt(&["install", "-y", "-q", "--no-install-recommends", "zookeeper", "zookeeper-bin", "nftables"])
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

/// Debian's Apache ZooKeeper 3.8 classpath (package `zookeeper`).
const ZK_CLASSPATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:\
/usr/share/java/netty-resolver.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar";

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A server process stopped (SIGKILL, then reaped) when dropped.
struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ruok(addr: &str) -> Result<()> {
    use std::io::{Read, Write};
    let t0 = Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(60) {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let mut out = String::new();
            if s.write_all(b"ruok").is_ok() && s.read_to_string(&mut out).is_ok() && out == "imok" {
                return Ok(());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("{addr} did not answer ruok within 60 s")
}

/// `cargo xtask bench keeper`: herd's keeper and Apache ZooKeeper 3.8 (Debian's), each on a
/// fresh data dir on the same disk, loaded by `herd bench keeper` in turn, in one run.
fn bench_keeper(args: &[String]) -> Result<()> {
    let root = root();
    let seconds = args.iter().position(|a| a == "--seconds").and_then(|i| args.get(i + 1)).cloned();
    let seconds = seconds.unwrap_or_else(|| "5".into());
    install_debian_clients()?;
    run(Command::new("cargo").current_dir(&root).args(["build", "--release", "-p", "herd"]))?;
    let herd = root.join("target/release/herd");
    let tmp = std::env::temp_dir().join(format!("herd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;

    let herd_addr = format!("127.0.0.1:{}", free_port()?);
    let herd_dir = tmp.join("herd");
    let herd_server = Server(
        Command::new(&herd)
            .args(["keeper", "--data-dir"])
            .arg(&herd_dir)
            .args(["--client-addr", &herd_addr])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(tmp.join("herd.log"))?)
            .spawn()?,
    );
    let zk_port = free_port()?;
    let zk_dir = tmp.join("zk");
    std::fs::create_dir_all(&zk_dir)?;
    let cfg = zk_dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={zk_port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n\
             4lw.commands.whitelist=*\nadmin.enableServer=false\n",
            zk_dir.display()
        ),
    )?;
    let zk_server = Server(
        Command::new("java")
            .args([
                "-cp",
                ZK_CLASSPATH,
                "-Dzookeeper.root.logger=WARN,CONSOLE",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ])
            .arg(&cfg)
            .stdout(std::fs::File::create(tmp.join("zk.log"))?)
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let zk_addr = format!("127.0.0.1:{zk_port}");
    wait_ruok(&herd_addr)?;
    wait_ruok(&zk_addr)?;

    let mut rows = Vec::new();
    let workloads = [
        ("create", "16", "16"),
        ("set", "16", "16"),
        ("get", "16", "16"),
        ("create=1,set=1,get=8,exists=1,delete=1", "16", "16"),
        ("create", "1", "1"),
    ];
    for (op, clients, depth) in workloads {
        for (label, addr) in [("herd", &herd_addr), ("zookeeper-3.8", &zk_addr)] {
            let out = Command::new(&herd)
                .args(["bench", "keeper", "--target", addr, "--mix", op, "--clients", clients, "--depth", depth])
                .args(["--seconds", &seconds, "--label", label])
                .output()?;
            if !out.status.success() {
                bail!("bench {op} against {label} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            println!("{line}");
            let field = |k: &str| -> f64 {
                line.split(&format!("\"{k}\":"))
                    .nth(1)
                    .and_then(|r| r.split([',', '}']).next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0)
            };
            rows.push((
                format!("{op} c={clients} d={depth}"),
                label,
                field("ops_per_s"),
                field("p50_us"),
                field("p99_us"),
                field("p999_us"),
            ));
        }
    }
    println!("\n| workload | herd ops/s | ZooKeeper ops/s | herd/ZK | herd p50/p99/p99.9 us | ZK p50/p99/p99.9 us |");
    println!("|---|---|---|---|---|---|");
    for pair in rows.chunks(2) {
        let (h, z) = (&pair[0], &pair[1]);
        println!(
            "| {} | {:.0} | {:.0} | {:.2}x | {:.0}/{:.0}/{:.0} | {:.0}/{:.0}/{:.0} |",
            h.0,
            h.2,
            z.2,
            h.2 / z.2.max(1.0),
            h.3,
            h.4,
            h.5,
            z.3,
            z.4,
            z.5
        );
    }
    let rss = |s: &Server| -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", s.0.id())).unwrap_or_default();
        let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).map(|v| v.trim().to_owned());
        kb.unwrap_or_else(|| "?".into())
    };
    println!("\npeak RSS (VmHWM): herd {}, ZooKeeper {}", rss(&herd_server), rss(&zk_server));
    drop((herd_server, zk_server));
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match (args.first().map(String::as_str), args.get(1).map(String::as_str)) {
        (Some("test"), _) => test(&args[1..]),
        (Some("bench"), Some("keeper")) => bench_keeper(&args[2..]),
        _ => {
            eprintln!("usage: cargo xtask test [--no-kazoo] | cargo xtask bench keeper [--seconds N]");
            std::process::exit(2);
        }
    }
}
