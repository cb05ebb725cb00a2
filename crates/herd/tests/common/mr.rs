//! MapReduce test helpers: a seeded text corpus, references computed here (not by herd),
//! reading a job's output, finding a job's processes, and streaming scripts written as for
//! Hadoop.
#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use super::compute::ComputeCluster;

pub const WAIT_MAX: Duration = Duration::from_secs(120);

/// `lines` lines of words from a small vocabulary (so counts are large) plus rare words, from
/// `seed`.
pub fn corpus(lines: usize, seed: u64) -> String {
    const WORDS: [&str; 12] =
        ["the", "herd", "map", "reduce", "block", "keeper", "node", "fault", "data", "quorum", "lease", "epoch"];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut s = String::new();
    for _ in 0..lines {
        let n = 1 + next() % 12;
        for i in 0..n {
            if i > 0 {
                s.push(if next() % 5 == 0 { '\t' } else { ' ' });
            }
            let r = next();
            if r % 50 == 0 {
                s.push_str(&format!("rare{}", r % 1000));
            } else {
                s.push_str(WORDS[(r % WORDS.len() as u64) as usize]);
            }
        }
        s.push('\n');
    }
    s
}

/// Word counts as Hadoop's WordCount defines words (split at ASCII white space).
pub fn word_counts<'a>(texts: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for t in texts {
        for w in t.split(|c: char| c.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
            *m.entry(w.to_string()).or_default() += 1;
        }
    }
    m
}

/// Runs `herd ARGS` and fails the test with its output unless it succeeds; returns stdout.
pub fn herd_ok(c: &ComputeCluster, args: &[&str]) -> String {
    let out = c.herd(args);
    assert!(out.status.success(), "herd {args:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes `content` to a local file and puts it at `dfs_path` (block size `block`, e.g. "1m").
pub fn put(c: &ComputeCluster, dfs_path: &str, content: &str, block: Option<&str>) {
    let local = c.dir().join(format!("put-{}", dfs_path.replace('/', "_")));
    std::fs::write(&local, content).unwrap();
    let parent = dfs_path.rsplit_once('/').map(|(p, _)| p).filter(|p| !p.is_empty()).unwrap_or("/");
    herd_ok(c, &["fs", "mkdir", "-p", parent]);
    let local = local.display().to_string();
    let mut args = vec!["fs", "put"];
    if let Some(b) = block {
        args.extend(["-b", b]);
    }
    args.extend([local.as_str(), dfs_path]);
    herd_ok(c, &args);
}

/// The names in a DFS directory (`herd fs ls`'s last column, base names).
pub fn ls(c: &ComputeCluster, dir: &str) -> Vec<String> {
    let out = c.herd(&["fs", "ls", dir]);
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("Found "))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
        .collect()
}

/// Every `part-*` file of an output directory, by name, as bytes.
pub fn parts(c: &ComputeCluster, dir: &str) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for name in ls(c, dir).into_iter().filter(|n| n.starts_with("part-")) {
        let out = c.herd(&["fs", "cat", &format!("{dir}/{name}")]);
        assert!(out.status.success(), "{}", text(&out));
        m.insert(name, out.stdout);
    }
    m
}

/// `word<TAB>count` lines of every part file, checking each word appears once.
pub fn counts_of(parts: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (name, bytes) in parts {
        for line in String::from_utf8_lossy(bytes).lines() {
            let (w, n) = line.split_once('\t').unwrap_or_else(|| panic!("{name}: line {line:?} has no TAB"));
            let prev = m.insert(w.to_string(), n.parse::<u64>().unwrap_or_else(|_| panic!("{name}: {line:?}")));
            assert!(prev.is_none(), "word {w:?} in two output records");
        }
    }
    m
}

/// `herd job status APP`'s output.
pub fn status(c: &ComputeCluster, app: &str) -> String {
    herd_ok(c, &["job", "status", app])
}

