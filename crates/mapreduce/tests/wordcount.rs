//! Wordcount end to end, locally: a generated text in several splits, maps with a tiny sort
//! buffer (many spills, the combiner at each and in the final merge), R = 3 reducers merging
//! every map's segment of their partition; once with the built-in functions and once with
//! Python mapper and reducer scripts written as for Hadoop Streaming. Both must equal a
//! reference counted here with a HashMap.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use mapreduce::builtin::{SumReducer, WordCountMapper};
use mapreduce::collector::{CollectorConfig, MapOutput, MapOutputCollector};
use mapreduce::merge::ShuffleSegments;
use mapreduce::partition::partition;
use mapreduce::spill::read_index;
use mapreduce::split::{splits_for_file, BlockLocation, InputSplit, LineRecordReader};
use mapreduce::streaming::StreamCommand;
use mapreduce::task::{run_map, run_reduce, run_streaming_map, run_streaming_reduce};
use mapreduce::{Counters, TaskCounter};

const PARTITIONS: u32 = 3;
const BLOCK: u64 = 8192;
/// About 40 short records: a split of 8 KiB spills many times.
const SORT_BUDGET: usize = 2048;
const SHUFFLE_BUDGET: usize = 4096;

struct Input {
    _dir: tempfile::TempDir,
    root: PathBuf,
    path: PathBuf,
    lines: usize,
    reference: BTreeMap<String, u64>,
}

/// A deterministic text of a few thousand lines over a skewed vocabulary, some lines ending in
/// `\r\n`, some empty, words separated by spaces and tabs.
fn generate() -> Input {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::new();
    let mut reference: HashMap<String, u64> = HashMap::new();
    let lines = 3000;
    for i in 0..lines {
        let words = next() % 9;
        for w in 0..words {
            // Skewed: small ids are frequent, so combining pays.
            let id = (next() % 400) * (next() % 400) / 400;
            let word = format!("w{id}");
            *reference.entry(word.clone()).or_default() += 1;
            text.push_str(&word);
            if w + 1 < words {
                text.push(if next() % 5 == 0 { '\t' } else { ' ' });
            }
        }
        text.push_str(if i % 7 == 0 { "\r\n" } else { "\n" });
    }
    let path = root.join("input.txt");
    std::fs::write(&path, &text).unwrap();
    Input { _dir: dir, root, path, lines, reference: reference.into_iter().collect() }
}

fn splits(input: &Input) -> Vec<InputSplit> {
    let len = std::fs::metadata(&input.path).unwrap().len();
    let blocks: Vec<BlockLocation> = (0..len.div_ceil(BLOCK))
        .map(|i| BlockLocation {
            offset: i * BLOCK,
            length: BLOCK.min(len - i * BLOCK),
            hosts: vec![format!("dn{}", i % 3)],
        })
        .collect();
    let splits = splits_for_file("/input.txt", len, &blocks).unwrap();
    assert!(splits.len() >= 4, "{} splits", splits.len());
    splits
}

