//! Hosts in network namespaces that the caller makes itself, joined by a bridge in a "switch"
//! namespace, with partitions made by nft drop rules inside each host. Nothing here touches
//! the machine's own network namespace: every interface, address and rule lives in namespaces
//! created here and deleted on drop.
//!
//! A tool for fault tests and `herd bench detect`, which run as root with iproute2 and
//! nftables: a command that fails panics with the command and its stderr, because a half-made
//! network is worse than none (the drop of what was made still runs).

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Whether this machine lets us make namespaces and has nft (root, iproute2, nftables).
pub fn available() -> bool {
    let probe = format!("herdprobe{}", std::process::id());
    let ok = Command::new("ip").args(["netns", "add", &probe]).status().map(|s| s.success()).unwrap_or(false);
    if ok {
        let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    }
    ok && Command::new("nft").arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

pub struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
}

/// A switched network of hosts: 10.<k>.0.<i+1>/24 in namespace `<prefix>h<i>`.
pub struct Net {
    switch: String,
    pub hosts: Vec<Host>,
}

impl Net {
    pub fn new(n: usize) -> Net {
        // A /24 per Net from the pid and a counter keeps parallel tests apart.
        let k = (std::process::id() + NEXT.fetch_add(1, Ordering::Relaxed)) % 250 + 1;
        let prefix = format!("herd{}x{}", std::process::id() % 100_000, NEXT.load(Ordering::Relaxed));
        let switch = format!("{prefix}sw");
        sh(&["ip", "netns", "add", &switch]);
        let mut net = Net { switch: switch.clone(), hosts: Vec::new() };
        sh(&["ip", "-n", &switch, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &switch, "link", "set", "br0", "up"]);
        for i in 0..n {
            let ns = format!("{prefix}h{i}");
            sh(&["ip", "netns", "add", &ns]);
            net.hosts.push(Host { ns: ns.clone(), ip: Ipv4Addr::new(10, k as u8, 0, i as u8 + 1) });
            let (a, b) = (format!("v{i}a"), format!("v{i}b"));
            sh(&["ip", "-n", &switch, "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &ns]);
            sh(&["ip", "-n", &switch, "link", "set", &a, "master", "br0"]);
            sh(&["ip", "-n", &switch, "link", "set", &a, "up"]);
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", &ns, "addr", "add", &format!("10.{k}.0.{}/24", i + 1), "dev", &b]);
            sh(&["ip", "-n", &ns, "link", "set", &b, "up"]);
            sh(&["ip", "netns", "exec", &ns, "nft", "add", "table", "inet", "herd"]);
            for (chain, hook) in [("in", "input"), ("out", "output")] {
                let spec = format!("{{ type filter hook {hook} priority 0; }}");
                sh(&["ip", "netns", "exec", &ns, "nft", "add", "chain", "inet", "herd", chain, &spec]);
            }
        }
        net
    }

    /// A command that runs inside host `i`'s namespace.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i].ns, program]);
        c
    }

    /// Drops every packet from host `from` to host `to` (one way: `to` can still reach `from`).
    pub fn cut_one_way(&self, from: usize, to: usize) {
        let ip = self.hosts[to].ip.to_string();
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.hosts[from].ns,
            "nft",
            "add",
            "rule",
            "inet",
            "herd",
            "out",
            "ip",
            "daddr",
            &ip,
            "drop",
        ]);
        let ip = self.hosts[from].ip.to_string();
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.hosts[to].ns,
            "nft",
            "add",
            "rule",
            "inet",
            "herd",
            "in",
            "ip",
            "saddr",
            &ip,
            "drop",
        ]);
    }

    /// Splits the hosts into two sides that cannot reach each other at all.
    pub fn partition(&self, side: &[usize]) {
        for a in side {
            for b in (0..self.hosts.len()).filter(|b| !side.contains(b)) {
                self.cut_one_way(*a, b);
                self.cut_one_way(b, *a);
            }
        }
    }

    /// Removes every drop rule.
    pub fn heal(&self) {
        for h in &self.hosts {
            for chain in ["in", "out"] {
                sh(&["ip", "netns", "exec", &h.ns, "nft", "flush", "chain", "inet", "herd", chain]);
            }
        }
    }
}

impl Net {
    /// Moves the calling thread into host `i`'s namespace until the guard drops, so that the
    /// sockets it opens meanwhile are that host's: a test can then be a client on the net
    /// itself. A network namespace is per thread; the rest of the process stays where it is.
    pub fn enter(&self, i: usize) -> Entered {
        enter_ns(&self.hosts[i].ns)
    }
}

/// The calling thread is in another network namespace until this drops.
pub struct Entered {
    home: std::fs::File,
}

/// Moves the calling thread into the named namespace (one that `ip netns` lists).
pub fn enter_ns(ns: &str) -> Entered {
    use std::os::fd::AsRawFd;
    let home = std::fs::File::open("/proc/thread-self/ns/net").expect("open this thread's network namespace");
    let target =
        std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap_or_else(|e| panic!("open namespace {ns}: {e}"));
    // SAFETY: setns on a descriptor we own; it changes only this thread's network namespace.
    let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns into {ns}: {}", std::io::Error::last_os_error());
    Entered { home }
}

impl Drop for Entered {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as in `enter_ns`; back to the namespace the thread came from.
        let rc = unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 && !std::thread::panicking() {
            panic!("setns back home: {}", std::io::Error::last_os_error());
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &h.ns]).status();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.switch]).status();
    }
}
