//! `herd demo`: a cluster in a temporary dir, a seeded text corpus uploaded to it, and a
//! wordcount job run while the demo kills a DataNode, a NodeManager and a running task
//! attempt and hangs another. It prints a timeline — for each fault, when it was injected,
//! when the system detected it and when it was repaired — and checks the job's output against
//! the counts made while generating the corpus (a reference no fault can touch). Exit 0 only
//! if the output is correct and every fault was detected and repaired.
//!
//! What "detected" and "repaired" mean, per fault, is what the system itself shows:
//! - DataNode kill -9: detected when it leaves the `datanode` membership view (its keeper
//!   session ended: the NameNode stops using it); repaired when it is back in the view as a new
//!   incarnation (its supervisor restarted it) and the NameNode counts no block under-
//!   replicated, pending or missing.
//! - NodeManager kill -9 (one that does not run the ApplicationMaster): detected when it
//!   leaves the `nodemanager` view (the ResourceManager tells the AM, which re-runs the maps
//!   whose outputs were there); repaired when it is back as a new incarnation and every task
//!   that had an attempt on it has succeeded since.
//! - a task attempt killed with -9, or hung with SIGSTOP: detected when the AM marks the
//!   attempt FAILED or KILLED (an exit status, or no progress for the task time-out);
//!   repaired when another attempt of the same task has succeeded.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use dfs_client::{CreateOptions, Dfs};
use member::client::ClientConfig;
use member::view::{View, Watcher};
use mrapp::report::JobReport;
use test_rng::Rng;

use crate::chaos::{self, Cluster, Proc};

#[derive(Args)]
pub struct DemoArgs {
    /// The cluster's dir (default: a new temporary dir, removed after a passing run).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the cluster's dir (logs, data) after the run.
    #[arg(long)]
    keep: bool,
    /// Size of the text corpus, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 48)]
    size_mb: u64,
    /// Seed of the corpus and the faults' choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// How long a task may show no progress before it is failed: the hung attempt's detection.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    task_timeout_ms: u64,
}

/// How long the demo waits, after the job ends, for repairs still under way.
const REPAIR_WAIT: Duration = Duration::from_secs(90);
const JOB_WAIT: Duration = Duration::from_secs(900);
const VOCABULARY: usize = 5000;

/// `herd up` as a child, stopped (SIGTERM, then SIGKILL) when dropped.
struct Up {
    child: Child,
}

