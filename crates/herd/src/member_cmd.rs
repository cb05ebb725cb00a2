//! `herd member`: membership views from the command line.
//!
//! `join` is a member daemon: it holds one membership (group, id) for as long as it runs,
//! rejoining as a new incarnation whenever it is expelled, and — with `--listen` — takes
//! fenced orders from the current master of `--master-group`, or — with `--heartbeat-to` —
//! sends heartbeats carrying its incarnation to a master that checks them against its view.
//! It is what `herd bench detect` kills, pauses and partitions, and a way to register any
//! service in a group (as HBase's start scripts register region servers). `watch` prints a
//! group's views as they change; `list` prints the current one.
//!
//! Line protocols (one line each way, ASCII):
//! - orders, to a `join --listen` daemon: `ORDER <master epoch hex> <text>` -> `OK` |
//!   `STALE_EPOCH got=<hex> current=<hex>` | `NOT_MEMBER` (expelled, not acting) | `BAD <why>`;
//! - heartbeats, from a `join --heartbeat-to` daemon: `HEARTBEAT <group> <id> <incarnation hex>`
//!   -> `OK` | `STALE_EPOCH got=<hex> current=<hex>`.

use anyhow::Context;
use clap::{Args, Subcommand};
use member::client::ClientConfig;
use member::fence::Fence;
use member::membership::{HerdOptions, Membership, MembershipConfig, Status};
use member::report::Reporter;
use member::view::{View, Watcher};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Session timeout of a member daemon: long enough that a 2 s pause (a GC, a slow disk) never
/// expels it, short enough that a hang or partition is noticed in seconds, not ZooKeeper's
/// usual 10-30 s.
pub const MEMBER_SESSION_TIMEOUT_MS: u64 = 4000;
/// How often a member pings when idle: a hang is then noticed within the timeout plus this.
pub const PING_INTERVAL: Duration = Duration::from_millis(100);
/// Socket-close fast expiry grace of a member daemon.
pub const FAST_EXPIRY_GRACE: Duration = Duration::from_millis(1000);
/// How long a new incarnation waits for an older one of the same id to end (a session that
/// no supervisor ended lasts its timeout).
const JOIN_WAIT_MAX: Duration = Duration::from_secs(120);
/// Longest order or heartbeat line.
const LINE_MAX: usize = 1024;

#[derive(Args)]
pub struct MemberArgs {
    #[command(subcommand)]
    cmd: MemberCmd,
}

#[derive(Subcommand)]
enum MemberCmd {
    /// Run a member daemon that holds (group, id) until stopped.
    Join(JoinArgs),
    /// Print a group's views as they change (one line per view).
    Watch(GroupArgs),
    /// Print a group's current view and exit.
    List(GroupArgs),
}

#[derive(Args)]
struct KeeperArg {
    /// The keeper connect string (host:port,...).
    #[arg(long, env = "HERD_KEEPER", default_value = "127.0.0.1:2181")]
    keeper: String,
}

#[derive(Args)]
struct GroupArgs {
    #[command(flatten)]
    keeper: KeeperArg,
    /// The group (a znode name under /herd/members).
    #[arg(long)]
    group: String,
}

#[derive(Args)]
struct JoinArgs {
    #[command(flatten)]
    keeper: KeeperArg,
    #[arg(long)]
    group: String,
    /// This member's id in the group.
    #[arg(long)]
    id: String,
    /// The member znode's data (what watchers see, e.g. addresses).
    #[arg(long, default_value = "")]
    payload: String,
    /// Session timeout asked for: silence longer than this (a hang, a partition) expels.
    #[arg(long, default_value_t = MEMBER_SESSION_TIMEOUT_MS)]
    session_timeout_ms: u64,
    /// Socket-close fast expiry grace; 0 turns it off.
    #[arg(long, default_value_t = FAST_EXPIRY_GRACE.as_millis() as u64)]
    fast_expiry_ms: u64,
    /// The keeper is Apache ZooKeeper: send none of herd's session options (fast expiry, the
    /// declared heartbeat), which it would refuse.
    #[arg(long)]
    plain_zookeeper: bool,
    /// Serve fenced orders on this address (port 0: any; printed on the ready line).
    #[arg(long)]
    listen: Option<String>,
    /// The group whose newest member is this daemon's master (for fencing orders).
    #[arg(long, default_value = "master")]
    master_group: String,
    /// Send a heartbeat with this daemon's incarnation to this master address every 100 ms.
    #[arg(long)]
    heartbeat_to: Option<String>,
}

