//! The workload `herd chaos random --workload` runs beside its faults, and its checkers:
//!
//! - files: a writer creates files of seeded content and sizes in the DFS; a file counts as
//!   acknowledged when its `close` returned. It reads back earlier acknowledged files as it
//!   goes, and after the faults every acknowledged file is read whole: none may be missing or
//!   differ by a byte. A write that failed is not acknowledged and is not checked.
//! - keeper counters: two clients increment one znode by compare-and-set (`setData` with the
//!   version they read). The history is checked: every acknowledged increment wrote a value no
//!   other did, each client's values rise, the final value is at least the largest
//!   acknowledged and at most what was attempted, and it equals the znode's version (every
//!   applied write was an increment by one, none lost or applied twice).
//! - jobs: wordcount jobs one after another over a seeded corpus; each must succeed with
//!   exactly the reference counts, or fail with an error message (exit 1 and diagnostics),
//!   within a bound; a job that hangs past it, or succeeds with a wrong answer, is a failure.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use dfs_client::{CreateOptions, Dfs};
use keeper_proto::client::{ClientError, SyncClient};
use keeper_proto::codes::ErrorCode;
use test_rng::Rng;

const ROOT: &str = "/chaos";
const COUNTER: &str = "/chaos-counter";
/// A job that has neither succeeded nor failed after this long hangs.
const JOB_BOUND: Duration = Duration::from_secs(300);
/// How long the final checks retry a file or the counter while the cluster settles.
const SETTLE: Duration = Duration::from_secs(90);
/// Acknowledged files kept (and checked); older ones are deleted as the writer goes.
const KEEP_FILES: usize = 60;
/// The files' block size: a few blocks for the larger ones (the jobs use the default).
const FILE_BLOCK_SIZE: u64 = 1 << 20;
const WORDS: [&str; 24] = [
    "herd",
    "keeper",
    "quorum",
    "block",
    "replica",
    "lease",
    "fsync",
    "epoch",
    "shuffle",
    "reduce",
    "map",
    "split",
    "container",
    "heartbeat",
    "session",
    "watch",
    "znode",
    "partition",
    "heal",
    "pause",
    "kill",
    "disk",
    "commit",
    "fence",
];

/// What every worker saw, for the checkers.
#[derive(Default)]
pub struct Record {
    /// Acknowledged files: path -> (length, CRC32C).
    pub files: BTreeMap<String, (u64, u32)>,
    pub files_failed: u64,
    pub deleted: u64,
    pub deletes_failed: u64,
    pub reads_ok: u64,
    pub reads_failed: u64,
    /// Violations seen while running (a read that returned other bytes).
    pub violations: Vec<String>,
    /// Acknowledged counter values, per client, in the order acknowledged.
    pub acked: Vec<Vec<u64>>,
    /// Increments whose outcome is unknown (the connection dropped before the answer).
    pub uncertain: u64,
    pub jobs_ok: u64,
    /// Jobs that failed cleanly, with the first line of their error.
    pub jobs_failed: Vec<String>,
}

pub struct Workload {
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    dir: PathBuf,
    keepers: Vec<SocketAddr>,
}

/// The keepers' client addresses in cluster.json.
pub fn keepers_of(dir: &Path) -> anyhow::Result<Vec<SocketAddr>> {
    let text = std::fs::read_to_string(dir.join("cluster.json"))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let list = v["processes"].as_array().context("cluster.json has no processes")?;
    let addrs: Vec<SocketAddr> = list
        .iter()
        .filter(|p| p["role"] == "keeper")
        .filter_map(|p| p["addrs"]["client"].as_str()?.parse().ok())
        .collect();
    anyhow::ensure!(!addrs.is_empty(), "cluster.json lists no keeper");
    Ok(addrs)
}

/// A file's content: seeded, so the checker knows every byte without keeping them.
fn file_bytes(seed: u64, n: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut b = Vec::with_capacity(len + 8);
    while b.len() < len {
        b.extend_from_slice(&rng.next().to_le_bytes());
    }
    b.truncate(len);
    b
}

