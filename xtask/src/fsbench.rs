//! `cargo xtask bench fs`: `herd fs put` and `get` of one large file (default 1 GiB) with
//! replication 1 and 3 on a `herd up` cluster (one keeper, one NameNode, 3 DataNodes on
//! loopback), side by side in the same run with this machine's own limit: the same bytes
//! written to 1 and to 3 local files (3 at once, as a 3-replica pipeline writes 3 copies on
//! this one disk) with the DataNodes' fsync policy (an fsync at the end of every 128 MiB block,
//! see [`BLOCK`]), and a local copy read back.
//!
//! Everything lives in one temporary directory on one file system: the source file, the local
//! copies, the cluster's data dirs and the file `get` writes. Reads are measured twice: warm
//! (whatever the page cache holds) and cold (after `sync` and dropping the page cache, which
//! needs root; without it the cold reads are skipped). Reading back is `herd fs cat` into
//! /dev/null against reading a local copy, each the whole file; a `herd fs get` per file,
//! untimed, checks the bytes. Each measurement is one `Instant` around a whole command
//! or a whole copy loop; with `--rounds R` the median per measurement is reported. The
//! cluster is stopped (SIGINT, then SIGKILL after 20 s) by its pid when the bench ends, also
//! on error.

use crate::upcluster::{free_mib, keep_logs, median, Cluster};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
/// Every local read and write moves 1 MiB at a time.
const BUF: usize = MIB;
/// A `herd fs` command is killed as hung after this plus 1 s per MiB (1 MiB/s is far below
/// any rate worth measuring).
const CMD_SLACK: Duration = Duration::from_secs(60);
/// The ratio aims (from the issue): put r=3 against the local 3-copy write, get against the
/// local read.
const AIM_PUT3: f64 = 0.70;
const AIM_GET: f64 = 0.80;

/// The measurements, in the order each round runs them: (key in the JSON line, label).
const MEASURES: [(&str, &str); 9] = [
    ("local_write_1", "local write, 1 copy"),
    ("local_write_3", "local write, 3 copies at once"),
    ("put_r1", "herd fs put -r 1"),
    ("put_r3", "herd fs put -r 3"),
    ("local_read", "local read, warm"),
    ("get_r3", "herd fs cat (r=3 file), warm"),
    ("get_r1", "herd fs cat (r=1 file), warm"),
    ("local_read_cold", "local read, cold"),
    ("get_r3_cold", "herd fs cat (r=3 file), cold"),
];

struct Opts {
    size_mib: u64,
    rounds: usize,
    keep: bool,
    herd_bin: Option<PathBuf>,
}