/// Waits until `pred` holds of `herd job status APP`'s output; returns that output.
pub fn wait_status(c: &ComputeCluster, app: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let t0 = Instant::now();
    loop {
        let out = c.herd(&["job", "status", app]);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && pred(&s) {
            return s;
        }
        assert!(t0.elapsed() < WAIT_MAX, "gave up waiting for {what}; last status:\n{}", text(&out));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The number in a status line like `Maps: 6 total, 3 completed (...` after `label`.
pub fn status_number(status: &str, line_prefix: &str, label: &str) -> u64 {
    let line =
        status.lines().find(|l| l.starts_with(line_prefix)).unwrap_or_else(|| panic!("no {line_prefix} in\n{status}"));
    let words: Vec<&str> = line.split([' ', ',', '(', ')']).filter(|w| !w.is_empty()).collect();
    let i = words.iter().position(|w| *w == label).unwrap_or_else(|| panic!("no {label} in {line}"));
    words[i - 1].parse().unwrap_or_else(|_| panic!("{line}"))
}

/// A counter's value in `herd job status` output (`\t\tNAME=VALUE`).
pub fn counter(status: &str, name: &str) -> Option<i64> {
    status.lines().find_map(|l| l.trim().strip_prefix(&format!("{name}=")).and_then(|v| v.parse().ok()))
}

/// Runs a job with `--detach` and returns its application id.
pub fn submit(c: &ComputeCluster, args: &[&str]) -> String {
    let mut full = vec!["job", "run", "--detach"];
    full.extend_from_slice(args);
    herd_ok(c, &full).trim().to_string()
}

/// Waits for a detached job to end; returns its final status output.
pub fn wait_done(c: &ComputeCluster, app: &str) -> String {
    wait_status(c, app, "the job to end", |s| {
        s.contains("State: FINISHED") || s.contains("State: FAILED") || s.contains("State: KILLED")
    })
}

/// Pids whose command line holds every one of `needles`.
pub fn pids_with(needles: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if needles.iter().all(|n| cmd.contains(n)) {
            out.push(pid);
        }
    }
    out
}

/// A process's working directory.
pub fn cwd(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// The parent pid of `pid`.
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The NodeManager (`nm<i>`, 1-based) whose dirs hold `path` (a container's working dir).
pub fn nodemanager_of(c: &ComputeCluster, path: &Path) -> Option<usize> {
    let p = path.display().to_string();
    c.nodemanager_ids().iter().position(|id| p.contains(&format!("nodemanager-{id}/"))).map(|i| i + 1)
}

/// Map attempts whose output (`file.out.index`) is in NodeManager `nm<i>`'s local dir for `app`.
pub fn map_outputs_on(c: &ComputeCluster, i: usize, app: &str) -> Vec<String> {
    let root = c.dir().join(format!("nodemanager-nm{i}")).join("local").join("usercache");
    let mut found = Vec::new();
    let Ok(users) = std::fs::read_dir(&root) else { return found };
    for u in users.flatten() {
        let out = u.path().join("appcache").join(app).join("output");
        let Ok(maps) = std::fs::read_dir(&out) else { continue };
        for m in maps.flatten() {
            if m.path().join("file.out.index").is_file() {
                found.push(m.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// A Python streaming mapper (as for Hadoop: lines on stdin, `word\t1` on stdout). When the
/// task's partition is `slow_partition` and its attempt number is below `slow_attempts`, it
/// first waits (telling the framework it is alive) until `marker` exists, writing its pid to
/// `pid_file` so a test can find it.
pub fn slow_mapper(marker: &Path, pid_file: &Path, slow_partition: u32, slow_attempts: u32) -> String {
    format!(
        r#"#!/usr/bin/env python3
import os, sys, time
part = int(os.environ.get("mapreduce_task_partition", "-1"))
attempt = int(os.environ["mapreduce_task_attempt_id"].rsplit("_", 1)[1]) % 1000
if part == {slow_partition} and attempt < {slow_attempts}:
    with open("{pid}.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename("{pid}.tmp", "{pid}")
    deadline = time.time() + 120
    while not os.path.exists("{marker}") and time.time() < deadline:
        sys.stderr.write("reporter:status:waiting for the test\n")
        sys.stderr.flush()
        time.sleep(0.2)
for line in sys.stdin:
    for word in line.split():
        print(word + "\t1")
"#,
        pid = pid_file.display(),
        marker = marker.display(),
    )
}

/// A Python streaming reducer summing `word\t1` lines; partition `slow_partition` waits for
/// `marker` first (on its first attempt of this AM attempt only if `first_only`).
pub fn summing_reducer(marker: Option<&Path>, slow_partition: u32) -> String {
    let wait = match marker {
        Some(m) => format!(
            r#"if int(os.environ.get("mapreduce_task_partition", "-1")) == {slow_partition}:
    deadline = time.time() + 120
    while not os.path.exists("{m}") and time.time() < deadline:
        sys.stderr.write("reporter:status:waiting for the test\n")
        sys.stderr.flush()
        time.sleep(0.2)
"#,
            m = m.display()
        ),
        None => String::new(),
    };
    format!(
        r#"#!/usr/bin/env python3
import os, sys, time
{wait}current, total = None, 0
for line in sys.stdin:
    word, count = line.rstrip("\n").split("\t", 1)
    if word != current:
        if current is not None:
            print(current + "\t" + str(total))
        current, total = word, 0
    total += int(count)
    sys.stderr.write("reporter:counter:herd-test,values,1\n")
if current is not None:
    print(current + "\t" + str(total))
"#
    )
}

/// Writes an executable script into the cluster dir; returns its path.
pub fn script(c: &ComputeCluster, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = c.dir().join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}
