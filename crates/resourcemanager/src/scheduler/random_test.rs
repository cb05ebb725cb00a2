//! Random histories: nodes join, change health and are lost; apps come and go and start new
//! attempts; their AMs ask (as AMRMClient does: whole rows, one relax setting per priority),
//! blacklist nodes and release containers; heartbeats allocate. After every step the
//! scheduler's invariants hold, and every allocation went to a healthy node the app had not
//! blacklisted, of the app's current attempt, never off its nodes without relax. Then the
//! cluster heals and no new work comes: every outstanding request must be satisfied within a
//! bounded number of rounds of heartbeats (liveness). A failure prints its seed; rerun one seed
//! with `RM_SEED=<seed>`.

use super::*;

use crate::test_rng::Rng;

const NODES: usize = 6;
const MAX_APPS: usize = 6;
const ROUNDS: u32 = 100;
const PRIORITIES: [Priority; 3] = [5, 10, 20];
/// Priority 5 asks never relax; the others always do (AMRMClient refuses to mix the two at one
/// priority).
const STRICT: Priority = 5;
const AM_SIZE: Resources = Resources::new(1024, 1);

fn node_name(i: usize) -> String {
    format!("n{i}")
}

fn rack_of(n: &str) -> Option<String> {
    n[1..].parse::<usize>().ok().map(|i| format!("/r{}", i % 2))
}

/// What a test AM knows: its outstanding requests, and the rows it last sent.
#[derive(Default)]
struct AmModel {
    attempt: u32,
    reqs: BTreeMap<Priority, Vec<ContainerRequest>>,
    sent: BTreeMap<Priority, BTreeSet<Location>>,
    blacklist: BTreeSet<NodeId>,
}

impl AmModel {
    fn id(&self, app: u64) -> AttemptId {
        AttemptId { app: AppId(app), attempt: self.attempt }
    }

    /// Sends the whole table of priority `p`: the rows of what is outstanding, and zeros for
    /// rows sent before that are gone.
    fn send(&mut self, s: &mut Scheduler, app: u64, p: Priority) {
        let reqs = self.reqs.get(&p).cloned().unwrap_or_default();
        let mut rows = expand(&reqs, rack_of);
        let now: BTreeSet<Location> = rows.iter().map(|r| r.location.clone()).collect();
        for gone in self.sent.get(&p).into_iter().flatten().filter(|l| !now.contains(*l)) {
            let zero = Ask { priority: p, location: gone.clone(), resources: AM_SIZE, count: 0, relax_locality: true };
            rows.push(zero);
        }
        s.update_asks(self.id(app), &rows).unwrap();
        self.sent.insert(p, now);
    }

    fn outstanding(&self) -> u32 {
        self.reqs.values().flatten().map(|r| r.count).sum()
    }

    /// Matches an allocated task container to a request; false if none wants it (the AM then
    /// releases it, as an AM does with a container it cannot use).
    fn take(&mut self, c: &Container) -> bool {
        let Some(reqs) = self.reqs.get_mut(&c.priority) else { return false };
        let named = reqs.iter().position(|r| r.nodes.contains(&c.node));
        let relaxed = || reqs.iter().position(|r| r.relax_locality);
        let Some(i) = named.or_else(relaxed) else { return false };
        reqs[i].count -= 1;
        if reqs[i].count == 0 {
            reqs.remove(i);
        }
        true
    }
}

struct History {
    s: Scheduler,
    rng: Rng,
    healthy: BTreeMap<NodeId, bool>,
    apps: BTreeMap<u64, AmModel>,
    next_app: u64,
    localities: BTreeMap<Locality, usize>,
}

impl History {
    fn heartbeat(&mut self, node: &str, now: u64, ctx: &str) {
        for c in self.s.on_node_heartbeat(node, now) {
            assert_eq!(self.healthy.get(node), Some(&true), "{ctx}: {c:?} on an unhealthy or unknown node");
            let app = c.attempt.app.0;
            let m = self.apps.get_mut(&app).unwrap_or_else(|| panic!("{ctx}: {c:?} of a removed app"));
            assert_eq!(c.attempt.attempt, m.attempt, "{ctx}: {c:?} of an old attempt");
            assert!(!m.blacklist.contains(node), "{ctx}: {c:?} on a blacklisted node");
            if c.is_am {
                continue;
            }
            if c.priority == STRICT {
                assert_eq!(c.locality, Locality::NodeLocal, "{ctx}: strict ask relaxed: {c:?}");
            }
            *self.localities.entry(c.locality).or_default() += 1;
            if !m.take(&c) {
                self.s.release(c.attempt, c.id).unwrap();
            }
        }
    }

