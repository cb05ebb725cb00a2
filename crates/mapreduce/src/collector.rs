//! The map output collector (Hadoop's `MapOutputBuffer`): records go into a buffer under a
//! memory budget; a full buffer is sorted by (partition, key), combined, and spilled; at close
//! the spills are merged into one `file.out` and its `file.out.index`.
//!
//! - The budget counts key and value bytes plus [`RECORD_OVERHEAD`] per record; the buffer
//!   never holds more, except that a single record larger than the whole budget is taken
//!   alone and spilled at once (as Hadoop's `spillSingleRecord`).
//! - The sort is stable: equal keys keep their emit order within a spill, and spills merge in
//!   spill order, so a key's values reach the reducer in the order the map emitted them (a
//!   combiner aside, which may fold them).
//! - The combiner runs on every spill, once per (partition, key) group, and again in the final
//!   merge when there were at least `combine_min_spills` spills (Hadoop's
//!   `mapreduce.map.combine.minspills`, 3). It must emit only its group's key; any other key
//!   would break the spill's order and is refused.
//! - Spilling is synchronous (the map waits): simpler than Hadoop's background spill thread,
//!   at the cost of overlap between mapping and sorting.
//! - The final files appear by rename, the index last: an index present means its data file
//!   is complete.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::api::{Emit, Reducer, Values};
use crate::counters::{Counters, TaskCounter};
use crate::error::{Error, Result};
use crate::merge::{for_each_group, Merger};
use crate::partition::partition;
use crate::spill::{write_index, IndexEntry, RecordSource, SegmentReader, SegmentWriter, MAX_FIELD_LEN};

/// Bytes of budget each buffered record costs beyond its key and value: its entry in the
/// sort array.
pub const RECORD_OVERHEAD: usize = std::mem::size_of::<Meta>();

pub const DATA_FILE: &str = "file.out";
pub const INDEX_FILE: &str = "file.out.index";

#[derive(Clone, Debug)]
pub struct CollectorConfig {
    /// Reduce partitions (R); at least 1.
    pub partitions: u32,
    /// Bytes the buffer may hold (Hadoop's `mapreduce.task.io.sort.mb`).
    pub memory_budget: usize,
    /// The attempt's output directory: spills, then `file.out` and its index.
    pub dir: PathBuf,
    /// Spills from which the final merge runs the combiner again.
    pub combine_min_spills: usize,
    /// Set while the collector sorts, spills or merges (the task's framework work, which a
    /// progress time-out must count as progress: one sort of a full buffer can take seconds).
    pub busy: Option<Arc<AtomicBool>>,
}

/// Sets a busy flag for its lifetime, then puts back what was there.
struct Busy<'a> {
    flag: Option<&'a AtomicBool>,
    before: bool,
}

impl<'a> Busy<'a> {
    fn new(flag: &'a Option<Arc<AtomicBool>>) -> Busy<'a> {
        let flag = flag.as_deref();
        let before = flag.is_some_and(|f| f.swap(true, Ordering::Relaxed));
        Busy { flag, before }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.flag {
            f.store(self.before, Ordering::Relaxed);
        }
    }
}

impl CollectorConfig {
    pub fn new(dir: &Path, partitions: u32, memory_budget: usize) -> CollectorConfig {
        CollectorConfig { partitions, memory_budget, dir: dir.to_path_buf(), combine_min_spills: 3, busy: None }
    }
}

/// A buffered record: its partition and where its key and value are in the arena.
#[derive(Clone, Copy, Debug)]
struct Meta {
    partition: u32,
    key_len: u32,
    start: usize,
    value_len: u32,
}

impl Meta {
    fn key<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.start..self.start + self.key_len as usize]
    }

    fn value<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        let from = self.start + self.key_len as usize;
        &arena[from..from + self.value_len as usize]
    }
}

/// What a finished map leaves for the shuffle.
#[derive(Debug)]
pub struct MapOutput {
    pub data: PathBuf,
    pub index_path: PathBuf,
    pub index: Vec<IndexEntry>,
}

pub struct MapOutputCollector {
    config: CollectorConfig,
    combiner: Option<Box<dyn Reducer>>,
    /// Keys and values, back to back, in emit order.
    arena: Vec<u8>,
    metas: Vec<Meta>,
    spills: Vec<(PathBuf, Vec<IndexEntry>)>,
    counters: Counters,
}

