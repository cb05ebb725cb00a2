//! `herd bench detect`: how long a watcher takes to learn that a member daemon failed, for herd
//! and, side by side in the same run, for the way Apache systems notice death today (Apache
//! ZooKeeper 3.8 session expiry, the daemon not supervised).
//!
//! Each system gets a fresh network of three hosts (network namespaces, `netns`): host 0 runs
//! the keeper (a herd keeper, or Debian's ZooKeeper; both with tickTime 2000), host 1 the
//! daemon (`herd member join --group bench --id d1`, under `herd supervise` for herd, bare for
//! ZooKeeper, where the bench restarts it when it dies but never ends its session), host 2 a
//! watcher (`member::view::Watcher` on a thread that entered host 2), which stamps every view
//! with `Instant::now()` as it arrives. Before each trial the bench waits until the view holds
//! d1 at some incarnation X and the daemon runs; it then makes one fault and measures the time
//! from the fault to the first view in which d1 is absent or not X:
//! - `kill9`: SIGKILL to the daemon (the supervisor ends its session; ZooKeeper expires it);
//! - `stop`: SIGTERM to the daemon, which closes its session on the way out;
//! - `hang`: SIGSTOP (then SIGCONT once detected): noticed by the keeper's session timeout;
//! - `partition`: host 1 cut from host 0 both ways (then healed): the same;
//! - `pause`: SIGSTOP for `--pause-ms`, shorter than the timeout, then SIGCONT; any view
//!   without d1@X until 1 s after SIGCONT is a false expiration.
//!
//! The fault comes at a random moment, 300 ms plus a uniform draw below the keeper's expiry
//! tick after the daemon became a member: otherwise every trial would start at the same phase
//! of the keeper's expiry clock (the bench's own rhythm locks onto it), and hang and partition
//! times would cluster at one arbitrary point of their window. `--seed` replays the draws.
//!
//! After each fault the bench waits for the daemon to be back as a new incarnation. Every wait
//! is bounded (3 x timeout + 10 s); a trial that times out is reported as failed and the bench
//! goes on (three failures in a row skip the rest of that kind). Every process the bench starts
//! is killed by pid when its guard drops, and the namespaces go with `netns::Net`'s drop, also
//! on error, panic or Ctrl-C.

use crate::member_cmd::{MEMBER_SESSION_TIMEOUT_MS, PING_INTERVAL};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use member::client::ClientConfig;
use member::view::{View, Watcher};
use netns::Net;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The group and member id the daemon holds.
const GROUP: &str = "bench";
const ID: &str = "d1";
/// Both keepers run with ZooKeeper's default tickTime (herd's default too).
const TICK_TIME_MS: u64 = 2000;
const CLIENT_PORT: u16 = 2181;
/// Debian's Apache ZooKeeper 3.8 (package `zookeeper`), as `xtask/src/ensemble.rs` starts it.
const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
const ZK_CLASSPATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:\
/usr/share/java/netty-resolver.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar";
const ZK_LOG4J: &str = "/etc/zookeeper/conf/log4j.properties";
/// How long the daemon must have been a member, unchanged, before a fault.
const SETTLE: Duration = Duration::from_millis(300);
/// How often waits look at the daemon and at the interrupt flag.
const POLL: Duration = Duration::from_millis(100);
/// How long a pause trial keeps watching after SIGCONT.
const PAUSE_WATCH_AFTER: Duration = Duration::from_secs(1);
/// A keeper (a JVM for ZooKeeper) must answer `ruok` within this.
const KEEPER_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Failed trials in a row after which the rest of a kind is skipped: the system is stuck.
const SKIP_AFTER_FAILURES: usize = 3;
/// How long a supervisor gets to stop its child (SIGTERM) before it is killed.
const SUPERVISOR_STOP_WAIT: Duration = Duration::from_secs(15);

