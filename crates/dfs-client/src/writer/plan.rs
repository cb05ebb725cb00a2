//! The writer's decisions as pure functions: where packets are cut, which node an ack or a
//! broken connection blames, and what to do when a pipeline breaks. `writer.rs` and
//! `stream.rs` carry them out.

/// Cuts a byte stream into packets within blocks.
///
/// A packet holds at most `packet_len` bytes and never crosses a block boundary; the packet
/// that fills a block ends it (the block's empty `last` packet, sent after it, makes each node
/// fsync and finalize).
#[derive(Debug, Clone)]
pub(crate) struct Packetizer {
    pub(crate) block_size: u64,
    pub(crate) packet_len: usize,
    /// Block offset where the buffered bytes start.
    pub(crate) offset: u64,
    pub(crate) buf: Vec<u8>,
}

/// A packet to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cut {
    pub(crate) offset: u64,
    pub(crate) data: Vec<u8>,
    /// Fsync on every node before acknowledging (an hflush, or the file's last data).
    pub(crate) sync: bool,
    /// The block is full after this packet.
    pub(crate) ends_block: bool,
}

impl Packetizer {
    pub(crate) fn new(block_size: u64, packet_len: usize, offset: u64) -> Packetizer {
        assert!(block_size > 0 && packet_len > 0);
        assert!(offset < block_size, "a block starts below its size");
        Packetizer { block_size, packet_len, offset, buf: Vec::with_capacity(packet_len) }
    }

    /// The most bytes the current packet can take.
    fn capacity(&self) -> usize {
        let left = self.block_size - self.offset;
        usize::try_from(left).map_or(self.packet_len, |l| l.min(self.packet_len))
    }

    /// Takes bytes from the front of `data`; returns how many, and the packet they completed.
    pub(crate) fn push(&mut self, data: &[u8]) -> (usize, Option<Cut>) {
        let room = self.capacity() - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        let full = self.buf.len() == self.capacity();
        (n, full.then(|| self.cut(false)))
    }

    /// The buffered bytes as a packet even if not full (close, hflush); `None` if empty.
    pub(crate) fn flush(&mut self, sync: bool) -> Option<Cut> {
        (!self.buf.is_empty()).then(|| self.cut(sync))
    }

    fn cut(&mut self, sync: bool) -> Cut {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.packet_len));
        let offset = self.offset;
        self.offset += data.len() as u64;
        let ends_block = self.offset == self.block_size;
        if ends_block {
            self.offset = 0;
        }
        Cut { offset, data, sync, ends_block }
    }

    /// The current block ended early (after a pipeline recovery): what is buffered goes to the
    /// start of the next block.
    pub(crate) fn restart_block(&mut self) {
        self.offset = 0;
    }
}

/// How a pipeline broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Break {
    /// An ack named the node at this pipeline position as the first that failed.
    Ack { index: usize },
    /// The connection to the first node broke (or it broke the protocol).
    Connection,
}

/// The first failed node of an ack: its first non-success status, or, if it carries fewer
/// statuses than the pipeline has nodes, the first node it says nothing about.
pub(crate) fn ack_failure(statuses: &[dfs_proto::Status], pipeline_len: usize) -> Option<usize> {
    statuses.iter().position(|s| !s.is_success()).or((statuses.len() < pipeline_len).then_some(statuses.len()))
}

/// The pipeline position a break blames.
pub(crate) fn blamed(brk: Break, pipeline_len: usize) -> usize {
    match brk {
        Break::Ack { index } => index.min(pipeline_len.saturating_sub(1)),
        Break::Connection => 0,
    }
}

/// What to do about a broken pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Go on with these pipeline positions (in order) under a new generation stamp: resend what
    /// was not acknowledged, then end the block there.
    Recover {
        bad: usize,
        survivors: Vec<usize>,
    },
    /// Nothing of the block was acknowledged: give it up and write its packets to a new block
    /// on a pipeline without `bad`.
    Reallocate {
        bad: usize,
    },
    Fail {
        bad: usize,
        reason: String,
    },
}

/// The decision (pure): `acked` is the block's acknowledged length, `recoveries` how many this
/// block went through already; `may_abandon` is false for a block that holds data from before
/// this writer (an append's reopened block), which must never be given up.
pub(crate) fn decide(pipeline_len: usize, brk: Break, acked: u64, recoveries: usize, limits: Limits) -> Recovery {
    let bad = blamed(brk, pipeline_len);
    if recoveries >= limits.max_recoveries {
        return Recovery::Fail { bad, reason: format!("the pipeline broke {} times", recoveries + 1) };
    }
    if acked == 0 && limits.may_abandon {
        return Recovery::Reallocate { bad };
    }
    let survivors: Vec<usize> = (0..pipeline_len).filter(|&i| i != bad).collect();
    if survivors.is_empty() {
        return Recovery::Fail {
            bad,
            reason: format!("the only DataNode of the pipeline failed with {acked} bytes of the block acknowledged"),
        };
    }
    Recovery::Recover { bad, survivors }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_recoveries: usize,
    pub(crate) may_abandon: bool,
}

