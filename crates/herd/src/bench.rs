//! `herd bench keeper`: a load generator for any ZooKeeper-protocol server.
//!
//! Each client opens its own session and keeps `depth` requests in flight (ZooKeeper answers a
//! connection's requests in order, so latency is measured per request against a FIFO of send
//! times). Sessions are spread over the targets; each draws its ops from a weighted mix with a
//! seeded generator. It runs a warm-up, then measures for a fixed time, and prints one JSON line so that
//! `cargo xtask bench` can put several servers side by side.

use anyhow::{bail, Context};
use clap::Args;
use keeper_proto::*;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One kind of request in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchOp {
    /// create of a new persistent node (a logged, fsynced write)
    Create,
    /// setData on the session's own node (a logged, fsynced write)
    Set,
    /// getData of the session's own node (a read)
    Get,
    /// exists on the session's own node (a read)
    Exists,
    /// delete of a node this session created (a write; a create when it has none left)
    Delete,
}

impl BenchOp {
    fn parse(name: &str) -> anyhow::Result<BenchOp> {
        Ok(match name {
            "create" => BenchOp::Create,
            "set" => BenchOp::Set,
            "get" => BenchOp::Get,
            "exists" => BenchOp::Exists,
            "delete" => BenchOp::Delete,
            _ => bail!("unknown op {name:?} (create, set, get, exists, delete)"),
        })
    }
}

/// `create=1,get=8`: ops with integer weights.
fn parse_mix(s: &str) -> anyhow::Result<Vec<(BenchOp, u32)>> {
    let mut mix = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (name, w) = part.split_once('=').unwrap_or((part, "1"));
        let w: u32 = w.parse().with_context(|| format!("weight in {part:?}"))?;
        mix.push((BenchOp::parse(name.trim())?, w));
    }
    if mix.iter().map(|(_, w)| *w as u64).sum::<u64>() == 0 {
        bail!("--mix {s:?} has no op with a positive weight");
    }
    Ok(mix)
}