impl Drop for Up {
    fn drop(&mut self) {
        // SAFETY: a signal to the child this process started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `herd job run` child, killed if the demo ends before it does (an error on the way).
struct JobChild(Child);

impl Drop for JobChild {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A port base under which `herd up`'s fixed ports are free now.
fn free_port_base(rng: &mut Rng) -> anyhow::Result<u16> {
    for _ in 0..200 {
        let base = 10_000 + rng.below(40_000) as u16;
        let ports = [crate::up::KEEPER_CLIENT_PORT, crate::up::KEEPER_PEER_PORT, crate::up::NAMENODE_RPC_PORT];
        let more = [crate::up::NAMENODE_HTTP_PORT, crate::up::RESOURCEMANAGER_PORT];
        if ports.iter().chain(&more).all(|p| std::net::TcpListener::bind(("127.0.0.1", p + base)).is_ok()) {
            return Ok(base);
        }
    }
    bail!("found no free port base for the demo's cluster")
}

fn start_cluster(dir: &Path, base: u16) -> anyhow::Result<Up> {
    let herd = std::env::current_exe().context("this executable")?;
    let log = std::fs::File::create(dir.join("up.log"))?;
    let mut cmd = Command::new(herd);
    // SAFETY: prctl is async-signal-safe; the cluster stops if the demo dies (even by -9).
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .args(["up", "--dir"])
        .arg(dir.join("cluster"))
        .args(["--port-base", &base.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting herd up")?;
    let stdout = child.stdout.take().expect("piped");
    let up = Up { child };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("cluster described in") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(90))
        .map_err(|_| anyhow::anyhow!("the cluster was not up within 90 s (see {})", dir.join("up.log").display()))?;
    Ok(up)
}

/// A seeded corpus of `bytes` in `files` files, and its word counts.
fn corpus(seed: u64, bytes: u64, files: usize) -> (Vec<String>, BTreeMap<String, u64>) {
    let mut rng = Rng(seed);
    let syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "zu", "an", "or", "el", "qui", "da", "fen"];
    let vocab: Vec<String> = (0..VOCABULARY)
        .map(|i| {
            let mut w = String::new();
            let mut x = i + 1;
            while x > 0 {
                w.push_str(syllables[x % syllables.len()]);
                x /= syllables.len();
            }
            w
        })
        .collect();
    let mut counts = vec![0u64; VOCABULARY];
    let per_file = bytes / files as u64;
    let mut texts = Vec::new();
    for _ in 0..files {
        let mut t = String::with_capacity(per_file as usize + 128);
        while (t.len() as u64) < per_file {
            let n = 4 + rng.below(12);
            for k in 0..n {
                // A skewed pick: a few words are very common, most are rare.
                let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
                let i = ((u * u * u) * VOCABULARY as f64) as usize % VOCABULARY;
                if k > 0 {
                    t.push(' ');
                }
                t.push_str(&vocab[i]);
                counts[i] += 1;
            }
            t.push('\n');
        }
        texts.push(t);
    }
    let counts = vocab.into_iter().zip(counts).filter(|(_, c)| *c > 0).collect();
    (texts, counts)
}

#[derive(Debug)]
enum Kind {
    DataNode {
        id: String,
        incarnation: i64,
    },
    /// `outputs`: the map attempts whose finished output was on it when it was killed.
    NodeManager {
        id: String,
        incarnation: i64,
        outputs: Vec<String>,
    },
    Attempt {
        attempt: String,
    },
}

struct Fault {
    what: String,
    kind: Kind,
    injected: Duration,
    detected: Option<(Duration, String)>,
    repaired: Option<(Duration, String)>,
}

/// What the monitor sees: membership views, the job's report, the NameNode's block counts.
#[derive(Default)]
struct Seen {
    views: HashMap<String, View>,
}

fn watch_views(keepers: String, seen: Arc<Mutex<Seen>>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async move {
            let mut tasks = Vec::new();
            for group in ["datanode", "nodemanager"] {
                let Ok(mut cfg) = ClientConfig::parse(&keepers) else { return };
                cfg.session_timeout = Duration::from_secs(10);
                let Ok(mut w) = Watcher::new(cfg, group) else { return };
                let seen = seen.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        let v = w.next().await;
                        seen.lock().expect("seen lock").views.insert(group.to_owned(), v);
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        });
    });
}

fn incarnation(seen: &Mutex<Seen>, group: &str, id: &str) -> Option<i64> {
    seen.lock().expect("seen lock").views.get(group).and_then(|v| v.members.get(id)).map(|m| m.incarnation)
}

/// The NameNode's (under-replicated + pending + missing) block count.
fn blocks_at_risk(http: &str) -> Option<u64> {
    let v = crate::status_cmd::namenode_status(http).ok()?;
    let b = &v["blocks"];
    Some(["under_replicated", "pending", "missing"].iter().map(|k| b[*k].as_u64().unwrap_or(0)).sum())
}

fn task_of(attempt: &str) -> &str {
    attempt.rsplit_once('_').map_or(attempt, |(t, _)| t).strip_prefix("attempt_").unwrap_or(attempt)
}

/// Whether some attempt of `attempt`'s task other than it has succeeded.
fn sibling_succeeded(report: &JobReport, attempt: &str) -> bool {
    let task = task_of(attempt);
    report.attempts.iter().any(|a| a.attempt != attempt && task_of(&a.attempt) == task && a.state == "SUCCEEDED")
}

struct Demo {
    start: Instant,
    faults: Vec<Fault>,
    rng: Rng,
}

impl Demo {
    fn at(&self) -> Duration {
        self.start.elapsed()
    }

    fn say(&self, line: &str) {
        println!("  [{:>6.1}s] {line}", self.at().as_secs_f64());
        let _ = std::io::stdout().flush();
    }

    fn inject(&mut self, what: String, kind: Kind) {
        self.say(&format!("injected: {what}"));
        self.faults.push(Fault { what, kind, injected: self.at(), detected: None, repaired: None });
    }

