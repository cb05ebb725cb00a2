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

    // Built-in sort, one reduce: the input's lines in byte order.
    let out = c.herd(&["job", "run", "sort", "/in/small.txt", "/out/sorted"]);
    assert!(out.status.success(), "{}", mr::text(&out));
    let mut want: Vec<&str> = small.lines().collect();
    want.sort();
    let got = mr::parts(&c, "/out/sorted");
    assert_eq!(String::from_utf8_lossy(&got["part-r-00000"]).lines().collect::<Vec<_>>(), want);

    // The jobs are listed, and a finished job's status has its counters.
    let list = herd_ok(&c, &["job", "list"]);
    assert_eq!(list.matches("SUCCEEDED").count(), 3, "{list}");
    let app = list.lines().find(|l| l.contains("streaming")).and_then(|l| l.split_whitespace().next()).unwrap();
    let status = mr::status(&c, app);
    assert!(status.contains("Final status: SUCCEEDED"), "{status}");
    assert_eq!(counter(&status, "REDUCE_OUTPUT_RECORDS"), Some(reference.len() as i64), "{status}");

    // An existing output directory is refused before anything runs, as Hadoop does.
    let out = c.herd(&["job", "run", "wordcount", "/in", "/out/wc"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FileAlreadyExistsException"), "{}", mr::text(&out));
}