pub fn bench_fs(args: &[String]) -> Result<()> {
    let mut o = Opts { size_mib: 1024, rounds: 1, keep: false, herd_bin: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--size-mib" => o.size_mib = value()?.parse().context("--size-mib")?,
            "--rounds" => o.rounds = value()?.parse().context("--rounds")?,
            "--keep" => o.keep = true,
            "--herd-bin" => o.herd_bin = Some(PathBuf::from(value()?)),
            _ => bail!("unknown argument {a:?} (bench fs [--size-mib N] [--rounds R] [--keep] [--herd-bin PATH])"),
        }
    }
    if o.size_mib == 0 || o.rounds == 0 {
        bail!("--size-mib and --rounds must be at least 1");
    }
    let herd = crate::herd_binary(o.herd_bin.take())?;
    let dir = std::env::temp_dir().join(format!("herd-fsbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let r = run_bench(&o, &herd, &dir);
    if o.keep {
        eprintln!("xtask: --keep: everything kept in {}", dir.display());
    } else {
        if r.is_err() {
            keep_logs(&dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    r
}

fn run_bench(o: &Opts, herd: &Path, dir: &Path) -> Result<()> {
    let size = o.size_mib * MIB as u64;
    // Peak use, right after put r=3: the source, the local copy kept for the read, the r=1
    // file once and the r=3 file three times in the DataNodes. (The local copy is gone before
    // `get` writes its copy, and the r=3 file before the r=1 file is fetched.)
    let need_mib = 6 * o.size_mib + 256;
    match free_mib(dir) {
        Some(free) if free < need_mib => bail!(
            "{} has {free} MiB free; a {} MiB bench needs about {need_mib} MiB (6 x the size: source, local copy, \
             r=1 and 3 x r=3 replicas). Use a smaller --size-mib or point TMPDIR at a larger disk",
            dir.display(),
            o.size_mib
        ),
        Some(_) => {}
        None => eprintln!("xtask: could not read the free space of {} (df -k); going on", dir.display()),
    }

    let src = dir.join("source");
    let t0 = Instant::now();
    write_source(&src, size)?;
    eprintln!("xtask: {} MiB source written in {:.1} s", o.size_mib, t0.elapsed().as_secs_f64());

    // The file system alone, as the README's numbers say: no compute roles beside it.
    let cluster = Cluster::start(herd, dir, 0)?;
    eprintln!("xtask: cluster up, namenode rpc {}", cluster.namenode);
    // `put` wants its destination's parent to exist, as Hadoop's does.
    cluster.fs(herd, &["mkdir", "-p", "/bench"], CMD_SLACK)?;

    // seconds[measure][round]
    let mut seconds: Vec<Vec<f64>> = vec![Vec::new(); MEASURES.len()];
    for round in 0..o.rounds {
        let times = run_round(&cluster, herd, dir, &src, size, round)?;
        let line: Vec<String> = MEASURES.iter().zip(&times).map(|((k, _), s)| format!("{k} {s:.3} s")).collect();
        eprintln!("xtask: round {}/{}: {}", round + 1, o.rounds, line.join(", "));
        for (all, t) in seconds.iter_mut().zip(times) {
            all.push(t);
        }
    }
    let notes = cluster.notes();
    drop(cluster);

    let mib = o.size_mib as f64;
    let median: Vec<f64> = seconds.iter().map(|s| median(s)).collect();
    let rate = |key: &str| {
        let i = MEASURES.iter().position(|(k, _)| *k == key).expect("a measure's key");
        mib / median[i]
    };
    let what = if o.rounds == 1 { "one round".to_owned() } else { format!("median of {} rounds", o.rounds) };
    println!("\n### herd fs put/get of a {} MiB file against the same bytes on the local disk ({what})\n", o.size_mib);
    println!("MiB/s are the file's MiB per second (a 3-copy write or r=3 put puts 3x that on the disk);");
    println!("warm reads find the data in the page cache; cold ones run after it was dropped.\n");
    for ((_, label), s) in MEASURES.iter().zip(&median) {
        println!("{label:<32} {:>9.1} MiB/s {s:>9.3} s", mib / s);
    }
    let ratios = [
        ("put_r1_over_local_write_1", "put r=1 / local 1-copy", rate("put_r1") / rate("local_write_1"), None),
        ("put_r3_over_local_write_3", "put r=3 / local 3-copy", rate("put_r3") / rate("local_write_3"), Some(AIM_PUT3)),
        (
            "get_r3_cold_over_local_read_cold",
            "get r=3 / local read, cold",
            rate("get_r3_cold") / rate("local_read_cold"),
            Some(AIM_GET),
        ),
        ("get_r3_over_local_read", "get r=3 / local read, warm", rate("get_r3") / rate("local_read"), None),
        ("get_r1_over_local_read", "get r=1 / local read, warm", rate("get_r1") / rate("local_read"), None),
    ];
    println!();
    for (_, label, r, aim) in &ratios {
        let aim = match aim {
            Some(a) if r >= a => format!("  (aim >= {a:.2}: met)"),
            Some(a) => format!("  (aim >= {a:.2}: NOT met)"),
            None => String::new(),
        };
        println!("{label:<32} {r:>9.2}{aim}");
    }
    for n in &notes {
        println!("note: {n}");
    }
    let mut json = format!(
        "{{\"bench\":\"fs\",\"size_mib\":{},\"rounds\":{},\"page_cache\":\"warm and cold\"",
        o.size_mib, o.rounds
    );
    for ((key, _), s) in MEASURES.iter().zip(&median) {
        json.push_str(&format!(",\"{key}_mib_per_s\":{:.1},\"{key}_s\":{s:.4}", mib / s));
    }
    for (key, _, r, _) in &ratios {
        json.push_str(&format!(",\"{key}\":{r:.3}"));
    }
    json.push('}');
    println!("\n{json}");
    Ok(())
}

/// One round, in order: the local 1- and 3-copy writes, put r=1 and r=3, the local read, get
/// of the r=3 and r=1 files. Leaves nothing behind, locally or in the cluster.
fn run_round(cluster: &Cluster, herd: &Path, dir: &Path, src: &Path, size: u64, round: usize) -> Result<Vec<f64>> {
    let mut t = Vec::with_capacity(MEASURES.len());
    let timeout = CMD_SLACK + Duration::from_secs(size / MIB as u64);
    let fs = |args: &[&str]| -> Result<()> { cluster.fs(herd, args, timeout) };
    let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        let t0 = Instant::now();
        f()?;
        Ok(t0.elapsed().as_secs_f64())
    };

    // 1: one copy, fsynced at its end.
    let one = dir.join("local-1");
    t.push(time(&mut || copy_fsync(src, &one))?);
    verify_size(&one, size)?;
    std::fs::remove_file(&one)?;

    // 2: three copies at once, each its own thread reading the source.
    let three: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("local-3-{i}"))).collect();
    t.push(time(&mut || {
        std::thread::scope(|s| {
            let handles: Vec<_> = three.iter().map(|dst| s.spawn(move || copy_fsync(src, dst))).collect();
            handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| bail!("a copy thread panicked")))
        })
    })?);
    for p in &three {
        verify_size(p, size)?;
    }
    // One copy stays for the local read.
    for p in &three[1..] {
        std::fs::remove_file(p)?;
    }

    // 3, 4: puts.
    let srcs = src.to_str().context("the scratch dir's path is not UTF-8")?;
    let r1 = format!("/bench/r1-{round}");
    let r3 = format!("/bench/r3-{round}");
    t.push(time(&mut || fs(&["put", "-r", "1", srcs, &r1]))?);
    t.push(time(&mut || fs(&["put", "-r", "3", srcs, &r3]))?);

    // 5-7: warm reads: a local copy, then the r=3 and r=1 files through `herd fs cat`.
    t.push(time(&mut || verify_len(&three[0], read_all(&three[0])?, size))?);
    for remote in [&r3, &r1] {
        t.push(time(&mut || cluster.cat(herd, remote, timeout))?);
    }
    // 8, 9: cold reads, each after the page cache was dropped.
    drop_caches()?;
    t.push(time(&mut || verify_len(&three[0], read_all(&three[0])?, size))?);
    drop_caches()?;
    t.push(time(&mut || cluster.cat(herd, &r3, timeout))?);
    std::fs::remove_file(&three[0])?;

    // Untimed: each file's bytes, through `get`, against the source; then it goes.
    for remote in [&r3, &r1] {
        let got = dir.join("got");
        let gots = got.to_str().context("the scratch dir's path is not UTF-8")?;
        fs(&["get", remote, gots])?;
        same_bytes(src, &got).with_context(|| format!("herd fs get {remote}"))?;
        std::fs::remove_file(&got)?;
        fs(&["rm", "-r", remote])?;
    }
    Ok(t)
}

