//! The scheduler: which container goes on which NodeManager, as a pure state machine.
//!
//! Events come in as method calls (nodes joining, changing and leaving, apps and attempts
//! added and removed, an attempt's asks, releases and completions); decisions come out of
//! [`Scheduler::on_node_heartbeat`], which offers one node's free capacity to the asks and
//! returns the [`Container`]s it allocated there. Nothing reads a clock or a random generator:
//! `now_ms` is the caller's monotonic time, container ids count up from the configured epoch,
//! and every choice iterates `BTreeMap`s, so the same events give the same decisions.
//!
//! **Asks** follow YARN's `ResourceRequest` table: an attempt has, per (priority, location),
//! one [`Ask`] — a count, a size and a `relax_locality` flag — where the location is a node, a
//! rack or [`Location::Any`]. A new ask for a (priority, location) replaces the old one; count
//! 0 cancels it (`AllocateRequest` semantics; the AM sends totals, not increments). The `Any`
//! ask is the authority on how many containers are still wanted at a priority, and its size is
//! the size they get; a priority without an `Any` count gets nothing. An allocation takes one
//! off the `Any` count and, as YARN's `AppSchedulingInfo` does, off the rack's count (node- and
//! rack-local) and the node's (node-local); when the `Any` count reaches 0 the priority is
//! dropped. [`expand`] builds such a table from AMRMClient-style container requests.
//!
//! **Locality and relaxing** (YARN's `ResourceRequest.relaxLocality`): a node with a request of
//! its own is always acceptable (node-local). A rack-level ask with `relax_locality = false`
//! keeps the priority off that rack's other nodes; an `Any` ask with it off keeps it off racks
//! without a rack-level ask. So a request that names nodes and does not relax never leaves them.
//!
//! **Delay scheduling.** An offer that the locality rules would accept but only less locally
//! than the ask could be served elsewhere is *missed* instead, and counted for that (attempt,
//! priority), at most once a heartbeat: rack-local is taken once `node_locality_delay` offers
//! were missed (if the priority names nodes at all), off-switch once `rack_locality_delay`
//! were (if it names nodes or racks). A node- or rack-local allocation resets the count; an
//! off-switch one does not, so that an ask that has given up on locality does not wait again
//! for each container (YARN's CapacityScheduler does the same). Both delays are capped at one
//! (node) and two (rack) rounds of offers from every healthy node, as YARN caps
//! `node-locality-delay` at the cluster size: after a round, the wanted node has had its turn.
//! Offers of a node that is too full for the ask are not counted: the ask did not pass them up.
//!
//! **Queues and order.** Each queue has a share of the cluster (fractions summing to at most
//! 1; there is always a `default` queue). A heartbeat serves the queue whose dominant-resource
//! use is furthest below its share first (used share / share, ties by name), then recomputes
//! after each container. Shares order the queues; they do not cap them: a queue may use idle
//! capacity beyond its share (there is no preemption yet). Within a queue:
//! 1. AM containers first, in submission order, within the queue's AM limit (`max_am_share` of
//!    the queue's share, YARN's `maximum-am-resource-percent`; one AM is always allowed);
//! 2. then apps in submission order (FIFO), each app's asks by priority.
//!
//! **Starvation policy.** Three rules keep one app from holding a queue forever. (a) No
//! head-of-line blocking: an offer passes over an app that cannot use this node now (too big
//! for what is free, waiting for locality, the node blacklisted, over the AM limit) to the next
//! app, so an ask that fits nowhere or an AM that cannot be placed never stops the apps behind
//! it (CapacityScheduler without reservations). (b) AM containers go before task containers in
//! the queue, so a head app with an endless stream of task asks delays the next app's tasks —
//! that is FIFO — but never its AM, so every accepted app starts and can be seen running. (c)
//! The AM limit keeps AMs from filling a queue so that no task could run (AMs waiting on tasks
//! that wait on AMs). What this does not give: a large ask can wait while smaller asks behind
//! it fill each node as it frees up (no reservations); and a queue over its share is not
//! preempted.
//!
//! Layout: this file holds the state and the events; `tests` and `random_test` assert the
//! decisions.

#[cfg(test)]
mod random_test;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{AppId, AttemptId, ContainerId, NodeId, Priority, Resources};