fn collector(root: &Path, map: usize, combine: bool) -> MapOutputCollector {
    let dir = root.join(format!("map-{map}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = CollectorConfig::new(&dir, PARTITIONS, SORT_BUDGET);
    let combiner: Option<Box<dyn mapreduce::Reducer>> = if combine { Some(Box::new(SumReducer)) } else { None };
    MapOutputCollector::new(config, combiner)
}

fn reader(input: &Input, split: &InputSplit) -> LineRecordReader<File> {
    let file = File::open(&input.path).unwrap();
    LineRecordReader::new(file, split.start, split.length, 1 << 20).unwrap()
}

/// One partition's segment from every map, fetched as bytes (as the shuffle will), in map
/// order.
fn shuffle(root: &Path, outputs: &[MapOutput], partition: u32) -> ShuffleSegments {
    let dir = root.join(format!("reduce-{partition}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut segments = ShuffleSegments::new(&dir, SHUFFLE_BUDGET);
    for (map, output) in outputs.iter().enumerate() {
        let entry = read_index(&output.index_path).unwrap()[partition as usize];
        let mut file = File::open(&output.data).unwrap();
        file.seek(SeekFrom::Start(entry.offset)).unwrap();
        let mut bytes = vec![0; entry.raw_length as usize];
        file.read_exact(&mut bytes).unwrap();
        segments.add_fetched(map, bytes, entry.crc32c).unwrap();
    }
    segments
}

/// Checks the reducers' outputs against the reference: each word once, in the partition its
/// key hashes to, sorted within it, with the right count.
fn check(outputs: Vec<Vec<(String, String)>>, input: &Input) {
    let mut got = BTreeMap::new();
    for (r, records) in outputs.iter().enumerate() {
        let keys: Vec<&String> = records.iter().map(|(k, _)| k).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "partition {r} sorted");
        for (word, count) in records {
            assert_eq!(partition(word.as_bytes(), PARTITIONS), r as u32, "{word}");
            let count: u64 = count.parse().unwrap();
            assert!(got.insert(word.clone(), count).is_none(), "{word} twice");
        }
    }
    assert_eq!(got, input.reference);
}

fn collect_into(out: &mut Vec<(String, String)>) -> impl FnMut(&[u8], &[u8]) -> mapreduce::Result<()> + '_ {
    |k: &[u8], v: &[u8]| {
        out.push((String::from_utf8(k.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()));
        Ok(())
    }
}

#[test]
fn builtin_wordcount_matches_a_hashmap() {
    let input = generate();
    let mut job = Counters::new();
    let mut outputs = Vec::new();
    let mut most_spills = 0;
    for (m, split) in splits(&input).iter().enumerate() {
        let mut collector = collector(&input.root, m, true);
        run_map(&mut reader(&input, split), &mut WordCountMapper, &mut collector).unwrap();
        most_spills = most_spills.max(collector.spills());
        let (output, counters) = collector.close().unwrap();
        job.merge(&counters);
        outputs.push(output);
    }
    assert!(most_spills >= 3, "the final merge combined too ({most_spills} spills)");
    let mut reduced = Vec::new();
    for r in 0..PARTITIONS {
        let mut merger = shuffle(&input.root, &outputs, r).into_merger(&mut job).unwrap();
        let mut records = Vec::new();
        run_reduce(&mut merger, &mut SumReducer, &mut collect_into(&mut records), &mut job).unwrap();
        reduced.push(records);
    }
    check(reduced, &input);

    let words: u64 = input.reference.values().sum();
    assert_eq!(job.task(TaskCounter::MapInputRecords), input.lines as i64);
    assert_eq!(job.task(TaskCounter::MapOutputRecords), words as i64);
    let combined_in = job.task(TaskCounter::CombineInputRecords);
    let combined_out = job.task(TaskCounter::CombineOutputRecords);
    assert!(combined_in >= words as i64 && combined_out < combined_in);
    assert_eq!(job.task(TaskCounter::ReduceInputGroups), input.reference.len() as i64);
    assert_eq!(job.task(TaskCounter::ReduceOutputRecords), input.reference.len() as i64);
    assert!(job.task(TaskCounter::SpilledRecords) > 0);
}

const MAPPER: &str = r#"#!/usr/bin/env python3
import sys
for line in sys.stdin:
    for word in line.split():
        print("%s\t1" % word)
    sys.stderr.write("reporter:counter:WordCount,Lines,1\n")
"#;

const REDUCER: &str = r#"#!/usr/bin/env python3
import sys
current, total = None, 0
for line in sys.stdin:
    word, count = line.rstrip("\n").split("\t", 1)
    if word != current:
        if current is not None:
            print("%s\t%d" % (current, total))
        current, total = word, 0
    total += int(count)
if current is not None:
    print("%s\t%d" % (current, total))
sys.stderr.write("reporter:status:reduced\n")
"#;

#[test]
fn streaming_wordcount_with_python_scripts_matches_a_hashmap() {
    let input = generate();
    let scripts = input.root.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(scripts.join("mapper.py"), MAPPER).unwrap();
    std::fs::write(scripts.join("reducer.py"), REDUCER).unwrap();
    let mapper = StreamCommand::new("python3 mapper.py", &scripts);
    let reducer = StreamCommand::new("python3 reducer.py", &scripts);

    let mut job = Counters::new();
    let mut outputs = Vec::new();
    for (m, split) in splits(&input).iter().enumerate() {
        let mut collector = collector(&input.root, m, false);
        run_streaming_map(&mapper, reader(&input, split), &mut collector).unwrap();
        assert!(collector.spills() >= 2);
        let (output, counters) = collector.close().unwrap();
        job.merge(&counters);
        outputs.push(output);
    }
    assert_eq!(job.get("WordCount", "Lines"), input.lines as i64);
    let mut reduced = Vec::new();
    for r in 0..PARTITIONS {
        let merger = shuffle(&input.root, &outputs, r).into_merger(&mut job).unwrap();
        let mut records = Vec::new();
        let outcome = run_streaming_reduce(&reducer, merger, &mut collect_into(&mut records), &mut job).unwrap();
        assert_eq!(outcome.status.as_deref(), Some("reduced"));
        reduced.push(records);
    }
    check(reduced, &input);
    let words: u64 = input.reference.values().sum();
    assert_eq!(job.task(TaskCounter::ReduceInputRecords), words as i64);
}
