//! `herd chaos random`: a seeded schedule of faults against a running cluster.
//!
//! The schedule is a function of the seed, the duration and the cluster's shape (its roles and
//! ids, whether it runs in network namespaces, whether its DataNodes have disks of their own),
//! so the same command against a cluster of the same shape replays it; it is printed before the
//! first fault. Faults come one at a time, each undone (resumed, healed, freed) before the
//! next, with a gap between: the cluster is always within what it is built to survive (one
//! process down or cut off at a time), and every fault gets its chance to be detected and
//! repaired. A pick among a role's processes (`task`: any running attempt) is seeded too, but
//! what it finds depends on what runs at that moment.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;
use test_rng::Rng;

use super::{Cluster, Proc, Target, CONTAINER_ROLES, ROLES};

/// How long a fault aimed at a container's process (task, appmaster) waits for one to run.
const CONTAINER_WAIT: Duration = Duration::from_secs(5);

#[derive(Args)]
pub struct RandomArgs {
    /// How long to inject faults, e.g. 60s, 5m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// The schedule's seed (default: from the clock; printed either way).
    #[arg(long)]
    seed: Option<u64>,
    /// Run a workload beside the faults — files written and read back, keeper counters,
    /// wordcount jobs — and check it after them; exit 1 if a check fails.
    #[arg(long)]
    workload: bool,
    /// Print the schedule and exit.
    #[arg(long)]
    dry_run: bool,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map(|i| s.split_at(i)).unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 60s, 5m or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unit {unit:?}; use ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(secs))
}

pub fn seed_from_clock() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Kill,
    Pause,
    Partition { one_way: bool },
    FillDisk,
}

/// One planned fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// From the start of the run.
    pub at: Duration,
    pub kind: Kind,
    pub target: Target,
    /// How long it lasts before it is undone (0 for a kill: the supervisor repairs it).
    pub hold: Duration,
    /// Picks among the target's processes when it names none.
    pub pick: u64,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.at.as_secs_f64();
        let hold = self.hold.as_secs_f64();
        match self.kind {
            Kind::Kill => write!(f, "+{at:>6.1}s kill {}", self.target),
            Kind::Pause => write!(f, "+{at:>6.1}s pause {} for {hold:.1}s", self.target),
            Kind::Partition { one_way: false } => write!(f, "+{at:>6.1}s partition {} for {hold:.1}s", self.target),
            Kind::Partition { one_way: true } => {
                write!(f, "+{at:>6.1}s partition {} --one-way for {hold:.1}s", self.target)
            }
            Kind::FillDisk => write!(f, "+{at:>6.1}s fill-disk {} for {hold:.1}s", self.target),
        }
    }
}

/// What the schedule depends on besides the seed and duration.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Every role process as ROLE:ID, sorted.
    pub roles: Vec<Target>,
    /// Roles in network namespaces of their own: partitions possible.
    pub netns: bool,
    /// DataNodes on disks of their own: fill-disk possible.
    pub small_disks: bool,
}

impl Shape {
    pub fn of(c: &Cluster) -> Shape {
        let mut roles: Vec<Target> = c
            .procs
            .iter()
            .filter(|p| ROLES.contains(&p.role.as_str()))
            .map(|p| Target { role: p.role.clone(), id: Some(p.id.clone()) })
            .collect();
        roles.sort_by(|a, b| (&a.role, &a.id).cmp(&(&b.role, &b.id)));
        let netns = c.procs.iter().any(|p| p.netns.is_some());
        let small_disks = c.procs.iter().filter(|p| p.role == "datanode").all(super::fill_possible);
        Shape { roles, netns, small_disks }
    }

    fn describe(&self) -> String {
        let mut by_role: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.roles {
            let id = t.id.clone().unwrap_or_default();
            match by_role.iter_mut().find(|(r, _)| *r == t.role) {
                Some((_, ids)) => ids.push(id),
                None => by_role.push((t.role.clone(), vec![id])),
            }
        }
        let roles: Vec<String> = by_role.iter().map(|(r, ids)| format!("{r}:{}", ids.join(","))).collect();
        format!(
            "{}; network: {}; disks: {}",
            roles.join(" "),
            if self.netns { "a namespace per role" } else { "loopback (no partitions)" },
            if self.small_disks { "one per DataNode" } else { "shared (no fill-disk)" }
        )
    }
}