/// The corpus the jobs count, and its reference counts.
fn corpus(seed: u64, lines: usize) -> (String, BTreeMap<String, u64>) {
    let mut rng = Rng(seed);
    let mut text = String::new();
    let mut counts = BTreeMap::new();
    for _ in 0..lines {
        let n = 1 + rng.below(12);
        for i in 0..n {
            let w = *rng.pick(&WORDS);
            if i > 0 {
                text.push(' ');
            }
            text.push_str(w);
            *counts.entry(w.to_owned()).or_insert(0) += 1;
        }
        text.push('\n');
    }
    (text, counts)
}

fn write_file(dfs: &Dfs, path: &str, bytes: &[u8], block_size: Option<u64>) -> anyhow::Result<()> {
    let mut w = dfs.create(path, CreateOptions { overwrite: true, block_size, ..CreateOptions::default() })?;
    w.write_all(bytes)?;
    w.close()?;
    Ok(())
}

fn read_file(dfs: &Dfs, path: &str) -> anyhow::Result<Vec<u8>> {
    let mut r = dfs.open(path)?;
    let mut b = Vec::new();
    r.read_to_end(&mut b)?;
    Ok(b)
}

impl Workload {
    /// Prepares the inputs (the jobs' corpus, the counter) and starts the workers.
    pub fn start(dir: &Path, seed: u64) -> anyhow::Result<Workload> {
        let user = dfs_client::default_user();
        let dfs = Dfs::from_cluster_dir(dir, &user)?;
        let _ = dfs.delete(ROOT, true);
        let mut reference = BTreeMap::new();
        for part in 0..3u64 {
            let (text, counts) = corpus(seed.wrapping_add(part), 100_000);
            write_file(&dfs, &format!("{ROOT}/jobin/part-{part}.txt"), text.as_bytes(), None)?;
            for (w, c) in counts {
                *reference.entry(w).or_insert(0) += c;
            }
        }
        let keepers = keepers_of(dir)?;
        let mut zk = SyncClient::connect(keepers[0], 10_000, None)?;
        match zk.create(COUNTER, b"0", 0) {
            Ok(_) => {}
            Err(ClientError::Keeper(ErrorCode::NodeExists, _)) => {
                zk.delete(COUNTER, -1)?;
                zk.create(COUNTER, b"0", 0)?;
            }
            Err(e) => return Err(e).context("creating the counter"),
        }
        let _ = zk.close();

        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record { acked: vec![Vec::new(); 2], ..Record::default() }));
        let mut threads = Vec::new();
        {
            let (stop, record, dir) = (stop.clone(), record.clone(), dir.to_path_buf());
            threads.push(std::thread::spawn(move || files_worker(&dir, seed, &stop, &record)));
        }
        for client in 0..2 {
            let (stop, record, keepers) = (stop.clone(), record.clone(), keepers.clone());
            threads.push(std::thread::spawn(move || counter_worker(client, &keepers, seed, &stop, &record)));
        }
        {
            let (stop, record, dir) = (stop.clone(), record.clone(), dir.to_path_buf());
            threads.push(std::thread::spawn(move || jobs_worker(&dir, &reference, &stop, &record)));
        }
        Ok(Workload { stop, record, threads, dir: dir.to_path_buf(), keepers })
    }

    /// Stops the workers (a running job is let finish), then checks everything against the
    /// settled cluster. Returns the summary lines and whether every check passed.
    pub fn finish(self) -> (Vec<String>, bool) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        let mut r = std::mem::take(&mut *self.record.lock().expect("record lock"));
        let mut lines = Vec::new();

        // Files: every acknowledged one whole.
        let user = dfs_client::default_user();
        let deadline = Instant::now() + SETTLE;
        let mut lost = 0;
        for (path, (len, crc)) in &r.files {
            let got = loop {
                let attempt = Dfs::from_cluster_dir(&self.dir, &user)
                    .map_err(anyhow::Error::from)
                    .and_then(|d| read_file(&d, path));
                match attempt {
                    Ok(b) => break Ok(b),
                    Err(e) if Instant::now() > deadline => break Err(e),
                    Err(_) => std::thread::sleep(Duration::from_millis(500)),
                }
            };
            match got {
                Ok(b) if b.len() as u64 == *len && crc32c::crc32c(&b) == *crc => {}
                Ok(b) => {
                    lost += 1;
                    r.violations
                        .push(format!("{path}: {} bytes read back, {len} acknowledged, or other bytes", b.len()));
                }
                Err(e) => {
                    lost += 1;
                    r.violations.push(format!("{path}: acknowledged, cannot be read after the faults: {e:#}"));
                }
            }
        }
        lines.push(format!(
            "files: {} acknowledged and read back whole after the faults ({} lost or corrupted); {} writes failed \
             (not acknowledged); {} older ones deleted ({} deletes failed); {} reads during the faults equal, {} failed",
            r.files.len() - lost,
            lost,
            r.files_failed,
            r.deleted,
            r.deletes_failed,
            r.reads_ok,
            r.reads_failed
        ));

        // Keeper history.
        let acked: Vec<u64> = r.acked.iter().flatten().copied().collect();
        let mut distinct = acked.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != acked.len() {
            r.violations.push(format!(
                "keeper: {} acknowledged increments wrote only {} distinct values",
                acked.len(),
                distinct.len()
            ));
        }
        for (client, values) in r.acked.iter().enumerate() {
            if values.windows(2).any(|w| w[0] >= w[1]) {
                r.violations.push(format!("keeper: client {client}'s acknowledged values do not rise: {values:?}"));
            }
        }
        let final_value = final_counter(&self.keepers);
        match final_value {
            Ok((value, version)) => {
                let max = distinct.last().copied().unwrap_or(0);
                let attempted = acked.len() as u64 + r.uncertain;
                if value < max {
                    r.violations.push(format!("keeper: final value {value} below the acknowledged {max}"));
                }
                if value > attempted {
                    r.violations
                        .push(format!("keeper: final value {value} above the {attempted} increments attempted"));
                }
                if value != u64::from(version.unsigned_abs()) {
                    r.violations.push(format!("keeper: final value {value} but version {version}"));
                }
                lines.push(format!(
                    "keeper: {} increments acknowledged, {} uncertain; final value {value} at version {version}",
                    acked.len(),
                    r.uncertain
                ));
            }
            Err(e) => r.violations.push(format!("keeper: the counter cannot be read after the faults: {e:#}")),
        }

        lines.push(format!(
            "jobs: {} succeeded with the reference counts, {} failed with an error{}",
            r.jobs_ok,
            r.jobs_failed.len(),
            match r.jobs_failed.len() {
                0 => String::new(),
                n if n <= 3 => format!(": {}", r.jobs_failed.join("; ")),
                n => format!(": {} (and {} more)", r.jobs_failed[..3].join("; "), n - 3),
            }
        ));
        let ok = r.violations.is_empty();
        for v in &r.violations {
            lines.push(format!("VIOLATION {v}"));
        }
        (lines, ok)
    }
}