/// Set on SIGINT/SIGTERM; every wait checks it, so the guards run and clean up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Trials per failure kind and system.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Failure kinds to measure, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "kill9,stop,hang,partition,pause")]
    kinds: Vec<Kind>,
    /// The daemon's session timeout (keepers grant 2 to 20 tickTime: 4000 to 40000 ms).
    #[arg(long, default_value_t = MEMBER_SESSION_TIMEOUT_MS)]
    session_timeout_ms: u64,
    /// How long a `pause` trial stops the daemon; below the timeout, no expiration is expected.
    #[arg(long, default_value_t = 2000)]
    pause_ms: u64,
    /// Systems to measure (default: both if ZooKeeper is installed at /usr/share/java, else herd).
    #[arg(long, value_enum, value_delimiter = ',')]
    systems: Vec<System>,
    /// Also print one JSON line with every number at the end.
    #[arg(long)]
    json: bool,
    /// Seed of the random delays before the faults (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Kill9,
    Stop,
    Hang,
    Partition,
    Pause,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kill9 => "kill9",
            Kind::Stop => "stop",
            Kind::Hang => "hang",
            Kind::Partition => "partition",
            Kind::Pause => "pause",
        }
    }

    fn what(self, pause_ms: u64) -> String {
        match self {
            Kind::Kill9 => "SIGKILL to the daemon".into(),
            Kind::Stop => "SIGTERM to the daemon (a clean stop: it closes its session)".into(),
            Kind::Hang => "SIGSTOP of the daemon (SIGCONT once detected)".into(),
            Kind::Partition => "the daemon's host cut from the keeper's, both ways (healed once detected)".into(),
            Kind::Pause => format!("SIGSTOP for {pause_ms} ms, then SIGCONT; watched until 1 s later"),
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum System {
    Herd,
    Zookeeper,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Herd => "herd",
            System::Zookeeper => "zookeeper",
        }
    }

    /// How often the keeper looks for silent sessions: a hang is noticed within the timeout
    /// plus this. herd checks every quarter tickTime (clamped to 10-250 ms); ZooKeeper rounds
    /// each session's expiry up to the next multiple of tickTime.
    fn tick(self) -> Duration {
        Duration::from_millis(self.tick_ms())
    }

    fn tick_ms(self) -> u64 {
        match self {
            System::Herd => (TICK_TIME_MS / 4).clamp(10, 250),
            System::Zookeeper => TICK_TIME_MS,
        }
    }
}

/// `herd bench detect`. The bench itself is blocking (processes, signals, a channel of views);
/// it runs on a blocking thread while this task waits for Ctrl-C or SIGTERM.
pub async fn run(a: DetectArgs) -> anyhow::Result<()> {
    let work = tokio::task::spawn_blocking(move || run_blocking(a));
    tokio::pin!(work);
    tokio::select! {
        r = &mut work => r.context("the bench thread panicked")?,
        _ = crate::stop_signal() => {
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("interrupted: stopping every process the bench started and removing its namespaces");
            let _ = work.await;
            bail!("interrupted")
        }
    }
}

fn interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// What the bench knows before it starts.
struct Plan {
    trials: usize,
    kinds: Vec<Kind>,
    /// As asked of the keepers.
    timeout_ms: u64,
    /// As they grant it (clamped to 2..20 tickTime), for the expected windows.
    granted_ms: u64,
    pause: Duration,
    /// Every wait for a view or a process.
    bound: Duration,
    herd: String,
    logs: PathBuf,
    seed: u64,
}

fn run_blocking(a: DetectArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.trials > 0, "--trials must be at least 1");
    anyhow::ensure!(!a.kinds.is_empty(), "--kinds names no failure kind");
    if !netns::available() {
        bail!(
            "herd bench detect needs network namespaces and nftables: run it as root on a machine with \
             iproute2 (`ip`) and `nft`"
        );
    }
    let zk_installed = Path::new(ZK_JAR).exists();
    let mut systems = a.systems.clone();
    if systems.is_empty() {
        systems.push(System::Herd);
        if zk_installed {
            systems.push(System::Zookeeper);
        } else {
            eprintln!("note: {ZK_JAR} is missing (Debian package `zookeeper`): measuring herd only, no baseline");
        }
    }
    systems.sort();
    systems.dedup();
    if systems.contains(&System::Zookeeper) {
        anyhow::ensure!(zk_installed, "--systems zookeeper: {ZK_JAR} is missing (install Debian's `zookeeper`)");
        let java = Command::new("java").arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        anyhow::ensure!(java.is_ok_and(|s| s.success()), "--systems zookeeper: `java` does not run");
    }
    let herd = std::env::current_exe().context("finding the herd binary")?;
    let herd = herd.to_str().context("the herd binary's path is not UTF-8")?.to_owned();
    let granted_ms = a.session_timeout_ms.clamp(2 * TICK_TIME_MS, 20 * TICK_TIME_MS);
    if granted_ms != a.session_timeout_ms {
        eprintln!(
            "note: keepers with tickTime {TICK_TIME_MS} grant {granted_ms} ms for the {} ms asked",
            a.session_timeout_ms
        );
    }
    let logs = LogDir::create()?;
    let seed = a.seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        now.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
    });
    let plan = Plan {
        trials: a.trials,
        kinds: a.kinds.clone(),
        timeout_ms: a.session_timeout_ms,
        granted_ms,
        pause: Duration::from_millis(a.pause_ms),
        bound: Duration::from_millis(3 * granted_ms) + Duration::from_secs(10),
        herd,
        logs: logs.path.clone(),
        seed,
    };
    eprintln!(
        "herd bench detect: {} trials of {} on {}, seed {}; logs in {} (removed at the end unless something fails)",
        plan.trials,
        plan.kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
        systems.iter().map(|s| s.name()).collect::<Vec<_>>().join(","),
        plan.seed,
        plan.logs.display()
    );
    let mut results = Results::default();
    let mut errors = Vec::new();
    for &system in &systems {
        interrupted()?;
        if let Err(e) = run_system(system, &plan, &mut results) {
            interrupted()?;
            eprintln!("{}: {e:#}", system.name());
            errors.push(format!("{}: {e:#}", system.name()));
        }
    }
    print_tables(&plan, &systems, &results);
    if a.json {
        println!("{}", json_line(&plan, &systems, &results, &errors));
    }
    let failed_trials: usize = results.cells.values().map(|c| c.failed).sum();
    if errors.is_empty() && failed_trials == 0 {
        logs.remove();
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}

