//! A map or reduce task's main loop, for built-in functions and for streaming commands: the
//! glue between a split's records, a mapper, the collector, the merge and a reducer.

use std::io::{Read, Seek};

use crate::api::{Emit, Mapper, Reducer};
use crate::collector::MapOutputCollector;
use crate::counters::{Counters, TaskCounter};
use crate::error::{Error, Result};
use crate::merge::{for_each_group, reduce, Merger};
use crate::split::LineRecordReader;
use crate::streaming::{self, StreamCommand, StreamOutcome};

/// Feeds every record of the split to `mapper`, its output to `collector`.
pub fn run_map<R: Read + Seek>(
    reader: &mut LineRecordReader<R>,
    mapper: &mut dyn Mapper,
    collector: &mut MapOutputCollector,
) -> Result<()> {
    let mut records = 0u64;
    while let Some((offset, line)) = reader.next_record()? {
        records += 1;
        let mut emit = |key: &[u8], value: &[u8]| collector.emit(key, value);
        mapper.map(offset, line, &mut emit)?;
    }
    collector.counters_mut().add_task(TaskCounter::MapInputRecords, records);
    Ok(())
}

/// Runs a streaming mapper over the split: each line to its stdin, each stdout record to
/// `collector`. The command's `reporter:counter:` counters join the collector's.
pub fn run_streaming_map<R: Read + Seek + Send>(
    command: &StreamCommand,
    mut reader: LineRecordReader<R>,
    collector: &mut MapOutputCollector,
) -> Result<StreamOutcome> {
    let mut records = 0u64;
    let feed = |out: &mut dyn std::io::Write| -> Result<()> {
        while let Some((_, line)) = reader.next_record()? {
            records += 1;
            streaming::write_map_input(out, line).map_err(|e| Error::io("write to the mapper's stdin", e))?;
        }
        Ok(())
    };
    let outcome = streaming::run(command, feed, &mut |key: &[u8], value: &[u8]| collector.emit(key, value))?;
    let counters = collector.counters_mut();
    counters.add_task(TaskCounter::MapInputRecords, records);
    counters.merge(&outcome.counters);
    Ok(outcome)
}

/// Runs a built-in reducer over the merge.
pub fn run_reduce(
    merger: &mut Merger,
    reducer: &mut dyn Reducer,
    out: &mut dyn Emit,
    counters: &mut Counters,
) -> Result<()> {
    reduce(merger, reducer, out, counters)
}

/// Runs a streaming reducer over the merge: `key\tvalue\n` for every value, grouped by key,
/// to its stdin; each stdout record to `out`.
pub fn run_streaming_reduce(
    command: &StreamCommand,
    mut merger: Merger,
    out: &mut dyn Emit,
    counters: &mut Counters,
) -> Result<StreamOutcome> {
    let mut input = (0u64, 0u64);
    let feed = |stdin: &mut dyn std::io::Write| -> Result<()> {
        input = for_each_group(&mut merger, |key, values| {
            while let Some(value) = values.next_value() {
                streaming::write_reduce_input(stdin, key, value)
                    .map_err(|e| Error::io("write to the reducer's stdin", e))?;
            }
            Ok(())
        })?;
        Ok(())
    };
    let mut output_records = 0u64;
    let outcome = streaming::run(command, feed, &mut |key: &[u8], value: &[u8]| {
        output_records += 1;
        out.emit(key, value)
    })?;
    counters.add_task(TaskCounter::ReduceInputGroups, input.0);
    counters.add_task(TaskCounter::ReduceInputRecords, input.1);
    counters.add_task(TaskCounter::ReduceOutputRecords, output_records);
    counters.merge(&outcome.counters);
    Ok(outcome)
}

/// Runs a streaming combiner over a finished map output (`dir/file.out` and its index): each
/// partition's records, in their sorted order, go through `command` (`key\tvalue` lines), and
/// its output records replace them in the same partition, sorted again. Hadoop runs a
/// combiner inside each spill; a command is a process, so herd runs it once per partition over
/// the merged output instead: the same records in, the same contract, one process per
/// partition instead of one per spill.
pub fn run_streaming_combiner(
    command: &StreamCommand,
    dir: &std::path::Path,
    partitions: u32,
    memory_budget: usize,
    counters: &mut Counters,
) -> Result<()> {
    use crate::collector::{CollectorConfig, DATA_FILE, INDEX_FILE};
    use crate::spill::{read_index, RecordSource, SegmentReader};
    let index = read_index(&dir.join(INDEX_FILE))?;
    let combined_dir = dir.join("combined");
    std::fs::create_dir_all(&combined_dir).map_err(|e| Error::io_path("create", &combined_dir, e))?;
    let mut out = MapOutputCollector::new(CollectorConfig::new(&combined_dir, partitions, memory_budget), None);
    let (mut records_in, mut records_out) = (0u64, 0u64);
    for (p, entry) in index.iter().enumerate() {
        if entry.raw_length == 0 {
            continue;
        }
        let mut segment = SegmentReader::open_file(&dir.join(DATA_FILE), *entry)?;
        let feed = |stdin: &mut dyn std::io::Write| -> Result<()> {
            let (mut k, mut v) = (Vec::new(), Vec::new());
            while segment.next_record(&mut k, &mut v)? {
                records_in += 1;
                streaming::write_reduce_input(stdin, &k, &v)
                    .map_err(|e| Error::io("write to the combiner's stdin", e))?;
            }
            Ok(())
        };
        let outcome = streaming::run(command, feed, &mut |key: &[u8], value: &[u8]| {
            records_out += 1;
            out.collect(p as u32, key, value)
        })?;
        counters.merge(&outcome.counters);
    }
    let (_, combined_counters) = out.close()?;
    for name in [DATA_FILE, INDEX_FILE] {
        let (from, to) = (combined_dir.join(name), dir.join(name));
        std::fs::rename(&from, &to).map_err(|e| Error::io_path("rename", &from, e))?;
    }
    let _ = std::fs::remove_dir_all(&combined_dir);
    counters.add_task(TaskCounter::CombineInputRecords, records_in);
    counters.add_task(TaskCounter::CombineOutputRecords, records_out);
    // The output's size is now the combined one.
    let materialized = combined_counters.task(TaskCounter::MapOutputMaterializedBytes);
    let before = counters.task(TaskCounter::MapOutputMaterializedBytes);
    counters.add(
        crate::counters::TASK_COUNTER_GROUP,
        TaskCounter::MapOutputMaterializedBytes.name(),
        materialized - before,
    );
    Ok(())
}