/// The priority the scheduler records AM containers under (YARN asks for the AM at 0).
pub const AM_PRIORITY: Priority = 0;

/// The scheduler's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The RM's incarnation: the high part of every container id, so that a restarted RM
    /// (which counts from 0 again) never reuses one.
    pub epoch: u64,
    /// Queue name -> share of the cluster, each in [0, 1], summing to at most 1; must hold
    /// `default`. A queue with share 0 is served only when no other queue can use the node.
    pub queues: BTreeMap<String, f64>,
    /// Missed offers after which an ask that names nodes accepts a rack-local node (YARN
    /// `yarn.scheduler.capacity.node-locality-delay`, 40). Capped at the healthy node count.
    pub node_locality_delay: u32,
    /// Missed offers after which an ask that names nodes or racks accepts any node; at least
    /// `node_locality_delay`. Capped at twice the healthy node count.
    pub rack_locality_delay: u32,
    /// The fraction of a queue's share that AM containers may hold (YARN
    /// `maximum-am-resource-percent`, 0.1); one AM per queue is always allowed.
    pub max_am_share: f64,
    /// The largest container (YARN `yarn.scheduler.maximum-allocation-{mb,vcores}`); a larger
    /// ask is refused.
    pub max_allocation: Resources,
    /// Containers one heartbeat may allocate on its node (a bound on one call's work).
    pub max_allocations_per_heartbeat: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            epoch: 0,
            queues: BTreeMap::from([("default".to_string(), 1.0)]),
            node_locality_delay: 40,
            rack_locality_delay: 80,
            max_am_share: 0.1,
            max_allocation: Resources::new(8192, 4),
            max_allocations_per_heartbeat: 64,
        }
    }
}

/// Where an ask wants its containers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    Node(NodeId),
    Rack(String),
    /// YARN's `*`.
    Any,
}

/// One row of an attempt's request table (YARN's `ResourceRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub priority: Priority,
    pub location: Location,
    /// The size of each container (what counts is the `Any` row's).
    pub resources: Resources,
    /// How many containers are still wanted here; 0 cancels the row.
    pub count: u32,
    /// Whether the priority may go beyond this location (see the module documentation).
    pub relax_locality: bool,
}

/// How local an allocation was to its ask (YARN's `NodeType`), for the data-local counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Locality {
    NodeLocal,
    RackLocal,
    OffSwitch,
}

/// An allocated container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: ContainerId,
    pub attempt: AttemptId,
    pub node: NodeId,
    pub resources: Resources,
    pub priority: Priority,
    pub locality: Locality,
    /// The attempt's AM container (allocated from the ask [`Scheduler::add_attempt`] made).
    pub is_am: bool,
    pub allocated_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid scheduler configuration: {0}")]
    InvalidConfig(String),
    #[error("unknown queue {0}")]
    UnknownQueue(String),
    #[error("unknown application {0}")]
    UnknownApp(AppId),
    #[error("application {0} already exists")]
    DuplicateApp(AppId),
    /// The attempt is not the app's current one (fenced; or an attempt number that does not
    /// move forward).
    #[error("{attempt} is not the current attempt ({current:?})")]
    NotCurrentAttempt { attempt: AttemptId, current: Option<u32> },
    #[error("unknown container {0}")]
    UnknownContainer(ContainerId),
    /// YARN's `InvalidResourceRequestException`.
    #[error("invalid resource request: {0}")]
    InvalidAsk(String),
    #[error("node {node}: capacity {capacity} is below what its containers use ({used})")]
    CapacityBelowUse { node: NodeId, capacity: Resources, used: Resources },
}

#[derive(Debug, Clone)]
struct Node {
    rack: String,
    capacity: Resources,
    used: Resources,
    healthy: bool,
    containers: BTreeSet<ContainerId>,
}

#[derive(Debug, Clone)]
struct Queue {
    share: f64,
    used: Resources,
    am_used: Resources,
    /// Submission sequence -> app: the FIFO order.
    apps: BTreeMap<u64, AppId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    resources: Resources,
    count: u32,
    relax: bool,
}

#[derive(Debug, Clone, Default)]
struct PriorityAsks {
    requests: BTreeMap<Location, Request>,
    /// Offers passed up for locality since the last node- or rack-local allocation.
    missed: u32,
}

