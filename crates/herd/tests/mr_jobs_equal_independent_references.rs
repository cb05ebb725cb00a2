//! Guarantee: jobs run through `herd job run` on a real cluster (keeper, NameNode, DataNodes,
//! ResourceManager, NodeManagers, each a process) give exactly what an independent computation
//! in this test gives: the built-in wordcount over several files (one cut into 1 MiB blocks,
//! so lines straddle splits), a Hadoop Streaming job with Python mapper and reducer scripts
//! shipped with `-file`, and the built-in sort. Each leaves `_SUCCESS` and nothing temporary,
//! and its counters add up.

mod common;

use common::compute::ComputeCluster;
use common::mr::{self, counter, herd_ok, put};

#[test]
fn wordcount_streaming_and_sort_equal_references() {
    let c = ComputeCluster::start(2, 2, &[]);
    let big = mr::corpus(100_000, 1);
    let small = mr::corpus(500, 2);
    assert!(big.len() > 2 << 20, "the big file spans several 1 MiB blocks");
    put(&c, "/in/big.txt", &big, Some("1m"));
    put(&c, "/in/small.txt", &small, None);
    put(&c, "/in/_ignored", "not input\n", None);
    let reference = mr::word_counts([big.as_str(), small.as_str()]);
    let lines = big.lines().count() + small.lines().count();

    // Built-in wordcount, three reduces.
    let out = c.herd(&["job", "run", "--reduces", "3", "wordcount", "/in", "/out/wc"]);
    assert!(out.status.success(), "{}", mr::text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("completed successfully"), "{stderr}");
    let parts = mr::parts(&c, "/out/wc");
    assert_eq!(parts.keys().collect::<Vec<_>>(), ["part-r-00000", "part-r-00001", "part-r-00002"]);
    assert_eq!(mr::counts_of(&parts), reference);
    let names = mr::ls(&c, "/out/wc");
    assert!(names.contains(&"_SUCCESS".to_string()) && !names.contains(&"_temporary".to_string()), "{names:?}");
    assert_eq!(counter(&stderr, "MAP_INPUT_RECORDS"), Some(lines as i64), "{stderr}");
    assert!(counter(&stderr, "TOTAL_LAUNCHED_MAPS").unwrap() >= 4, "one map per block: {stderr}");

    // Streaming, Python scripts as written for Hadoop, shipped with -file.
    let mapper =
        mr::script(&c, "mapper.py", &mr::slow_mapper(&c.dir().join("never"), &c.dir().join("pid"), u32::MAX, 0));
    let reducer = mr::script(&c, "reducer.py", &mr::summing_reducer(None, 0));
    let (m, r) = (mapper.display().to_string(), reducer.display().to_string());
    let out = c.herd(&[
        "job",
        "run",
        "streaming",
        "-input",
        "/in/big.txt",
        "-input",
        "/in/small.txt",
        "-output",
        "/out/st",
        "-mapper",
        "mapper.py",
        "-reducer",
        "reducer.py",
        "-file",
        &m,
        "-file",
        &r,
        "-numReduceTasks",
        "2",
    ]);
    assert!(out.status.success(), "{}", mr::text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(mr::counts_of(&mr::parts(&c, "/out/st")), reference);
    // The reducer's reporter lines became a counter: one per value it read.
    let values: u64 = reference.values().sum();
    assert_eq!(counter(&stderr, "values"), Some(values as i64), "{stderr}");

    // The same with the reducer as the combiner: the same answer from fewer shuffled records.
    let out = c.herd(&[
        "job",
        "run",
        "streaming",
        "-input",
        "/in/big.txt",
        "-input",
        "/in/small.txt",
        "-output",
        "/out/st-comb",
        "-mapper",
        "mapper.py",
        "-reducer",
        "reducer.py",
        "-combiner",
        "reducer.py",
        "-file",
        &m,
        "-file",
        &r,
    ]);
    assert!(out.status.success(), "{}", mr::text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(mr::counts_of(&mr::parts(&c, "/out/st-comb")), reference);
    assert_eq!(counter(&stderr, "COMBINE_INPUT_RECORDS"), Some(values as i64), "{stderr}");
    let combined = counter(&stderr, "COMBINE_OUTPUT_RECORDS").expect("combine output counted");
    assert!(combined > 0 && combined < values as i64 / 10, "{stderr}");
    assert_eq!(counter(&stderr, "REDUCE_INPUT_RECORDS"), Some(combined), "{stderr}");

    // Built-in sort, one reduce: the input's lines in byte order.
    let out = c.herd(&["job", "run", "sort", "/in/small.txt", "/out/sorted"]);
    assert!(out.status.success(), "{}", mr::text(&out));
    let mut want: Vec<&str> = small.lines().collect();
    want.sort();
    let got = mr::parts(&c, "/out/sorted");
    assert_eq!(String::from_utf8_lossy(&got["part-r-00000"]).lines().collect::<Vec<_>>(), want);

    // The jobs are listed, and a finished job's status has its counters.
    let list = herd_ok(&c, &["job", "list"]);
    assert_eq!(list.matches("SUCCEEDED").count(), 4, "{list}");
    let app = list.lines().find(|l| l.contains("streaming")).and_then(|l| l.split_whitespace().next()).unwrap();
    let status = mr::status(&c, app);
    assert!(status.contains("Final status: SUCCEEDED"), "{status}");
    assert_eq!(counter(&status, "REDUCE_OUTPUT_RECORDS"), Some(reference.len() as i64), "{status}");

    // An existing output directory is refused before anything runs, as Hadoop does.
    let out = c.herd(&["job", "run", "wordcount", "/in", "/out/wc"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FileAlreadyExistsException"), "{}", mr::text(&out));
}

/// teragen makes the rows it says; sort with three reduces is a total order (the parts'
/// concatenation equals the rows sorted here); teravalidate finds no error in it, and the same
/// row count and checksum as in the unsorted rows, where it does find misorders.
#[test]
fn teragen_total_order_sort_and_teravalidate() {
    let c = ComputeCluster::start(1, 2, &[]);
    const ROWS: usize = 20_000;
    let out = c.herd(&["job", "run", "--maps", "3", "teragen", &ROWS.to_string(), "/tera/in"]);
    assert!(out.status.success(), "{}", mr::text(&out));
    let generated = mr::parts(&c, "/tera/in");
    assert_eq!(generated.len(), 3, "one part per map: {:?}", generated.keys());
    let mut rows: Vec<Vec<u8>> = Vec::new();
    for bytes in generated.values() {
        assert_eq!(bytes.len() % 100, 0);
        rows.extend(bytes.chunks(100).map(<[u8]>::to_vec));
    }
    assert_eq!(rows.len(), ROWS);
    // Row ids 0..ROWS, each once, and every row a 100-byte printable line.
    let mut ids: Vec<u64> =
        rows.iter().map(|r| u64::from_str_radix(std::str::from_utf8(&r[12..44]).unwrap(), 16).unwrap()).collect();
    ids.sort_unstable();
    assert!(ids.iter().enumerate().all(|(i, id)| *id == i as u64));
    assert!(rows.iter().all(|r| r.ends_with(b"\r\n") && r[..98].iter().all(|b| (b' '..=b'~').contains(b))));

    let out = c.herd(&["job", "run", "--reduces", "3", "sort", "/tera/in", "/tera/sorted"]);
    assert!(out.status.success(), "{}", mr::text(&out));
    let sorted = mr::parts(&c, "/tera/sorted");
    assert_eq!(sorted.len(), 3);
    assert!(sorted.values().all(|p| !p.is_empty()), "the sampled ranges split the rows");
    // Lines end at `\n` or `\r\n` (Hadoop's LineRecordReader takes both as the end), so the
    // sorted lines are the rows without their `\r\n`.
    let concatenated: Vec<u8> = sorted.values().flatten().copied().collect();
    let got: Vec<&[u8]> = concatenated.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut want: Vec<&[u8]> = rows.iter().map(|r| &r[..98]).collect();
    want.sort();
    assert!(got == want, "the parts in order are not the rows sorted ({} lines, {} rows)", got.len(), want.len());

    let validate = |input: &str, out_dir: &str| -> String {
        let out = c.herd(&["job", "run", "teravalidate", input, out_dir]);
        assert!(out.status.success(), "{}", mr::text(&out));
        String::from_utf8_lossy(&mr::parts(&c, out_dir)["part-r-00000"]).into_owned()
    };
    let good = validate("/tera/sorted", "/tera/check");
    assert!(good.starts_with(&format!("rows\t{ROWS}\nchecksum\t")) && !good.contains("error"), "{good}");
    let unsorted = validate("/tera/in", "/tera/check-in");
    assert!(unsorted.contains("error\t"), "teravalidate finds the unsorted input out of order: {unsorted}");
    let checksum = |s: &str| s.lines().find(|l| l.starts_with("checksum")).map(str::to_string);
    assert_eq!(checksum(&good), checksum(&unsorted), "sorting kept every row");
}