/// Writes back every dirty page and drops the page cache (root only), so the next read comes
/// from the disk.
fn drop_caches() -> Result<()> {
    let status = Command::new("sync").status().context("running sync")?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    std::fs::write("/proc/sys/vm/drop_caches", b"3").context("dropping the page cache (needs root)")?;
    Ok(())
}

/// `size` bytes of incompressible data (xorshift64*), fsynced so that its write-back does not
/// spill into the first measurement.
fn write_source(path: &Path, size: u64) -> Result<()> {
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut buf = vec![0u8; BUF];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = size;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            word.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(BUF as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.sync_all().with_context(|| format!("fsync of {}", path.display()))
}

/// Copies `src` into a new file `dst` 1 MiB at a time and fsyncs it once at its end (as a
/// DataNode fsyncs each block file once at its end).
/// The fsync policy both sides share: a DataNode fsyncs each block file once, at the block's
/// end (HDFS's 128 MiB blocks, herd's default), so a local copy is fsynced after every
/// `BLOCK` bytes it wrote and at its end.
const BLOCK: u64 = 128 << 20;

fn copy_fsync(src: &Path, dst: &Path) -> Result<()> {
    let mut r = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut w = File::options()
        .write(true)
        .create_new(true)
        .open(dst)
        .with_context(|| format!("creating {}", dst.display()))?;
    let mut buf = vec![0u8; BUF];
    let mut written = 0u64;
    loop {
        let n = read_full(&mut r, &mut buf)?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n]).with_context(|| format!("writing {}", dst.display()))?;
        written += n as u64;
        if written.is_multiple_of(BLOCK) {
            w.sync_data().with_context(|| format!("fsync of {}", dst.display()))?;
        }
    }
    w.sync_all().with_context(|| format!("fsync of {}", dst.display()))
}

/// Reads into `buf` until it is full or the file ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Reads a file to its end 1 MiB at a time, discarding; returns its length.
fn read_all(path: &Path) -> Result<u64> {
    let mut r = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = read_full(&mut r, &mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

fn verify_len(path: &Path, got: u64, want: u64) -> Result<()> {
    if got != want {
        bail!("{} holds {got} bytes, not {want}", path.display());
    }
    Ok(())
}

fn verify_size(path: &Path, want: u64) -> Result<()> {
    verify_len(path, std::fs::metadata(path)?.len(), want)
}

/// Fails unless two files hold the same bytes (untimed: checks what `get` wrote).
fn same_bytes(a: &Path, b: &Path) -> Result<()> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b).with_context(|| format!("opening {}", b.display()))?);
    let (mut ba, mut bb) = (vec![0u8; BUF], vec![0u8; BUF]);
    let mut at = 0u64;
    loop {
        let (na, nb) = (read_full(&mut fa, &mut ba)?, read_full(&mut fb, &mut bb)?);
        if na != nb || ba[..na] != bb[..nb] {
            let first = ba[..na].iter().zip(&bb[..nb]).position(|(x, y)| x != y).unwrap_or(na.min(nb));
            bail!("{} differs from {} at byte {}", b.display(), a.display(), at + first as u64);
        }
        if na == 0 {
            return Ok(());
        }
        at += na as u64;
    }
}
