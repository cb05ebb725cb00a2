//! Guarantee: a task attempt that fails is re-run (elsewhere when it can be), and its failures
//! are counted; a task that fails on every one of its 4 attempts fails the job with the task's
//! stderr in the error, and leaves no `_SUCCESS` and no part of its output.

mod common;

use common::compute::ComputeCluster;
use common::mr::{self, counter, put};

/// A mapper that fails while the attempt number is below `fail_until` (`u32::MAX`: always),
/// printing a Python traceback's last line to stderr.
fn flaky_mapper(fail_until: u32) -> String {
    format!(
        r#"#!/usr/bin/env python3
import os, sys
attempt = int(os.environ["mapreduce_task_attempt_id"].rsplit("_", 1)[1]) % 1000
if attempt < {fail_until}:
    sys.stderr.write("Traceback (most recent call last):\n")
    sys.stderr.write("ValueError: bad record on attempt %d\n" % attempt)
    sys.exit(1)
for line in sys.stdin:
    for word in line.split():
        print(word + "\t1")
"#
    )
}

#[test]
fn twice_failing_task_succeeds_and_always_failing_task_fails_the_job() {
    let c = ComputeCluster::start(1, 2, &[]);
    let text = mr::corpus(2_000, 7);
    put(&c, "/in/a.txt", &text, None);
    let reference = mr::word_counts([text.as_str()]);

    let flaky = mr::script(&c, "flaky.py", &flaky_mapper(2));
    let f = flaky.display().to_string();
    let out = c.herd(&[
        "job",
        "run",
        "streaming",
        "-input",
        "/in",
        "-output",
        "/out/ok",
        "-mapper",
        "flaky.py",
        "-file",
        &f,
        "-reducer",
        "cat",
    ]);
    assert!(out.status.success(), "{}", mr::text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(counter(&stderr, "NUM_FAILED_MAPS"), Some(2), "{stderr}");
    assert_eq!(counter(&stderr, "TOTAL_LAUNCHED_MAPS"), Some(3), "{stderr}");
    // `cat` as the reducer passes the sorted `word\t1` records through.
    let mut got = std::collections::BTreeMap::new();
    for bytes in mr::parts(&c, "/out/ok").values() {
        for line in String::from_utf8_lossy(bytes).lines() {
            let (w, n) = line.split_once('\t').unwrap();
            assert_eq!(n, "1");
            *got.entry(w.to_string()).or_insert(0u64) += 1;
        }
    }
    assert_eq!(got, reference);
    assert!(mr::ls(&c, "/out/ok").contains(&"_SUCCESS".to_string()));

    let broken = mr::script(&c, "broken.py", &flaky_mapper(u32::MAX));
    let b = broken.display().to_string();
    let out = c.herd(&[
        "job",
        "run",
        "streaming",
        "-input",
        "/in",
        "-output",
        "/out/bad",
        "-mapper",
        "broken.py",
        "-file",
        &b,
        "-reducer",
        "cat",
    ]);
    assert!(!out.status.success(), "a job whose task always fails must fail:\n{}", mr::text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed 4 times"), "{stderr}");
    assert!(stderr.contains("ValueError: bad record on attempt 3"), "the last attempt's stderr: {stderr}");
    assert_eq!(counter(&stderr, "NUM_FAILED_MAPS"), Some(4), "{stderr}");
    // Nothing that looks like output: no _SUCCESS, no part file, no _temporary.
    let left = mr::ls(&c, "/out/bad");
    assert!(left.is_empty(), "a failed job left {left:?} in its output");
    let app = String::from_utf8_lossy(&mr::herd_ok(&c, &["job", "list"]).into_bytes())
        .lines()
        .filter(|l| l.contains("FAILED"))
        .find_map(|l| l.split_whitespace().next().map(str::to_string))
        .expect("the failed job is listed");
    let status = mr::status(&c, &app);
    assert!(status.contains("Final status: FAILED") && status.contains("ValueError"), "{status}");
}
