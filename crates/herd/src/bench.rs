//! `herd bench keeper`: a load generator for any ZooKeeper-protocol server.
//!
//! Each client opens its own session and keeps `depth` requests in flight (ZooKeeper answers a
//! connection's requests in order, so latency is measured per request against a FIFO of send
//! times). It runs a warm-up, then measures for a fixed time, and prints one JSON line so that
//! `cargo xtask bench` can put several servers side by side.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use keeper_proto::*;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Clone, Copy, ValueEnum, Debug)]
pub enum BenchOp {
    /// create of a new persistent node (a logged, fsynced write)
    Create,
    /// setData on the client's own node (a logged, fsynced write)
    Set,
    /// getData of the client's own node (a read)
    Get,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:2181")]
    server: SocketAddr,
    #[arg(long, value_enum, default_value = "create")]
    op: BenchOp,
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
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<ClientResult> {
    let s = TcpStream::connect(a.server).await.with_context(|| format!("connecting to {}", a.server))?;
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
    let mut next = |xid: i32| -> Vec<u8> {
        seq += 1;
        match a.op {
            BenchOp::Create => {
                let c = CreateRequest {
                    path: format!("{own}-{seq}"),
                    data: Some(data.clone()),
                    acl: acl.clone(),
                    flags: 0,
                };
                frame(xid, OpCode::Create, &c.to_bytes())
            }
            BenchOp::Set => {
                let s = SetDataRequest { path: own.clone(), data: Some(data.clone()), version: -1 };
                frame(xid, OpCode::SetData, &s.to_bytes())
            }
            BenchOp::Get => {
                frame(xid, OpCode::GetData, &PathWatchRequest { path: own.clone(), watch: false }.to_bytes())
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
    let a = Arc::new(a);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> =
        (0..a.clients).map(|i| tokio::spawn(client(i, a.clone(), measuring.clone(), stop.clone()))).collect();
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
        "{{\"label\":\"{}\",\"op\":\"{:?}\",\"clients\":{},\"depth\":{},\"ops\":{},\"seconds\":{:.3},\"ops_per_s\":{:.1},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        a.label,
        a.op,
        a.clients,
        a.depth,
        ops,
        elapsed,
        ops as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0)
    );
    Ok(())
}