/// The temporary directory for data dirs and every child's log: removed only when the bench
/// ran to the end without a failure; otherwise kept, and its path printed.
struct LogDir {
    path: PathBuf,
    remove: bool,
}

impl LogDir {
    fn create() -> anyhow::Result<LogDir> {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let path = std::env::temp_dir().join(format!("herd-bench-detect-{}-{}", std::process::id(), stamp.as_millis()));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(LogDir { path, remove: false })
    }

    fn remove(mut self) {
        self.remove = true;
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            eprintln!("logs kept in {}", self.path.display());
        }
    }
}

/// What was measured for one (system, kind).
#[derive(Default)]
struct Cell {
    trials: usize,
    /// Detection times of the trials that detected, in ms.
    detect_ms: Vec<f64>,
    /// Trials that failed (timed out), with why.
    failed: usize,
    notes: Vec<String>,
    /// Pause trials in which the watcher saw the daemon expelled.
    false_expirations: usize,
}

#[derive(Default)]
struct Results {
    cells: BTreeMap<(Kind, System), Cell>,
}

enum Outcome {
    Detected { after: Duration, note: Option<String> },
    Pause { expelled_after: Option<Duration>, note: Option<String> },
    Failed(String),
}

fn run_system(system: System, plan: &Plan, results: &mut Results) -> anyhow::Result<()> {
    // Dropped in reverse: the daemon (and its supervisor), the watcher, the keeper, the net.
    let net = Net::new(3);
    let keeper_addr = SocketAddr::new(net.hosts[0].ip.into(), CLIENT_PORT);
    let _keeper = start_keeper(system, &net, keeper_addr, plan)?;
    let (_watcher, views) = start_watcher(&net, &keeper_addr.to_string())?;
    let daemon = Daemon::start(system, &net, keeper_addr.to_string(), plan)?;
    let mut rig = Rig {
        net: &net,
        views,
        daemon,
        bound: plan.bound,
        pause: plan.pause,
        tick: system.tick(),
        jitter: Jitter::new(plan.seed),
    };
    for &kind in &plan.kinds {
        let mut in_a_row = 0;
        for i in 0..plan.trials {
            let outcome = rig.trial(kind)?;
            let cell = results.cells.entry((kind, system)).or_default();
            cell.trials += 1;
            let tag = format!("[{} {} {}/{}]", system.name(), kind.name(), i + 1, plan.trials);
            in_a_row += 1;
            match outcome {
                Outcome::Detected { after, note } => {
                    in_a_row = 0;
                    let ms = after.as_secs_f64() * 1e3;
                    eprintln!("{tag} detected in {ms:.1} ms");
                    cell.detect_ms.push(ms);
                    if let Some(n) = note {
                        eprintln!("{tag} {n}");
                        cell.notes.push(format!("trial {}: {n}", i + 1));
                    }
                }
                Outcome::Pause { expelled_after, note } => {
                    in_a_row = 0;
                    match expelled_after {
                        Some(after) => {
                            let ms = after.as_secs_f64() * 1e3;
                            eprintln!("{tag} FALSE EXPIRATION: expelled {ms:.1} ms after the pause began");
                            cell.false_expirations += 1;
                            cell.notes.push(format!("trial {}: expelled {ms:.1} ms after SIGSTOP", i + 1));
                        }
                        None => eprintln!("{tag} still a member"),
                    }
                    if let Some(n) = note {
                        eprintln!("{tag} {n}");
                        cell.notes.push(format!("trial {}: {n}", i + 1));
                    }
                }
                Outcome::Failed(why) => {
                    eprintln!("{tag} FAILED: {why} (logs in {})", plan.logs.display());
                    cell.failed += 1;
                    cell.notes.push(format!("trial {} failed: {why}", i + 1));
                }
            }
            if in_a_row >= SKIP_AFTER_FAILURES && i + 1 < plan.trials {
                let why = format!("{in_a_row} failures in a row: skipped the remaining {} trials", plan.trials - i - 1);
                eprintln!("[{} {}] {why}", system.name(), kind.name());
                cell.notes.push(why);
                break;
            }
        }
    }
    Ok(())
}

