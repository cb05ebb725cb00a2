//! The block scanner (HDFS's `VolumeScanner`): reads every finalized replica against its
//! checksums, so that a replica rotting on disk is found without a client reading it.
//!
//! A pass walks the finalized replicas by id, reading each in 256 KiB pieces through the
//! store's checked reader (the same checks as [`crate::Store::verify`], piece by piece so the
//! reading can be paced), at most `bytes_per_sec` on average over the pass. A replica found
//! corrupt (a chunk that fails its CRC, a data or meta file of the wrong size, an I/O error
//! reading it) is queued once for `ReportBadBlocks`; it is not deleted, since the NameNode
//! deletes it once a good copy exists elsewhere. Passes start at most every `period`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_proto::ExtendedBlock;
use tokio_util::sync::CancellationToken;

use super::{sleep_unless_stopped, Shared};
use crate::{ReplicaInfo, ReplicaState, Store, StoreError};

pub(crate) struct Scanner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) period: Duration,
    pub(crate) bytes_per_sec: u64,
}

impl Scanner {
    pub(crate) fn run(self) {
        let stop = self.shared.stop.clone();
        loop {
            let started = Instant::now();
            let shared = self.shared.clone();
            let pass = scan_pass(&self.shared.store, self.bytes_per_sec, &stop, |b| {
                tracing::warn!("block scanner: replica of block {} (gs {}) is corrupt", b.id, b.gs);
                shared.report_bad(b);
            });
            if pass.stopped {
                return;
            }
            tracing::debug!(
                "block scanner: pass of {} replicas, {} bytes, {} corrupt, in {:?}",
                pass.replicas,
                pass.bytes,
                pass.corrupt,
                started.elapsed()
            );
            let next = started + self.period;
            if !sleep_unless_stopped(&stop, next.saturating_duration_since(Instant::now())) {
                return;
            }
        }
    }
}

/// Paces reading to `bytes_per_sec` on average since it was made: after each piece, how long
/// to pause so that the bytes read are not ahead of the rate. Time comes from the caller.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_sec: u64,
    start: Instant,
    bytes: u64,
}

impl Throttle {
    pub fn new(bytes_per_sec: u64, now: Instant) -> Throttle {
        Throttle { bytes_per_sec: bytes_per_sec.max(1), start: now, bytes: 0 }
    }

    /// `n` more bytes were read at `now`: the pause owed.
    pub fn after(&mut self, n: u64, now: Instant) -> Duration {
        self.bytes = self.bytes.saturating_add(n);
        let due_nanos = u128::from(self.bytes) * 1_000_000_000 / u128::from(self.bytes_per_sec);
        let due = Duration::from_nanos(u64::try_from(due_nanos).unwrap_or(u64::MAX));
        due.saturating_sub(now.saturating_duration_since(self.start))
    }
}

#[derive(Debug, Default)]
pub(crate) struct PassOutcome {
    pub(crate) replicas: usize,
    pub(crate) bytes: u64,
    pub(crate) corrupt: usize,
    pub(crate) stopped: bool,
}

/// One pass over the finalized replicas of `store`; `on_corrupt` is called once per corrupt
/// replica found.
pub(crate) fn scan_pass(
    store: &Store,
    bytes_per_sec: u64,
    stop: &CancellationToken,
    mut on_corrupt: impl FnMut(ExtendedBlock),
) -> PassOutcome {
    let mut out = PassOutcome::default();
    let mut throttle = Throttle::new(bytes_per_sec, Instant::now());
    for r in store.report() {
        if stop.is_cancelled() {
            out.stopped = true;
            return out;
        }
        if r.state != ReplicaState::Finalized {
            continue;
        }
        match check(store, r, &mut throttle, stop, &mut out.bytes) {
            Verdict::Good | Verdict::Gone => {}
            Verdict::Corrupt(b) => {
                out.corrupt += 1;
                on_corrupt(b);
            }
            Verdict::Stopped => {
                out.stopped = true;
                return out;
            }
        }
        out.replicas += 1;
    }
    out
}

enum Verdict {
    Good,
    Corrupt(ExtendedBlock),
    /// Deleted, or no longer the finalized replica it was, since the pass began.
    Gone,
    Stopped,
}