    /// A running task attempt's process on a NodeManager other than `avoid`, not yet hit.
    fn running_attempt(&mut self, c: &Cluster, report: &JobReport, avoid: &[String]) -> Option<(Proc, String, String)> {
        let hit: Vec<String> = self
            .faults
            .iter()
            .filter_map(|f| match &f.kind {
                Kind::Attempt { attempt } => Some(attempt.clone()),
                _ => None,
            })
            .collect();
        let mut candidates = Vec::new();
        for p in c.procs.iter().filter(|p| p.role == "task") {
            let Some(nm) = chaos::parent_nodemanager(p.pid, &c.procs) else { continue };
            if avoid.contains(&nm.id) {
                continue;
            }
            if let Some(a) = report.attempts.iter().find(|a| a.container == p.id && a.state == "RUNNING") {
                if !hit.contains(&a.attempt) && a.attempt.contains("_m_") {
                    candidates.push((p.clone(), a.attempt.clone(), nm.id.clone()));
                }
            }
        }
        if candidates.is_empty() {
            return None;
        }
        let i = self.rng.below(candidates.len() as u64) as usize;
        Some(candidates.swap_remove(i))
    }

    /// Marks detections and repairs that have happened; true when every fault is repaired.
    fn check(&mut self, seen: &Mutex<Seen>, report: Option<&JobReport>, nn_http: &str) -> bool {
        let now = self.at();
        let mut lines = Vec::new();
        for f in &mut self.faults {
            match &f.kind {
                Kind::DataNode { id, incarnation: before } => {
                    let inc = incarnation(seen, "datanode", id);
                    if f.detected.is_none() && inc != Some(*before) {
                        let why = format!("datanode {id} left the datanode view (its keeper session ended)");
                        lines.push(format!("detected: {why}"));
                        f.detected = Some((now, why));
                    }
                    if f.detected.is_some() && f.repaired.is_none() {
                        if let Some(new) = inc.filter(|i| i != before) {
                            if blocks_at_risk(nn_http) == Some(0) {
                                let why = format!(
                                    "datanode {id} restarted and rejoined (incarnation 0x{new:x}); no block \
                                     under-replicated or missing"
                                );
                                lines.push(format!("repaired: {why}"));
                                f.repaired = Some((now, why));
                            }
                        }
                    }
                }
                Kind::NodeManager { id, incarnation: before, outputs } => {
                    let inc = incarnation(seen, "nodemanager", id);
                    if f.detected.is_none() && inc != Some(*before) {
                        let why = format!(
                            "nodemanager {id} left the nodemanager view; the ResourceManager reports it lost to the AM"
                        );
                        lines.push(format!("detected: {why}"));
                        f.detected = Some((now, why));
                    }
                    if let (Some(_), None, Some(r), Some(new)) =
                        (&f.detected, &f.repaired, report, inc.filter(|i| i != before))
                    {
                        if outputs.iter().all(|a| sibling_succeeded(r, a)) {
                            let why = format!(
                                "nodemanager {id} restarted and rejoined (incarnation 0x{new:x}); the {} map outputs \
                                 lost with it were made again",
                                outputs.len()
                            );
                            lines.push(format!("repaired: {why}"));
                            f.repaired = Some((now, why));
                        }
                    }
                }
                Kind::Attempt { attempt } => {
                    let Some(r) = report else { continue };
                    let state = r.attempts.iter().find(|a| a.attempt == *attempt).map(|a| a.state.as_str());
                    if f.detected.is_none() && matches!(state, Some("FAILED" | "KILLED")) {
                        let why = format!("the AM marked {attempt} {}", state.unwrap_or_default());
                        lines.push(format!("detected: {why}"));
                        f.detected = Some((now, why));
                    }
                    if f.detected.is_some() && f.repaired.is_none() && sibling_succeeded(r, attempt) {
                        let why = format!("another attempt of task {} succeeded", task_of(attempt));
                        lines.push(format!("repaired: {why}"));
                        f.repaired = Some((now, why));
                    }
                }
            }
        }
        for l in lines {
            self.say(&l);
        }
        self.faults.iter().all(|f| f.repaired.is_some())
    }
}

/// The job's report from its AM (while it runs) or its report file.
fn job_report(rm: &mut rpc::client::RpcClient, app: compute_proto::ids::ApplicationId, nn: &str) -> Option<JobReport> {
    let r = crate::job_cmd::app_report(rm, app).ok()?;
    crate::job_cmd::job_report(&r, Some(nn), &dfs_client::default_user())
}

pub fn run(a: DemoArgs) -> anyhow::Result<i32> {
    let seed = a.seed.unwrap_or_else(chaos::random::seed_from_clock);
    let (root, temporary) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("herd-demo-{}", std::process::id())), true),
    };
    std::fs::create_dir_all(&root).with_context(|| root.display().to_string())?;
    let mut rng = Rng(seed);
    println!("herd demo (seed {seed}): a cluster in {}", root.display());
    let base = free_port_base(&mut rng)?;
    let t0 = Instant::now();
    let up = start_cluster(&root, base)?;
    let dir = root.join("cluster");
    let c = Cluster::load(&dir)?;
    let count = |r: &str| c.procs.iter().filter(|p| p.role == r).count();
    println!(
        "cluster up in {:.1}s: {} keeper, a NameNode, {} DataNodes, a ResourceManager, {} NodeManagers (herd status \
         --cluster {})",
        t0.elapsed().as_secs_f64(),
        count("keeper"),
        count("datanode"),
        count("nodemanager"),
        dir.display()
    );

    // The corpus, uploaded in blocks small enough for about a dozen maps.
    let bytes = a.size_mb.max(1) << 20;
    let (texts, reference) = corpus(seed, bytes, 4);
    let words: u64 = reference.values().sum();
    let block = ((bytes / 12).max(1 << 20) + (1 << 20) - 1) & !((1 << 20) - 1);
    let dfs = Dfs::from_cluster_dir(&dir, &dfs_client::default_user())?;
    let t1 = Instant::now();
    for (i, t) in texts.iter().enumerate() {
        let opts = CreateOptions { block_size: Some(block), ..CreateOptions::default() };
        let mut w = dfs.create(&format!("/demo/in/part-{i}.txt"), opts)?;
        w.write_all(t.as_bytes())?;
        w.close()?;
    }
    println!(
        "corpus: {} MiB, {words} words ({} distinct) in 4 files of {} MiB blocks, uploaded in {:.1}s; counted \
         while generating it (the reference)",
        a.size_mb,
        reference.len(),
        block >> 20,
        t1.elapsed().as_secs_f64()
    );

    let seen = Arc::new(Mutex::new(Seen::default()));
    let keepers: Vec<String> = chaos::workload::keepers_of(&dir)?.iter().map(ToString::to_string).collect();
    watch_views(keepers.join(","), seen.clone());
    let text = std::fs::read_to_string(dir.join("cluster.json"))?;
    let nn_http = crate::cluster::role_addr_in(&text, "namenode", "http").map_err(anyhow::Error::msg)?;
    let nn_rpc = crate::cluster::role_addr_in(&text, "namenode", "rpc").map_err(anyhow::Error::msg)?;
    let nm_ctl: HashMap<String, String> = c
        .procs
        .iter()
        .filter(|p| p.role == "nodemanager")
        .filter_map(|p| Some((p.id.clone(), crate::cluster::role_addr_of(&text, "nodemanager", &p.id, "ctl")?)))
        .collect();

    // The job, as a user runs it.
    let herd = std::env::current_exe()?;
    let mut job = JobChild(
        Command::new(herd)
            .arg("job")
            .arg("--cluster")
            .arg(&dir)
            .args(["run", "--reduces", "3", "--name", "demo-wordcount"])
            .args(["--task-timeout-ms", &a.task_timeout_ms.to_string()])
            .args(["wordcount", "/demo/in", "/demo/out"])
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let stderr = job.0.stderr.take().expect("piped");
    let (app_tx, app_rx) = std::sync::mpsc::channel();
    let job_log = Arc::new(Mutex::new(Vec::new()));
    {
        let job_log = job_log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(app) = line.strip_prefix("Submitted application ") {
                    let _ = app_tx.send(app.trim().to_owned());
                }
                job_log.lock().expect("log lock").push(line);
            }
        });
    }
    let app_name = app_rx.recv_timeout(Duration::from_secs(60)).context("the job was not submitted within 60 s")?;
    let app: compute_proto::ids::ApplicationId =
        app_name.parse().map_err(|e| anyhow::anyhow!("application id {app_name:?}: {e:?}"))?;
    let rm_addr = crate::cluster::rm_addr_from_cluster(&dir)?;
    let mut rm = crate::job_cmd::rm_client(&rm_addr, &dfs_client::default_user());
    let mut demo = Demo { start: Instant::now(), faults: Vec::new(), rng: Rng(seed ^ 0xDE40) };
    println!("job {app}: wordcount, 3 reduces, task time-out {} ms; timeline from its submission:", a.task_timeout_ms);

    let mut step = 0;
    let mut victim_nm: Option<String> = None;
    let mut hung_nm: Option<String> = None;
    let mut next_at = Duration::ZERO;
    let mut job_status = None;
    let mut repaired_all;
    let mut ended_at = None;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let report = job_report(&mut rm, app, &nn_rpc);
        if job_status.is_none() {
            if let Ok(Some(s)) = job.0.try_wait() {
                job_status = Some(s);
                ended_at = Some(Instant::now());
                demo.say(&format!("job ended: {}", if s.success() { "succeeded" } else { "FAILED" }));
            } else if demo.at() > JOB_WAIT {
                bail!("the job did not end within {JOB_WAIT:?}");
            }
        }
        if let (Some(r), true) = (&report, job_status.is_none() && demo.at() >= next_at) {
            // One look at the processes per round: the AM's node, and the targets below.
            let c = Cluster::load(&dir)?;
            let am_nm = c
                .procs
                .iter()
                .find(|p| p.role == "appmaster")
                .and_then(|p| chaos::parent_nodemanager(p.pid, &c.procs))
                .map(|n| n.id.clone());
            match step {
                // Once maps run: kill one map attempt, not on the NodeManager to be killed.
                0 if r.maps.running >= 2 && am_nm.is_some() => {
                    let mut nms: Vec<&String> = nm_ctl.keys().filter(|n| Some(*n) != am_nm.as_ref()).collect();
                    nms.sort();
                    if !nms.is_empty() {
                        victim_nm = Some(nms[demo.rng.below(nms.len() as u64) as usize].clone());
                    }
                    let avoid: Vec<String> = victim_nm.iter().cloned().collect();
                    if let Some((p, attempt, _)) = demo.running_attempt(&c, r, &avoid) {
                        chaos::kill(&p)?;
                        demo.inject(format!("killed {attempt} (kill -9, pid {})", p.pid), Kind::Attempt { attempt });
                        step = 1;
                    }
                }
                // Another, hung.
                1 => {
                    let avoid: Vec<String> = victim_nm.iter().cloned().collect();
                    if let Some((p, attempt, nm)) = demo.running_attempt(&c, r, &avoid) {
                        chaos::pause(&p)?;
                        hung_nm = Some(nm);
                        demo.inject(format!("hung {attempt} (SIGSTOP, pid {})", p.pid), Kind::Attempt { attempt });
                        step = 2;
                        next_at = demo.at() + Duration::from_secs(1);
                    }
                }
                // A DataNode, killed.
                2 => {
                    let dns: Vec<&Proc> = c.procs.iter().filter(|p| p.role == "datanode").collect();
                    let p = dns[demo.rng.below(dns.len() as u64) as usize].clone();
                    let inc = incarnation(&seen, "datanode", &p.id).unwrap_or(0);
                    chaos::kill(&p)?;
                    demo.inject(
                        format!("killed datanode {} (kill -9, pid {})", p.id, p.pid),
                        Kind::DataNode { id: p.id.clone(), incarnation: inc },
                    );
                    step = 3;
                }
                // A NodeManager other than the AM's, once it holds finished map outputs (the
                // one chosen first, or another if it has none).
                3 => {
                    let outputs_on = |id: &String| -> Vec<String> {
                        let node = nm_ctl.get(id).cloned().unwrap_or_default();
                        r.attempts
                            .iter()
                            .filter(|x| x.node == node && x.state == "SUCCEEDED" && x.attempt.contains("_m_"))
                            .map(|x| x.attempt.clone())
                            .collect()
                    };
                    // Not the hung attempt's node either: its time-out is what that fault shows.
                    let mut nms: Vec<&String> =
                        nm_ctl.keys().filter(|n| Some(*n) != am_nm.as_ref() && Some(*n) != hung_nm.as_ref()).collect();
                    nms.sort_by_key(|n| Some(*n) != victim_nm.as_ref());
                    if let Some(id) = nms.into_iter().find(|n| !outputs_on(n).is_empty()) {
                        let outputs = outputs_on(id);
                        if let Some(p) = c.procs.iter().find(|p| p.role == "nodemanager" && p.id == *id) {
                            let inc = incarnation(&seen, "nodemanager", id).unwrap_or(0);
                            chaos::kill(p)?;
                            demo.inject(
                                format!(
                                    "killed nodemanager {id} (kill -9, pid {}) holding {} finished map outputs",
                                    p.pid,
                                    outputs.len()
                                ),
                                Kind::NodeManager { id: id.clone(), incarnation: inc, outputs },
                            );
                            step = 4;
                        }
                    }
                }
                _ => {}
            }
        }
        repaired_all = demo.check(&seen, report.as_ref(), &nn_http);
        if let Some(ended) = ended_at {
            if repaired_all || ended.elapsed() > REPAIR_WAIT {
                break;
            }
        }
    }
    let job_ok = job_status.is_some_and(|s| s.success());

    // The output against the reference.
    let out = chaos::workload::word_counts(&dfs, "/demo/out");
    let output_ok = matches!(&out, Ok(c) if *c == reference);
    println!();
    println!("timeline (seconds from the job's submission):");
    println!("  {:<78} {:>9} {:>9} {:>9}", "fault", "injected", "detected", "repaired");
    let secs = |d: &Option<(Duration, String)>| {
        d.as_ref().map_or("never".to_owned(), |(t, _)| format!("{:.1}", t.as_secs_f64()))
    };
    for f in &demo.faults {
        println!(
            "  {:<78} {:>9.1} {:>9} {:>9}",
            f.what,
            f.injected.as_secs_f64(),
            secs(&f.detected),
            secs(&f.repaired)
        );
    }
    if demo.faults.len() < 4 {
        println!("  (only {} of the 4 faults found a target while the job ran)", demo.faults.len());
    }
    if let Some(r) = job_report(&mut rm, app, &nn_rpc) {
        println!(
            "job {}: {} maps, {} reduces; failed attempts {}, killed attempts {}",
            r.state,
            r.maps.total,
            r.reduces.total,
            r.maps.failed_attempts + r.reduces.failed_attempts,
            r.maps.killed_attempts + r.reduces.killed_attempts
        );
    }
    match &out {
        Ok(c) if output_ok => {
            println!("output: {} distinct words, {} in all: equal to the reference", c.len(), c.values().sum::<u64>())
        }
        Ok(c) => println!(
            "output: WRONG: {} distinct words, {} in all; the reference has {} and {words}",
            c.len(),
            c.values().sum::<u64>(),
            reference.len()
        ),
        Err(e) => println!("output: cannot be read: {e:#}"),
    }
    let ok = job_ok && output_ok && repaired_all && demo.faults.len() == 4;
    if !job_ok {
        println!("the job failed:");
        for l in job_log.lock().expect("log lock").iter().rev().take(15).rev() {
            println!("  {l}");
        }
    }
    drop(up);
    if ok && temporary && !a.keep {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        println!("cluster dir kept: {}", root.display());
    }
    println!("{}", if ok { "demo: PASS" } else { "demo: FAIL" });
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_counts_itself() {
        let (texts, counts) = corpus(5, 200_000, 4);
        assert_eq!(texts.len(), 4);
        let mut mine: BTreeMap<String, u64> = BTreeMap::new();
        for t in &texts {
            for w in t.split_whitespace() {
                *mine.entry(w.to_owned()).or_default() += 1;
            }
        }
        assert_eq!(mine, counts);
        assert!(counts.len() > 100, "{}", counts.len());
    }

    #[test]
    fn attempts_belong_to_their_tasks() {
        assert_eq!(task_of("attempt_1_0001_m_000003_1000"), "1_0001_m_000003");
        let att = |a: &str, s: &str| mrapp::report::AttemptReport {
            attempt: a.into(),
            container: String::new(),
            node: String::new(),
            state: s.into(),
        };
        let mut r: JobReport = serde_json::from_str(
            r#"{"job_id":"j","am_attempt":1,"name":"n","user":"u","output":"o","state":"RUNNING","map_progress":0,
            "reduce_progress":0,"maps":{"total":1,"completed":0,"running":1,"recovered":0,"failed_attempts":0,
            "killed_attempts":0},"reduces":{"total":0,"completed":0,"running":0,"recovered":0,"failed_attempts":0,
            "killed_attempts":0},"counters":{},"diagnostics":""}"#,
        )
        .unwrap();
        assert!(r.attempts.is_empty(), "an older report has no attempts");
        r.attempts = vec![att("attempt_1_0001_m_000003_0", "FAILED"), att("attempt_1_0001_m_000004_1", "SUCCEEDED")];
        assert!(!sibling_succeeded(&r, "attempt_1_0001_m_000003_0"));
        r.attempts.push(att("attempt_1_0001_m_000003_1", "SUCCEEDED"));
        assert!(sibling_succeeded(&r, "attempt_1_0001_m_000003_0"));
    }
}