/// A child process, killed by pid and reaped when dropped. A supervisor is first asked to stop
/// (SIGTERM: it stops its child, which closes its session).
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    stop_gently: bool,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log: &Path, stop_gently: bool) -> anyhow::Result<Proc> {
        // SAFETY: between fork and exec the closure makes only async-signal-safe calls
        // (setpgid, prctl) and allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                // Its own process group: a terminal's Ctrl-C reaches the bench only, which then
                // stops its children in order. And it dies with the bench's thread, even if
                // the bench is killed with kill -9 (`ip netns exec` execs, so this carries over).
                libc::setpgid(0, 0);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.stdin(Stdio::null()).spawn().with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Proc { name: name.to_owned(), child, log: log.to_owned(), stop_gently })
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The error for a process that should be running and is not.
    fn died(&self, status: ExitStatus) -> anyhow::Error {
        anyhow::anyhow!("{} (pid {}) exited ({status}); {}", self.name, self.pid(), log_tail(&self.log, 15))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if self.stop_gently {
            let _ = signal(self.pid(), libc::SIGTERM);
            let t0 = Instant::now();
            while t0.elapsed() < SUPERVISOR_STOP_WAIT {
                if self.exited().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: i32, sig: libc::c_int) -> anyhow::Result<()> {
    // SAFETY: kill(2) on a pid; no memory is involved.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("signal {sig} to pid {pid}"));
    }
    Ok(())
}

/// SIGCONT on drop: a stopped daemon is never left stopped, whatever happens.
struct Continue(i32);

impl Drop for Continue {
    fn drop(&mut self) {
        let _ = signal(self.0, libc::SIGCONT);
    }
}

/// Removes every drop rule on drop: a partition never outlives its trial.
struct Heal<'a>(&'a Net);

impl Drop for Heal<'_> {
    fn drop(&mut self) {
        // `heal` panics if nft fails; not while already unwinding (the net goes anyway).
        if !std::thread::panicking() {
            self.0.heal();
        }
    }
}

fn log_file(path: &Path) -> anyhow::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if text.trim().is_empty() {
        return format!("{} is empty", path.display());
    }
    let all: Vec<&str> = text.lines().collect();
    format!("{} ends with:\n    {}", path.display(), all[all.len().saturating_sub(lines)..].join("\n    "))
}

/// Starts the keeper in host 0 and waits until it answers `ruok` from host 2.
fn start_keeper(system: System, net: &Net, addr: SocketAddr, plan: &Plan) -> anyhow::Result<Proc> {
    let name = format!("{} keeper", system.name());
    let log = plan.logs.join(format!("{}-keeper.log", system.name()));
    let data = plan.logs.join(format!("{}-data", system.name()));
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let mut keeper = match system {
        System::Herd => {
            let mut c = net.command(0, &plan.herd);
            c.arg("keeper").arg("--data-dir").arg(&data).args(["--client-addr", &addr.to_string()]);
            c.args(["--zk-property", &format!("tickTime={TICK_TIME_MS}")]);
            c.stdout(Stdio::piped()).stderr(log_file(&log)?);
            let mut p = Proc::spawn(&name, c, &log, false)?;
            let out = p.child.stdout.take().context("the keeper's stdout was not kept")?;
            let (tx, rx) = mpsc::channel();
            // Reads the ready line, then drains stdout so the keeper never blocks on it. Not
            // joined: it ends at end of file when the keeper dies.
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if line.starts_with("herd keeper ready") {
                        let _ = tx.send(line);
                    }
                }
            });
            let t0 = Instant::now();
            loop {
                interrupted()?;
                match rx.recv_timeout(POLL) {
                    Ok(_) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) if t0.elapsed() < KEEPER_READY_TIMEOUT => {}
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        bail!("{name} printed no ready line within {KEEPER_READY_TIMEOUT:?}; {}", log_tail(&log, 15))
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(Duration::from_millis(100));
                        match p.exited() {
                            Some(st) => return Err(p.died(st)),
                            None => bail!("{name} closed its stdout before its ready line; {}", log_tail(&log, 15)),
                        }
                    }
                }
            }
            p
        }
        System::Zookeeper => {
            let cfg = plan.logs.join("zoo.cfg");
            std::fs::write(
                &cfg,
                format!(
                    "tickTime={TICK_TIME_MS}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={CLIENT_PORT}\n\
                     clientPortAddress={}\nmaxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n",
                    data.display(),
                    addr.ip()
                ),
            )
            .with_context(|| format!("writing {}", cfg.display()))?;
            let mut c = net.command(0, "java");
            c.args(["-cp", ZK_CLASSPATH]);
            if Path::new(ZK_LOG4J).exists() {
                c.arg(format!("-Dlog4j.configuration=file:{ZK_LOG4J}"));
            }
            // INFO: its log then says when it expired each session.
            c.args(["-Dzookeeper.root.logger=INFO,CONSOLE", "org.apache.zookeeper.server.quorum.QuorumPeerMain"]);
            c.arg(&cfg).stdout(log_file(&log)?).stderr(log_file(&log)?);
            Proc::spawn(&name, c, &log, false)?
        }
    };
    // Both are judged ready the same way, from the watcher's host.
    let ns = net.hosts[2].ns.clone();
    let t0 = Instant::now();
    loop {
        interrupted()?;
        if let Some(st) = keeper.exited() {
            return Err(keeper.died(st));
        }
        let answer = std::thread::scope(|s| {
            s.spawn(|| {
                let _in_host2 = netns::enter_ns(&ns);
                keeper_proto::client::four_letter_word(addr, "ruok")
            })
            .join()
        });
        match answer {
            Ok(Ok(a)) if a.trim() == "imok" => return Ok(keeper),
            Ok(_) => {}
            Err(_) => bail!("the thread that asks {name} `ruok` from host 2 panicked"),
        }
        if t0.elapsed() > KEEPER_READY_TIMEOUT {
            bail!("{name} did not answer `ruok` within {KEEPER_READY_TIMEOUT:?}; {}", log_tail(&keeper.log, 15));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The watcher's thread: stopped and joined on drop.
struct WatchThread {
    cancel: CancellationToken,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WatchThread {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The views the watcher has sent, each stamped with when it arrived.
struct Views {
    rx: mpsc::Receiver<(Instant, View)>,
    latest: Option<View>,
}

impl Views {
    /// The next view, waiting at most `wait`.
    fn poll(&mut self, wait: Duration) -> anyhow::Result<Option<(Instant, View)>> {
        match self.rx.recv_timeout(wait) {
            Ok((t, v)) => {
                self.latest = Some(v.clone());
                Ok(Some((t, v)))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the watcher's thread ended (see its log above)"),
        }
    }

    fn latest_incarnation(&self) -> Option<i64> {
        self.latest.as_ref().and_then(incarnation)
    }
}

fn incarnation(v: &View) -> Option<i64> {
    v.members.get(ID).map(|m| m.incarnation)
}

/// Starts a thread that enters host 2 and follows group `bench`, as any client there would.
fn start_watcher(net: &Net, keeper: &str) -> anyhow::Result<(WatchThread, Views)> {
    let ns = net.hosts[2].ns.clone();
    let mut cfg = ClientConfig::parse(keeper).with_context(|| format!("connect string {keeper:?}"))?;
    cfg.session_timeout = Duration::from_secs(10);
    let watcher = Watcher::new(cfg, GROUP)?;
    let (tx, rx) = mpsc::channel();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let handle = std::thread::Builder::new()
        .name("detect-watcher".into())
        .spawn(move || {
            let _in_host2 = netns::enter_ns(&ns);
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("the watcher's runtime: {e}");
                    return;
                }
            };
            let mut watcher = watcher;
            rt.block_on(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        v = watcher.next() => if tx.send((Instant::now(), v)).is_err() { break },
                    }
                }
            });
        })
        .context("starting the watcher's thread")?;
    Ok((WatchThread { cancel, handle: Some(handle) }, Views { rx, latest: None }))
}