fn files_worker(dir: &Path, seed: u64, stop: &AtomicBool, record: &Mutex<Record>) {
    let user = dfs_client::default_user();
    let mut rng = Rng(seed ^ 0xF11E);
    let mut dfs = None;
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Some(d) = dfs.as_ref() else {
            dfs = Dfs::from_cluster_dir(dir, &user).ok();
            if dfs.is_none() {
                std::thread::sleep(Duration::from_millis(500));
            }
            continue;
        };
        // Sizes from empty to a few MiB, most small.
        let len = match rng.below(10) {
            0 => 0,
            1..=6 => rng.below(64 << 10) as usize,
            _ => rng.below(4 << 20) as usize,
        };
        let path = format!("{ROOT}/files/f{n:05}");
        let bytes = file_bytes(seed, n, len);
        match write_file(d, &path, &bytes, Some(FILE_BLOCK_SIZE)) {
            Ok(()) => {
                let mut r = record.lock().expect("record lock");
                r.files.insert(path, (len as u64, crc32c::crc32c(&bytes)));
            }
            Err(_) => {
                record.lock().expect("record lock").files_failed += 1;
                dfs = None;
            }
        }
        n += 1;
        // The oldest files go, so the data stays within the DataNodes' disks however long
        // this runs. A delete whose answer was lost may or may not have happened: that file
        // is no longer checked either way.
        let oldest = {
            let r = record.lock().expect("record lock");
            (r.files.len() > KEEP_FILES).then(|| r.files.keys().next().cloned()).flatten()
        };
        if let (Some(path), Some(d)) = (oldest, dfs.as_ref()) {
            let deleted = d.delete(&path, false);
            let mut r = record.lock().expect("record lock");
            r.files.remove(&path);
            match deleted {
                Ok(_) => r.deleted += 1,
                Err(_) => r.deletes_failed += 1,
            }
        }
        // Read back an earlier acknowledged file.
        let earlier = {
            let r = record.lock().expect("record lock");
            let keys: Vec<(&String, &(u64, u32))> = r.files.iter().collect();
            (!keys.is_empty()).then(|| {
                let (p, v) = keys[rng.below(keys.len() as u64) as usize];
                (p.clone(), *v)
            })
        };
        if let (Some((path, (len, crc))), Some(d)) = (earlier, dfs.as_ref()) {
            match read_file(d, &path) {
                Ok(b) => {
                    let mut r = record.lock().expect("record lock");
                    if b.len() as u64 == len && crc32c::crc32c(&b) == crc {
                        r.reads_ok += 1;
                    } else {
                        r.violations
                            .push(format!("{path}: read {} bytes during the faults, not the {len} written", b.len()));
                    }
                }
                Err(_) => record.lock().expect("record lock").reads_failed += 1,
            }
        }
    }
}

