//! Merging sorted segments, grouping by key, and holding fetched segments under a memory budget.
//!
//! [`Merger`] is a streaming k-way merge over [`RecordSource`]s: it holds one record per
//! source, so its memory is bounded by the sources' count, not their size. Equal keys come out
//! in source order (the heap orders by key, then by the source's position), so given segments
//! in map order the merge is deterministic, and a key's values keep each map's emit order.
//! [`for_each_group`] turns the merge into (key, values) groups for a reducer or a combiner.
//! [`ShuffleSegments`] collects a reducer's fetched segments, checked on arrival, keeping them
//! in memory up to a budget and writing the rest to local files.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::api::{Emit, Reducer, Values};
use crate::counters::{Counters, TaskCounter};
use crate::error::{Error, Result};
pub use crate::spill::{IndexEntry, RecordSource, SegmentReader};

/// A streaming k-way merge by key, ties broken by source order.
pub struct Merger {
    sources: Vec<Box<dyn RecordSource>>,
    /// Each source's next key, with its position; `Reverse` makes the max-heap a min-heap.
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
    /// Each source's next value (parked while its key is in the heap).
    values: Vec<Vec<u8>>,
    key: Vec<u8>,
    value: Vec<u8>,
    /// Key buffers to reuse, so the steady state allocates nothing.
    spare_keys: Vec<Vec<u8>>,
    /// The source the current record came from: it is refilled on the next advance.
    current: Option<usize>,
    started: bool,
}

impl Merger {
    pub fn new(sources: Vec<Box<dyn RecordSource>>) -> Merger {
        let n = sources.len();
        Merger {
            sources,
            heap: BinaryHeap::with_capacity(n),
            values: vec![Vec::new(); n],
            key: Vec::new(),
            value: Vec::new(),
            spare_keys: Vec::new(),
            current: None,
            started: false,
        }
    }

    /// Moves to the next record; false at the end. Then [`Merger::key`] and
    /// [`Merger::value`] are that record.
    pub fn advance(&mut self) -> Result<bool> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                self.refill(i)?;
            }
        } else if let Some(i) = self.current.take() {
            self.refill(i)?;
        }
        match self.heap.pop() {
            None => Ok(false),
            Some(Reverse((key, i))) => {
                let old = std::mem::replace(&mut self.key, key);
                self.spare_keys.push(old);
                std::mem::swap(&mut self.value, &mut self.values[i]);
                self.current = Some(i);
                Ok(true)
            }
        }
    }

    /// The next record, or `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<(&[u8], &[u8])>> {
        Ok(if self.advance()? { Some((&self.key, &self.value)) } else { None })
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }

    fn refill(&mut self, i: usize) -> Result<()> {
        let mut key = self.spare_keys.pop().unwrap_or_default();
        if self.sources[i].next_record(&mut key, &mut self.values[i])? {
            self.heap.push(Reverse((key, i)));
        } else {
            self.spare_keys.push(key);
        }
        Ok(())
    }
}

impl RecordSource for Merger {
    fn next_record(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<bool> {
        if !self.advance()? {
            return Ok(false);
        }
        key.clear();
        key.extend_from_slice(&self.key);
        value.clear();
        value.extend_from_slice(&self.value);
        Ok(true)
    }
}

/// The values of the current group, read straight from the merge.
struct GroupValues<'m> {
    merger: &'m mut Merger,
    key: &'m [u8],
    state: GroupState,
    records: u64,
    error: Option<Error>,
}

#[derive(PartialEq)]
enum GroupState {
    /// The merger is on the group's first record, not yet handed out.
    First,
    Within,
    /// The group is over; `true` when the merger is on the next group's first record.
    Done(bool),
}

impl Values for GroupValues<'_> {
    fn next_value(&mut self) -> Option<&[u8]> {
        match self.state {
            GroupState::First => self.state = GroupState::Within,
            GroupState::Within => match self.merger.advance() {
                Ok(true) if self.merger.key() == self.key => {}
                Ok(more) => {
                    self.state = GroupState::Done(more);
                    return None;
                }
                Err(e) => {
                    self.error = Some(e);
                    self.state = GroupState::Done(false);
                    return None;
                }
            },
            GroupState::Done(_) => return None,
        }
        self.records += 1;
        Some(self.merger.value())
    }
}

