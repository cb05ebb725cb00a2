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