/// The schedule for a seed, a duration and a shape.
pub fn schedule(seed: u64, duration: Duration, shape: &Shape) -> Vec<Event> {
    let mut rng = Rng(seed);
    let compute = shape.roles.iter().any(|t| t.role == "nodemanager");
    let ms = |lo: u64, hi: u64, rng: &mut Rng| Duration::from_millis(lo + rng.below(hi - lo + 1));
    let mut kinds: Vec<(Kind, u64)> = vec![(Kind::Kill, 40), (Kind::Pause, 30)];
    if shape.netns {
        kinds.push((Kind::Partition { one_way: false }, 15));
        kinds.push((Kind::Partition { one_way: true }, 5));
    }
    if shape.small_disks && shape.roles.iter().any(|t| t.role == "datanode") {
        kinds.push((Kind::FillDisk, 10));
    }
    let total: u64 = kinds.iter().map(|(_, w)| w).sum();
    let mut events = Vec::new();
    let mut at = ms(1000, 3000, &mut rng);
    while at < duration {
        let mut x = rng.below(total);
        let kind = kinds
            .iter()
            .find(|(_, w)| {
                let hit = x < *w;
                x = x.saturating_sub(*w);
                hit
            })
            .map(|(k, _)| *k)
            .unwrap_or(Kind::Kill);
        let target = match kind {
            Kind::FillDisk => {
                let dns: Vec<&Target> = shape.roles.iter().filter(|t| t.role == "datanode").collect();
                (*rng.pick(&dns)).clone()
            }
            // A container's process a quarter of the time, when there is compute.
            Kind::Kill | Kind::Pause if compute && rng.chance(25) => {
                let role = if kind == Kind::Kill { *rng.pick(&CONTAINER_ROLES) } else { "task" };
                Target { role: role.to_owned(), id: None }
            }
            _ => rng.pick(&shape.roles).clone(),
        };
        let hold = match kind {
            Kind::Kill => Duration::ZERO,
            _ => ms(1500, 6000, &mut rng),
        };
        let pick = rng.next();
        events.push(Event { at, kind, target, hold, pick });
        at += hold + ms(2000, 5000, &mut rng);
    }
    events
}

fn clock() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let s = now.as_secs();
    format!("{:02}:{:02}:{:02}.{:03}", (s / 3600) % 24, (s / 60) % 60, s % 60, now.subsec_millis())
}

/// Injects one event; returns the process hit (None when there was nothing to hit).
fn inject(dir: &Path, e: &Event) -> anyhow::Result<Option<Proc>> {
    // A container's processes come and go with the jobs: wait a little for one.
    let patience = if CONTAINER_ROLES.contains(&e.target.role.as_str()) { CONTAINER_WAIT } else { Duration::ZERO };
    let deadline = Instant::now() + patience;
    let p = loop {
        let c = Cluster::load(dir)?;
        let mut rng = Rng(e.pick);
        match c.one(&e.target, &mut |n| rng.below(n as u64) as usize) {
            Ok(p) => break p,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(why) => {
                println!("{} skipped {}: {why:#}", clock(), e.target);
                return Ok(None);
            }
        }
    };
    match e.kind {
        Kind::Kill => super::kill(&p)?,
        Kind::Pause => super::pause(&p)?,
        Kind::Partition { one_way } => {
            crate::netcluster::partition(dir, &p, &[], one_way)?;
        }
        Kind::FillDisk => {
            super::fill_disk(&p)?;
        }
    }
    Ok(Some(p))
}