/// Calls `f` once per key of the merge, in key order, with that key's values. Values `f` does
/// not read are skipped. Returns (groups, records).
pub fn for_each_group(
    merger: &mut Merger,
    mut f: impl FnMut(&[u8], &mut dyn Values) -> Result<()>,
) -> Result<(u64, u64)> {
    let (mut groups, mut records) = (0u64, 0u64);
    let mut more = merger.advance()?;
    let mut key = Vec::new();
    while more {
        key.clear();
        key.extend_from_slice(merger.key());
        let mut values =
            GroupValues { merger: &mut *merger, key: &key, state: GroupState::First, records: 0, error: None };
        f(&key, &mut values)?;
        while values.next_value().is_some() {}
        if let Some(e) = values.error {
            return Err(e);
        }
        groups += 1;
        records += values.records;
        more = values.state == GroupState::Done(true);
    }
    Ok((groups, records))
}

/// Runs `reducer` over the merge, counting Hadoop's reduce counters.
pub fn reduce(
    merger: &mut Merger,
    reducer: &mut dyn Reducer,
    out: &mut dyn Emit,
    counters: &mut Counters,
) -> Result<()> {
    let mut output_records = 0u64;
    let mut counted = |key: &[u8], value: &[u8]| {
        output_records += 1;
        out.emit(key, value)
    };
    let (groups, records) = for_each_group(merger, |key, values| reducer.reduce(key, values, &mut counted))?;
    counters.add_task(TaskCounter::ReduceInputGroups, groups);
    counters.add_task(TaskCounter::ReduceInputRecords, records);
    counters.add_task(TaskCounter::ReduceOutputRecords, output_records);
    Ok(())
}

/// A reducer's input segments: fetched ones (bytes with their CRC32C, checked on arrival and
/// kept in memory up to `memory_budget` bytes, written to `dir` past it) and local files.
/// Each has an ordinal (the map's index) that fixes its place in the merge, whatever order the
/// fetches finish in.
pub struct ShuffleSegments {
    dir: PathBuf,
    memory_budget: usize,
    in_memory: usize,
    segments: Vec<(usize, Held)>,
    shuffle_bytes: u64,
}

enum Held {
    Memory(SegmentReader),
    File(PathBuf, IndexEntry),
}

impl ShuffleSegments {
    pub fn new(dir: &Path, memory_budget: usize) -> ShuffleSegments {
        ShuffleSegments { dir: dir.to_path_buf(), memory_budget, in_memory: 0, segments: Vec::new(), shuffle_bytes: 0 }
    }

    /// A fetched segment. Its CRC32C is checked here, so a bad fetch is known (and can be
    /// retried or reported) before the merge starts.
    pub fn add_fetched(&mut self, ordinal: usize, bytes: Vec<u8>, crc32c: u32) -> Result<()> {
        let actual = crc32c::crc32c(&bytes);
        if actual != crc32c {
            return Err(Error::ChecksumMismatch {
                segment: format!("fetched segment {ordinal}"),
                expected: crc32c,
                actual,
            });
        }
        self.shuffle_bytes += bytes.len() as u64;
        if self.in_memory + bytes.len() <= self.memory_budget {
            self.in_memory += bytes.len();
            let name = format!("fetched segment {ordinal}");
            let reader = SegmentReader::from_bytes(name, bytes, crc32c)?;
            self.segments.push((ordinal, Held::Memory(reader)));
            return Ok(());
        }
        let path = self.dir.join(format!("fetched-{ordinal}.seg"));
        let file = File::create(&path).map_err(|e| Error::io_path("create", &path, e))?;
        let mut out = BufWriter::new(file);
        out.write_all(&bytes).and_then(|()| out.flush()).map_err(|e| Error::io_path("write", &path, e))?;
        let entry = IndexEntry { offset: 0, raw_length: bytes.len() as u64, crc32c };
        self.segments.push((ordinal, Held::File(path, entry)));
        Ok(())
    }

    /// A segment already in a local file (a map output on this node, or a test's).
    pub fn add_file(&mut self, ordinal: usize, path: &Path, entry: IndexEntry) {
        self.segments.push((ordinal, Held::File(path.to_path_buf(), entry)));
    }

    /// Bytes fetched and held now in memory.
    pub fn in_memory(&self) -> usize {
        self.in_memory
    }

    /// The merge of every segment, in ordinal order for ties.
    pub fn into_merger(mut self, counters: &mut Counters) -> Result<Merger> {
        counters.add_task(TaskCounter::ReduceShuffleBytes, self.shuffle_bytes);
        self.segments.sort_by_key(|(ordinal, _)| *ordinal);
        let mut sources: Vec<Box<dyn RecordSource>> = Vec::with_capacity(self.segments.len());
        for (_, held) in self.segments {
            sources.push(Box::new(match held {
                Held::Memory(reader) => reader,
                Held::File(path, entry) => SegmentReader::open_file(&path, entry)?,
            }));
        }
        Ok(Merger::new(sources))
    }
}

#[cfg(test)]
#[path = "merge_test.rs"]
mod tests;