    /// A new attempt of `app` after its AM was lost: the new AM asks again for what is left.
    fn restart(&mut self, app: u64) {
        let m = self.apps.get_mut(&app).unwrap();
        m.attempt += 1;
        m.sent.clear();
        self.s.add_attempt(m.id(app), AM_SIZE).unwrap();
        for p in PRIORITIES {
            m.send(&mut self.s, app, p);
        }
    }

    fn ask(&mut self, app: u64) {
        let p = *self.rng.pick(&PRIORITIES);
        let mut nodes: Vec<NodeId> =
            (0..self.rng.below(3)).map(|_| node_name(self.rng.below(NODES as u64) as usize)).collect();
        if p == STRICT && nodes.is_empty() {
            nodes.push(node_name(self.rng.below(NODES as u64) as usize));
        }
        let req = ContainerRequest {
            priority: p,
            // One size per priority: the Any row's is the size every container gets.
            resources: Resources::new(512 * u64::from(p / 5), 1),
            nodes,
            racks: vec![],
            relax_locality: p != STRICT,
            count: 1 + self.rng.below(3) as u32,
        };
        let m = self.apps.get_mut(&app).unwrap();
        m.reqs.entry(p).or_default().push(req);
        m.send(&mut self.s, app, p);
    }
}

/// Returns how many rounds the liveness phase took.
fn run(seed: u64) -> (u32, BTreeMap<Locality, usize>) {
    let queues = BTreeMap::from([("default".into(), 0.5), ("a".into(), 0.3), ("b".into(), 0.2)]);
    let config = Config {
        epoch: 1,
        queues,
        node_locality_delay: 2,
        rack_locality_delay: 5,
        max_am_share: 0.3,
        max_allocation: Resources::new(4096, 4),
        max_allocations_per_heartbeat: 8,
    };
    let mut h = History {
        s: Scheduler::new(config).unwrap(),
        rng: Rng(seed),
        healthy: BTreeMap::new(),
        apps: BTreeMap::new(),
        next_app: 1,
        localities: BTreeMap::new(),
    };
    let mut now = 0;
    for step in 0..400 {
        let ctx = format!("seed {seed} step {step}");
        let node = node_name(h.rng.below(NODES as u64) as usize);
        let app = h.apps.keys().nth(h.rng.below(h.apps.len() as u64 + 1) as usize).copied();
        match h.rng.below(14) {
            0 | 1 => {
                let healthy = h.rng.chance(85);
                let cap = Resources::new(8192 * (1 + h.rng.below(2)), 8);
                if h.s.set_node(&node, &rack_of(&node).unwrap(), cap, healthy).is_ok() {
                    h.healthy.insert(node.clone(), healthy);
                }
            }
            2 if h.rng.chance(40) => {
                h.healthy.remove(&node);
                let lost = h.s.remove_node(&node);
                assert!(lost.iter().all(|c| c.node == node), "{ctx}");
                for c in lost.iter().filter(|c| c.is_am) {
                    h.restart(c.attempt.app.0);
                }
            }
            3 if h.apps.len() < MAX_APPS => {
                let id = h.next_app;
                h.next_app += 1;
                let queue = *h.rng.pick(&["default", "a", "b"]);
                h.s.add_app(AppId(id), queue, "u").unwrap();
                let m = AmModel { attempt: 1, ..AmModel::default() };
                h.s.add_attempt(m.id(id), AM_SIZE).unwrap();
                h.apps.insert(id, m);
            }
            4 if h.rng.chance(30) => {
                if let Some(app) = app {
                    h.apps.remove(&app);
                    let freed = h.s.remove_app(AppId(app));
                    assert!(freed.iter().all(|c| c.attempt.app == AppId(app)), "{ctx}");
                }
            }
            5 if h.rng.chance(20) => {
                if let Some(app) = app {
                    h.restart(app);
                }
            }
            6..=8 => {
                if let Some(app) = app {
                    h.ask(app);
                }
            }
            9 => {
                if let Some(app) = app {
                    let m = h.apps.get_mut(&app).unwrap();
                    let on = !m.blacklist.contains(&node);
                    if on {
                        m.blacklist.insert(node.clone());
                    } else {
                        m.blacklist.remove(&node);
                    }
                    h.s.set_blacklisted(AppId(app), &node, on).unwrap();
                }
            }
            10 => {
                let tasks: Vec<Container> = h.s.containers().filter(|c| !c.is_am).cloned().collect();
                if !tasks.is_empty() {
                    let c = h.rng.pick(&tasks).clone();
                    if h.rng.chance(50) {
                        h.s.release(c.attempt, c.id).unwrap();
                    } else {
                        assert_eq!(h.s.container_completed(c.id), Some(c), "{ctx}");
                    }
                }
            }
            _ => {
                now += h.rng.below(500);
                h.heartbeat(&node, now, &ctx);
            }
        }
        if let Err(e) = h.s.check_invariants() {
            panic!("{ctx}: {e}");
        }
    }

    // Liveness: every node back and healthy with room for every AM and any task, no
    // blacklists, no new work. Each round the AMs resend their tables (as AMRMClient does after
    // it matched containers), every node heartbeats, the tasks finish, and apps with nothing
    // outstanding end. Every app must end.
    for i in 0..NODES {
        let n = node_name(i);
        h.s.set_node(&n, &rack_of(&n).unwrap(), Resources::new(16384, 16), true).unwrap();
        h.healthy.insert(n, true);
    }
    let apps: Vec<u64> = h.apps.keys().copied().collect();
    for app in apps {
        let m = h.apps.get_mut(&app).unwrap();
        for node in std::mem::take(&mut m.blacklist) {
            h.s.set_blacklisted(AppId(app), &node, false).unwrap();
        }
    }
    for round in 0..ROUNDS {
        let ctx = format!("seed {seed} liveness round {round}");
        for (app, m) in &mut h.apps {
            for p in PRIORITIES {
                m.send(&mut h.s, *app, p);
            }
        }
        for i in 0..NODES {
            now += 100;
            h.heartbeat(&node_name(i), now, &ctx);
        }
        let tasks: Vec<ContainerId> = h.s.containers().filter(|c| !c.is_am).map(|c| c.id).collect();
        for c in tasks {
            h.s.container_completed(c);
        }
        let done: Vec<u64> = h
            .apps
            .iter()
            .filter(|(app, m)| m.outstanding() == 0 && h.s.pending(AppId(**app)) == 0)
            .map(|(app, _)| *app)
            .collect();
        for app in done {
            h.apps.remove(&app);
            h.s.remove_app(AppId(app));
        }
        if let Err(e) = h.s.check_invariants() {
            panic!("{ctx}: {e}");
        }
        if h.apps.is_empty() {
            return (round, h.localities);
        }
    }
    let left: Vec<(u64, u32, u32)> =
        h.apps.iter().map(|(app, m)| (*app, m.outstanding(), h.s.pending(AppId(*app)))).collect();
    panic!("seed {seed}: after {ROUNDS} rounds, apps still waiting (app, outstanding, pending): {left:?}");
}

#[test]
fn random_histories_keep_the_invariants_and_every_ask_is_served() {
    if let Some(seed) = std::env::var("RM_SEED").ok().and_then(|s| s.parse().ok()) {
        run(seed);
        return;
    }
    let mut localities: BTreeMap<Locality, usize> = BTreeMap::new();
    let mut rounds_max = 0;
    for seed in 0..200 {
        let (rounds, l) = run(seed);
        rounds_max = rounds_max.max(rounds);
        for (k, v) in l {
            *localities.entry(k).or_default() += v;
        }
    }
    // The histories exercise every locality level, not only the bookkeeping.
    for l in [Locality::NodeLocal, Locality::RackLocal, Locality::OffSwitch] {
        assert!(localities.get(&l).copied().unwrap_or(0) > 100, "{localities:?}");
    }
    assert!(rounds_max < ROUNDS);
}