/// The node an op response's message names as the first bad link (`bad link <addr>: ...`),
/// as a pipeline position; the first node if it names none in the pipeline.
pub(crate) fn bad_link(message: &str, pipeline_addrs: &[&str]) -> usize {
    message
        .strip_prefix("bad link ")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(host, rest)| {
            // An address is host:port; the message is `bad link host:port: why`.
            let port: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            let addr = format!("{host}:{port}");
            pipeline_addrs.iter().position(|a| *a == addr)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::Status;

    fn feed(p: &mut Packetizer, mut data: &[u8]) -> Vec<(u64, usize, bool, bool)> {
        let mut cuts = Vec::new();
        while !data.is_empty() {
            let (n, cut) = p.push(data);
            data = &data[n..];
            if let Some(c) = cut {
                cuts.push((c.offset, c.data.len(), c.sync, c.ends_block));
            }
        }
        cuts
    }

    #[test]
    fn packets_are_cut_at_packet_size_and_block_ends() {
        // Block 10 000, packets 4096: 4096, 4096, 1808 (ends the block; its `last` packet
        // syncs), then the next block.
        let mut p = Packetizer::new(10_000, 4096, 0);
        let cuts = feed(&mut p, &[7u8; 12_000]);
        assert_eq!(cuts, vec![(0, 4096, false, false), (4096, 4096, false, false), (8192, 1808, false, true)]);
        // 2000 bytes wait in the buffer for more or for close.
        let last = p.flush(true).expect("buffered bytes");
        assert_eq!((last.offset, last.data.len(), last.sync, last.ends_block), (0, 2000, true, false));
        assert!(p.flush(true).is_none());
    }

    #[test]
    fn small_writes_fill_one_packet_and_bytes_stay_in_order() {
        let mut p = Packetizer::new(1 << 20, 100, 0);
        let mut all = Vec::new();
        let mut out = Vec::new();
        for i in 0..57u8 {
            let chunk = vec![i; 7];
            all.extend_from_slice(&chunk);
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let (n, cut) = p.push(rest);
                rest = &rest[n..];
                out.extend(cut.map(|c| c.data).unwrap_or_default());
            }
        }
        out.extend(p.flush(false).map(|c| c.data).unwrap_or_default());
        assert_eq!(out, all);
    }

    #[test]
    fn an_appended_block_continues_at_its_length() {
        let mut p = Packetizer::new(1000, 300, 900);
        let cuts = feed(&mut p, &[1u8; 400]);
        assert_eq!(cuts, vec![(900, 100, false, true), (0, 300, false, false)]);
    }

    #[test]
    fn a_recovery_sends_the_buffer_to_the_next_block() {
        let mut p = Packetizer::new(1000, 300, 0);
        assert_eq!(feed(&mut p, &[1u8; 350]).len(), 1);
        p.restart_block();
        let c = p.flush(false).expect("50 bytes");
        assert_eq!((c.offset, c.data.len()), (0, 50));
    }

    #[test]
    fn acks_blame_the_first_failed_node() {
        use Status::*;
        assert_eq!(ack_failure(&[Success, Success, Success], 3), None);
        assert_eq!(ack_failure(&[Success, Error], 3), Some(1));
        assert_eq!(ack_failure(&[Success, Success, Error], 3), Some(2));
        assert_eq!(ack_failure(&[ErrorChecksum], 3), Some(0));
        // A short ack with no failure says nothing of the later nodes: the first missing one.
        assert_eq!(ack_failure(&[Success], 3), Some(1));
        assert_eq!(blamed(Break::Connection, 3), 0);
        assert_eq!(blamed(Break::Ack { index: 7 }, 3), 2);
    }

    #[test]
    fn recovery_decisions() {
        let lim = Limits { max_recoveries: 3, may_abandon: true };
        // A dead middle node with data acknowledged: go on with the other two, in order.
        assert_eq!(
            decide(3, Break::Ack { index: 1 }, 4096, 0, lim),
            Recovery::Recover { bad: 1, survivors: vec![0, 2] }
        );
        // The first node's connection broke: it is the one dropped.
        assert_eq!(decide(3, Break::Connection, 1, 0, lim), Recovery::Recover { bad: 0, survivors: vec![1, 2] });
        // Nothing acknowledged: a fresh block at full replication instead.
        assert_eq!(decide(3, Break::Ack { index: 2 }, 0, 0, lim), Recovery::Reallocate { bad: 2 });
        assert_eq!(decide(1, Break::Connection, 0, 0, lim), Recovery::Reallocate { bad: 0 });
        // ... unless the block holds older data (an append): recover it instead.
        let append = Limits { may_abandon: false, ..lim };
        assert_eq!(decide(2, Break::Connection, 0, 0, append), Recovery::Recover { bad: 0, survivors: vec![1] });
        // The only node failed with data acknowledged: nothing to recover from.
        assert!(matches!(decide(1, Break::Connection, 10, 0, lim), Recovery::Fail { bad: 0, .. }));
        // Bounded.
        assert!(matches!(decide(3, Break::Connection, 10, 3, lim), Recovery::Fail { .. }));
    }

    #[test]
    fn bad_links_name_a_pipeline_position() {
        let addrs = ["127.0.0.1:1000", "127.0.0.1:2000", "127.0.0.1:3000"];
        assert_eq!(bad_link("bad link 127.0.0.1:3000: connecting: refused", &addrs), 2);
        assert_eq!(bad_link("bad link 127.0.0.1:2000: Error: no space", &addrs), 1);
        assert_eq!(bad_link("block 5 (Create): already exists", &addrs), 0);
        assert_eq!(bad_link("bad link 10.0.0.9:1: x", &addrs), 0);
    }
}