fn client_config(k: &KeeperArg, timeout: Duration) -> anyhow::Result<ClientConfig> {
    let mut cfg = ClientConfig::parse(&k.keeper).with_context(|| format!("--keeper {:?}", k.keeper))?;
    cfg.session_timeout = timeout;
    cfg.ping_interval = Some(PING_INTERVAL);
    Ok(cfg)
}

/// The membership every herd daemon holds: its role as group, its cluster id, the default
/// timeout, frequent pings and socket-close fast expiry.
pub fn daemon_membership(hosts: &str, group: &str, id: &str, payload: String) -> anyhow::Result<MembershipConfig> {
    let k = KeeperArg { keeper: hosts.to_owned() };
    Ok(MembershipConfig {
        client: client_config(&k, Duration::from_millis(MEMBER_SESSION_TIMEOUT_MS))?,
        group: group.to_owned(),
        id: id.to_owned(),
        payload: payload.into_bytes(),
        herd_options: Some(HerdOptions { fast_expiry: Some(FAST_EXPIRY_GRACE), declare_heartbeat: true }),
        join_wait_max: JOIN_WAIT_MAX,
    })
}

pub async fn run(a: MemberArgs, reporter: Option<Reporter>) -> anyhow::Result<()> {
    match a.cmd {
        MemberCmd::Join(j) => join(j, reporter).await,
        MemberCmd::Watch(g) => {
            let mut w = Watcher::new(client_config(&g.keeper, Duration::from_secs(10))?, &g.group)?;
            loop {
                let v = w.next().await;
                println!("{}", show_view(&v));
            }
        }
        MemberCmd::List(g) => {
            let mut w = Watcher::new(client_config(&g.keeper, Duration::from_secs(10))?, &g.group)?;
            let v = tokio::time::timeout(Duration::from_secs(30), w.next()).await.context("no keeper answered")?;
            println!("{}", show_view(&v));
            Ok(())
        }
    }
}

/// `epoch=0x1f members=a@0x12,b@0x1e`
pub fn show_view(v: &View) -> String {
    let members: Vec<String> = v.members.iter().map(|(id, m)| format!("{id}@0x{:x}", m.incarnation)).collect();
    format!("group={} epoch=0x{:x} members={}", v.group, v.epoch, members.join(","))
}

async fn join(a: JoinArgs, reporter: Option<Reporter>) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(a.session_timeout_ms);
    let cfg = MembershipConfig {
        client: client_config(&a.keeper, timeout)?,
        group: a.group.clone(),
        id: a.id.clone(),
        payload: a.payload.clone().into_bytes(),
        herd_options: (!a.plain_zookeeper).then_some(HerdOptions {
            fast_expiry: (a.fast_expiry_ms > 0).then(|| Duration::from_millis(a.fast_expiry_ms)),
            declare_heartbeat: true,
        }),
        join_wait_max: JOIN_WAIT_MAX,
    };
    let membership = Membership::start(cfg, reporter)?;
    let mut status = membership.status();
    let listener = match &a.listen {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("binding --listen {addr}"))?),
        None => None,
    };
    let listen_addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let fence = Arc::new(Fence::new());
    if let Some(l) = listener {
        tokio::spawn(serve_orders(l, fence.clone(), membership.status()));
        let mut w = Watcher::new(client_config(&a.keeper, Duration::from_secs(10))?, &a.master_group)?;
        let f = fence.clone();
        tokio::spawn(async move {
            loop {
                if let Some(e) = w.next().await.newest_incarnation() {
                    f.advance(e);
                }
            }
        });
    }
    if let Some(to) = a.heartbeat_to.clone() {
        tokio::spawn(heartbeats(to, a.group.clone(), a.id.clone(), membership.status()));
    }

    let stop = crate::stop_signal();
    tokio::pin!(stop);
    let mut ready = false;
    loop {
        let now = status.borrow_and_update().clone();
        match now {
            Status::Member { incarnation, .. } => {
                if !ready {
                    ready = true;
                    let listen = listen_addr.map(|a| format!(" listen={a}")).unwrap_or_default();
                    println!("herd member ready group={} id={} incarnation=0x{incarnation:x}{listen}", a.group, a.id);
                } else {
                    println!("herd member rejoined incarnation=0x{incarnation:x}");
                }
            }
            Status::Expelled { incarnation, why } => {
                println!("herd member expelled incarnation=0x{incarnation:x} why={why:?}");
            }
            Status::Joining | Status::Left => {}
        }
        tokio::select! {
            _ = &mut stop => break,
            changed = status.changed() => if changed.is_err() { break },
        }
    }
    // A clean stop: the session is closed, so the member leaves the view at once.
    membership.leave().await;
    Ok(())
}