/// The member daemon in host 1: `herd supervise -- herd member join ...` for herd; a bare
/// `herd member join` for ZooKeeper, which the bench restarts itself when it exits (the
/// supervisor's restart, without its ending of the session).
struct Daemon<'a> {
    system: System,
    net: &'a Net,
    herd: String,
    keeper: String,
    timeout_ms: u64,
    logs: PathBuf,
    /// The supervisor (herd) or the daemon itself (ZooKeeper).
    proc: Option<Proc>,
}

impl<'a> Daemon<'a> {
    fn start(system: System, net: &'a Net, keeper: String, plan: &Plan) -> anyhow::Result<Daemon<'a>> {
        let mut d = Daemon {
            system,
            net,
            herd: plan.herd.clone(),
            keeper,
            timeout_ms: plan.timeout_ms,
            logs: plan.logs.clone(),
            proc: None,
        };
        d.proc = Some(d.spawn()?);
        Ok(d)
    }

    fn spawn(&self) -> anyhow::Result<Proc> {
        let member_log = self.logs.join(format!("{}-member.log", self.system.name()));
        let join = [
            "member",
            "join",
            "--keeper",
            &self.keeper,
            "--group",
            GROUP,
            "--id",
            ID,
            "--session-timeout-ms",
            &self.timeout_ms.to_string(),
        ]
        .map(str::to_owned);
        match self.system {
            System::Herd => {
                let log = self.logs.join("herd-supervisor.log");
                let mut c = self.net.command(1, &self.herd);
                // Restarts without limit and without growing back-off: the bench kills the
                // daemon dozens of times a minute, and what it measures is detection, not the
                // give-up policy.
                c.args(["supervise", "--name", "member", "--restarts-max", "1000000", "--backoff-max-ms", "100"]);
                c.arg("--log").arg(&member_log).arg("--").arg(&self.herd).args(&join);
                c.stdout(log_file(&log)?).stderr(log_file(&log)?);
                Proc::spawn("herd supervise", c, &log, true)
            }
            System::Zookeeper => {
                let mut c = self.net.command(1, &self.herd);
                // ZooKeeper refuses herd's auth scheme, and the baseline is plain expiry.
                c.args(&join).arg("--plain-zookeeper");
                c.stdout(log_file(&member_log)?).stderr(log_file(&member_log)?);
                Proc::spawn("herd member join", c, &member_log, false)
            }
        }
    }

    /// herd: fails if the supervisor exited. ZooKeeper: restarts a daemon that exited.
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        let Some(p) = self.proc.as_mut() else { bail!("the daemon was not started") };
        let Some(status) = p.exited() else { return Ok(()) };
        match self.system {
            System::Herd => Err(p.died(status)),
            System::Zookeeper => {
                self.proc = None;
                self.proc = Some(self.spawn()?);
                Ok(())
            }
        }
    }