impl MapOutputCollector {
    pub fn new(config: CollectorConfig, combiner: Option<Box<dyn Reducer>>) -> Self {
        assert!(config.partitions > 0, "a job has at least one partition");
        MapOutputCollector {
            config,
            combiner,
            arena: Vec::new(),
            metas: Vec::new(),
            spills: Vec::new(),
            counters: Counters::new(),
        }
    }

    /// Buffers one record, spilling first if it would not fit.
    pub fn collect(&mut self, partition: u32, key: &[u8], value: &[u8]) -> Result<()> {
        if partition >= self.config.partitions {
            return Err(Error::User(format!(
                "partition {partition} of a job with {} partitions",
                self.config.partitions
            )));
        }
        if key.len() as u64 > MAX_FIELD_LEN || value.len() as u64 > MAX_FIELD_LEN {
            return Err(Error::User("a map output key or value over 4 GiB".into()));
        }
        let size = key.len() + value.len() + RECORD_OVERHEAD;
        if !self.metas.is_empty() && self.used() + size > self.config.memory_budget {
            self.spill()?;
        }
        self.metas.push(Meta {
            partition,
            key_len: key.len() as u32,
            start: self.arena.len(),
            value_len: value.len() as u32,
        });
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(value);
        self.counters.add_task(TaskCounter::MapOutputRecords, 1);
        self.counters.add_task(TaskCounter::MapOutputBytes, (key.len() + value.len()) as u64);
        if self.used() > self.config.memory_budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Buffers one record in the partition its key hashes to.
    pub fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.collect(partition(key, self.config.partitions), key, value)
    }

    /// Bytes of budget in use.
    pub fn used(&self) -> usize {
        self.arena.len() + self.metas.len() * RECORD_OVERHEAD
    }