/// Answers orders: admitted only while this daemon is a member and the order's epoch is not
/// older than the newest master epoch seen.
async fn serve_orders(l: TcpListener, fence: Arc<Fence>, status: tokio::sync::watch::Receiver<Status>) {
    let conns = Arc::new(tokio::sync::Semaphore::new(64));
    loop {
        let Ok((s, _)) = l.accept().await else { continue };
        let Ok(permit) = conns.clone().try_acquire_owned() else { continue };
        let (fence, status) = (fence.clone(), status.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).take(1 << 20).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let answer = order_answer(&line, &fence, &status.borrow());
                if w.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

fn order_answer(line: &str, fence: &Fence, status: &Status) -> String {
    if line.len() > LINE_MAX {
        return "BAD line too long".into();
    }
    let mut words = line.splitn(3, ' ');
    let (Some("ORDER"), Some(epoch)) = (words.next(), words.next()) else {
        return "BAD expected ORDER <epoch hex> <text>".into();
    };
    let Ok(epoch) = i64::from_str_radix(epoch.trim_start_matches("0x"), 16) else {
        return "BAD epoch is not hex".into();
    };
    if !matches!(status, Status::Member { .. }) {
        return "NOT_MEMBER".into();
    }
    match fence.admit(epoch) {
        Ok(()) => "OK".into(),
        Err(e) => format!("STALE_EPOCH got=0x{:x} current=0x{:x}", e.got, e.current),
    }
}

/// Sends `HEARTBEAT group id incarnation` every 100 ms while a member; prints refusals.
async fn heartbeats(to: String, group: String, id: String, status: tokio::sync::watch::Receiver<Status>) {
    let mut conn: Option<(BufReader<tokio::net::tcp::OwnedReadHalf>, tokio::net::tcp::OwnedWriteHalf)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        // An expelled daemon stops acting: no heartbeat until it has rejoined.
        let Status::Member { incarnation, .. } = *status.borrow() else { continue };
        if conn.is_none() {
            match TcpStream::connect(&to).await {
                Ok(s) => {
                    let (r, w) = s.into_split();
                    conn = Some((BufReader::new(r), w));
                }
                Err(_) => continue,
            }
        }
        let Some((r, w)) = conn.as_mut() else { continue };
        let line = format!("HEARTBEAT {group} {id} {incarnation:x}\n");
        let mut answer = String::new();
        let ok = w.write_all(line.as_bytes()).await.is_ok()
            && matches!(tokio::time::timeout(Duration::from_secs(2), r.read_line(&mut answer)).await, Ok(Ok(n)) if n > 0);
        if !ok {
            conn = None;
            continue;
        }
        if answer.trim() != "OK" {
            println!("herd member heartbeat refused incarnation=0x{incarnation:x} answer={:?}", answer.trim());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_fenced_and_refused_while_expelled() {
        let f = Fence::new();
        let member = Status::Member { incarnation: 1, session: 2 };
        assert_eq!(order_answer("ORDER 10 go", &f, &member), "OK");
        assert_eq!(order_answer("ORDER 0x9 go", &f, &member), "STALE_EPOCH got=0x9 current=0x10");
        assert_eq!(order_answer("ORDER 11 go", &f, &Status::Joining), "NOT_MEMBER");
        assert!(order_answer("HELLO", &f, &member).starts_with("BAD"));
        assert!(order_answer("ORDER zz go", &f, &member).starts_with("BAD"));
    }
}
