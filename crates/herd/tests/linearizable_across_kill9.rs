//! Guarantee: versioned compare-and-set and reads on the keeper are linearizable, also across
//! `kill -9` and restart of the keeper, and no acknowledged write is lost.
//!
//! Threads run reads and setData-with-expected-version on a few keys while the keeper is killed
//! and restarted on the same port; each key's history (linearizability is local, so keys are
//! checked one by one) goes to stateright's linearizability tester. An op cut off by the kill has
//! no return: the tester may place it anywhere after its invocation, or drop it. The thread then
//! continues under a new id, as the tester requires one op in flight per thread. The seed is
//! printed; set HERD_TEST_SEED to replay a schedule.

mod common;

use common::KeeperProc;
use keeper_proto::client::{ClientError, SyncClient};
use keeper_proto::ErrorCode;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEYS: usize = 3;
const THREADS: usize = 4;
const OPS_PER_THREAD: usize = 150;
const KILLS: usize = 3;

use common::register::{Op, Ret, VersionedRegister};

type Tester = LinearizabilityTester<u64, VersionedRegister>;

fn seed() -> u64 {
    std::env::var("HERD_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

fn connect(addr: std::net::SocketAddr) -> SyncClient {
    let t0 = Instant::now();
    loop {
        match SyncClient::connect(addr, 10_000, None) {
            Ok(c) => return c,
            Err(e) => {
                assert!(t0.elapsed() < Duration::from_secs(60), "keeper never came back: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn cas_and_reads_are_linearizable_across_kill9() {
    let seed = seed();
    eprintln!("HERD_TEST_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let mut k = KeeperProc::start(dir.path(), &[]);
    let addr = k.addr;
    {
        let mut c = connect(addr);
        for key in 0..KEYS {
            c.create(&format!("/lin{key}"), b"0", 0).unwrap();
        }
    }
    let testers: Arc<Vec<Mutex<Tester>>> =
        Arc::new((0..KEYS).map(|_| Mutex::new(Tester::new(VersionedRegister::default()))).collect());
    let next_thread_id = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for t in 0..THREADS {
        let (testers, next_thread_id) = (testers.clone(), next_thread_id.clone());
        workers.push(std::thread::spawn(move || {
            let mut rng = seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut rand = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut tid = next_thread_id.fetch_add(1, Ordering::Relaxed);
            let mut c = connect(addr);
            let mut seen = [0i32; KEYS];
            for i in 0..OPS_PER_THREAD {
                let key = (rand() % KEYS as u64) as usize;
                let path = format!("/lin{key}");
                let op = if rand() % 2 == 0 {
                    Op::Read
                } else {
                    Op::Cas { expect: seen[key], value: ((t as u64) << 32) | i as u64 }
                };
                testers[key].lock().unwrap().on_invoke(tid, op.clone()).unwrap();
                let result = match &op {
                    Op::Read => c.get(&path, false).map(|(data, stat)| {
                        let value = String::from_utf8_lossy(&data).parse().expect("a number");
                        seen[key] = stat.version;
                        Ret::Read { value, version: stat.version }
                    }),
                    Op::Cas { expect, value } => match c.set(&path, value.to_string().as_bytes(), *expect) {
                        Ok(stat) => {
                            seen[key] = stat.version;
                            Ok(Ret::CasOk { version: stat.version })
                        }
                        Err(ClientError::Keeper(ErrorCode::BadVersion, _)) => Ok(Ret::BadVersion),
                        Err(e) => Err(e),
                    },
                };
                match result {
                    Ok(ret) => {
                        testers[key].lock().unwrap().on_return(tid, ret).unwrap();
                    }
                    Err(ClientError::Io(_)) => {
                        // Cut off by a kill: the op stays in flight forever; go on as a new thread.
                        tid = next_thread_id.fetch_add(1, Ordering::Relaxed);
                        c = connect(addr);
                    }
                    Err(e) => panic!("seed {seed}: unexpected error {e}"),
                }
            }
        }));
    }
    for n in 0..KILLS {
        std::thread::sleep(Duration::from_millis(100 + (seed >> (n * 8)) % 300));
        k.kill9();
        k = KeeperProc::start_at(dir.path(), &addr.to_string(), &[]);
    }
    for w in workers {
        w.join().expect("worker panicked");
    }
    // A final read per key by a fresh thread: acknowledged writes must all be in it.
    let mut c = connect(addr);
    let tid = next_thread_id.fetch_add(1, Ordering::Relaxed);
    for (key, tester) in testers.iter().enumerate() {
        let (data, stat) = c.get(&format!("/lin{key}"), false).unwrap();
        let value = String::from_utf8_lossy(&data).parse().unwrap();
        let mut tester = tester.lock().unwrap();
        tester.on_invoke(tid, Op::Read).unwrap();
        tester.on_return(tid, Ret::Read { value, version: stat.version }).unwrap();
        assert!(tester.is_consistent(), "seed {seed}: history of /lin{key} is not linearizable: {tester:?}");
    }
    drop(k);
}