#[derive(Args)]
pub struct BenchArgs {
    /// Servers, HOST:PORT[,HOST:PORT...]; sessions are spread over them round-robin.
    #[arg(long, alias = "server", default_value = "127.0.0.1:2181", value_delimiter = ',')]
    target: Vec<SocketAddr>,
    /// Op mix with weights, e.g. `create=1,set=1,get=8,exists=1,delete=1`.
    #[arg(long, default_value = "create")]
    mix: String,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Requests in flight per session.
    #[arg(long, default_value_t = 16)]
    depth: usize,
    /// Bytes of data per create/set.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Label for the JSON line.
    #[arg(long, default_value = "server")]
    label: String,
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> anyhow::Result<Vec<u8>> {
    let n = r.read_u32().await? as usize;
    if n > 16 << 20 {
        bail!("reply frame of {n} bytes");
    }
    let mut b = vec![0u8; n];
    r.read_exact(&mut b).await?;
    Ok(b)
}

fn frame(xid: i32, op: OpCode, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::framed();
    RequestHeader { xid, op: op.code() }.encode(&mut w);
    w.buf.extend_from_slice(body);
    w.into_frame()
}

struct ClientResult {
    ops: u64,
    latencies_us: Vec<u32>,
}

async fn client(
    id: usize,
    a: Arc<BenchArgs>,
    mix: Arc<Vec<(BenchOp, u32)>>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<ClientResult> {
    let server = a.target[id % a.target.len()];
    let s = TcpStream::connect(server).await.with_context(|| format!("connecting to {server}"))?;
    s.set_nodelay(true)?;
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::with_capacity(1 << 16, rd);
    let mut w = Writer::framed();
    ConnectRequest { timeout_ms: 30_000, passwd: vec![0; 16], ..Default::default() }.encode(&mut w);
    wr.write_all(&w.into_frame()).await?;
    let resp = ConnectResponse::from_bytes(&read_frame(&mut rd).await?)?;
    if resp.timeout_ms <= 0 {
        bail!("session refused");
    }
    let acl = vec![Acl { perms: Perms::ALL, id: Id { scheme: "world".into(), id: "anyone".into() } }];
    let data = vec![b'x'; a.size];
    let own = format!("/bench-{}-{id}", std::process::id());
    // The node that set and get work on.
    let c = CreateRequest { path: own.clone(), data: Some(data.clone()), acl: acl.clone(), flags: 0 };
    wr.write_all(&frame(1, OpCode::Create, &c.to_bytes())).await?;
    let _ = read_frame(&mut rd).await?;
    let mut seq: u64 = 0;
    let total: u64 = mix.iter().map(|(_, w)| *w as u64).sum();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15 ^ (id as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    // Nodes this session created and has not deleted, oldest first.
    let mut mine: VecDeque<String> = VecDeque::new();
    let mut next = |xid: i32| -> Vec<u8> {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut pick = rng % total;
        let mut op = mix[0].0;
        for (o, w) in mix.iter() {
            if pick < *w as u64 {
                op = *o;
                break;
            }
            pick -= *w as u64;
        }
        if op == BenchOp::Delete && mine.is_empty() {
            op = BenchOp::Create;
        }
        match op {
            BenchOp::Create => {
                seq += 1;
                let path = format!("{own}-{seq}");
                mine.push_back(path.clone());
                let c = CreateRequest { path, data: Some(data.clone()), acl: acl.clone(), flags: 0 };
                frame(xid, OpCode::Create, &c.to_bytes())
            }
            BenchOp::Delete => {
                let path = mine.pop_front().unwrap_or_default();
                frame(xid, OpCode::Delete, &DeleteRequest { path, version: -1 }.to_bytes())
            }
            BenchOp::Set => {
                let s = SetDataRequest { path: own.clone(), data: Some(data.clone()), version: -1 };
                frame(xid, OpCode::SetData, &s.to_bytes())
            }
            BenchOp::Get => {
                frame(xid, OpCode::GetData, &PathWatchRequest { path: own.clone(), watch: false }.to_bytes())
            }
            BenchOp::Exists => {
                frame(xid, OpCode::Exists, &PathWatchRequest { path: own.clone(), watch: false }.to_bytes())
            }
        }
    };
    let mut inflight: VecDeque<(i32, Instant, bool)> = VecDeque::new();
    let mut xid = 10;
    let mut result = ClientResult { ops: 0, latencies_us: Vec::new() };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping {
            let mut burst = Vec::new();
            while inflight.len() < a.depth {
                xid += 1;
                burst.extend(next(xid));
                inflight.push_back((xid, Instant::now(), measuring.load(Ordering::Relaxed)));
            }
            if !burst.is_empty() {
                wr.write_all(&burst).await?;
            }
        }
        if inflight.is_empty() {
            break;
        }
        let f = read_frame(&mut rd).await?;
        let mut r = Reader::new(&f);
        let h = ReplyHeader::decode(&mut r)?;
        if h.xid < 0 {
            continue;
        }
        let (sent_xid, at, measured) = inflight.pop_front().context("reply with nothing in flight")?;
        if h.xid != sent_xid {
            bail!("reply {} out of order (expected {sent_xid})", h.xid);
        }
        if h.err != 0 {
            bail!("server answered error {} to xid {}", h.err, h.xid);
        }
        if measured && !stopping {
            result.ops += 1;
            result.latencies_us.push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
    }
    let _ = wr.write_all(&frame(xid + 1, OpCode::CloseSession, &[])).await;
    Ok(result)
}

pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    let mix = Arc::new(parse_mix(&a.mix)?);
    if a.target.is_empty() {
        bail!("--target names no server");
    }
    let a = Arc::new(a);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..a.clients)
        .map(|i| tokio::spawn(client(i, a.clone(), mix.clone(), measuring.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(a.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let mut ops = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let r = t.await.context("bench client panicked")??;
        ops += r.ops;
        lat.extend(r.latencies_us);
    }
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "{{\"label\":\"{}\",\"mix\":\"{}\",\"clients\":{},\"depth\":{},\"ops\":{},\"seconds\":{:.3},\"ops_per_s\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        a.label,
        a.mix,
        a.clients,
        a.depth,
        ops,
        elapsed,
        ops as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        lat.last().copied().unwrap_or(0)
    );
    Ok(())
}
