//! Guarantees of a three-member keeper ensemble under faults, checked on real processes with
//! recorded histories:
//! - versioned compare-and-set, and reads issued right after a `sync` on the same session, are
//!   linearizable (stateright's tester, key by key); plain reads, served by the member a client
//!   is connected to, are sequentially consistent: each client sees one history of each key,
//!   never going back and including its own writes, and every value read was written;
//! - no acknowledged write is lost and none is applied twice (sequential creates carrying a
//!   payload unique to each attempt), and all members end with the same data;
//! - a live session keeps its ephemerals across leader changes, and a session whose client is
//!   gone is expired by the new leader, no sooner than its timeout;
//!
//! under kill -9 of the leader, of a follower, of a majority and of every member, with restarts;
//! SIGSTOP past the election timeout, then SIGCONT; partitions between keepers, each in its own
//! network namespace (both ways and one way), then healing.
//!
//! Clients are threads, each with its own `SyncClient` connected to a random member. On
//! connection loss a client resumes its session at another member and issues a `sync` before
//! going on: `SyncClient` sends lastZxidSeen 0, so the sync is what keeps its view from going
//! back. An operation cut off by a fault has no return; stateright's tester may place it anywhere
//! after its invocation, or drop it, and the client goes on under a new tester thread id. Keys
//! change every few seconds (an "epoch"), which bounds each key's history and so the tester's
//! search.
//!
//! Each run prints its seed (HERD_TEST_SEED=N replays the nemesis's choices; timing still
//! varies) and its fault schedule as it goes. A failure names the seed, the schedule and the
//! offending history excerpt, and writes member logs and full histories under
//! target/tmp/ensemble-faults/. HERD_SOAK_SECONDS=N stretches every nemesis loop to N seconds.
//! The tests take turns (one ensemble at a time): their timing checks assume the machine is
//! theirs.

mod common;

use common::ensemble::{Ensemble, ScheduleHandle, State};
use common::netns::{self, Net};
use keeper_proto::client::{ClientError, SyncClient};
use keeper_proto::{CreateMode, ErrorCode, OpCode};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Keys per epoch for the compare-and-set clients.
const KEYS: u64 = 3;
/// How long one set of keys is used.
const EPOCH: Duration = Duration::from_secs(6);
/// Session timeout the workload's clients ask for.
const CLIENT_SESSION_MS: i32 = 10_000;
/// Bounds on the ensemble's reactions; generous, as a loaded 2-core machine runs these.
const ELECT: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(30);
/// A client that finds no member to take it for this long gives up (and fails the test).
const RECONNECT_LIMIT: Duration = Duration::from_secs(60);
/// How long the checks after a run may take before the test reports them as hung.
const CHECK_LIMIT: Duration = Duration::from_secs(180);

// ---- the reference object ------------------------------------------------------------------

use common::register::{Op, Ret, VersionedRegister};

type Tester = LinearizabilityTester<u64, VersionedRegister>;

// ---- seeds, randomness, the run ------------------------------------------------------------

/// xorshift64*: small, seedable, good enough to pick faults and keys.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[self.below(of.len() as u64) as usize]
    }
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// One ensemble at a time: see the file's doc.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Run {
    name: &'static str,
    seed: u64,
    rng: Rng,
    /// How long the nemesis keeps making faults.
    duration: Duration,
    started: Instant,
}