fn counter_worker(client: usize, keepers: &[SocketAddr], seed: u64, stop: &AtomicBool, record: &Mutex<Record>) {
    let mut rng = Rng(seed ^ (0xC0 + client as u64));
    let mut zk: Option<SyncClient> = None;
    while !stop.load(Ordering::SeqCst) {
        let Some(c) = zk.as_mut() else {
            let addr = *rng.pick(keepers);
            zk = SyncClient::connect(addr, 6000, None).ok();
            match &zk {
                Some(c) => {
                    let _ = c.set_read_timeout(Duration::from_secs(5));
                }
                None => std::thread::sleep(Duration::from_millis(300)),
            }
            continue;
        };
        let (data, stat) = match c.get(COUNTER, false) {
            Ok(v) => v,
            Err(_) => {
                zk = None;
                continue;
            }
        };
        let value: u64 = String::from_utf8_lossy(&data).parse().unwrap_or(0);
        match c.set(COUNTER, (value + 1).to_string().as_bytes(), stat.version) {
            Ok(_) => record.lock().expect("record lock").acked[client].push(value + 1),
            Err(ClientError::Keeper(ErrorCode::BadVersion, _)) => {}
            Err(ClientError::Keeper(..)) => {
                // Refused (not the leader's to decide, read-only...): not applied.
                zk = None;
            }
            Err(_) => {
                record.lock().expect("record lock").uncertain += 1;
                zk = None;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The counter's value and version, read from any keeper that answers (retried while the
/// cluster settles).
fn final_counter(keepers: &[SocketAddr]) -> anyhow::Result<(u64, i32)> {
    let deadline = Instant::now() + SETTLE;
    loop {
        for k in keepers {
            let got = SyncClient::connect(*k, 6000, None).and_then(|mut c| {
                // A sync first: the answer is then at least as new as every acknowledged write.
                c.sync(COUNTER)?;
                let (data, stat) = c.get(COUNTER, false)?;
                let _ = c.close();
                Ok((data, stat))
            });
            if let Ok((data, stat)) = got {
                let value = String::from_utf8_lossy(&data).parse().context("the counter is not a number")?;
                return Ok((value, stat.version));
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("no keeper answered within {SETTLE:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn jobs_worker(dir: &Path, reference: &BTreeMap<String, u64>, stop: &AtomicBool, record: &Mutex<Record>) {
    let herd = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            record.lock().expect("record lock").violations.push(format!("jobs: no herd binary: {e}"));
            return;
        }
    };
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let out = format!("{ROOT}/jobs/out{n:03}");
        n += 1;
        let started = Instant::now();
        let child = std::process::Command::new(&herd)
            .arg("job")
            .arg("--cluster")
            .arg(dir)
            .args(["run", "--reduces", "2", "--name", "chaos-wordcount", "wordcount", &format!("{ROOT}/jobin"), &out])
            .env("RUST_BACKTRACE", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                record.lock().expect("record lock").violations.push(format!("jobs: cannot start herd job: {e}"));
                return;
            }
        };
        // Read the pipes on threads, so a chatty job never blocks on a full pipe.
        let mut so = child.stdout.take().expect("piped");
        let mut se = child.stderr.take().expect("piped");
        let o = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = so.read_to_string(&mut s);
            s
        });
        let e = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = se.read_to_string(&mut s);
            s
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if started.elapsed() > JOB_BOUND => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(200)),
                Err(_) => break None,
            }
        };
        let stdout = o.join().unwrap_or_default();
        let stderr = e.join().unwrap_or_default();
        let verdict = match status.map(|s| s.code()) {
            None => Err(format!("{out}: no answer within {JOB_BOUND:?} (hung)")),
            Some(Some(0)) => match job_output_settled(dir, &out) {
                Ok(counts) if counts == *reference => Ok(None),
                Ok(counts) => Err(format!(
                    "{out}: succeeded with other counts: {} words vs {} in the reference",
                    counts.len(),
                    reference.len()
                )),
                Err(e) => Err(format!("{out}: succeeded but its output cannot be read: {e:#}")),
            },
            Some(Some(1)) => {
                // `herd job run` says why a job failed as Hadoop's client does ("Job ... failed
                // with state FAILED due to: ..."), and any other failure with "Error: ...".
                let why = stdout
                    .lines()
                    .chain(stderr.lines())
                    .find(|l| l.contains(" failed with state ") || l.starts_with("Error:"))
                    .unwrap_or("");
                if why.is_empty() {
                    Err(format!("{out}: failed without an \"Error:\" line: {}", stderr.trim()))
                } else {
                    Ok(Some(format!("{out}: {}", why.trim())))
                }
            }
            Some(code) => Err(format!("{out}: exit {code:?}: {}", stderr.trim())),
        };
        let mut r = record.lock().expect("record lock");
        match verdict {
            Ok(None) => r.jobs_ok += 1,
            Ok(Some(why)) => r.jobs_failed.push(why),
            Err(v) => r.violations.push(format!("jobs: {v}")),
        }
    }
}