    /// The pid of the running daemon (not its supervisor), if there is one now. A supervisor's
    /// child has a new pid after every restart: read it again before each trial.
    fn pid(&mut self) -> anyhow::Result<Option<i32>> {
        self.ensure_running()?;
        let Some(p) = self.proc.as_ref() else { return Ok(None) };
        match self.system {
            System::Zookeeper => Ok(Some(p.pid())),
            System::Herd => {
                let live: Vec<i32> = children(p.pid()).into_iter().filter(|c| !is_zombie(*c)).collect();
                Ok(match live.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                })
            }
        }
    }
}

/// The children of `pid`, from /proc/<pid>/task/*/children (the thread that forked a child
/// lists it).
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    out
}

/// Whether a process is dead and not reaped yet (or gone).
fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return true };
    // `pid (comm) S ...`: comm may hold spaces and parentheses; the state follows the last ')'.
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some("Z" | "X") | None)
}

/// One system's running setup, on which trials run one after another.
struct Rig<'a> {
    net: &'a Net,
    views: Views,
    daemon: Daemon<'a>,
    bound: Duration,
    pause: Duration,
    /// The keeper's expiry tick: the random delay before a fault is drawn below it.
    tick: Duration,
    jitter: Jitter,
}

/// xorshift64*: the random delays before faults, reproducible from a seed.
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Jitter {
        // A zero state would stay zero.
        Jitter(seed | 1)
    }

    /// Uniform in [0, max).
    fn below(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let max_us = (max.as_micros() as u64).max(1);
        Duration::from_micros(r % max_us)
    }
}

impl Rig<'_> {
    /// Takes views until one satisfies `pred` (its arrival time) or `deadline` passes (None),
    /// keeping the daemon running meanwhile.
    fn wait_for(&mut self, deadline: Instant, pred: impl Fn(&View) -> bool) -> anyhow::Result<Option<Instant>> {
        loop {
            interrupted()?;
            self.daemon.ensure_running()?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            if let Some((t, v)) = self.views.poll((deadline - now).min(POLL))? {
                if pred(&v) {
                    return Ok(Some(t));
                }
            }
        }
    }

    /// Waits until the daemon runs and has been a member, as one incarnation, for [`SETTLE`]
    /// plus a random part of a tick: returns (incarnation, daemon pid), or None after the bound.
    fn settle(&mut self) -> anyhow::Result<Option<(i64, i32)>> {
        let deadline = Instant::now() + self.bound;
        while Instant::now() < deadline {
            let Some(x) = self.views.latest_incarnation() else {
                self.wait_for(deadline, |v| incarnation(v).is_some())?;
                continue;
            };
            let Some(pid) = self.daemon.pid()? else {
                self.wait_for((Instant::now() + POLL).min(deadline), |_| false)?;
                continue;
            };
            let delay = SETTLE + self.jitter.below(self.tick);
            self.wait_for(Instant::now() + delay, |_| false)?;
            if self.views.latest_incarnation() == Some(x) && self.daemon.pid()? == Some(pid) {
                return Ok(Some((x, pid)));
            }
        }
        Ok(None)
    }

    /// Waits for the daemon to be a member again as a new incarnation; a note if it is not.
    fn wait_back(&mut self, x: i64) -> anyhow::Result<Option<String>> {
        let back = self.wait_for(Instant::now() + self.bound, |v| incarnation(v).is_some_and(|i| i != x))?;
        Ok(back.is_none().then(|| format!("d1 was not back as a new incarnation within {:?}", self.bound)))
    }

    fn trial(&mut self, kind: Kind) -> anyhow::Result<Outcome> {
        let Some((x, pid)) = self.settle()? else {
            return Ok(Outcome::Failed(format!("d1 was not a running member within {:?}", self.bound)));
        };
        let gone = move |v: &View| incarnation(v) != Some(x);
        if kind == Kind::Pause {
            let t0 = Instant::now();
            signal(pid, libc::SIGSTOP)?;
            let cont = Continue(pid);
            let mut expelled = self.wait_for(t0 + self.pause, gone)?;
            if expelled.is_some() {
                // Expelled already: the pause still lasts as long as the others.
                std::thread::sleep((t0 + self.pause).saturating_duration_since(Instant::now()));
            }
            drop(cont);
            if expelled.is_none() {
                expelled = self.wait_for(Instant::now() + PAUSE_WATCH_AFTER, gone)?;
            }
            let note = match expelled {
                Some(_) => self.wait_back(x)?,
                None => None,
            };
            return Ok(Outcome::Pause { expelled_after: expelled.map(|t| t.saturating_duration_since(t0)), note });
        }
        let mut cont = None;
        let mut heal = None;
        let t0 = Instant::now();
        match kind {
            Kind::Kill9 => signal(pid, libc::SIGKILL)?,
            Kind::Stop => signal(pid, libc::SIGTERM)?,
            Kind::Hang => {
                signal(pid, libc::SIGSTOP)?;
                cont = Some(Continue(pid));
            }
            Kind::Partition => {
                heal = Some(Heal(self.net));
                // The first rule already silences the daemon toward the keeper.
                self.net.cut_one_way(1, 0);
                self.net.cut_one_way(0, 1);
            }
            Kind::Pause => unreachable!("handled above"),
        }
        let seen = self.wait_for(t0 + self.bound, gone)?;
        drop(cont);
        drop(heal);
        let Some(t1) = seen else {
            return Ok(Outcome::Failed(format!("no view without d1@{x:#x} within {:?} of the fault", self.bound)));
        };
        if t1 < t0 {
            return Ok(Outcome::Failed(format!("the view dropped d1@{x:#x} before the fault")));
        }
        let note = self.wait_back(x)?;
        Ok(Outcome::Detected { after: t1 - t0, note })
    }
}