enum Placement {
    Allowed(Locality),
    /// Acceptable once enough offers were missed.
    Wait,
    /// Never, by `relax_locality`.
    Forbidden,
}

impl PriorityAsks {
    fn count(&self, at: &Location) -> u32 {
        self.requests.get(at).map_or(0, |r| r.count)
    }

    fn wants(&self, level: fn(&Location) -> bool) -> bool {
        self.requests.iter().any(|(l, r)| level(l) && r.count > 0)
    }

    /// Whether a container of this priority may go on `node` (in `rack`) now.
    fn placement(&self, node: &str, rack: &str, node_delay: u32, rack_delay: u32) -> Placement {
        if self.count(&Location::Node(node.to_string())) > 0 {
            return Placement::Allowed(Locality::NodeLocal);
        }
        let wants_nodes = self.wants(|l| matches!(l, Location::Node(_)));
        match self.requests.get(&Location::Rack(rack.to_string())) {
            Some(r) if !r.relax => Placement::Forbidden,
            Some(r) if r.count > 0 => {
                if !wants_nodes || self.missed >= node_delay {
                    Placement::Allowed(Locality::RackLocal)
                } else {
                    Placement::Wait
                }
            }
            _ => {
                let any_relaxes = self.requests.get(&Location::Any).is_some_and(|r| r.relax);
                let wants_racks = self.wants(|l| matches!(l, Location::Rack(_)));
                if !any_relaxes {
                    Placement::Forbidden
                } else if !(wants_nodes || wants_racks) || self.missed >= rack_delay {
                    Placement::Allowed(Locality::OffSwitch)
                } else {
                    Placement::Wait
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct App {
    queue: String,
    user: String,
    seq: u64,
    /// The current attempt's number, once one was added.
    attempt: Option<u32>,
    /// The current attempt's AM container, not yet allocated.
    am_ask: Option<Resources>,
    asks: BTreeMap<Priority, PriorityAsks>,
    blacklist: BTreeSet<NodeId>,
    containers: BTreeSet<ContainerId>,
    used: Resources,
}

/// The scheduler. See the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    config: Config,
    nodes: BTreeMap<NodeId, Node>,
    queues: BTreeMap<String, Queue>,
    apps: BTreeMap<AppId, App>,
    containers: BTreeMap<ContainerId, Container>,
    next_container: u64,
    next_app_seq: u64,
    /// The first rule a heartbeat's decisions broke (checked as they are made), reported by
    /// [`Scheduler::check_invariants`].
    decision_violation: Option<String>,
}

impl Scheduler {
    pub fn new(config: Config) -> Result<Scheduler, Error> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if !config.queues.contains_key("default") {
            return bad("no default queue".into());
        }
        if let Some((q, s)) = config.queues.iter().find(|(_, s)| !(0.0..=1.0).contains(*s)) {
            return bad(format!("queue {q}: share {s} is not in [0, 1]"));
        }
        let total: f64 = config.queues.values().sum();
        if total > 1.0 + 1e-9 {
            return bad(format!("queue shares sum to {total} > 1"));
        }
        if config.rack_locality_delay < config.node_locality_delay {
            return bad("rack_locality_delay is below node_locality_delay".into());
        }
        if !(0.0..=1.0).contains(&config.max_am_share) {
            return bad(format!("max_am_share {} is not in [0, 1]", config.max_am_share));
        }
        if config.max_allocations_per_heartbeat == 0 {
            return bad("max_allocations_per_heartbeat is 0".into());
        }
        let queues = config
            .queues
            .iter()
            .map(|(name, &share)| {
                let q = Queue { share, used: Resources::ZERO, am_used: Resources::ZERO, apps: BTreeMap::new() };
                (name.clone(), q)
            })
            .collect();
        Ok(Scheduler {
            config,
            nodes: BTreeMap::new(),
            queues,
            apps: BTreeMap::new(),
            containers: BTreeMap::new(),
            next_container: 0,
            next_app_seq: 0,
            decision_violation: None,
        })
    }

    // ---- nodes ----

    /// Adds a node, or updates a known one (its rack, capacity and health; its containers
    /// stay). An unhealthy node keeps its containers but gets no new ones. Capacity below what
    /// the node's containers use is refused: the caller treats such a node as a new
    /// incarnation (remove, then add).
    pub fn set_node(&mut self, id: &str, rack: &str, capacity: Resources, healthy: bool) -> Result<(), Error> {
        match self.nodes.get_mut(id) {
            Some(n) => {
                if !n.used.fits(capacity) {
                    return Err(Error::CapacityBelowUse { node: id.to_string(), capacity, used: n.used });
                }
                n.rack = rack.to_string();
                n.capacity = capacity;
                n.healthy = healthy;
            }
            None => {
                let n = Node {
                    rack: rack.to_string(),
                    capacity,
                    used: Resources::ZERO,
                    healthy,
                    containers: BTreeSet::new(),
                };
                self.nodes.insert(id.to_string(), n);
            }
        }
        Ok(())
    }

    /// A node is lost: forgets it and returns the containers that were on it, which the caller
    /// reports to their AMs as completed with exit status -100 (YARN's `ABORTED`).
    pub fn remove_node(&mut self, id: &str) -> Vec<Container> {
        let Some(node) = self.nodes.get(id) else { return Vec::new() };
        let ids: Vec<ContainerId> = node.containers.iter().copied().collect();
        let lost = ids.into_iter().filter_map(|c| self.free(c)).collect();
        self.nodes.remove(id);
        lost
    }

    // ---- apps and attempts ----

    /// Adds an app to the end of its queue.
    pub fn add_app(&mut self, app: AppId, queue: &str, user: &str) -> Result<(), Error> {
        if self.apps.contains_key(&app) {
            return Err(Error::DuplicateApp(app));
        }
        let q = self.queues.get_mut(queue).ok_or_else(|| Error::UnknownQueue(queue.to_string()))?;
        let seq = self.next_app_seq;
        self.next_app_seq += 1;
        q.apps.insert(seq, app);
        let a = App {
            queue: queue.to_string(),
            user: user.to_string(),
            seq,
            attempt: None,
            am_ask: None,
            asks: BTreeMap::new(),
            blacklist: BTreeSet::new(),
            containers: BTreeSet::new(),
            used: Resources::ZERO,
        };
        self.apps.insert(app, a);
        Ok(())
    }

    /// Removes an app: frees everything and returns its live containers, for the caller to kill.
    pub fn remove_app(&mut self, app: AppId) -> Vec<Container> {
        let Some(a) = self.apps.get(&app) else { return Vec::new() };
        let ids: Vec<ContainerId> = a.containers.iter().copied().collect();
        let freed = ids.into_iter().filter_map(|c| self.free(c)).collect();
        if let Some(a) = self.apps.remove(&app) {
            if let Some(q) = self.queues.get_mut(&a.queue) {
                q.apps.remove(&a.seq);
            }
        }
        freed
    }

    /// Makes `attempt` the app's current attempt and asks for its AM container (priority 0,
    /// any node). The previous attempt's asks are dropped and its live containers freed and
    /// returned, for the caller to kill. The app keeps its place in its queue.
    pub fn add_attempt(&mut self, attempt: AttemptId, am: Resources) -> Result<Vec<Container>, Error> {
        self.check_size(am)?;
        let a = self.apps.get_mut(&attempt.app).ok_or(Error::UnknownApp(attempt.app))?;
        if a.attempt.is_some_and(|cur| cur >= attempt.attempt) {
            return Err(Error::NotCurrentAttempt { attempt, current: a.attempt });
        }
        a.attempt = Some(attempt.attempt);
        a.am_ask = Some(am);
        a.asks.clear();
        let ids: Vec<ContainerId> = a.containers.iter().copied().collect();
        Ok(ids.into_iter().filter_map(|c| self.free(c)).collect())
    }

    /// Applies an attempt's asks, in order (see the module documentation).
    pub fn update_asks(&mut self, attempt: AttemptId, asks: &[Ask]) -> Result<(), Error> {
        self.current(attempt)?;
        for ask in asks.iter().filter(|a| a.count > 0) {
            self.check_size(ask.resources)?;
        }
        let a = self.apps.get_mut(&attempt.app).ok_or(Error::UnknownApp(attempt.app))?;
        for ask in asks {
            let pa = a.asks.entry(ask.priority).or_default();
            if ask.count == 0 {
                pa.requests.remove(&ask.location);
            } else {
                let r = Request { resources: ask.resources, count: ask.count, relax: ask.relax_locality };
                pa.requests.insert(ask.location.clone(), r);
            }
            if pa.requests.is_empty() {
                a.asks.remove(&ask.priority);
            }
        }
        Ok(())
    }

    /// Adds `node` to (or takes it off) the app's blacklist: a blacklisted node gets none of
    /// the app's containers, AM containers included.
    pub fn set_blacklisted(&mut self, app: AppId, node: &str, blacklisted: bool) -> Result<(), Error> {
        let a = self.apps.get_mut(&app).ok_or(Error::UnknownApp(app))?;
        if blacklisted {
            a.blacklist.insert(node.to_string());
        } else {
            a.blacklist.remove(node);
        }
        Ok(())
    }

    // ---- containers ----

    /// The AM gives a container back.
    pub fn release(&mut self, attempt: AttemptId, id: ContainerId) -> Result<Container, Error> {
        self.current(attempt)?;
        match self.containers.get(&id) {
            Some(c) if c.attempt == attempt => Ok(self.free(id).expect("container is live")),
            _ => Err(Error::UnknownContainer(id)),
        }
    }

    /// A NodeManager reported the container finished: its capacity is free again. `None` when
    /// it was already freed (released, its app removed, its node lost).
    pub fn container_completed(&mut self, id: ContainerId) -> Option<Container> {
        self.free(id)
    }

    /// Offers `node`'s free capacity to the asks and returns what it allocated there (see the
    /// module documentation for the order). An unknown or unhealthy node gets nothing.
    pub fn on_node_heartbeat(&mut self, node: &str, now_ms: u64) -> Vec<Container> {
        let mut missed_this_offer = BTreeSet::new();
        let mut out = Vec::new();
        while out.len() < self.config.max_allocations_per_heartbeat {
            match self.allocate_one(node, now_ms, &mut missed_this_offer) {
                Some(c) => out.push(c),
                None => break,
            }
        }
        if self.decision_violation.is_none() {
            self.decision_violation = self.check_decisions(node, &out).err();
        }
        out
    }

    // ---- queries ----

    pub fn container(&self, id: ContainerId) -> Option<&Container> {
        self.containers.get(&id)
    }

    pub fn containers(&self) -> impl Iterator<Item = &Container> {
        self.containers.values()
    }

    /// A node's free capacity.
    pub fn node_free(&self, node: &str) -> Option<Resources> {
        self.nodes.get(node).map(|n| n.capacity - n.used)
    }

    pub fn rack_of(&self, node: &str) -> Option<&str> {
        self.nodes.get(node).map(|n| n.rack.as_str())
    }

    /// The app's queue and user.
    pub fn app(&self, app: AppId) -> Option<(&str, &str)> {
        self.apps.get(&app).map(|a| (a.queue.as_str(), a.user.as_str()))
    }

    /// Containers still wanted by the app: its `Any` counts, plus its AM if not yet placed.
    pub fn pending(&self, app: AppId) -> u32 {
        self.apps.get(&app).map_or(0, |a| {
            u32::from(a.am_ask.is_some()) + a.asks.values().map(|p| p.count(&Location::Any)).sum::<u32>()
        })
    }

    /// What a queue uses.
    pub fn queue_used(&self, queue: &str) -> Option<Resources> {
        self.queues.get(queue).map(|q| q.used)
    }

    // ---- inside ----

    fn check_size(&self, r: Resources) -> Result<(), Error> {
        if r.memory_mb == 0 || r.vcores == 0 {
            return Err(Error::InvalidAsk(format!("{r}: every resource must be positive")));
        }
        if !r.fits(self.config.max_allocation) {
            return Err(Error::InvalidAsk(format!(
                "{r} exceeds the maximum allocation {}",
                self.config.max_allocation
            )));
        }
        Ok(())
    }

    fn current(&self, attempt: AttemptId) -> Result<(), Error> {
        let a = self.apps.get(&attempt.app).ok_or(Error::UnknownApp(attempt.app))?;
        if a.attempt != Some(attempt.attempt) {
            return Err(Error::NotCurrentAttempt { attempt, current: a.attempt });
        }
        Ok(())
    }

    /// Forgets a live container and gives its capacity back to its node, app and queue.
    fn free(&mut self, id: ContainerId) -> Option<Container> {
        let c = self.containers.remove(&id)?;
        if let Some(n) = self.nodes.get_mut(&c.node) {
            n.used -= c.resources;
            n.containers.remove(&id);
        }
        if let Some(a) = self.apps.get_mut(&c.attempt.app) {
            a.used -= c.resources;
            a.containers.remove(&id);
            if let Some(q) = self.queues.get_mut(&a.queue) {
                q.used -= c.resources;
                if c.is_am {
                    q.am_used -= c.resources;
                }
            }
        }
        Some(c)
    }

    fn cluster_capacity(&self) -> Resources {
        self.nodes.values().filter(|n| n.healthy).fold(Resources::ZERO, |acc, n| acc + n.capacity)
    }

    /// Queues with apps, the one furthest below its share first, ties by name.
    fn queue_order(&self, cluster: Resources) -> Vec<String> {
        let mut order: Vec<(f64, &String)> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.apps.is_empty())
            .map(|(name, q)| {
                let used = q.used.dominant_share(cluster);
                let ratio = if q.share > 0.0 { used / q.share } else { f64::INFINITY };
                (ratio, name)
            })
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        order.into_iter().map(|(_, name)| name.clone()).collect()
    }

    fn am_allowed(&self, queue: &Queue, am: Resources, cluster: Resources) -> bool {
        let limit = cluster.scaled(queue.share * self.config.max_am_share);
        queue.am_used.is_zero() || (queue.am_used + am).fits(limit)
    }

    /// The delays in effect: the configured ones, capped by rounds of offers.
    fn delays(&self) -> (u32, u32) {
        let healthy = self.nodes.values().filter(|n| n.healthy).count() as u32;
        let node = self.config.node_locality_delay.min(healthy);
        let rack = self.config.rack_locality_delay.min(healthy.saturating_mul(2)).max(node);
        (node, rack)
    }

    fn allocate_one(&mut self, node: &str, now_ms: u64, missed: &mut BTreeSet<(AppId, Priority)>) -> Option<Container> {
        let n = self.nodes.get(node)?;
        if !n.healthy {
            return None;
        }
        let (rack, free) = (n.rack.clone(), n.capacity - n.used);
        let cluster = self.cluster_capacity();
        let (node_delay, rack_delay) = self.delays();
        for queue in self.queue_order(cluster) {
            let q = &self.queues[&queue];
            let fifo: Vec<AppId> = q.apps.values().copied().collect();
            for app in &fifo {
                let a = &self.apps[app];
                if let Some(am) = a.am_ask {
                    if am.fits(free) && !a.blacklist.contains(node) && self.am_allowed(q, am, cluster) {
                        return Some(self.allocate(*app, node, AM_PRIORITY, am, Locality::OffSwitch, true, now_ms));
                    }
                }
            }
            for app in fifo {
                let a = self.apps.get_mut(&app).expect("queued app exists");
                if a.attempt.is_none() || a.blacklist.contains(node) {
                    continue;
                }
                for (&p, pa) in a.asks.iter_mut() {
                    let Some(any) = pa.requests.get(&Location::Any) else { continue };
                    if any.count == 0 || !any.resources.fits(free) {
                        continue;
                    }
                    let size = any.resources;
                    match pa.placement(node, &rack, node_delay, rack_delay) {
                        Placement::Allowed(locality) => {
                            return Some(self.allocate(app, node, p, size, locality, false, now_ms));
                        }
                        Placement::Wait => {
                            if missed.insert((app, p)) {
                                pa.missed = pa.missed.saturating_add(1);
                            }
                        }
                        Placement::Forbidden => {}
                    }
                }
            }
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn allocate(
        &mut self,
        app: AppId,
        node: &str,
        priority: Priority,
        resources: Resources,
        locality: Locality,
        is_am: bool,
        now_ms: u64,
    ) -> Container {
        let id = ContainerId { epoch: self.config.epoch, seq: self.next_container };
        self.next_container += 1;
        let n = self.nodes.get_mut(node).expect("offered node exists");
        n.used += resources;
        n.containers.insert(id);
        let rack = n.rack.clone();
        let a = self.apps.get_mut(&app).expect("allocating app exists");
        a.used += resources;
        a.containers.insert(id);
        if is_am {
            a.am_ask = None;
        } else if let Some(pa) = a.asks.get_mut(&priority) {
            let mut take = |at: Location| {
                if let Some(r) = pa.requests.get_mut(&at) {
                    r.count = r.count.saturating_sub(1);
                }
            };
            match locality {
                Locality::NodeLocal => {
                    take(Location::Node(node.to_string()));
                    take(Location::Rack(rack));
                }
                Locality::RackLocal => take(Location::Rack(rack)),
                Locality::OffSwitch => {}
            }
            take(Location::Any);
            if locality != Locality::OffSwitch {
                pa.missed = 0;
            }
            if pa.count(&Location::Any) == 0 {
                a.asks.remove(&priority);
            }
        }
        let q = self.queues.get_mut(&a.queue).expect("app's queue exists");
        q.used += resources;
        if is_am {
            q.am_used += resources;
        }
        let attempt = AttemptId { app, attempt: a.attempt.expect("allocating app has an attempt") };
        let c = Container {
            id,
            attempt,
            node: node.to_string(),
            resources,
            priority,
            locality,
            is_am,
            allocated_ms: now_ms,
        };
        self.containers.insert(id, c.clone());
        c
    }

    /// The rules a heartbeat's decisions must keep, checked on its result: the node was
    /// healthy, no app got a node it blacklisted, and FIFO — no app got a container at a
    /// priority on this node while an app ahead of it in its queue still has a node-local ask
    /// for this node at that priority that fits what the node has free even now (free space
    /// only shrinks during a heartbeat, so that ask would have fitted then too).
    fn check_decisions(&self, node: &str, out: &[Container]) -> Result<(), String> {
        if out.is_empty() {
            return Ok(());
        }
        let n = self.nodes.get(node).ok_or("allocated on an unknown node")?;
        if !n.healthy {
            return Err(format!("allocated {} on unhealthy node {node}", out[0].id));
        }
        let free = n.capacity - n.used;
        for c in out {
            let a = &self.apps[&c.attempt.app];
            if a.blacklist.contains(node) {
                return Err(format!("{} went to {node}, which {} blacklisted", c.id, c.attempt.app));
            }
            if c.is_am {
                continue;
            }
            let ahead = self.queues[&a.queue].apps.range(..a.seq).map(|(_, id)| &self.apps[id]);
            for b in ahead.filter(|b| !b.blacklist.contains(node)) {
                let Some(pa) = b.asks.get(&c.priority) else { continue };
                let fits = pa.requests.get(&Location::Any).is_some_and(|r| r.count > 0 && r.resources.fits(free));
                if fits && pa.count(&Location::Node(node.to_string())) > 0 {
                    return Err(format!(
                        "FIFO: {} (priority {}) went to {node} ahead of an earlier app's node-local ask",
                        c.id, c.priority
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks the bookkeeping (for tests): no node over capacity; each node's, app's and
    /// queue's use is the sum of its live containers; every container is on a known node and
    /// belongs to a known app's current attempt; at most one AM container per app; and no
    /// heartbeat broke the rules of [`Scheduler::on_node_heartbeat`] (unhealthy or blacklisted
    /// nodes, FIFO within a queue).
    pub fn check_invariants(&self) -> Result<(), String> {
        if let Some(v) = &self.decision_violation {
            return Err(v.clone());
        }
        let mut node_used: BTreeMap<&str, (Resources, usize)> = BTreeMap::new();
        let mut app_used: BTreeMap<AppId, (Resources, usize, usize)> = BTreeMap::new();
        let mut queue_used: BTreeMap<&str, (Resources, Resources)> = BTreeMap::new();
        for (id, c) in &self.containers {
            if c.id != *id || id.epoch != self.config.epoch || id.seq >= self.next_container {
                return Err(format!("container {id} has a bad id ({})", c.id));
            }
            let n = self.nodes.get(&c.node).ok_or(format!("{id} on unknown node {}", c.node))?;
            if !n.containers.contains(id) {
                return Err(format!("{id} missing from node {}", c.node));
            }
            let a = self.apps.get(&c.attempt.app).ok_or(format!("{id} of unknown app {}", c.attempt.app))?;
            if a.attempt != Some(c.attempt.attempt) || !a.containers.contains(id) {
                return Err(format!("{id} of {} is not held by the app's current attempt", c.attempt));
            }
            let e = node_used.entry(&c.node).or_default();
            e.0 += c.resources;
            e.1 += 1;
            let e = app_used.entry(c.attempt.app).or_default();
            e.0 += c.resources;
            e.1 += 1;
            e.2 += usize::from(c.is_am);
            let e = queue_used.entry(&a.queue).or_default();
            e.0 += c.resources;
            if c.is_am {
                e.1 += c.resources;
            }
        }
        for (id, n) in &self.nodes {
            let (used, count) = node_used.get(id.as_str()).copied().unwrap_or_default();
            if n.used != used || n.containers.len() != count {
                return Err(format!("node {id}: used {} but its containers sum to {used}", n.used));
            }
            if !n.used.fits(n.capacity) {
                return Err(format!("node {id}: used {} over capacity {}", n.used, n.capacity));
            }
        }
        for (id, a) in &self.apps {
            let (used, count, ams) = app_used.get(id).copied().unwrap_or_default();
            if a.used != used || a.containers.len() != count {
                return Err(format!("{id}: used {} but its containers sum to {used}", a.used));
            }
            if ams > 1 || (ams == 1 && a.am_ask.is_some()) {
                return Err(format!("{id}: {ams} AM containers, AM ask {:?}", a.am_ask));
            }
            let q = self.queues.get(&a.queue).ok_or(format!("{id}: unknown queue {}", a.queue))?;
            if q.apps.get(&a.seq) != Some(id) {
                return Err(format!("{id}: not in its queue {} at {}", a.queue, a.seq));
            }
            if a.asks.values().any(|p| p.requests.is_empty()) {
                return Err(format!("{id}: a priority with no asks"));
            }
        }
        for (name, q) in &self.queues {
            let (used, am_used) = queue_used.get(name.as_str()).copied().unwrap_or_default();
            if q.used != used || q.am_used != am_used {
                return Err(format!(
                    "queue {name}: used {}/{} but its containers sum to {used}/{am_used}",
                    q.used, q.am_used
                ));
            }
            if let Some(app) = q.apps.values().find(|app| self.apps.get(app).is_none_or(|a| a.queue != *name)) {
                return Err(format!("queue {name} lists {app}, which is not in it"));
            }
        }
        Ok(())
    }
}

/// An AMRMClient-style container request: `count` containers of `resources` at `priority`,
/// preferably on `nodes` or `racks`, anywhere if `relax_locality`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRequest {
    pub priority: Priority,
    pub resources: Resources,
    pub nodes: Vec<NodeId>,
    pub racks: Vec<String>,
    pub relax_locality: bool,
    pub count: u32,
}

/// Builds the request table for a set of container requests, as YARN's `AMRMClientImpl`
/// does: each named node (relaxable), each named rack (relaxable), the racks of the named
/// nodes (relaxable only with the request), and `Any` (relaxable only with the request), each
/// row counting every request that names it. Rows for a (priority, location) add up; the
/// size of a priority is its first request's. `rack_of` names a node's rack, if known.
pub fn expand(requests: &[ContainerRequest], rack_of: impl Fn(&str) -> Option<String>) -> Vec<Ask> {
    let mut rows: BTreeMap<(Priority, Location), Ask> = BTreeMap::new();
    for r in requests {
        let mut add = |location: Location, relax: bool| {
            let row = rows.entry((r.priority, location.clone())).or_insert(Ask {
                priority: r.priority,
                location,
                resources: r.resources,
                count: 0,
                relax_locality: relax,
            });
            row.count += r.count;
            row.relax_locality &= relax;
        };
        let nodes: BTreeSet<&NodeId> = r.nodes.iter().collect();
        let racks: BTreeSet<&String> = r.racks.iter().collect();
        for n in &nodes {
            add(Location::Node((*n).clone()), true);
        }
        for rack in &racks {
            add(Location::Rack((*rack).clone()), true);
        }
        let inferred: BTreeSet<String> =
            nodes.iter().filter_map(|n| rack_of(n)).filter(|rack| !racks.contains(rack)).collect();
        for rack in inferred {
            add(Location::Rack(rack), r.relax_locality);
        }
        add(Location::Any, r.relax_locality);
    }
    rows.into_values().collect()
}