/// A finished job's word counts, retried while the cluster settles: a read may fail for a
/// while under a fault (a NameNode just restarted knows no replica locations until the
/// DataNodes report again), but an acknowledged output must come back.
fn job_output_settled(dir: &Path, out: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let deadline = Instant::now() + SETTLE;
    loop {
        match job_output(dir, out) {
            Ok(counts) => return Ok(counts),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// A finished job's word counts, from its part files.
fn job_output(dir: &Path, out: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    word_counts(&Dfs::from_cluster_dir(dir, &dfs_client::default_user())?, out)
}

/// The `word<TAB>count` lines of every part file under `out`, summed per word.
pub fn word_counts(dfs: &Dfs, out: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for st in dfs.list(out)? {
        if !st.name.starts_with("part-") {
            continue;
        }
        let text = read_file(dfs, &format!("{out}/{}", st.name))?;
        for line in String::from_utf8_lossy(&text).lines() {
            let (w, c) = line.split_once('\t').with_context(|| format!("line {line:?}"))?;
            *counts.entry(w.to_owned()).or_insert(0) += c.parse::<u64>().with_context(|| format!("line {line:?}"))?;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_content_and_corpus_repeat() {
        assert_eq!(file_bytes(7, 3, 1000), file_bytes(7, 3, 1000));
        assert_ne!(file_bytes(7, 3, 1000), file_bytes(7, 4, 1000));
        assert_eq!(file_bytes(7, 3, 5).len(), 5);
        let (text, counts) = corpus(9, 100);
        assert_eq!(text.lines().count(), 100);
        assert_eq!(counts.values().sum::<u64>(), text.split_whitespace().count() as u64);
    }
}