/// Summary numbers of one cell, ms, nearest-rank percentiles.
struct Summary {
    min: f64,
    median: f64,
    p95: f64,
    max: f64,
}

fn summary(ms: &[f64]) -> Option<Summary> {
    if ms.is_empty() {
        return None;
    }
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Summary { min: v[0], median: rank(0.5), p95: rank(0.95), max: v[v.len() - 1] })
}

/// What each kind counts beside the percentiles: a label and, per system, (count, of).
fn extra(kind: Kind, system: System, plan: &Plan, cell: &Cell) -> Vec<(String, usize)> {
    let count = |f: &dyn Fn(f64) -> bool| cell.detect_ms.iter().filter(|m| f(**m)).count();
    let t = plan.granted_ms as f64;
    match kind {
        Kind::Kill9 => vec![("under 500 ms".into(), count(&|m| m < 500.0))],
        Kind::Stop => vec![("under 100 ms".into(), count(&|m| m < 100.0))],
        Kind::Hang | Kind::Partition => {
            let (lo, hi) = window(system, plan);
            vec![
                (format!("in [{lo}, {hi}] ms"), count(&|m| m >= lo as f64 && m <= hi as f64)),
                ("sooner than T".into(), count(&|m| m < t)),
            ]
        }
        Kind::Pause => vec![("false expirations".into(), cell.false_expirations)],
    }
}

/// Where a hang or partition should be noticed, from the fault: never sooner than T; at most
/// one tickTime later (ZooKeeper rounds expiry up to its next tick). herd's daemon declares its
/// ping interval as its heartbeat, so herd's keeper expires it after T + that interval of
/// silence, checked every tickTime/4: its expected latest is T + ping interval + tickTime/4.
fn window(system: System, plan: &Plan) -> (u64, u64) {
    let late = match system {
        System::Herd => PING_INTERVAL.as_millis() as u64 + system.tick_ms(),
        System::Zookeeper => system.tick_ms(),
    };
    (plan.granted_ms, plan.granted_ms + late)
}

fn ratio(kind: Kind, results: &Results) -> Option<f64> {
    if kind == Kind::Pause {
        return None;
    }
    let med = |s| results.cells.get(&(kind, s)).and_then(|c| summary(&c.detect_ms)).map(|s| s.median);
    match (med(System::Herd), med(System::Zookeeper)) {
        (Some(h), Some(z)) if z > 0.0 => Some(h / z),
        _ => None,
    }
}

