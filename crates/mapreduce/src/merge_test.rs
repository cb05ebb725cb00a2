use super::*;
use crate::spill::SegmentWriter;

fn segment(records: &[(&str, &str)]) -> Vec<u8> {
    let mut writer = SegmentWriter::new(Vec::new());
    for (k, v) in records {
        writer.append(k.as_bytes(), v.as_bytes()).unwrap();
    }
    writer.end_segment();
    writer.finish().unwrap().0
}

fn memory_source(records: &[(&str, &str)]) -> Box<dyn RecordSource> {
    let bytes = segment(records);
    let crc = crc32c::crc32c(&bytes);
    Box::new(SegmentReader::from_bytes("t", bytes, crc).unwrap())
}

fn drain(merger: &mut Merger) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some((k, v)) = merger.next_record().unwrap() {
        out.push((String::from_utf8(k.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()));
    }
    out
}

#[test]
fn merges_by_key_with_ties_in_source_order() {
    let mut merger = Merger::new(vec![
        memory_source(&[("a", "s0"), ("c", "s0"), ("c", "s0b")]),
        memory_source(&[]),
        memory_source(&[("b", "s2"), ("c", "s2")]),
        memory_source(&[("a", "s3"), ("d", "s3")]),
    ]);
    let got = drain(&mut merger);
    let want: Vec<(String, String)> =
        [("a", "s0"), ("a", "s3"), ("b", "s2"), ("c", "s0"), ("c", "s0b"), ("c", "s2"), ("d", "s3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    assert_eq!(got, want);
    assert!(!merger.advance().unwrap(), "stays at the end");
}

#[test]
fn groups_skip_values_the_reducer_does_not_read() {
    let mut merger = Merger::new(vec![
        memory_source(&[("a", "1"), ("a", "2"), ("b", "3")]),
        memory_source(&[("a", "4"), ("c", "5"), ("c", "6")]),
    ]);
    let mut seen = Vec::new();
    let (groups, records) = for_each_group(&mut merger, |key, values| {
        // Reads only the first value of each group.
        let first = values.next_value().map(|v| v.to_vec());
        seen.push((key.to_vec(), first));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        seen,
        vec![
            (b"a".to_vec(), Some(b"1".to_vec())),
            (b"b".to_vec(), Some(b"3".to_vec())),
            (b"c".to_vec(), Some(b"5".to_vec())),
        ]
    );
    assert_eq!((groups, records), (3, 6));
}

struct Concat;

impl Reducer for Concat {
    fn reduce(&mut self, key: &[u8], values: &mut dyn Values, emit: &mut dyn Emit) -> Result<()> {
        let mut joined = Vec::new();
        while let Some(v) = values.next_value() {
            joined.extend_from_slice(v);
        }
        emit.emit(key, &joined)
    }
}

#[test]
fn reduce_counts_groups_and_records() {
    let mut merger = Merger::new(vec![memory_source(&[("x", "1"), ("y", "2")]), memory_source(&[("x", "3")])]);
    let mut out = Vec::new();
    let mut counters = Counters::new();
    let mut emit = |k: &[u8], v: &[u8]| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(())
    };
    reduce(&mut merger, &mut Concat, &mut emit, &mut counters).unwrap();
    assert_eq!(out, vec![(b"x".to_vec(), b"13".to_vec()), (b"y".to_vec(), b"2".to_vec())]);
    assert_eq!(counters.task(TaskCounter::ReduceInputGroups), 2);
    assert_eq!(counters.task(TaskCounter::ReduceInputRecords), 3);
    assert_eq!(counters.task(TaskCounter::ReduceOutputRecords), 2);
}

#[test]
fn shuffle_segments_past_the_budget_go_to_disk_and_merge_in_ordinal_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut shuffle = ShuffleSegments::new(dir.path(), 20);
    let segments =
        [segment(&[("k", "map0"), ("z", "0")]), segment(&[("k", "map1")]), segment(&[("k", "map2"), ("m", "2")])];
    // Arrive out of order: 2 (11 bytes) fits, 0 (11) does not and goes to disk, 1 (7) fits.
    for ordinal in [2, 0, 1] {
        let bytes = segments[ordinal].clone();
        let crc = crc32c::crc32c(&bytes);
        shuffle.add_fetched(ordinal, bytes, crc).unwrap();
    }
    assert_eq!(shuffle.in_memory(), 18);
    let on_disk: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(on_disk.len(), 1, "segment 0 went to disk");
    let bad = segments[0].clone();
    assert!(matches!(shuffle.add_fetched(3, bad, 0xdead_beef), Err(Error::ChecksumMismatch { .. })));
    let mut counters = Counters::new();
    let mut merger = shuffle.into_merger(&mut counters).unwrap();
    let keys: Vec<_> = drain(&mut merger);
    assert_eq!(
        keys.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        ["k=map0", "k=map1", "k=map2", "m=2", "z=0"]
    );
    assert!(counters.task(TaskCounter::ReduceShuffleBytes) > 0);
}

#[test]
fn a_bad_segment_fails_the_merge_with_its_error() {
    // A CRC that matches bytes which do not decode: the error surfaces from the group loop.
    let bytes = vec![0x01, 0x01, b'a', b'1', 0x09];
    let crc = crc32c::crc32c(&bytes);
    let bad = Box::new(SegmentReader::from_bytes("bad", bytes, crc).unwrap());
    let mut merger = Merger::new(vec![memory_source(&[("a", "2")]), bad]);
    let result = for_each_group(&mut merger, |_, values| {
        while values.next_value().is_some() {}
        Ok(())
    });
    assert!(matches!(result, Err(Error::Truncated { .. })), "{result:?}");
}