impl Run {
    fn new(name: &'static str, default_secs: u64) -> Run {
        let seed = std::env::var("HERD_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
        let soak = std::env::var("HERD_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        let duration = Duration::from_secs(default_secs.max(soak));
        eprintln!("{name}: HERD_TEST_SEED={seed}, faults for {duration:?}");
        Run { name, seed, rng: Rng::new(seed), duration, started: Instant::now() }
    }

    /// Passes, or fails with the seed, the schedule, the failures (each with its history
    /// excerpt) and where the member logs and full histories were written.
    fn finish(&self, ens: &Ensemble, failures: &[String], files: &[(String, String)]) {
        eprintln!(
            "{}: finished in {:.1}s with {} failure(s)",
            self.name,
            self.started.elapsed().as_secs_f64(),
            failures.len()
        );
        // HERD_TEST_DUMP=1 keeps the logs of a passing run too.
        let dump = !failures.is_empty() || std::env::var("HERD_TEST_DUMP").is_ok_and(|v| v == "1");
        if !dump {
            return;
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("ensemble-faults")
            .join(format!("{}-{}", self.name, self.seed));
        let _ = ens.dump_logs(&dir);
        let schedule = ens.schedule().join("\n");
        let _ = std::fs::write(dir.join("schedule.txt"), &schedule);
        let _ = std::fs::write(dir.join("failures.txt"), failures.join("\n\n"));
        for (name, text) in files {
            let _ = std::fs::write(dir.join(name), text);
        }
        if failures.is_empty() {
            eprintln!("{}: member logs in {}", self.name, dir.display());
            return;
        }
        let shown: Vec<String> = failures.iter().take(10).map(|f| clip(f, 6000)).collect();
        panic!(
            "{name} failed: {n} failure(s); seed {seed} (replay: HERD_TEST_SEED={seed} cargo test -p herd --test \
             ensemble_faults {name})\n--- fault schedule\n{schedule}\n--- failures\n{shown}\n--- member logs, \
             histories: {dir}",
            name = self.name,
            n = failures.len(),
            seed = self.seed,
            shown = shown.join("\n\n"),
            dir = dir.display()
        );
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... {} more bytes]", &s[..end], s.len() - end)
}

// ---- a reconnecting client ------------------------------------------------------------------

type Failures = Arc<Mutex<Vec<String>>>;

fn fail(failures: &Failures, what: String) {
    eprintln!("FAILURE: {}", what.lines().next().unwrap_or(""));
    failures.lock().unwrap().push(what);
}

/// A session that moves between members: on connection loss it resumes (same session id) at
/// the next member, then syncs, so its reads never go back.
struct Client {
    label: String,
    addrs: Vec<SocketAddr>,
    member: usize,
    conn: Option<SyncClient>,
    resume: Option<(i64, Vec<u8>)>,
    timeout_ms: i32,
    /// When this client last had a request answered (for judging an expiry).
    last_ok: Instant,
    gave_up: bool,
    failures: Failures,
    clock: ScheduleHandle,
    connects: u64,
    expired: u64,
    /// Unexpected answers so far; past a few the client gives up rather than flood the report.
    oddities: u32,
}

impl Client {
    fn new(label: String, addrs: Vec<SocketAddr>, first: usize, failures: Failures, clock: ScheduleHandle) -> Client {
        Client {
            label,
            addrs,
            member: first,
            conn: None,
            resume: None,
            timeout_ms: CLIENT_SESSION_MS,
            last_ok: Instant::now(),
            gave_up: false,
            failures,
            clock,
            connects: 0,
            expired: 0,
            oddities: 0,
        }
    }

    /// Records an unexpected answer as a failure.
    fn odd(&mut self, what: String) {
        fail(&self.failures, format!("{}: {what}", self.label));
        self.oddities += 1;
        if self.oddities >= 10 {
            self.gave_up = true;
        }
    }

    /// The connection, (re)connecting first if needed; None once `stop` is set or this client
    /// gave up (which is a failure).
    fn get(&mut self, stop: &AtomicBool) -> Option<&mut SyncClient> {
        if self.conn.is_none() {
            self.connect(stop);
        }
        self.conn.as_mut()
    }

    fn connect(&mut self, stop: &AtomicBool) {
        let t0 = Instant::now();
        let mut tries = 0usize;
        while !self.gave_up && !stop.load(Ordering::Relaxed) {
            if t0.elapsed() > RECONNECT_LIMIT {
                self.gave_up = true;
                fail(
                    &self.failures,
                    format!(
                        "{}: no member took this client for {RECONNECT_LIMIT:?} (until +{:.3}s)",
                        self.label,
                        self.clock.elapsed().as_secs_f64()
                    ),
                );
                return;
            }
            let addr = self.addrs[self.member];
            match SyncClient::connect(addr, self.timeout_ms, self.resume.clone()) {
                Ok(mut c) => match c.sync("/") {
                    Ok(()) => {
                        if let Some((sid, _)) = &self.resume {
                            if c.session_id != *sid {
                                fail(
                                    &self.failures,
                                    format!(
                                        "{}: resuming session 0x{sid:x} at member {} gave session 0x{:x}",
                                        self.label,
                                        self.member + 1,
                                        c.session_id
                                    ),
                                );
                            }
                        }
                        self.resume = Some((c.session_id, c.passwd.clone()));
                        self.timeout_ms = c.timeout_ms;
                        self.last_ok = Instant::now();
                        self.connects += 1;
                        self.conn = Some(c);
                        return;
                    }
                    Err(ClientError::Io(_)) => {}
                    Err(e) => self.odd(format!("sync after connecting to member {} answered {e}", self.member + 1)),
                },
                Err(ClientError::Expired) => {
                    let silent = self.last_ok.elapsed();
                    let sid = self.resume.as_ref().map_or(0, |r| r.0);
                    if silent + Duration::from_secs(3) < Duration::from_millis(self.timeout_ms as u64) {
                        fail(
                            &self.failures,
                            format!(
                                "{}: session 0x{sid:x} was refused as expired at member {} at +{:.3}s, only \
                                 {silent:?} after its last answered request (timeout {} ms)",
                                self.label,
                                self.member + 1,
                                self.clock.elapsed().as_secs_f64(),
                                self.timeout_ms
                            ),
                        );
                    }
                    self.expired += 1;
                    self.resume = None;
                    continue;
                }
                Err(ClientError::Io(_)) => {}
                Err(e) => self.odd(format!("connect to member {} answered {e}", self.member + 1)),
            }
            self.member = (self.member + 1) % self.addrs.len();
            tries += 1;
            if tries.is_multiple_of(self.addrs.len()) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The connection broke (or its fate is unknown): the next `get` goes to the next member.
    fn lost(&mut self) {
        self.conn = None;
        self.member = (self.member + 1) % self.addrs.len();
    }

    fn ok(&mut self) {
        self.last_ok = Instant::now();
    }
}

// ---- histories ------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Cas,
    /// A read served from the member's applied state.
    Read,
    /// A read right after a sync on the same session: linearizable.
    SyncRead,
    /// The read through each member after the run (also after a sync).
    Final,
}

#[derive(Clone, Debug)]
struct Event {
    client: usize,
    /// The tester's thread id; None for plain reads, which the tester does not see.
    tid: Option<u64>,
    kind: Kind,
    op: Op,
    member: usize,
    invoked: Duration,
    /// Position of the invocation among this key's invocations and returns.
    invoke_seq: u64,
    ret: Option<(Ret, Duration, u64)>,
    /// Why there is no return.
    cut: Option<String>,
}

impl Event {
    fn line(&self) -> String {
        let tid = self.tid.map_or("-".into(), |t| t.to_string());
        let ret = match (&self.ret, &self.cut) {
            (Some((r, at, _)), _) => format!("{:>9.3}s {r:?}", at.as_secs_f64()),
            (None, Some(why)) => format!("    (none) cut off: {why}"),
            (None, None) => "    (none) still in flight".into(),
        };
        format!(
            "client {:>2} tid {tid:>4} member {} {:>9.3}s .. {ret}  {:?} {:?}",
            self.client,
            self.member + 1,
            self.invoked.as_secs_f64(),
            self.kind,
            self.op
        )
    }
}

struct KeyHistory {
    tester: Tester,
    events: Vec<Event>,
    actions: u64,
}

#[derive(Default)]
struct Histories {
    keys: BTreeMap<String, KeyHistory>,
    next_tid: u64,
}

impl Histories {
    fn new_tid(&mut self) -> u64 {
        self.next_tid += 1;
        self.next_tid
    }

    #[allow(clippy::too_many_arguments)]
    fn invoke(
        &mut self,
        key: &str,
        client: usize,
        tid: Option<u64>,
        kind: Kind,
        op: Op,
        member: usize,
        at: Duration,
    ) -> usize {
        let h = self.keys.entry(key.to_owned()).or_insert_with(|| KeyHistory {
            tester: Tester::new(VersionedRegister::default()),
            events: Vec::new(),
            actions: 0,
        });
        if let Some(tid) = tid {
            h.tester.on_invoke(tid, op.clone()).expect("one op in flight per tester thread");
        }
        h.actions += 1;
        h.events.push(Event {
            client,
            tid,
            kind,
            op,
            member,
            invoked: at,
            invoke_seq: h.actions,
            ret: None,
            cut: None,
        });
        h.events.len() - 1
    }

    fn ret(&mut self, key: &str, ev: usize, ret: Ret, at: Duration) {
        let h = self.keys.get_mut(key).expect("invoked key");
        h.actions += 1;
        let e = &mut h.events[ev];
        if let Some(tid) = e.tid {
            h.tester.on_return(tid, ret.clone()).expect("return of the op in flight");
        }
        e.ret = Some((ret, at, h.actions));
    }

    fn cut(&mut self, key: &str, ev: usize, why: String) {
        self.keys.get_mut(key).expect("invoked key").events[ev].cut = Some(why);
    }
}

/// Replays the tester's view of `events` up to action `upto` (exclusive of later ones).
fn replay(events: &[Event], upto: u64) -> bool {
    let mut actions: Vec<(u64, bool, &Event)> = Vec::new();
    for e in events.iter().filter(|e| e.tid.is_some()) {
        actions.push((e.invoke_seq, true, e));
        if let Some((_, _, s)) = &e.ret {
            actions.push((*s, false, e));
        }
    }
    actions.sort_by_key(|a| a.0);
    let mut t = Tester::new(VersionedRegister::default());
    for (seq, invoke, e) in actions {
        if seq > upto {
            break;
        }
        let tid = e.tid.unwrap();
        if invoke {
            t.on_invoke(tid, e.op.clone()).unwrap();
        } else {
            t.on_return(tid, e.ret.as_ref().unwrap().0.clone()).unwrap();
        }
    }
    t.is_consistent()
}

/// The events around the shortest prefix of the history that is not linearizable.
fn linearizability_excerpt(events: &[Event], actions: u64) -> String {
    let (mut lo, mut hi) = (0u64, actions);
    // Invariant: the prefix up to `lo` is linearizable, up to `hi` is not.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if replay(events, mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let from = hi.saturating_sub(40);
    let mut out = format!(
        "the history stops being linearizable at action {hi} of {actions}; the events it involves from action \
         {from} on (>>> marks the one that breaks it):\n"
    );
    for e in events.iter().filter(|e| e.tid.is_some()) {
        let ret_seq = e.ret.as_ref().map(|r| r.2);
        let near = (from..=hi).contains(&e.invoke_seq) || ret_seq.is_some_and(|s| (from..=hi).contains(&s));
        let open_across = e.invoke_seq < from && ret_seq.is_none_or(|s| s > hi);
        if near || open_across {
            let mark = if e.invoke_seq == hi || ret_seq == Some(hi) { ">>> " } else { "    " };
            let _ = writeln!(out, "{mark}{}", e.line());
        }
    }
    out
}

/// The checks of one key's history that need no search: every value read was written, as the
/// version it was read with; each client's view never goes back (so it includes its own
/// writes); a read after a sync sees every write acknowledged before the sync was sent.
fn check_reads(key: &str, events: &[Event]) -> Vec<String> {
    let mut out = Vec::new();
    let show = |e: &Event| e.line();
    let attempts: HashMap<u64, &Event> = events
        .iter()
        .filter_map(|e| match e.op {
            Op::Cas { value, .. } => Some((value, e)),
            Op::Read => None,
        })
        .collect();
    // version -> (value, the event that first showed it)
    let mut at_version: HashMap<i32, (u64, &Event)> = HashMap::new();
    fn learn<'a>(
        at: &mut HashMap<i32, (u64, &'a Event)>,
        key: &str,
        version: i32,
        value: u64,
        e: &'a Event,
        out: &mut Vec<String>,
    ) {
        match at.get(&version) {
            Some((v, first)) if *v != value => {
                out.push(format!("{key}: version {version} holds two values:\n  {}\n  {}", first.line(), e.line()))
            }
            Some(_) => {}
            None => {
                at.insert(version, (value, e));
            }
        }
    }
    for e in events {
        match (&e.op, e.ret.as_ref().map(|r| &r.0)) {
            (Op::Cas { expect, value }, Some(Ret::CasOk { version })) => {
                if *version != expect + 1 {
                    out.push(format!(
                        "{key}: a set with expected version {expect} made version {version}:\n  {}",
                        show(e)
                    ));
                }
                learn(&mut at_version, key, *version, *value, e, &mut out);
            }
            (Op::Read, Some(Ret::Read { value, version })) => {
                if *version == 0 {
                    if *value != 0 {
                        out.push(format!(
                            "{key}: version 0 read with a value other than the initial 0:\n  {}",
                            show(e)
                        ));
                    }
                    continue;
                }
                match attempts.get(value) {
                    None => out.push(format!("{key}: read a value no client wrote:\n  {}", show(e))),
                    Some(w) => {
                        let Op::Cas { expect, .. } = w.op else { unreachable!() };
                        if expect + 1 != *version {
                            out.push(format!(
                                "{key}: read version {version} with the value of a set that expected version \
                                 {expect}:\n  {}\n  the set: {}",
                                show(e),
                                show(w)
                            ));
                        }
                        if w.invoke_seq > e.ret.as_ref().unwrap().2 {
                            out.push(format!(
                                "{key}: read a value before its set was sent:\n  {}\n  the set: {}",
                                show(e),
                                show(w)
                            ));
                        }
                    }
                }
                learn(&mut at_version, key, *version, *value, e, &mut out);
            }
            _ => {}
        }
    }
    // Each client's view of the key, in its program order, never goes back.
    let mut seen: HashMap<usize, (i32, &Event)> = HashMap::new();
    for e in events.iter().filter(|e| e.kind != Kind::Final) {
        let version = match e.ret.as_ref().map(|r| &r.0) {
            Some(Ret::Read { version, .. }) | Some(Ret::CasOk { version }) => *version,
            _ => continue,
        };
        match seen.get(&e.client) {
            Some((v, before)) if *v > version => out.push(format!(
                "{key}: client {} saw version {version} after it had seen version {v} (its view went back):\n  \
                 before: {}\n  then:   {}",
                e.client,
                show(before),
                show(e)
            )),
            Some((v, _)) if *v == version => {}
            _ => {
                seen.insert(e.client, (version, e));
            }
        }
    }
    // A read after a sync sees every set acknowledged before the sync was sent.
    for r in events.iter().filter(|e| matches!(e.kind, Kind::SyncRead | Kind::Final)) {
        let Some((Ret::Read { version, .. }, _, _)) = &r.ret else { continue };
        let newest_acked = events
            .iter()
            .filter_map(|w| match &w.ret {
                Some((Ret::CasOk { version }, _, s)) if *s < r.invoke_seq => Some((*version, w)),
                _ => None,
            })
            .max_by_key(|(v, _)| *v);
        if let Some((v, w)) = newest_acked {
            if v > *version {
                out.push(format!(
                    "{key}: a read after sync saw version {version}, but version {v} was acknowledged before the sync \
                     was sent (a lost or stale acknowledged write):\n  the set:  {}\n  the read: {}",
                    show(w),
                    show(r)
                ));
            }
        }
    }
    out
}

// ---- the workload ---------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    cas_ok: AtomicU64,
    cas_bad_version: AtomicU64,
    reads: AtomicU64,
    sync_reads: AtomicU64,
    cut: AtomicU64,
    creates_ok: AtomicU64,
    connects: AtomicU64,
    expired: AtomicU64,
    max_latency_ms: AtomicU64,
}

impl Stats {
    fn latency(&self, d: Duration) {
        self.max_latency_ms.fetch_max(d.as_millis() as u64, Ordering::Relaxed);
    }
    fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "cas ok {} / bad version {}, reads {} + {} after sync, cut off {}, creates ok {}, connects {}, sessions \
             expired {}, slowest op {} ms",
            g(&self.cas_ok),
            g(&self.cas_bad_version),
            g(&self.reads),
            g(&self.sync_reads),
            g(&self.cut),
            g(&self.creates_ok),
            g(&self.connects),
            g(&self.expired),
            g(&self.max_latency_ms)
        )
    }
}

/// A sequential create by a log writer: `payload` is unique to the attempt.
#[derive(Clone, Debug)]
struct Attempt {
    writer: usize,
    payload: String,
    invoked: Duration,
    /// The created path, if acknowledged.
    acked: Option<(String, Duration)>,
    cut: bool,
}

impl Attempt {
    fn line(&self) -> String {
        let outcome = match (&self.acked, self.cut) {
            (Some((path, at)), _) => format!("acknowledged at {:.3}s as {path}", at.as_secs_f64()),
            (None, true) => "cut off".to_owned(),
            (None, false) => "in flight".to_owned(),
        };
        format!("writer {} {:?} sent at {:.3}s, {outcome}", self.writer, self.payload, self.invoked.as_secs_f64())
    }
}

struct Spec {
    cas_workers: usize,
    log_writers: usize,
    /// The namespace the clients run in (a host of the test's Net), if any.
    ns: Option<String>,
}

struct Shared {
    addrs: Vec<SocketAddr>,
    seed: u64,
    stop: AtomicBool,
    epoch: AtomicU64,
    hist: Mutex<Histories>,
    attempts: Mutex<Vec<Attempt>>,
    failures: Failures,
    stats: Stats,
    clock: ScheduleHandle,
    ns: Option<String>,
    /// Per compare-and-set client, the epoch of its current (or next) operation; an epoch that
    /// every client has left is closed: its keys' histories are final.
    worker_epochs: Vec<AtomicU64>,
    /// Results of the keys checked so far.
    checked: Mutex<Vec<KeyResult>>,
}

/// One key's checks: its name, how many events, how long the checks took, what they found,
/// and (if anything) its history for the report.
struct KeyResult {
    key: String,
    events: usize,
    took: Duration,
    problems: Vec<String>,
    dump: Option<(String, String)>,
}

/// Runs every check on one key's history.
fn check_key(key: &str, kh: &KeyHistory) -> KeyResult {
    let t0 = Instant::now();
    let mut problems = check_reads(key, &kh.events);
    if !kh.tester.is_consistent() {
        problems.push(format!(
            "{key}: compare-and-set and read-after-sync history is not linearizable; {}",
            linearizability_excerpt(&kh.events, kh.actions)
        ));
    }
    let dump = (!problems.is_empty()).then(|| {
        let name = format!("history{}.txt", key.replace('/', "-"));
        (name, kh.events.iter().map(|e| e.line() + "\n").collect::<String>())
    });
    KeyResult { key: key.to_owned(), events: kh.events.len(), took: t0.elapsed(), problems, dump }
}

struct Workload {
    shared: Arc<Shared>,
    /// Signals the end of the history checker, if there is one.
    checker: Option<std::sync::mpsc::Receiver<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn key_of(epoch: u64, k: u64) -> String {
    format!("/lin/e{epoch}k{k}")
}

/// Creates `path` (empty parents must exist) through `client`, retrying across members; a
/// NodeExists after an attempt that was cut off means that attempt made it.
fn create_retrying(c: &mut Client, stop: &AtomicBool, path: &str, data: &[u8]) -> bool {
    loop {
        let Some(conn) = c.get(stop) else { return false };
        match conn.create(path, data, CreateMode::Persistent as i32) {
            Ok(_) | Err(ClientError::Keeper(ErrorCode::NodeExists, _)) => {
                c.ok();
                return true;
            }
            Err(ClientError::Io(_)) => c.lost(),
            Err(e) => {
                c.odd(format!("create {path} answered {e}"));
                return false;
            }
        }
    }
}

impl Workload {
    fn start(ens: &Ensemble, seed: u64, spec: Spec) -> Workload {
        let shared = Arc::new(Shared {
            addrs: ens.client_addrs(),
            seed,
            stop: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            hist: Mutex::default(),
            attempts: Mutex::default(),
            failures: Failures::default(),
            stats: Stats::default(),
            clock: ens.schedule_handle(),
            ns: spec.ns,
            worker_epochs: (0..spec.cas_workers).map(|_| AtomicU64::new(0)).collect(),
            checked: Mutex::default(),
        });
        {
            let s = &shared;
            let _inside = s.ns.as_deref().map(netns::enter_ns);
            let mut c = Client::new("setup".into(), s.addrs.clone(), 0, s.failures.clone(), s.clock.clone());
            for path in ["/lin", "/log", "/probe", "/minority"] {
                create_retrying(&mut c, &s.stop, path, b"");
            }
            for k in 0..KEYS {
                create_retrying(&mut c, &s.stop, &key_of(0, k), b"0");
            }
            if let Some(conn) = c.conn.take() {
                let _ = conn.close();
            }
        }
        let mut threads = Vec::new();
        let spawn = |name: String, f: Box<dyn FnOnce(Arc<Shared>) + Send>, shared: &Arc<Shared>| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    let _inside = shared.ns.as_deref().map(netns::enter_ns);
                    f(shared)
                })
                .expect("spawn a client thread")
        };
        for w in 0..spec.cas_workers {
            threads.push(spawn(format!("cas-{w}"), Box::new(move |s| cas_worker(s, w)), &shared));
        }
        for w in 0..spec.log_writers {
            threads.push(spawn(format!("log-{w}"), Box::new(move |s| log_writer(s, w)), &shared));
        }
        let mut checker = None;
        if spec.cas_workers > 0 {
            threads.push(spawn("keys".into(), Box::new(key_master), &shared));
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            checker = Some(done_rx);
            spawn(
                "checker".into(),
                Box::new(move |s| {
                    history_checker(s);
                    let _ = done_tx.send(());
                }),
                &shared,
            );
        }
        Workload { shared, checker, threads }
    }

    fn stop(self) -> Arc<Shared> {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            if t.join().is_err() {
                fail(&self.shared.failures, "a client thread panicked (see its output)".into());
            }
        }
        // The checker finishes the key it is on; a search that never ends is a failure, not a
        // hung test.
        if let Some(done) = self.checker {
            if done.recv_timeout(CHECK_LIMIT).is_err() {
                fail(&self.shared.failures, format!("a history check did not finish within {CHECK_LIMIT:?}"));
            }
        }
        self.shared
    }
}

