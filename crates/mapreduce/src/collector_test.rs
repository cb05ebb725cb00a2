use super::*;
use crate::api::Emit;

fn read_partition(output: &MapOutput, partition: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut reader = SegmentReader::open_file(&output.data, output.index[partition]).unwrap();
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut records = Vec::new();
    while reader.next_record(&mut key, &mut value).unwrap() {
        records.push((key.clone(), value.clone()));
    }
    records
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn spills_merge_into_sorted_partitions_with_stable_values() {
    let dir = tempfile::tempdir().unwrap();
    // Room for about four small records: 50 records make a dozen spills.
    let budget = 4 * (RECORD_OVERHEAD + 8);
    let mut collector = MapOutputCollector::new(CollectorConfig::new(dir.path(), 3, budget), None);
    let mut emitted = Vec::new();
    for i in 0..50u32 {
        let key = format!("k{}", (i * 7) % 11);
        let value = format!("v{i:02}");
        let partition = i % 3;
        collector.collect(partition, key.as_bytes(), value.as_bytes()).unwrap();
        emitted.push((partition, key, value));
        assert!(collector.used() <= budget);
    }
    assert!(collector.spills() >= 10, "{} spills", collector.spills());
    let (output, counters) = collector.close().unwrap();
    assert_eq!(files_in(dir.path()), ["file.out", "file.out.index"], "spills removed");
    assert_eq!(crate::spill::read_index(&output.index_path).unwrap(), output.index);
    for partition in 0..3u32 {
        // The reference: a stable sort of the partition's records by key.
        let mut want: Vec<_> = emitted
            .iter()
            .filter(|(p, _, _)| *p == partition)
            .map(|(_, k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(read_partition(&output, partition as usize), want, "partition {partition}");
    }
    assert_eq!(counters.task(TaskCounter::MapOutputRecords), 50);
    let bytes: usize = emitted.iter().map(|(_, k, v)| k.len() + v.len()).sum();
    assert_eq!(counters.task(TaskCounter::MapOutputBytes), bytes as i64);
    assert_eq!(bytes, 50 * 3 + 50 * 2 + 5, "5 keys are `k10`");
    assert_eq!(
        counters.task(TaskCounter::SpilledRecords),
        100,
        "each record written at its spill and again in the merge"
    );
    assert_eq!(counters.task(TaskCounter::CombineInputRecords), 0);
}

/// Sums decimal values: a combiner that keeps its key.
struct Sum;

impl Reducer for Sum {
    fn reduce(&mut self, key: &[u8], values: &mut dyn Values, emit: &mut dyn Emit) -> Result<()> {
        let mut total = 0u64;
        while let Some(v) = values.next_value() {
            total += std::str::from_utf8(v).unwrap().parse::<u64>().unwrap();
        }
        emit.emit(key, total.to_string().as_bytes())
    }
}

#[test]
fn the_combiner_runs_per_spill_and_in_the_final_merge() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 6 * (RECORD_OVERHEAD + 3);
    let config = CollectorConfig::new(dir.path(), 2, budget);
    let mut collector = MapOutputCollector::new(config, Some(Box::new(Sum)));
    for i in 0..60u32 {
        collector.collect(i % 2, format!("w{}", i % 4).as_bytes(), b"1").unwrap();
    }
    assert!(collector.spills() >= 3);
    let (output, counters) = collector.close().unwrap();
    // The final merge combined again: one record per key.
    assert_eq!(read_partition(&output, 0), vec![(b"w0".to_vec(), b"15".to_vec()), (b"w2".to_vec(), b"15".to_vec())]);
    assert_eq!(read_partition(&output, 1), vec![(b"w1".to_vec(), b"15".to_vec()), (b"w3".to_vec(), b"15".to_vec())]);
    let input = counters.task(TaskCounter::CombineInputRecords);
    let output_records = counters.task(TaskCounter::CombineOutputRecords);
    assert!(input > 60, "spill-time (60) plus merge-time input: {input}");
    assert!(output_records < input);
}

struct Renaming;

impl Reducer for Renaming {
    fn reduce(&mut self, _: &[u8], _: &mut dyn Values, emit: &mut dyn Emit) -> Result<()> {
        emit.emit(b"other", b"x")
    }
}

#[test]
fn a_combiner_that_changes_keys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig::new(dir.path(), 1, 1 << 20);
    let mut collector = MapOutputCollector::new(config, Some(Box::new(Renaming)));
    collector.collect(0, b"key", b"v").unwrap();
    assert!(matches!(collector.close(), Err(Error::CombinerChangedKey { .. })));
}

#[test]
fn a_record_larger_than_the_budget_is_spilled_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig::new(dir.path(), 1, 100);
    let mut collector = MapOutputCollector::new(config, None);
    collector.collect(0, b"a", b"small").unwrap();
    collector.collect(0, b"b", &[b'x'; 500]).unwrap();
    assert_eq!(collector.used(), 0, "the big record went straight to a spill");
    assert_eq!(collector.spills(), 2);
    let (output, _) = collector.close().unwrap();
    let records = read_partition(&output, 0);
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].1.len(), 500);
}

#[test]
fn no_records_make_empty_segments_and_bad_partitions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = MapOutputCollector::new(CollectorConfig::new(dir.path(), 4, 1000), None);
    assert!(matches!(collector.collect(4, b"k", b"v"), Err(Error::User(_))));
    let (output, counters) = collector.close().unwrap();
    assert_eq!(output.index.len(), 4);
    assert!(output.index.iter().all(|e| e.raw_length == 0));
    assert_eq!(std::fs::metadata(&output.data).unwrap().len(), 0);
    assert_eq!(counters.task(TaskCounter::MapOutputRecords), 0);
}