fn print_tables(plan: &Plan, systems: &[System], results: &Results) {
    println!();
    println!(
        "herd bench detect: {} trials per kind; session timeout T = {} ms, tickTime {TICK_TIME_MS} ms, daemon pings \
         every {} ms, pause {} ms",
        plan.trials,
        plan.granted_ms,
        PING_INTERVAL.as_millis(),
        plan.pause.as_millis()
    );
    for s in systems {
        match s {
            System::Herd => println!(
                "  herd      = herd keeper + `herd supervise -- herd member join` (the supervisor ends a dead child's \
                 session)"
            ),
            System::Zookeeper => {
                println!(
                    "  zookeeper = Apache ZooKeeper 3.8 + a bare `herd member join` (not supervised: session expiry)"
                )
            }
        }
    }
    println!(
        "  time = from the fault to the first view, at a watcher on a third host, without the daemon's incarnation"
    );
    for &kind in &plan.kinds {
        println!();
        println!("{}: {}", kind.name(), kind.what(plan.pause.as_millis() as u64));
        if kind == Kind::Pause {
            println!("{:<10} {:>6} {:>6}  false expirations", "system", "trials", "failed");
        } else {
            println!(
                "{:<10} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9}  counts",
                "system", "trials", "failed", "min ms", "median", "p95", "max"
            );
        }
        for &system in systems {
            let Some(cell) = results.cells.get(&(kind, system)) else {
                println!("{:<10} not measured", system.name());
                continue;
            };
            let counts: Vec<String> = extra(kind, system, plan, cell)
                .into_iter()
                .map(|(label, k)| {
                    let of = if kind == Kind::Pause { cell.trials - cell.failed } else { cell.detect_ms.len() };
                    format!("{label}: {k}/{of}")
                })
                .collect();
            if kind == Kind::Pause {
                println!("{:<10} {:>6} {:>6}  {}", system.name(), cell.trials, cell.failed, counts.join(", "));
            } else {
                let s = summary(&cell.detect_ms);
                let f = |g: fn(&Summary) -> f64| s.as_ref().map_or("-".into(), |s| format!("{:.1}", g(s)));
                println!(
                    "{:<10} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9}  {}",
                    system.name(),
                    cell.trials,
                    cell.failed,
                    f(|s| s.min),
                    f(|s| s.median),
                    f(|s| s.p95),
                    f(|s| s.max),
                    counts.join(", ")
                );
            }
            for n in &cell.notes {
                println!("{:<10}   note: {n}", "");
            }
        }
        if let Some(r) = ratio(kind, results) {
            let (times, how) = if r <= 1.0 { (1.0 / r, "faster") } else { (r, "slower") };
            println!("herd/zookeeper, median: {r:.4} (herd {times:.1}x {how})");
        }
    }
}

fn json_line(plan: &Plan, systems: &[System], results: &Results, errors: &[String]) -> String {
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let mut rows = Vec::new();
    for &kind in &plan.kinds {
        for &system in systems {
            let Some(cell) = results.cells.get(&(kind, system)) else { continue };
            let s = summary(&cell.detect_ms);
            let mut row = serde_json::json!({
                "system": system.name(),
                "kind": kind.name(),
                "trials": cell.trials,
                "failed": cell.failed,
                "detected": cell.detect_ms.len(),
                "min_ms": s.as_ref().map(|s| round(s.min)),
                "median_ms": s.as_ref().map(|s| round(s.median)),
                "p95_ms": s.as_ref().map(|s| round(s.p95)),
                "max_ms": s.as_ref().map(|s| round(s.max)),
                "detect_ms": cell.detect_ms.iter().map(|m| round(*m)).collect::<Vec<_>>(),
                "notes": cell.notes,
            });
            let m = row.as_object_mut().expect("a json object");
            let counts = extra(kind, system, plan, cell);
            match kind {
                Kind::Kill9 => {
                    m.insert("under_500ms".into(), counts[0].1.into());
                }
                Kind::Stop => {
                    m.insert("under_100ms".into(), counts[0].1.into());
                }
                Kind::Hang | Kind::Partition => {
                    let (lo, hi) = window(system, plan);
                    m.insert("window_ms".into(), serde_json::json!([lo, hi]));
                    m.insert("in_window".into(), counts[0].1.into());
                    m.insert("sooner_than_timeout".into(), counts[1].1.into());
                }
                Kind::Pause => {
                    m.insert("false_expirations".into(), cell.false_expirations.into());
                }
            }
            rows.push(row);
        }
    }
    let ratios: serde_json::Map<String, serde_json::Value> = plan
        .kinds
        .iter()
        .filter_map(|&k| ratio(k, results).map(|r| (k.name().to_owned(), serde_json::json!((r * 1e6).round() / 1e6))))
        .collect();
    serde_json::json!({
        "bench": "detect",
        "trials": plan.trials,
        "session_timeout_ms": plan.granted_ms,
        "tick_time_ms": TICK_TIME_MS,
        "ping_interval_ms": PING_INTERVAL.as_millis() as u64,
        "pause_ms": plan.pause.as_millis() as u64,
        "seed": plan.seed,
        "systems": systems.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "results": rows,
        "ratio_herd_over_zookeeper_median": ratios,
        "errors": errors,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = summary(&ms).unwrap();
        assert_eq!((s.min, s.median, s.p95, s.max), (1.0, 10.0, 19.0, 20.0));
        let s = summary(&[5.0]).unwrap();
        assert_eq!((s.median, s.p95), (5.0, 5.0));
        assert!(summary(&[]).is_none());
    }

    #[test]
    fn jitter_is_uniform_below_its_bound_and_seeded() {
        let mut j = Jitter::new(7);
        let max = Duration::from_millis(250);
        let draws: Vec<Duration> = (0..1000).map(|_| j.below(max)).collect();
        assert!(draws.iter().all(|d| *d < max));
        let low = draws.iter().filter(|d| **d < max / 2).count();
        assert!((400..600).contains(&low), "{low} of 1000 in the lower half");
        let mut again = Jitter::new(7);
        assert_eq!(again.below(max), draws[0]);
    }

    #[test]
    fn zombies_are_recognised_by_state_after_the_last_paren() {
        assert!(!is_zombie(std::process::id() as i32));
        assert!(is_zombie(i32::MAX));
    }
}