fn check(store: &Store, r: ReplicaInfo, throttle: &mut Throttle, stop: &CancellationToken, bytes: &mut u64) -> Verdict {
    let block = ExtendedBlock { id: r.id, gs: r.gs, len: r.length };
    let judge = |e: StoreError| match e {
        StoreError::Corrupt { offset, .. } => {
            tracing::debug!("block {}: corrupt at offset {offset}", r.id);
            Verdict::Corrupt(block)
        }
        StoreError::NoSuchReplica { .. } => Verdict::Gone,
        other => {
            // An I/O error reading a replica that is still there is a bad replica too (HDFS
            // reports it the same way); one that moved or went meanwhile is not.
            match store.get(r.id) {
                Some(now) if now.gs == r.gs && now.state == ReplicaState::Finalized => {
                    tracing::warn!("block {}: {other}", r.id);
                    Verdict::Corrupt(block)
                }
                _ => Verdict::Gone,
            }
        }
    };
    let reader = match store.open_reader(r.id, r.gs) {
        Ok(reader) => reader,
        Err(e) => return judge(e),
    };
    let length = match reader.length() {
        Ok(l) => l,
        Err(e) => return judge(e),
    };
    for piece in reader.chunks(0, length) {
        let piece = match piece {
            Ok(p) => p,
            Err(e) => return judge(e),
        };
        let n = piece.data.len() as u64;
        *bytes += n;
        let pause = throttle.after(n, Instant::now());
        if !sleep_unless_stopped(stop, pause) {
            return Verdict::Stopped;
        }
    }
    if stop.is_cancelled() {
        return Verdict::Stopped;
    }
    match reader.check_sizes() {
        Ok(()) => Verdict::Good,
        Err(e) => judge(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::os::unix::fs::FileExt;

    #[test]
    fn throttle_keeps_the_average_rate() {
        let t0 = Instant::now();
        let mut t = Throttle::new(1000, t0);
        // 500 bytes at once: half a second owed.
        assert_eq!(t.after(500, t0), Duration::from_millis(500));
        // Half a second later 500 more: another half second owed from then.
        assert_eq!(t.after(500, t0 + Duration::from_millis(500)), Duration::from_millis(500));
        // Slow reading owes nothing.
        assert_eq!(t.after(100, t0 + Duration::from_secs(5)), Duration::ZERO);
        // A huge rate never pauses; a zero rate is taken as 1 byte/s, not a division by zero.
        assert_eq!(Throttle::new(u64::MAX, t0).after(64 << 10, t0), Duration::ZERO);
        assert_eq!(Throttle::new(0, t0).after(2, t0), Duration::from_secs(2));
    }

    fn write(store: &Store, id: u64, len: usize) {
        let mut w = store.create_rbw(id, 1).expect("create");
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + id as usize) as u8).collect();
        w.write_packet(0, &data).expect("write");
        w.finalize().expect("finalize");
    }

    #[test]
    fn a_pass_reports_each_corrupt_replica_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&[dir.path().to_path_buf()]).expect("open");
        write(&store, 1, 3000);
        write(&store, 2, 300_000); // more than one 256 KiB piece
        write(&store, 3, 100);
        let _rbw = store.create_rbw(4, 1).expect("an rbw replica is not scanned");
        let stop = CancellationToken::new();

        let mut found = Vec::new();
        let pass = scan_pass(&store, u64::MAX, &stop, |b| found.push(b));
        assert!(found.is_empty(), "{found:?}");
        assert_eq!((pass.replicas, pass.bytes, pass.stopped), (3, 303_100, false));

        // Flip one byte in the middle of block 2's data file.
        let path = dir.path().join("current/finalized/blk_2");
        let f = OpenOptions::new().read(true).write(true).open(&path).expect("data file");
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, 66_000).expect("read");
        f.write_all_at(&[b[0] ^ 0x10], 66_000).expect("write");
        drop(f);

        for _ in 0..2 {
            let mut found = Vec::new();
            let pass = scan_pass(&store, u64::MAX, &stop, |b| found.push(b));
            assert_eq!(found, vec![ExtendedBlock { id: 2, gs: 1, len: 300_000 }], "once per pass");
            assert_eq!(pass.corrupt, 1);
        }
        assert!(store.get(2).is_some(), "the scanner reports, it does not delete");

        stop.cancel();
        let pass = scan_pass(&store, 1, &stop, |_| panic!("a stopped pass reports nothing"));
        assert!(pass.stopped);
    }
}