/// Checks the keys of each closed epoch while the run goes on, then drops their histories, so
/// that a long soak keeps neither its whole history in memory nor all the checking for the end.
/// Before a key is checked, a read after sync (through whichever member takes it) is added to
/// its history: with nothing else touching the key any more, it must show the last
/// acknowledged write.
fn history_checker(s: Arc<Shared>) {
    // Lowest CPU priority for this thread alone, so that checking takes what the members and
    // the clients leave on a small machine.
    // SAFETY: gettid and setpriority on the calling thread; nothing is shared.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
    let mut c = Client::new("checker".into(), s.addrs.clone(), 0, s.failures.clone(), s.clock.clone());
    let mut next = 0u64;
    while !s.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let closed = s.worker_epochs.iter().map(|e| e.load(Ordering::Relaxed)).min().unwrap_or(0);
        while next < closed && !s.stop.load(Ordering::Relaxed) {
            for k in 0..KEYS {
                let key = key_of(next, k);
                if !s.hist.lock().unwrap().keys.contains_key(&key) {
                    continue;
                }
                final_read(&s, &mut c, &key);
                let Some(kh) = s.hist.lock().unwrap().keys.remove(&key) else { continue };
                let result = check_key(&key, &kh);
                s.checked.lock().unwrap().push(result);
            }
            next += 1;
        }
    }
}

/// A read after sync of `key` through `c`, recorded as the key's final read.
fn final_read(s: &Shared, c: &mut Client, key: &str) {
    if c.get(&s.stop).is_none() {
        return;
    }
    let member = c.member;
    let conn = c.conn.as_mut().expect("connected");
    let ev = {
        let mut h = s.hist.lock().unwrap();
        let tid = h.new_tid();
        h.invoke(key, 2000, Some(tid), Kind::Final, Op::Read, member, s.clock.elapsed())
    };
    let r = conn.sync(key).and_then(|()| conn.get(key, false));
    match r {
        Ok((data, stat)) => {
            c.ok();
            let value = String::from_utf8_lossy(&data).parse().unwrap_or(u64::MAX);
            s.hist.lock().unwrap().ret(key, ev, Ret::Read { value, version: stat.version }, s.clock.elapsed());
        }
        Err(e) => {
            if !matches!(e, ClientError::Io(_)) {
                c.odd(format!("final read of {key} answered {e}"));
            }
            s.hist.lock().unwrap().cut(key, ev, e.to_string());
            c.lost();
        }
    }
}