/// Undoes one event's fault on `p`.
fn undo(dir: &Path, e: &Event, p: &Proc) -> anyhow::Result<()> {
    match e.kind {
        Kind::Kill => {}
        Kind::Pause => {
            // It may have died meanwhile (its supervisor or AM killed it): nothing to resume.
            if super::is_paused(p.pid) {
                super::resume(p)?;
            }
        }
        Kind::Partition { .. } => {
            let t = Target { role: p.role.clone(), id: Some(p.id.clone()) };
            crate::netcluster::heal(dir, Some(&t))?;
        }
        Kind::FillDisk => {
            super::free_disk(p)?;
        }
    }
    Ok(())
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

pub fn run(dir: &Path, a: RandomArgs) -> anyhow::Result<i32> {
    let seed = a.seed.unwrap_or_else(seed_from_clock);
    let c = Cluster::load(dir)?;
    let shape = Shape::of(&c);
    let events = schedule(seed, a.duration, &shape);
    println!("chaos schedule: seed {seed}, {:.0}s, {} faults", a.duration.as_secs_f64(), events.len());
    println!("cluster: {}", shape.describe());
    println!(
        "replay: herd chaos --cluster {} random --seed {seed} --duration {}s{}",
        dir.display(),
        a.duration.as_secs_f64(),
        if a.workload { " --workload" } else { "" }
    );
    for e in &events {
        println!("  {e}");
    }
    if a.dry_run {
        return Ok(0);
    }

    let workload = if a.workload {
        println!("{} workload: preparing inputs and starting writers, counters and jobs", clock());
        Some(super::workload::Workload::start(dir, seed)?)
    } else {
        None
    };
    let start = Instant::now();
    let mut injected = 0;
    let mut result = Ok(());
    for e in &events {
        sleep_until(start + e.at);
        match inject(dir, e) {
            Ok(Some(p)) => {
                injected += 1;
                println!("{} {e} -> {p}", clock());
                if !e.hold.is_zero() {
                    sleep_until(Instant::now() + e.hold);
                    if let Err(err) = undo(dir, e, &p) {
                        result = Err(err.context(format!("undoing {e}")));
                        break;
                    }
                    println!("{}   undone: {p}", clock());
                }
            }
            Ok(None) => {}
            Err(err) => {
                result = Err(err.context(format!("injecting {e}")));
                break;
            }
        }
    }
    sleep_until(start + a.duration);
    // Whatever happened above, nothing injected stays.
    let healed = Cluster::load(dir).and_then(|c| super::heal(&c, None));
    println!(
        "{} faults over: {injected} injected{}",
        clock(),
        match &healed {
            Ok(h) if h.is_empty() => String::new(),
            Ok(h) => format!("; healed at the end: {}", h.join(", ")),
            Err(e) => format!("; healing at the end failed: {e:#}"),
        }
    );
    result?;
    healed?;
    let Some(w) = workload else { return Ok(0) };
    println!("{} workload: stopping, then checking against the settled cluster", clock());
    let (lines, ok) = w.finish();
    for l in lines {
        println!("{l}");
    }
    println!("{}", if ok { "checks: PASS" } else { "checks: FAIL" });
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(netns: bool, small_disks: bool) -> Shape {
        let mut roles = Vec::new();
        for (r, ids) in
            [("keeper", vec!["1", "2", "3"]), ("datanode", vec!["1", "2", "3"]), ("nodemanager", vec!["nm1"])]
        {
            for id in ids {
                roles.push(Target { role: r.into(), id: Some(id.into()) });
            }
        }
        Shape { roles, netns, small_disks }
    }

    #[test]
    fn a_seed_replays_its_schedule() {
        let s = shape(true, true);
        let a = schedule(42, Duration::from_secs(120), &s);
        assert_eq!(a, schedule(42, Duration::from_secs(120), &s));
        assert_ne!(a, schedule(43, Duration::from_secs(120), &s));
        assert!(a.len() >= 10, "{a:?}");
        // One at a time: each starts after the last one's hold.
        for w in a.windows(2) {
            assert!(w[1].at >= w[0].at + w[0].hold + Duration::from_secs(2), "{w:?}");
        }
        assert!(a.iter().all(|e| e.at < Duration::from_secs(120)));
    }

    #[test]
    fn faults_only_where_the_cluster_allows_them() {
        for seed in 0..20 {
            for e in schedule(seed, Duration::from_secs(300), &shape(false, false)) {
                assert!(matches!(e.kind, Kind::Kill | Kind::Pause), "{e}");
            }
        }
        let all: Vec<Event> = (0..20).flat_map(|s| schedule(s, Duration::from_secs(300), &shape(true, true))).collect();
        assert!(all.iter().any(|e| e.kind == Kind::Partition { one_way: true }));
        assert!(all.iter().any(|e| e.kind == Kind::FillDisk && e.target.role == "datanode"));
        assert!(all.iter().any(|e| e.target.role == "task"));
        assert!(all.iter().all(|e| e.kind != Kind::FillDisk || e.target.role == "datanode"));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1500ms").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }
}
