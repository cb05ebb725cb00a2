//! Lease renewal: one thread per client, running while at least one of its writers is open.
//!
//! Each open writer holds a [`LeaseGuard`]; the first guard starts the thread, the last one to
//! drop stops it and joins it. A generation number tells a thread that was asked to stop from
//! one started after it, so a writer opened while the old thread is winding down gets a thread
//! of its own instead of relying on one that is leaving.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dfs_proto::ClientRequest;

use crate::client::Inner;

pub(crate) struct LeaseRenewer {
    interval: Duration,
    /// std Mutex: a few integer updates per writer open and close.
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    open_writers: usize,
    generation: u64,
    thread: Option<JoinHandle<()>>,
}

/// Held by each open writer.
pub(crate) struct LeaseGuard {
    inner: Arc<Inner>,
}

impl LeaseRenewer {
    pub(crate) fn new(interval: Duration) -> LeaseRenewer {
        LeaseRenewer {
            interval,
            state: Mutex::new(State { open_writers: 0, generation: 0, thread: None }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more open writer, starting the thread if none runs.
    pub(crate) fn acquire(inner: &Arc<Inner>) -> LeaseGuard {
        let r = &inner.lease;
        let mut s = r.lock();
        s.open_writers += 1;
        if s.thread.is_none() {
            s.generation += 1;
            let (gen, worker) = (s.generation, inner.clone());
            let spawned = std::thread::Builder::new().name("dfs-lease".into()).spawn(move || run(&worker, gen));
            match spawned {
                Ok(t) => s.thread = Some(t),
                Err(e) => tracing::warn!("cannot start the lease renewer: {e}; leases of open files may expire"),
            }
        }
        LeaseGuard { inner: inner.clone() }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let r = &self.inner.lease;
        let thread = {
            let mut s = r.lock();
            s.open_writers -= 1;
            if s.open_writers > 0 {
                return;
            }
            s.generation += 1;
            s.thread.take()
        };
        r.wake.notify_all();
        if let Some(t) = thread {
            // Ends at once unless it is in a renew call, which the RPC retry policy bounds.
            let _ = t.join();
        }
    }
}

fn run(inner: &Inner, gen: u64) {
    let r = &inner.lease;
    loop {
        let deadline = Instant::now() + r.interval;
        {
            let mut s = r.lock();
            loop {
                if s.generation != gen {
                    return;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                s = r.wake.wait_timeout(s, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
            }
        }
        let req = ClientRequest::RenewLease { client_name: inner.client_name.clone() };
        if let Err(e) = inner.call_done("renewLease", req) {
            tracing::warn!(client = %inner.client_name, "renewing the lease: {e}");
        }
    }
}