/// Every EPOCH: creates the next epoch's keys, then moves the clients to them.
fn key_master(s: Arc<Shared>) {
    let mut c = Client::new("keys".into(), s.addrs.clone(), 0, s.failures.clone(), s.clock.clone());
    let mut epoch = 0;
    loop {
        let t0 = Instant::now();
        while t0.elapsed() < EPOCH {
            if s.stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for k in 0..KEYS {
            if !create_retrying(&mut c, &s.stop, &key_of(epoch + 1, k), b"0") {
                return;
            }
        }
        epoch += 1;
        s.epoch.store(epoch, Ordering::Relaxed);
    }
}

fn cas_worker(s: Arc<Shared>, w: usize) {
    let mut rng = Rng::new(s.seed ^ (w as u64 + 1).wrapping_mul(0x51_7cc1_b727_220a));
    let first = rng.below(s.addrs.len() as u64) as usize;
    let mut c = Client::new(format!("cas client {w}"), s.addrs.clone(), first, s.failures.clone(), s.clock.clone());
    let mut tid = s.hist.lock().unwrap().new_tid();
    let mut seen: HashMap<String, i32> = HashMap::new();
    let mut my_epoch = 0;
    let mut i = 0u64;
    while !s.stop.load(Ordering::Relaxed) {
        if c.get(&s.stop).is_none() {
            break;
        }
        let conn = c.conn.as_mut().expect("connected");
        let epoch = s.epoch.load(Ordering::Relaxed);
        if epoch != my_epoch {
            // The new keys were created before the epoch moved; a sync makes them visible here.
            match conn.sync("/lin") {
                Ok(()) => my_epoch = epoch,
                Err(e) => {
                    if !matches!(e, ClientError::Io(_)) {
                        c.odd(format!("sync answered {e}"));
                    }
                    c.lost();
                    continue;
                }
            }
        }
        s.worker_epochs[w].store(my_epoch, Ordering::Relaxed);
        i += 1;
        let key = key_of(my_epoch, rng.below(KEYS));
        let member = c.member;
        let dice = rng.below(100);
        let (kind, op) = if dice < 45 {
            let value = (w as u64 + 1) * 1_000_000_000 + i;
            (Kind::Cas, Op::Cas { expect: seen.get(&key).copied().unwrap_or(0), value })
        } else if dice < 75 {
            (Kind::Read, Op::Read)
        } else {
            (Kind::SyncRead, Op::Read)
        };
        let tester_tid = (kind != Kind::Read).then_some(tid);
        let t0 = Instant::now();
        let ev = s.hist.lock().unwrap().invoke(&key, w, tester_tid, kind, op.clone(), member, s.clock.elapsed());
        let result = match (&op, kind) {
            (Op::Cas { expect, value }, _) => match conn.set(&key, value.to_string().as_bytes(), *expect) {
                Ok(stat) => Ok(Ret::CasOk { version: stat.version }),
                Err(ClientError::Keeper(ErrorCode::BadVersion, _)) => Ok(Ret::BadVersion),
                Err(e) => Err(e),
            },
            (Op::Read, kind) => {
                let synced = if kind == Kind::SyncRead { conn.sync(&key) } else { Ok(()) };
                synced.and_then(|()| conn.get(&key, false)).map(|(data, stat)| {
                    // Unparsable data reads as a value no client wrote, which the checks report.
                    let value = String::from_utf8_lossy(&data).parse().unwrap_or(u64::MAX);
                    Ret::Read { value, version: stat.version }
                })
            }
        };
        s.stats.latency(t0.elapsed());
        match result {
            Ok(ret) => {
                c.ok();
                match &ret {
                    Ret::Read { version, .. } | Ret::CasOk { version } => {
                        seen.insert(key.clone(), *version);
                    }
                    Ret::BadVersion => {}
                }
                let counter = match (&ret, kind) {
                    (Ret::CasOk { .. }, _) => &s.stats.cas_ok,
                    (Ret::BadVersion, _) => &s.stats.cas_bad_version,
                    (_, Kind::SyncRead) => &s.stats.sync_reads,
                    _ => &s.stats.reads,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                s.hist.lock().unwrap().ret(&key, ev, ret, s.clock.elapsed());
            }
            Err(e) => {
                let why = e.to_string();
                if !matches!(e, ClientError::Io(_)) {
                    c.odd(format!("{key}: member {} answered {e} to {op:?} ({kind:?})", member + 1));
                }
                s.stats.cut.fetch_add(1, Ordering::Relaxed);
                let mut h = s.hist.lock().unwrap();
                h.cut(&key, ev, why);
                // The cut-off op stays in flight in the tester; go on as a new tester thread.
                if tester_tid.is_some() {
                    tid = h.new_tid();
                }
                drop(h);
                c.lost();
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
    }
    // Gone for good: this client holds no epoch open.
    s.worker_epochs[w].store(u64::MAX, Ordering::Relaxed);
    s.stats.connects.fetch_add(c.connects, Ordering::Relaxed);
    s.stats.expired.fetch_add(c.expired, Ordering::Relaxed);
}

fn log_parent(at: Duration) -> String {
    format!("/log/m{}", at.as_secs() / 60)
}

fn log_writer(s: Arc<Shared>, w: usize) {
    let mut rng = Rng::new(s.seed ^ (w as u64 + 101).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let first = rng.below(s.addrs.len() as u64) as usize;
    let mut c = Client::new(format!("log writer {w}"), s.addrs.clone(), first, s.failures.clone(), s.clock.clone());
    let mut n = 0u64;
    let mut parent = String::new();
    while !s.stop.load(Ordering::Relaxed) {
        // The writers share one parent a minute, so that a long soak never lists a parent with
        // more children than a reply may hold.
        let now_parent = log_parent(s.clock.elapsed());
        if now_parent != parent {
            if !create_retrying(&mut c, &s.stop, &now_parent, b"") {
                break;
            }
            parent = now_parent;
        }
        if c.get(&s.stop).is_none() {
            break;
        }
        let conn = c.conn.as_mut().expect("connected");
        n += 1;
        let payload = format!("writer-{w}-attempt-{n}");
        let idx = {
            let mut a = s.attempts.lock().unwrap();
            a.push(Attempt {
                writer: w,
                payload: payload.clone(),
                invoked: s.clock.elapsed(),
                acked: None,
                cut: false,
            });
            a.len() - 1
        };
        let t0 = Instant::now();
        let r = conn.create(&format!("{parent}/item-"), payload.as_bytes(), CreateMode::PersistentSequential as i32);
        s.stats.latency(t0.elapsed());
        match r {
            Ok(path) => {
                c.ok();
                s.stats.creates_ok.fetch_add(1, Ordering::Relaxed);
                s.attempts.lock().unwrap()[idx].acked = Some((path, s.clock.elapsed()));
            }
            Err(e) => {
                if !matches!(e, ClientError::Io(_)) {
                    c.odd(format!("create of {payload} answered {e}"));
                }
                s.stats.cut.fetch_add(1, Ordering::Relaxed);
                s.attempts.lock().unwrap()[idx].cut = true;
                c.lost();
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
    }
    s.stats.connects.fetch_add(c.connects, Ordering::Relaxed);
    s.stats.expired.fetch_add(c.expired, Ordering::Relaxed);
}

// ---- probes ---------------------------------------------------------------------------------

fn one_based(members: &[usize]) -> Vec<usize> {
    members.iter().map(|i| i + 1).collect()
}

/// Creates `path` through one of `among`, trying them in turn for up to `within`; returns the
/// member that took it and how long that took.
fn probe_write(
    addrs: &[SocketAddr],
    among: &[usize],
    path: &str,
    within: Duration,
) -> Result<(usize, Duration), String> {
    let t0 = Instant::now();
    let mut sent = false;
    let mut last = String::from("none tried");
    for k in 0.. {
        if t0.elapsed() > within {
            break;
        }
        let m = among[k % among.len()];
        match SyncClient::connect(addrs[m], CLIENT_SESSION_MS, None) {
            Ok(mut c) => match c.create(path, b"probe", CreateMode::Persistent as i32) {
                Ok(_) => {
                    let _ = c.close();
                    return Ok((m, t0.elapsed()));
                }
                // An earlier attempt whose answer was lost made it.
                Err(ClientError::Keeper(ErrorCode::NodeExists, _)) if sent => {
                    let _ = c.close();
                    return Ok((m, t0.elapsed()));
                }
                Err(ClientError::Io(e)) => {
                    sent = true;
                    last = format!("member {}: {e}", m + 1);
                }
                Err(e) => return Err(format!("create {path} through member {} answered {e}", m + 1)),
            },
            Err(e) => last = format!("member {}: connect: {e}", m + 1),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("no write of {path} through members {:?} within {within:?}; last error: {last}", one_based(among)))
}

/// Writes `{probe}-via{M}` through each member M of `among` in turn (each must take its write
/// within ELECT: the brief's "writes keep succeeding at the others"), noting how long each took;
/// returns the paths written.
fn probe_each(ens: &Ensemble, among: &[usize], probe: &str) -> Result<Vec<String>, String> {
    let addrs = ens.client_addrs();
    let mut written = Vec::new();
    for &m in among {
        let path = format!("{probe}-via{}", m + 1);
        let (_, took) = probe_write(&addrs, &[m], &path, ELECT)?;
        ens.note(format!("wrote {path} through member {} in {took:?}", m + 1));
        written.push(path);
    }
    Ok(written)
}

/// Reads `path` through the member at `addr` after a sync; None if it does not exist.
fn read_through(addr: SocketAddr, path: &str, within: Duration) -> Result<Option<Vec<u8>>, String> {
    let t0 = Instant::now();
    loop {
        let r = SyncClient::connect(addr, CLIENT_SESSION_MS, None).and_then(|mut c| {
            c.sync("/")?;
            let r = match c.get(path, false) {
                Ok((data, _)) => Ok(Some(data)),
                Err(ClientError::Keeper(ErrorCode::NoNode, _)) => Ok(None),
                Err(e) => Err(e),
            };
            let _ = c.close();
            r
        });
        match r {
            Ok(v) => return Ok(v),
            Err(e) if t0.elapsed() > within => return Err(format!("read {path} through {addr}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn wait_mode(ens: &Ensemble, i: usize, want: &str, within: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        let mode = ens.mode(i);
        if mode.as_deref() == Some(want) {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > within {
            return Err(format!("member {} did not become {want} within {within:?} (mode {mode:?})", i + 1));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client of an isolated leader, writing until told to stop: what it got acknowledged, and
/// when its connection was closed.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<ProberReport>>,
}

#[derive(Default, Debug)]
struct ProberReport {
    /// (value, invoked, acknowledged)
    acks: Vec<(u64, Duration, Duration)>,
    closed_at: Option<Duration>,
    error: Option<String>,
}

impl Prober {
    fn start(addr: SocketAddr, ns: Option<String>, clock: ScheduleHandle) -> Result<Prober, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let _inside = ns.as_deref().map(netns::enter_ns);
            let mut report = ProberReport::default();
            let t0 = Instant::now();
            let mut c = loop {
                match SyncClient::connect(addr, CLIENT_SESSION_MS, None) {
                    Ok(c) => break c,
                    Err(e) if t0.elapsed() > Duration::from_secs(5) => {
                        let _ = ready_tx.send(Err(format!("prober: connect to {addr}: {e}")));
                        return report;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            let _ = ready_tx.send(Ok(()));
            for i in 1.. {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let invoked = clock.elapsed();
                match c.set("/minority", i.to_string().as_bytes(), -1) {
                    Ok(_) => report.acks.push((i, invoked, clock.elapsed())),
                    Err(ClientError::Io(_)) => {
                        report.closed_at = Some(clock.elapsed());
                        break;
                    }
                    Err(e) => {
                        report.error = Some(e.to_string());
                        break;
                    }
                }
            }
            report
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(Prober { stop, thread: Some(thread) }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("prober did not connect within 10 s".into()),
        }
    }

    fn finish(mut self) -> ProberReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default()
    }
}

impl Drop for Prober {
    /// A round that fails half way leaves no prober writing behind it.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---- the nemesis ----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Fault {
    KillLeader,
    KillFollower,
    /// Both followers: the leader alone has no quorum.
    KillFollowers,
    KillAll,
    StopLeader,
    StopFollower,
    /// SIGSTOP the leader for 0.2–1 s: around the election timeout, so that sometimes a new
    /// leader is elected just as the old one wakes up, and sometimes none is.
    StopLeaderBriefly,
    /// For 3 s, kill -9 or restart a random member every 50–600 ms, with no settling between.
    Flurry,
    /// Cut both ways between the leader and both followers.
    IsolateLeader,
    IsolateFollower,
    /// Drop the leader's packets to one follower.
    OneWayFromLeader,
    /// Drop one follower's packets to the leader.
    OneWayToLeader,
}

/// Where the nemesis acts: the ensemble, and the network when members run in namespaces (with
/// the namespace the test's clients run in).
struct Stage<'a> {
    ens: &'a mut Ensemble,
    net: Option<&'a Net>,
    client_ns: Option<String>,
}

/// One fault, from a settled ensemble back to a settled ensemble: checks that the ensemble
/// elects a leader and takes writes while it can, and that members that were away come back
/// with what was written meanwhile.
fn fault_round(st: &mut Stage, rng: &mut Rng, round: usize, fault: Fault) -> Result<(), String> {
    let ens = &mut *st.ens;
    let n = ens.len();
    let all: Vec<usize> = (0..n).collect();
    let addrs = ens.client_addrs();
    let leader = ens.wait_settled(SETTLE)?;
    let followers: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let follower = rng.pick(&followers);
    let except = |out: &[usize]| all.iter().copied().filter(|i| !out.contains(i)).collect::<Vec<_>>();
    let probe = format!("/probe/r{round}");
    let behind: Vec<usize>;
    let mut written: Vec<String> = Vec::new();
    match fault {
        Fault::KillLeader | Fault::KillFollower | Fault::KillFollowers | Fault::KillAll => {
            let victims = match fault {
                Fault::KillLeader => vec![leader],
                Fault::KillFollower => vec![follower],
                Fault::KillFollowers => followers.clone(),
                _ => all.clone(),
            };
            ens.note(format!(
                "round {round}: kill -9 member(s) {:?}; member {} was leading",
                one_based(&victims),
                leader + 1
            ));
            for &v in &victims {
                ens.kill9(v);
            }
            let alive = except(&victims);
            if alive.len() > n / 2 {
                if victims.contains(&leader) {
                    let l = ens.wait_for_leader(&alive, ELECT)?;
                    ens.note(format!("member {} leads", l + 1));
                }
                written = probe_each(ens, &alive, &probe)?;
                behind = victims.clone();
            } else {
                behind = Vec::new();
            }
            std::thread::sleep(rng.ms(200, 1500));
            for &v in &victims {
                ens.restart(v);
            }
            ens.note(format!("restarted member(s) {:?}", one_based(&victims)));
        }
        Fault::StopLeader | Fault::StopFollower => {
            let victim = if matches!(fault, Fault::StopLeader) { leader } else { follower };
            let others = except(&[victim]);
            let pause = rng.ms(1500, 3000);
            ens.stop(victim);
            let t0 = Instant::now();
            ens.note(format!(
                "round {round}: SIGSTOP member {} ({}) for {pause:?}",
                victim + 1,
                if victim == leader { "the leader" } else { "a follower" }
            ));
            if victim == leader {
                let l = ens.wait_for_leader(&others, ELECT)?;
                ens.note(format!("member {} leads, {:?} after the stop", l + 1, t0.elapsed()));
            }
            written = probe_each(ens, &others, &probe)?;
            std::thread::sleep(pause.saturating_sub(t0.elapsed()));
            ens.cont(victim);
            ens.note(format!("SIGCONT member {} after {:?}", victim + 1, t0.elapsed()));
            behind = vec![victim];
        }
        Fault::StopLeaderBriefly => {
            let pause = rng.ms(200, 1000);
            ens.stop(leader);
            ens.note(format!("round {round}: SIGSTOP member {} (the leader) for {pause:?}", leader + 1));
            std::thread::sleep(pause);
            ens.cont(leader);
            ens.note(format!("SIGCONT member {}", leader + 1));
            written = probe_each(ens, &all, &probe)?;
            behind = all.clone();
        }
        Fault::Flurry => {
            ens.note(format!("round {round}: kill -9 and restart random members for 3 s"));
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3) {
                let i = rng.below(n as u64) as usize;
                if ens.state(i) == State::Running {
                    ens.kill9(i);
                    ens.note(format!("kill -9 member {}", i + 1));
                } else {
                    ens.restart(i);
                    ens.note(format!("restarted member {}", i + 1));
                }
                std::thread::sleep(rng.ms(50, 600));
            }
            for i in 0..n {
                if ens.state(i) == State::Dead {
                    ens.restart(i);
                    ens.note(format!("restarted member {}", i + 1));
                }
            }
            behind = Vec::new();
        }
        Fault::IsolateLeader | Fault::IsolateFollower => {
            let net = st.net.expect("partitions need a Net");
            let victim = if matches!(fault, Fault::IsolateLeader) { leader } else { follower };
            let others = except(&[victim]);
            let prober = Prober::start(addrs[victim], st.client_ns.clone(), ens.schedule_handle())?;
            for &o in &others {
                net.cut_one_way(victim, o);
                net.cut_one_way(o, victim);
            }
            let cut_at = ens.elapsed();
            ens.note(format!(
                "round {round}: partition {{{}}} | {:?} ({} isolated; clients still reach every member)",
                victim + 1,
                one_based(&others),
                if victim == leader { "the leader" } else { "a follower" }
            ));
            if victim == leader {
                let l = ens.wait_for_leader(&others, ELECT)?;
                ens.note(format!("member {} leads the majority", l + 1));
            }
            wait_mode(ens, victim, "read-only", ELECT)?;
            ens.note(format!("member {} says read-only, {:?} after the cut", victim + 1, ens.elapsed() - cut_at));
            if let Ok(c) = SyncClient::connect(addrs[victim], CLIENT_SESSION_MS, None) {
                let sid = c.session_id;
                drop(prober.finish());
                net.heal();
                return Err(format!(
                    "member {} gave session 0x{sid:x} to a client while cut off from a quorum",
                    victim + 1
                ));
            }
            written = probe_each(ens, &others, &probe)?;
            std::thread::sleep(rng.ms(1000, 2500));
            let heal_at = ens.elapsed();
            prober.stop.store(true, Ordering::Relaxed);
            net.heal();
            ens.note("healed");
            let report = prober.finish();
            if let Some(e) = &report.error {
                return Err(format!("a client of isolated member {} got {e}", victim + 1));
            }
            let minority_acks: Vec<_> =
                report.acks.iter().filter(|(_, inv, ack)| *inv > cut_at && *ack < heal_at).collect();
            if !minority_acks.is_empty() {
                return Err(format!(
                    "isolated member {} acknowledged writes sent after the cut (at {cut_at:?}) before the heal (at \
                     {heal_at:?}): (value, sent, acknowledged) {minority_acks:?}",
                    victim + 1
                ));
            }
            match report.closed_at {
                Some(t) if t.saturating_sub(cut_at) <= ELECT => {
                    ens.note(format!("its client was disconnected {:?} after the cut", t.saturating_sub(cut_at)))
                }
                other => {
                    return Err(format!(
                        "the client of isolated member {} was not disconnected within {ELECT:?} of the cut (closed at \
                         {other:?}, cut at {cut_at:?})",
                        victim + 1
                    ))
                }
            }
            behind = vec![victim];
        }
        Fault::OneWayFromLeader | Fault::OneWayToLeader => {
            let net = st.net.expect("partitions need a Net");
            let (from, to) =
                if matches!(fault, Fault::OneWayFromLeader) { (leader, follower) } else { (follower, leader) };
            net.cut_one_way(from, to);
            ens.note(format!(
                "round {round}: one-way cut: member {}'s packets to member {} are dropped (member {} leads)",
                from + 1,
                to + 1,
                leader + 1
            ));
            // The member cut off from the leader takes no writes (it is out of touch, and the
            // others will not elect it); the ensemble as a whole must.
            let (m, took) = probe_write(&addrs, &all, &probe, ELECT)?;
            ens.note(format!("wrote {probe} through member {} in {took:?}", m + 1));
            written.push(probe.clone());
            std::thread::sleep(rng.ms(1000, 2500));
            net.heal();
            ens.note("healed");
            behind = all.clone();
        }
    }
    let l = ens.wait_settled(SETTLE)?;
    ens.note(format!("settled: member {} leads", l + 1));
    for &b in &behind {
        for path in &written {
            if read_through(addrs[b], path, ELECT)?.is_none() {
                return Err(format!("member {} came back without {path}, written while it was away", b + 1));
            }
        }
    }
    Ok(())
}

/// Runs fault rounds until the run's duration is over; `choose` picks round `r`'s fault.
fn nemesis(st: &mut Stage, run: &mut Run, mut choose: impl FnMut(usize, &mut Rng) -> Fault) -> Vec<String> {
    let until = st.ens.elapsed() + run.duration;
    let mut round = 0;
    while st.ens.elapsed() < until {
        let fault = choose(round, &mut run.rng);
        if let Err(e) = fault_round(st, &mut run.rng, round, fault) {
            st.ens.note(format!("round {round} ({fault:?}) failed: {e}"));
            return vec![format!("round {round} ({fault:?}): {e}")];
        }
        std::thread::sleep(run.rng.ms(300, 1500));
        round += 1;
    }
    Vec::new()
}

// ---- the checks after a run -----------------------------------------------------------------

/// Connects to the member at `addr` alone (no moving on) and syncs, retrying for up to `within`.
fn connect_member(addr: SocketAddr, within: Duration) -> Result<SyncClient, String> {
    let t0 = Instant::now();
    loop {
        match SyncClient::connect(addr, CLIENT_SESSION_MS, None).and_then(|mut c| c.sync("/").map(|()| c)) {
            Ok(c) => return Ok(c),
            Err(e) if t0.elapsed() > within => return Err(format!("{addr}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The writers' sequential nodes (under /log's parents) and their payloads as member `c` has
/// them.
fn log_children(c: &mut SyncClient) -> Result<BTreeMap<String, String>, ClientError> {
    let mut out = BTreeMap::new();
    for parent in c.children("/log", false)? {
        for name in c.children(&format!("/log/{parent}"), false)? {
            let path = format!("/log/{parent}/{name}");
            let (data, _) = c.get(&path, false)?;
            out.insert(path, String::from_utf8_lossy(&data).into_owned());
        }
    }
    Ok(out)
}

fn check_log(attempts: &[Attempt], by_member: &[(usize, BTreeMap<String, String>)]) -> Vec<String> {
    let mut out = Vec::new();
    let Some((first_member, log)) = by_member.first() else { return out };
    for (m, other) in &by_member[1..] {
        if other != log {
            let only_first: Vec<_> = log.iter().filter(|(k, v)| other.get(*k) != Some(v)).take(10).collect();
            let only_other: Vec<_> = other.iter().filter(|(k, v)| log.get(*k) != Some(v)).take(10).collect();
            out.push(format!(
                "members {} and {} hold different /log children: only at {}: {only_first:?}; only at {}: \
                 {only_other:?}",
                first_member + 1,
                m + 1,
                first_member + 1,
                m + 1
            ));
        }
    }
    let by_payload: HashMap<&str, &Attempt> = attempts.iter().map(|a| (a.payload.as_str(), a)).collect();
    let mut count: HashMap<&str, Vec<&str>> = HashMap::new();
    for (path, payload) in log {
        count.entry(payload.as_str()).or_default().push(path.as_str());
        if !by_payload.contains_key(payload.as_str()) {
            out.push(format!("{path} holds {payload:?}, which no writer sent"));
        }
    }
    for (payload, paths) in &count {
        if paths.len() > 1 {
            let a = by_payload.get(payload);
            out.push(format!(
                "create of {payload:?} was applied {} times: {paths:?} (the attempt: {})",
                paths.len(),
                a.map_or(String::new(), |a| a.line())
            ));
        }
    }
    for a in attempts {
        if let Some((path, _)) = &a.acked {
            match log.get(path) {
                Some(p) if *p == a.payload => {}
                Some(p) => out.push(format!("acknowledged create ({}): {path} holds {p:?} instead", a.line())),
                None => out.push(format!("acknowledged create ({}) is lost: {path} does not exist", a.line())),
            }
        }
    }
    out
}

/// Stops the workload, brings every member back, reads the final state through each member,
/// checks everything, and passes or fails the run.
fn finish(run: &Run, st: &mut Stage, wl: Workload, mut failures: Vec<String>) {
    let shared = wl.stop();
    let ens = &mut *st.ens;
    if let Some(net) = st.net {
        net.heal();
    }
    for i in 0..ens.len() {
        match ens.state(i) {
            State::Stopped => ens.cont(i),
            State::Dead => ens.restart(i),
            State::Running => {}
        }
    }
    ens.note("workload stopped; every member up for the final checks");
    if let Err(e) = ens.wait_settled(SETTLE) {
        failures.push(format!("after the run: {e}"));
    }
    failures.extend(shared.failures.lock().unwrap().iter().cloned());
    eprintln!("{}: {}", run.name, shared.stats.line());
    let addrs = ens.client_addrs();
    let keys: Vec<String> = shared.hist.lock().unwrap().keys.keys().cloned().collect();
    let mut logs = Vec::new();
    let mut finals: BTreeMap<String, Vec<(usize, Ret)>> = BTreeMap::new();
    for (m, &addr) in addrs.iter().enumerate() {
        let mut c = match connect_member(addr, ELECT) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("member {} takes no client after the run: {e}", m + 1));
                continue;
            }
        };
        let mut h = shared.hist.lock().unwrap();
        let tid = h.new_tid();
        for key in &keys {
            let ev = h.invoke(key, 1000 + m, Some(tid), Kind::Final, Op::Read, m, ens.elapsed());
            match c.get(key, false) {
                Ok((data, stat)) => {
                    let value = String::from_utf8_lossy(&data).parse().unwrap_or(u64::MAX);
                    let ret = Ret::Read { value, version: stat.version };
                    finals.entry(key.clone()).or_default().push((m, ret.clone()));
                    h.ret(key, ev, ret, ens.elapsed());
                }
                Err(e) => {
                    failures.push(format!("final read of {key} through member {}: {e}", m + 1));
                    h.cut(key, ev, e.to_string());
                    break;
                }
            }
        }
        drop(h);
        match log_children(&mut c) {
            Ok(l) => logs.push((m, l)),
            Err(e) => failures.push(format!("reading /log through member {}: {e}", m + 1)),
        }
        let _ = c.close();
    }
    for (key, rets) in &finals {
        if rets.windows(2).any(|w| w[0].1 != w[1].1) {
            failures.push(format!("members disagree on {key} after the run: {rets:?}"));
        }
    }
    let attempts = shared.attempts.lock().unwrap().clone();
    let acked = attempts.iter().filter(|a| a.acked.is_some()).count();
    eprintln!(
        "{}: {} creates acknowledged of {} sent; /log has {:?} children per member",
        run.name,
        acked,
        attempts.len(),
        logs.iter().map(|(m, l)| (m + 1, l.len())).collect::<Vec<_>>()
    );
    failures.extend(check_log(&attempts, &logs));
    let mut files = vec![("log-attempts.txt".to_owned(), attempts.iter().map(|a| a.line() + "\n").collect::<String>())];
    // The keys the checker has not done yet (the last epochs). The tester's search runs on a
    // thread of its own, so that a pathological history shows up as a failure instead of a
    // hung test.
    let (tx, rx) = std::sync::mpsc::channel();
    let checked = shared.clone();
    std::thread::spawn(move || {
        let h = checked.hist.lock().unwrap();
        let results: Vec<KeyResult> = h.keys.iter().map(|(key, kh)| check_key(key, kh)).collect();
        let _ = tx.send(results);
    });
    let mut results = std::mem::take(&mut *shared.checked.lock().unwrap());
    match rx.recv_timeout(CHECK_LIMIT) {
        Ok(r) => results.extend(r),
        Err(_) => failures.push(format!("the history checks did not finish within {CHECK_LIMIT:?}")),
    }
    let slowest = results.iter().max_by_key(|r| r.took).map(|r| (r.key.clone(), r.events, r.took));
    let events: usize = results.iter().map(|r| r.events).sum();
    eprintln!("{}: checked {} keys, {events} events; slowest {slowest:?}", run.name, results.len());
    for r in results {
        failures.extend(r.problems);
        files.extend(r.dump);
    }
    run.finish(ens, &failures, &files);
}

// ---- the tests ------------------------------------------------------------------------------

#[test]
fn kill9_of_leader_and_followers_keeps_histories_linearizable() {
    let _serial = serial();
    let mut run = Run::new("kill9_of_leader_and_followers_keeps_histories_linearizable", 24);
    // Snapshots every few hundred entries, so that restarts recover from a snapshot plus log.
    let mut ens = Ensemble::start_with_args(3, &["--zk-property", "snapCount=300"]);
    let mut st = Stage { ens: &mut ens, net: None, client_ns: None };
    if let Err(e) = st.ens.wait_settled(SETTLE) {
        run.finish(st.ens, &[e], &[]);
    }
    let wl = Workload::start(st.ens, run.seed, Spec { cas_workers: 4, log_writers: 1, ns: None });
    let failures = nemesis(&mut st, &mut run, |round, rng| match (round, rng.below(10)) {
        (0, _) => Fault::KillLeader,
        (1, _) => Fault::KillFollower,
        (_, 0) => Fault::KillAll,
        (_, 1) => Fault::KillFollowers,
        (_, 2) => Fault::Flurry,
        (_, 3..=5) => Fault::KillLeader,
        _ => Fault::KillFollower,
    });
    finish(&run, &mut st, wl, failures);
}

#[test]
fn sigstop_past_election_timeout_keeps_histories_linearizable() {
    let _serial = serial();
    let mut run = Run::new("sigstop_past_election_timeout_keeps_histories_linearizable", 20);
    let mut ens = Ensemble::start(3);
    let mut st = Stage { ens: &mut ens, net: None, client_ns: None };
    if let Err(e) = st.ens.wait_settled(SETTLE) {
        run.finish(st.ens, &[e], &[]);
    }
    let wl = Workload::start(st.ens, run.seed, Spec { cas_workers: 4, log_writers: 1, ns: None });
    let failures = nemesis(&mut st, &mut run, |round, rng| match (round, rng.below(6)) {
        (0, _) => Fault::StopLeader,
        (1, _) => Fault::StopLeaderBriefly,
        (_, 0) => Fault::StopFollower,
        (_, 1 | 2) => Fault::StopLeaderBriefly,
        _ => Fault::StopLeader,
    });
    finish(&run, &mut st, wl, failures);
}

#[test]
fn partitions_between_keepers_keep_histories_linearizable() {
    if !netns::available() {
        assert!(
            std::env::var("HERD_EXTERNAL_CLIENTS").as_deref() != Ok("required"),
            "network namespaces or nft unavailable; `cargo xtask test` must run as root with nftables"
        );
        eprintln!("skipping: no network namespaces or nft here (needs root, iproute2 and nftables)");
        return;
    }
    let _serial = serial();
    let mut run = Run::new("partitions_between_keepers_keep_histories_linearizable", 24);
    // Hosts 0..3 run the members; the test's clients (and its srvr probes) live on host 3, which
    // no partition cuts off, so that an isolated member's clients see what the member does.
    let net = Net::new(4);
    let _inside = net.enter(3);
    let mut ens = Ensemble::start_in(&net, 3);
    let client_ns = Some(net.hosts[3].ns.clone());
    let mut st = Stage { ens: &mut ens, net: Some(&net), client_ns: client_ns.clone() };
    if let Err(e) = st.ens.wait_settled(SETTLE) {
        run.finish(st.ens, &[e], &[]);
    }
    let wl = Workload::start(st.ens, run.seed, Spec { cas_workers: 4, log_writers: 1, ns: client_ns });
    let failures = nemesis(&mut st, &mut run, |round, rng| match (round, rng.below(6)) {
        (0, _) => Fault::IsolateLeader,
        (1, _) => Fault::OneWayFromLeader,
        (2, _) => Fault::OneWayToLeader,
        (_, 0 | 1) => Fault::IsolateLeader,
        (_, 2) => Fault::IsolateFollower,
        (_, 3) => Fault::OneWayFromLeader,
        _ => Fault::OneWayToLeader,
    });
    finish(&run, &mut st, wl, failures);
}

#[test]
fn sequential_creates_are_neither_lost_nor_applied_twice() {
    let _serial = serial();
    let mut run = Run::new("sequential_creates_are_neither_lost_nor_applied_twice", 20);
    let mut ens = Ensemble::start(3);
    let mut st = Stage { ens: &mut ens, net: None, client_ns: None };
    if let Err(e) = st.ens.wait_settled(SETTLE) {
        run.finish(st.ens, &[e], &[]);
    }
    let wl = Workload::start(st.ens, run.seed, Spec { cas_workers: 0, log_writers: 3, ns: None });
    let failures = nemesis(&mut st, &mut run, |round, rng| match (round, rng.below(8)) {
        (0, _) => Fault::KillLeader,
        (1, _) => Fault::StopLeader,
        (_, 0) => Fault::KillAll,
        (_, 1) => Fault::Flurry,
        (_, 2) => Fault::KillFollower,
        (_, 3 | 4) => Fault::StopLeader,
        _ => Fault::KillLeader,
    });
    finish(&run, &mut st, wl, failures);
}

/// The session timeout asked for in the session test: the smallest a keeper grants by default
/// (2 x tickTime).
const SESSION_MS: i32 = 4000;

/// Whether `path` exists, and its ephemeral owner, as `c` sees it after a sync; reconnects
/// (to the next member) until it gets an answer or `stop` is set.
fn exists_synced(c: &mut Client, stop: &AtomicBool, path: &str) -> Option<Option<i64>> {
    loop {
        let conn = c.get(stop)?;
        match conn.sync("/").and_then(|()| conn.exists(path, false)) {
            Ok(stat) => {
                c.ok();
                return Some(stat.map(|s| s.ephemeral_owner));
            }
            Err(ClientError::Io(_)) => c.lost(),
            Err(e) => {
                c.odd(format!("exists {path} answered {e}"));
                return None;
            }
        }
    }
}

/// A new session at the member at `addr` (that member, no other) holding the ephemeral `path`.
/// A connection lost on the way is retried, as any client would.
fn session_with_ephemeral(addr: SocketAddr, path: &str) -> Result<SyncClient, String> {
    let t0 = Instant::now();
    loop {
        let r = SyncClient::connect(addr, SESSION_MS, None)
            .and_then(|mut c| c.create(path, b"", CreateMode::Ephemeral as i32).map(|_| c));
        match r {
            Ok(c) => return Ok(c),
            Err(ClientError::Io(e)) if t0.elapsed() < ELECT => {
                eprintln!("session with {path} at {addr}: {e}; again");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("a session with {path} at {addr}: {e}")),
        }
    }
}

/// Resumes `session` at the member at `addr`, retrying a lost connection for up to ELECT.
fn resume_at(addr: SocketAddr, session: &(i64, Vec<u8>)) -> Result<SyncClient, String> {
    let t0 = Instant::now();
    loop {
        match SyncClient::connect(addr, SESSION_MS, Some(session.clone())) {
            Ok(c) => return Ok(c),
            Err(ClientError::Io(_)) if t0.elapsed() < ELECT => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("resuming session 0x{:x} at {addr}: {e}", session.0)),
        }
    }
}

/// One round of the session test: sessions whose clients are gone (one opened at the leader,
/// one at a follower), then kill -9 of the leader. The live session's ephemeral must stay
/// throughout; the gone sessions' ephemerals must go, no sooner than their timeout after the
/// kill (a new leader starts every session's clock afresh) and not much later.
fn session_round(
    ens: &mut Ensemble,
    rng: &mut Rng,
    round: usize,
    observer: &mut Client,
    live_sid: i64,
    failures: &mut Vec<String>,
) -> Result<(), String> {
    let never = AtomicBool::new(false);
    let addrs = ens.client_addrs();
    let timeout = Duration::from_millis(SESSION_MS as u64);
    let leader = ens.wait_settled(SETTLE)?;
    let followers: Vec<usize> = (0..ens.len()).filter(|&i| i != leader).collect();
    let mut gone = Vec::new();
    for (j, m) in [leader, rng.pick(&followers)].into_iter().enumerate() {
        let path = format!("/eph-gone-r{round}-{j}");
        let c = session_with_ephemeral(addrs[m], &path)?;
        ens.note(format!(
            "round {round}: session 0x{:x} on member {} holds {path}; its client closes its socket",
            c.session_id,
            m + 1
        ));
        gone.push((path, c.session_id, c.passwd.clone()));
        // Dropped without closeSession: the session stays until it expires.
        drop(c);
    }
    // A session that the leader owns, whose client moves to a follower right after the leader
    // dies (the followers still take clients for a moment): once a new leader is elected, its
    // writes through that follower must work.
    let mover_path = format!("/eph-mover-r{round}");
    let mover = session_with_ephemeral(addrs[leader], &mover_path)?;
    let mover_session = (mover.session_id, mover.passwd.clone());
    drop(mover);
    let moved_to = rng.pick(&followers);
    // `SyncClient` sends lastZxidSeen 0, so a member that has not applied the session's creation
    // yet (one restarted a moment ago) would call it expired instead of refusing the client as
    // a real client's lastZxidSeen makes it do; a sync there first rules that out.
    let _ = connect_member(addrs[moved_to], ELECT)?.close();
    ens.kill9(leader);
    let kill_at = ens.elapsed();
    ens.note(format!("kill -9 member {} (the leader)", leader + 1));
    let mut mover = resume_at(addrs[moved_to], &mover_session)?;
    ens.note(format!(
        "session 0x{:x} (owned by the killed leader) resumed at member {}, {:?} after the kill",
        mover_session.0,
        moved_to + 1,
        ens.elapsed() - kill_at
    ));
    let l = ens.wait_for_leader(&followers, ELECT)?;
    let elected_at = ens.elapsed();
    ens.note(format!("member {} leads", l + 1));
    let t0 = Instant::now();
    loop {
        match mover.set(&mover_path, b"moved", -1) {
            Ok(_) => {
                ens.note(format!("the moved session wrote through member {}", moved_to + 1));
                break;
            }
            // The move was lost with the leader and the connection closed: resume again.
            Err(ClientError::Io(_)) if t0.elapsed() < ELECT => mover = resume_at(addrs[moved_to], &mover_session)?,
            Err(e) => {
                let what = format!(
                    "session 0x{:x}, resumed at member {} while the leader was down, wrote through that member \
                     after member {} was elected and got {e}",
                    mover_session.0,
                    moved_to + 1,
                    l + 1
                );
                ens.note(&what);
                failures.push(what);
                break;
            }
        }
    }
    let _ = mover.close();
    observer.addrs = followers.iter().map(|&i| addrs[i]).collect();
    let mut gone_at: Vec<Option<Duration>> = vec![None; gone.len()];
    // Watch the live session for two of its timeouts past the new leader's start.
    let watch_until = elected_at + 2 * timeout;
    let give_up = kill_at + timeout + ELECT;
    loop {
        let now = ens.elapsed();
        match exists_synced(observer, &never, "/eph-live") {
            Some(Some(owner)) if owner == live_sid => {}
            other => {
                return Err(format!(
                    "at {now:?}, after the leader change, /eph-live of live session 0x{live_sid:x} is {other:?} \
                     (Some(Some(owner)) expected)"
                ))
            }
        }
        for (j, (path, _, _)) in gone.iter().enumerate() {
            if gone_at[j].is_none() && exists_synced(observer, &never, path) == Some(None) {
                gone_at[j] = Some(ens.elapsed());
                ens.note(format!("{path} is gone, {:?} after the kill", ens.elapsed() - kill_at));
            }
        }
        let all_gone = gone_at.iter().all(Option::is_some);
        if all_gone && now > watch_until {
            break;
        }
        if now > give_up && !all_gone {
            return Err(format!(
                "the gone sessions' ephemerals are not all gone {:?} after the kill (timeout {timeout:?}): {:?}",
                now - kill_at,
                gone.iter().zip(&gone_at).map(|((p, _, _), t)| (p, t)).collect::<Vec<_>>()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ens.note(format!("/eph-live stayed {:?} past the new leader's start", ens.elapsed() - elected_at));
    for ((path, sid, passwd), t) in gone.iter().zip(&gone_at) {
        let t = t.expect("all gone");
        if t < kill_at + timeout {
            return Err(format!(
                "{path} of session 0x{sid:x} went {:?} after the leader was killed, sooner than the session \
                 timeout {timeout:?}",
                t - kill_at
            ));
        }
        match SyncClient::connect(addrs[l], SESSION_MS, Some((*sid, passwd.clone()))) {
            Err(ClientError::Expired) => {}
            Ok(_) => return Err(format!("session 0x{sid:x} resumed after its ephemeral {path} was deleted")),
            Err(e) => return Err(format!("resuming expired session 0x{sid:x}: {e} (Expired expected)")),
        }
    }
    ens.restart(leader);
    ens.note(format!("restarted member {}", leader + 1));
    observer.addrs = addrs;
    Ok(())
}

#[test]
fn live_sessions_keep_ephemerals_across_leader_change_and_gone_ones_expire() {
    let _serial = serial();
    let mut run = Run::new("live_sessions_keep_ephemerals_across_leader_change_and_gone_ones_expire", 30);
    let rounds = (run.duration.as_secs() / 15).max(2) as usize;
    let mut ens = Ensemble::start(3);
    let failures_shared = Failures::default();
    let clock = ens.schedule_handle();
    let leader = match ens.wait_settled(SETTLE) {
        Ok(l) => l,
        Err(e) => return run.finish(&ens, &[e], &[]),
    };
    let addrs = ens.client_addrs();
    let follower = (leader + 1 + run.rng.below(2) as usize) % 3;
    // The live session: opened at a follower, holding an ephemeral, kept busy by a thread that
    // resumes it at another member whenever its connection is lost.
    let stop = Arc::new(AtomicBool::new(false));
    let c = match session_with_ephemeral(addrs[follower], "/eph-live") {
        Ok(c) => c,
        Err(e) => return run.finish(&ens, &[e], &[]),
    };
    let live_sid = c.session_id;
    let mut live = Client::new("live session".into(), addrs.clone(), follower, failures_shared.clone(), clock.clone());
    live.resume = Some((c.session_id, c.passwd.clone()));
    live.timeout_ms = c.timeout_ms;
    live.connects = 1;
    live.conn = Some(c);
    ens.note(format!("live session 0x{live_sid:x} on member {} holds /eph-live", live.member + 1));
    let pinger = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(conn) = live.get(&stop) else { break };
                match conn.exists("/eph-live", false) {
                    Ok(Some(_)) => live.ok(),
                    Ok(None) => live.odd("does not see its own /eph-live".into()),
                    Err(ClientError::Io(_)) => live.lost(),
                    Err(e) => live.odd(format!("exists answered {e}")),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            live
        })
    };
    let mut observer = Client::new("observer".into(), addrs.clone(), leader, failures_shared.clone(), clock);
    let mut failures = Vec::new();
    for round in 0..rounds {
        if let Err(e) = session_round(&mut ens, &mut run.rng, round, &mut observer, live_sid, &mut failures) {
            ens.note(format!("round {round} failed: {e}"));
            failures.push(format!("round {round}: {e}"));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut live = pinger.join().expect("pinger");
    for i in 0..ens.len() {
        if ens.state(i) == State::Dead {
            ens.restart(i);
        }
    }
    if let Err(e) = ens.wait_settled(SETTLE) {
        failures.push(format!("after the rounds: {e}"));
    }
    let session_now = live.resume.as_ref().map_or(0, |r| r.0);
    if live.expired > 0 || session_now != live_sid {
        failures.push(format!(
            "the live session 0x{live_sid:x} expired {} time(s) (now 0x{session_now:x}) although its client kept it \
             busy",
            live.expired
        ));
    }
    ens.note(format!("the live session moved {} time(s) between members", live.connects - 1));
    // Closing the session removes its ephemeral everywhere at once.
    let never = AtomicBool::new(false);
    match live.get(&never).map(|c| c.call(OpCode::CloseSession, &[])) {
        Some(Ok(_)) => {
            let t0 = Instant::now();
            loop {
                match exists_synced(&mut observer, &never, "/eph-live") {
                    Some(None) => break,
                    _ if t0.elapsed() > ELECT => {
                        failures.push("/eph-live outlived its closed session".into());
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        other => failures.push(format!("closing the live session: {other:?}")),
    }
    failures.extend(failures_shared.lock().unwrap().iter().cloned());
    run.finish(&ens, &failures, &[]);
}

/// The checks themselves, on made-up histories: each must catch what it is for, or the fault
/// suites above could pass by checking nothing.
#[test]
fn the_checks_catch_stale_reads_lost_writes_and_duplicates() {
    let at = Duration::from_millis;
    let key = "/lin/e0k0";
    // A set acknowledged (version 1), then a read after sync that still sees version 0.
    let mut h = Histories::default();
    let (w, r) = (h.new_tid(), h.new_tid());
    let ev = h.invoke(key, 0, Some(w), Kind::Cas, Op::Cas { expect: 0, value: 7 }, 0, at(1));
    h.ret(key, ev, Ret::CasOk { version: 1 }, at(2));
    let ev = h.invoke(key, 1, Some(r), Kind::SyncRead, Op::Read, 1, at(3));
    h.ret(key, ev, Ret::Read { value: 0, version: 0 }, at(4));
    let kh = &h.keys[key];
    assert!(!kh.tester.is_consistent(), "a stale read after sync passed the linearizability tester");
    let problems = check_reads(key, &kh.events);
    assert!(problems.iter().any(|p| p.contains("acknowledged before the sync")), "{problems:?}");
    assert!(linearizability_excerpt(&kh.events, kh.actions).contains(">>> "));

    // A plain read may be stale, but a client's view never goes back.
    let mut h = Histories::default();
    let w = h.new_tid();
    let ev = h.invoke(key, 0, Some(w), Kind::Cas, Op::Cas { expect: 0, value: 7 }, 0, at(1));
    h.ret(key, ev, Ret::CasOk { version: 1 }, at(2));
    let ev = h.invoke(key, 1, None, Kind::Read, Op::Read, 1, at(3));
    h.ret(key, ev, Ret::Read { value: 0, version: 0 }, at(4));
    assert!(check_reads(key, &h.keys[key].events).is_empty(), "a stale plain read of another client is allowed");
    let ev = h.invoke(key, 0, None, Kind::Read, Op::Read, 1, at(5));
    h.ret(key, ev, Ret::Read { value: 0, version: 0 }, at(6));
    let problems = check_reads(key, &h.keys[key].events);
    assert!(problems.iter().any(|p| p.contains("went back")), "{problems:?}");
    // ... and a value read must have been written as that version.
    let ev = h.invoke(key, 2, None, Kind::Read, Op::Read, 1, at(7));
    h.ret(key, ev, Ret::Read { value: 8, version: 1 }, at(8));
    let problems = check_reads(key, &h.keys[key].events);
    assert!(problems.iter().any(|p| p.contains("no client wrote")), "{problems:?}");

    // Sequential creates: an acknowledged one missing, one applied twice, one nobody sent.
    let attempt = |payload: &str, acked: Option<&str>| Attempt {
        writer: 0,
        payload: payload.into(),
        invoked: at(1),
        acked: acked.map(|p| (p.to_owned(), at(2))),
        cut: acked.is_none(),
    };
    let attempts = [attempt("a", Some("/log/item-0000000000")), attempt("b", None), attempt("c", Some("/log/item-2"))];
    let log: BTreeMap<String, String> =
        [("/log/item-0000000001", "b"), ("/log/item-0000000002", "b"), ("/log/item-0000000003", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let problems = check_log(&attempts, &[(0, log.clone()), (1, log)]).join("\n");
    for expected in ["is lost", "applied 2 times", "no writer sent"] {
        assert!(problems.contains(expected), "{expected:?} not reported: {problems}");
    }
}
