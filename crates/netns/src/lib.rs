//! Hosts in network namespaces that the caller makes itself, joined by a bridge in a "switch"
//! namespace, with partitions made by nft drop rules inside each host. Nothing here touches
//! the machine's own network namespace: every interface, address and rule lives in namespaces
//! created here and deleted on drop.
//!
//! A tool for fault tests, `herd bench detect` and `herd up --netns`, which run as root with
//! iproute2 and nftables. [`Net::new`] (tests, benches) panics on a failed command with the
//! command and its stderr, because a half-made network is worse than none (the drop of what
//! was made still runs); [`Net::named`] (a daemon's network) returns the error instead. The
//! free functions ([`cut_one_way`], [`flush`], [`list`], [`delete`]) work on namespaces by
//! name, so a process other than the one that made a net can partition and heal it.
//!
//! Every host has a table `inet herd` with chains `in` (hook input) and `out` (hook output);
//! a cut is a drop rule in each.

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs a command; an error names the command and says what it wrote to stderr.
fn run(args: &[&str]) -> Result<Output, String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(out)
}

/// Whether this machine lets us make namespaces and has nft (root, iproute2, nftables).
pub fn available() -> bool {
    why_unavailable().is_none()
}

/// Why namespaces cannot be made here (not root, no iproute2, no nftables), or None.
pub fn why_unavailable() -> Option<String> {
    let probe = format!("herdprobe{}", std::process::id());
    if let Err(e) = run(&["ip", "netns", "add", &probe]) {
        return Some(format!("cannot make a network namespace (needs root and iproute2): {e}"));
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    match Command::new("nft").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("nft --version failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Some(format!("no nft (nftables) here: {e}")),
    }
}

pub struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
}

/// A switched network of hosts: a bridge `br0` in the switch namespace, and a veth from it to
/// each host, whose address is on one /24. Dropped, it deletes every namespace it made.
pub struct Net {
    switch: String,
    pub hosts: Vec<Host>,
}

impl Net {
    /// `n` hosts 10.<k>.0.<i+1>/24 in namespaces `<prefix>h<i>`, names unique to this process.
    pub fn new(n: usize) -> Net {
        // A /24 per Net from the pid and a counter keeps parallel tests apart.
        let k = (std::process::id() + NEXT.fetch_add(1, Ordering::Relaxed)) % 250 + 1;
        let prefix = format!("herd{}x{}", std::process::id() % 100_000, NEXT.load(Ordering::Relaxed));
        let hosts: Vec<(String, Ipv4Addr)> =
            (0..n).map(|i| (format!("{prefix}h{i}"), Ipv4Addr::new(10, k as u8, 0, i as u8 + 1))).collect();
        Net::named(&format!("{prefix}sw"), &hosts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Hosts with the given namespace names and addresses (all on one /24), joined by a switch
    /// namespace named `switch`. Every name must be free; on an error, what was made is
    /// deleted again.
    pub fn named(switch: &str, hosts: &[(String, Ipv4Addr)]) -> Result<Net, String> {
        run(&["ip", "netns", "add", switch])?;
        let mut net = Net { switch: switch.to_owned(), hosts: Vec::new() };
        run(&["ip", "-n", switch, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", switch, "link", "set", "br0", "up"])?;
        for (i, (ns, ip)) in hosts.iter().enumerate() {
            run(&["ip", "netns", "add", ns])?;
            net.hosts.push(Host { ns: ns.clone(), ip: *ip });
            // Interface names are per namespace: `v<i>a` in the switch, `v<i>b` in the host.
            let (a, b) = (format!("v{i}a"), format!("v{i}b"));
            run(&["ip", "-n", switch, "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", ns])?;
            run(&["ip", "-n", switch, "link", "set", &a, "master", "br0"])?;
            run(&["ip", "-n", switch, "link", "set", &a, "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            run(&["ip", "-n", ns, "addr", "add", &format!("{ip}/24"), "dev", &b])?;
            run(&["ip", "-n", ns, "link", "set", &b, "up"])?;
            run(&["ip", "netns", "exec", ns, "nft", "add", "table", "inet", "herd"])?;
            for (chain, hook) in [("in", "input"), ("out", "output")] {
                let spec = format!("{{ type filter hook {hook} priority 0; }}");
                run(&["ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "herd", chain, &spec])?;
            }
        }
        Ok(net)
    }

    /// The switch namespace's name.
    pub fn switch(&self) -> &str {
        &self.switch
    }

    /// A command that runs inside host `i`'s namespace.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i].ns, program]);
        c
    }

    /// Drops every packet from host `from` to host `to` (one way: `to` can still reach `from`).
    pub fn cut_one_way(&self, from: usize, to: usize) {
        let (f, t) = (&self.hosts[from], &self.hosts[to]);
        cut_one_way(&f.ns, f.ip, &t.ns, t.ip).unwrap_or_else(|e| panic!("{e}"));
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
            flush(&h.ns).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Drops every packet the host in namespace `from` (address `from_ip`) sends to `to_ip`, in
/// both namespaces: an `out` rule in `from` and an `in` rule in `to`, so that the cut holds
/// whichever end the packet is seen at. `to` can still reach `from`.
pub fn cut_one_way(from: &str, from_ip: Ipv4Addr, to: &str, to_ip: Ipv4Addr) -> Result<(), String> {
    let to_ip = to_ip.to_string();
    run(&["ip", "netns", "exec", from, "nft", "add", "rule", "inet", "herd", "out", "ip", "daddr", &to_ip, "drop"])?;
    let from_ip = from_ip.to_string();
    run(&["ip", "netns", "exec", to, "nft", "add", "rule", "inet", "herd", "in", "ip", "saddr", &from_ip, "drop"])?;
    Ok(())
}

/// Removes every drop rule of the host in namespace `ns`.
pub fn flush(ns: &str) -> Result<(), String> {
    for chain in ["in", "out"] {
        run(&["ip", "netns", "exec", ns, "nft", "flush", "chain", "inet", "herd", chain])?;
    }
    Ok(())
}

/// The names of every namespace `ip netns` knows.
pub fn list() -> Result<Vec<String>, String> {
    let out = run(&["ip", "netns", "list"])?;
    // Each line is `NAME` or `NAME (id: N)`.
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect())
}

/// The pids of the processes in namespace `ns`.
pub fn pids(ns: &str) -> Result<Vec<u32>, String> {
    let out = run(&["ip", "netns", "pids", ns])?;
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect())
}

/// Deletes namespace `ns` (its name; the namespace itself lives on while a process is in it).
pub fn delete(ns: &str) -> Result<(), String> {
    run(&["ip", "netns", "del", ns]).map(|_| ())
}

/// Moves the calling thread into namespace `ns` for good. Threads it starts afterwards are
/// born there too: call it before any other thread exists to move the whole process.
pub fn join(ns: &str) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let target =
        std::fs::File::open(format!("/var/run/netns/{ns}")).map_err(|e| format!("open namespace {ns}: {e}"))?;
    // SAFETY: setns on a descriptor we own; it changes only this thread's network namespace.
    if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns into {ns}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
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