    pub fn spills(&self) -> usize {
        self.spills.len()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The task's counters, which the collector returns at close (map input records, a
    /// streaming command's counters, are added here by the task).
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// Spills what is buffered, merges every spill into `file.out` and writes its index.
    pub fn close(mut self) -> Result<(MapOutput, Counters)> {
        if !self.metas.is_empty() || self.spills.is_empty() {
            self.spill()?;
        }
        let dir = self.config.dir.clone();
        let data = dir.join(DATA_FILE);
        let index_path = dir.join(INDEX_FILE);
        let index = if self.spills.len() == 1 {
            let (path, index) = self.spills.pop().expect("one spill");
            rename(&path, &data)?;
            index
        } else {
            let index = self.merge_spills(&data)?;
            for (path, _) in &self.spills {
                std::fs::remove_file(path).map_err(|e| Error::io_path("remove", path, e))?;
            }
            index
        };
        let tmp = dir.join(format!("{INDEX_FILE}.tmp"));
        write_index(&tmp, &index)?;
        rename(&tmp, &index_path)?;
        let materialized = index.last().map_or(0, |e| e.offset + e.raw_length);
        self.counters.add_task(TaskCounter::MapOutputMaterializedBytes, materialized);
        Ok((MapOutput { data, index_path, index }, self.counters))
    }

    fn spill(&mut self) -> Result<()> {
        let busy = self.config.busy.clone();
        let _busy = Busy::new(&busy);
        let arena = &self.arena;
        // `sort_by` is a stable sort: equal (partition, key) keep their emit order.
        self.metas.sort_by(|a, b| (a.partition, a.key(arena)).cmp(&(b.partition, b.key(arena))));
        let path = self.config.dir.join(format!("spill{}.out", self.spills.len()));
        let file = File::create(&path).map_err(|e| Error::io_path("create", &path, e))?;
        let mut writer = SegmentWriter::new(BufWriter::with_capacity(64 << 10, file));
        let mut spilled = 0u64;
        let metas = &self.metas[..];
        let mut i = 0;
        for partition in 0..self.config.partitions {
            while i < metas.len() && metas[i].partition == partition {
                let key = metas[i].key(arena);
                let mut j = i + 1;
                while j < metas.len() && metas[j].partition == partition && metas[j].key(arena) == key {
                    j += 1;
                }
                let group = &metas[i..j];
                let mut append = |k: &[u8], v: &[u8]| -> Result<()> {
                    spilled += 1;
                    writer.append(k, v).map_err(|e| Error::io_path("write", &path, e))
                };
                match self.combiner.as_deref_mut() {
                    Some(combiner) => {
                        let mut values = BufferValues { arena, group };
                        combine(combiner, key, &mut values, &mut append, &mut self.counters)?;
                        self.counters.add_task(TaskCounter::CombineInputRecords, group.len() as u64);
                    }
                    None => {
                        for meta in group {
                            append(key, meta.value(arena))?;
                        }
                    }
                }
                i = j;
            }
            writer.end_segment();
        }
        assert_eq!(i, metas.len(), "every buffered record spilled");
        let (_, index) = writer.finish().map_err(|e| Error::io_path("flush", &path, e))?;
        self.counters.add_task(TaskCounter::SpilledRecords, spilled);
        self.spills.push((path, index));
        self.arena.clear();
        self.metas.clear();
        Ok(())
    }

    /// Merges the spills partition by partition into `data` (via a temporary name).
    fn merge_spills(&mut self, data: &Path) -> Result<Vec<IndexEntry>> {
        let busy = self.config.busy.clone();
        let _busy = Busy::new(&busy);
        let tmp = data.with_extension("out.tmp");
        let file = File::create(&tmp).map_err(|e| Error::io_path("create", &tmp, e))?;
        let mut writer = SegmentWriter::new(BufWriter::with_capacity(64 << 10, file));
        let combine_again = self.spills.len() >= self.config.combine_min_spills;
        let mut written = 0u64;
        for partition in 0..self.config.partitions as usize {
            let mut sources: Vec<Box<dyn RecordSource>> = Vec::with_capacity(self.spills.len());
            for (path, index) in &self.spills {
                let entry = *index.get(partition).ok_or_else(|| Error::Corrupt {
                    what: path.display().to_string(),
                    detail: format!("no segment for partition {partition}"),
                })?;
                sources.push(Box::new(SegmentReader::open_file(path, entry)?));
            }
            let mut merger = Merger::new(sources);
            let mut append = |k: &[u8], v: &[u8]| -> Result<()> {
                written += 1;
                writer.append(k, v).map_err(|e| Error::io_path("write", &tmp, e))
            };
            match self.combiner.as_deref_mut().filter(|_| combine_again) {
                Some(combiner) => {
                    let counters = &mut self.counters;
                    let (_, records) = for_each_group(&mut merger, |key, values| {
                        combine(combiner, key, values, &mut append, counters)
                    })?;
                    counters.add_task(TaskCounter::CombineInputRecords, records);
                }
                None => {
                    while let Some((k, v)) = merger.next_record()? {
                        append(k, v)?;
                    }
                }
            }
            writer.end_segment();
        }
        let (_, index) = writer.finish().map_err(|e| Error::io_path("flush", &tmp, e))?;
        self.counters.add_task(TaskCounter::SpilledRecords, written);
        rename(&tmp, data)?;
        Ok(index)
    }
}

/// Runs the combiner on one group, refusing output under any other key.
fn combine(
    combiner: &mut dyn Reducer,
    key: &[u8],
    values: &mut dyn Values,
    append: &mut dyn Emit,
    counters: &mut Counters,
) -> Result<()> {
    let mut emitted = 0u64;
    let mut checked = |k: &[u8], v: &[u8]| -> Result<()> {
        if k != key {
            return Err(Error::CombinerChangedKey {
                group: String::from_utf8_lossy(key).into_owned(),
                emitted: String::from_utf8_lossy(k).into_owned(),
            });
        }
        emitted += 1;
        append.emit(k, v)
    };
    combiner.reduce(key, values, &mut checked)?;
    counters.add_task(TaskCounter::CombineOutputRecords, emitted);
    Ok(())
}

/// The values of one group of the sorted buffer.
struct BufferValues<'a> {
    arena: &'a [u8],
    group: &'a [Meta],
}

impl Values for BufferValues<'_> {
    fn next_value(&mut self) -> Option<&[u8]> {
        let (first, rest) = self.group.split_first()?;
        self.group = rest;
        Some(first.value(self.arena))
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io(format!("rename {} to {}", from.display(), to.display()), e))
}

#[cfg(test)]
#[path = "collector_test.rs"]
mod tests;
