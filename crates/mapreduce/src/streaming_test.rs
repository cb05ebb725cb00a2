use std::time::{Duration, Instant};

use super::*;

type Records = Vec<(String, String)>;

fn run_lines(command: &StreamCommand, input: &[&str]) -> (Result<StreamOutcome>, Records) {
    let input: Vec<String> = input.iter().map(|s| s.to_string()).collect();
    let mut records = Vec::new();
    let result = run(
        command,
        move |out| {
            for line in &input {
                write_map_input(out, line.as_bytes()).map_err(|e| Error::io("feed", e))?;
            }
            Ok(())
        },
        &mut |k: &[u8], v: &[u8]| {
            records.push((String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()));
            Ok(())
        },
    );
    (result, records)
}

fn command(text: &str) -> (tempfile::TempDir, StreamCommand) {
    let dir = tempfile::tempdir().unwrap();
    let command = StreamCommand::new(text, dir.path());
    (dir, command)
}

#[test]
fn a_python_mapper_records_counters_and_status() {
    let (dir, mut cmd) = command("python3 mapper.py");
    std::fs::write(
        dir.path().join("mapper.py"),
        r#"import sys
for line in sys.stdin:
    for word in line.split():
        print(word + "\t1")
    sys.stderr.write("reporter:counter:wc,lines,1\n")
sys.stderr.write("reporter:status:done mapping\n")
sys.stderr.write("an ordinary log line\n")
print("no tab here")
sys.stdout.write("crlf\tvalue\r\n")
"#,
    )
    .unwrap();
    cmd.env.push(("HERD_X".into(), "1".into()));
    let (result, records) = run_lines(&cmd, &["a b", "b"]);
    let outcome = result.unwrap();
    let pairs: Vec<(&str, &str)> = records.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    assert_eq!(pairs, [("a", "1"), ("b", "1"), ("b", "1"), ("no tab here", ""), ("crlf", "value")]);
    assert_eq!(outcome.counters.get("wc", "lines"), 2);
    assert_eq!(outcome.status.as_deref(), Some("done mapping"));
    assert_eq!(outcome.stderr_tail, "an ordinary log line");
}

#[test]
fn dir_and_env_are_the_commands() {
    let (dir, mut cmd) = command("cat >/dev/null; pwd; printf '%s\\n' \"$HERD_JOB\"");
    cmd.env.push(("HERD_JOB".into(), "job_1".into()));
    let (result, records) = run_lines(&cmd, &["x"]);
    result.unwrap();
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(records[0].0, cwd.display().to_string());
    assert_eq!(records[1].0, "job_1");
}

#[test]
fn a_failing_command_reports_its_status_and_stderr_tail() {
    let (_dir, cmd) = command("cat >/dev/null; for i in $(seq 1 100); do echo \"line $i\" >&2; done; exit 3");
    let (result, _) = run_lines(&cmd, &["x"]);
    match result {
        Err(Error::StreamingFailed { status, stderr_tail, .. }) => {
            assert_eq!(status, "exit code 3");
            let lines: Vec<&str> = stderr_tail.lines().collect();
            assert_eq!(lines.len(), STDERR_TAIL_LINES);
            assert_eq!(lines.last(), Some(&"line 100"));
        }
        other => panic!("expected StreamingFailed, got {other:?}"),
    }
    let (_dir, cmd) = command("kill -9 $$");
    let (result, _) = run_lines(&cmd, &[]);
    assert!(
        matches!(&result, Err(Error::StreamingFailed { status, .. }) if status == "killed by signal 9"),
        "{result:?}"
    );
}

#[test]
fn a_chatty_command_does_not_deadlock() {
    // 8 MB out before reading 8 MB in: both far past a pipe's buffer.
    let (_dir, cmd) = command("python3 -c \"import sys\nfor i in range(80000): print('x' * 99)\nsys.stdin.read()\"");
    let line = "y".repeat(99);
    let input: Vec<&str> = (0..80_000).map(|_| line.as_str()).collect();
    let (result, records) = run_lines(&cmd, &input);
    result.unwrap();
    assert_eq!(records.len(), 80_000);
}

#[test]
fn a_command_that_stops_reading_its_input_fails() {
    let (_dir, cmd) = command("head -n 1");
    let line = "z".repeat(1000);
    let input: Vec<&str> = (0..2000).map(|_| line.as_str()).collect();
    let (result, records) = run_lines(&cmd, &input);
    assert_eq!(records.len(), 1);
    assert!(matches!(result, Err(Error::StreamingInputNotConsumed { .. })), "{result:?}");
}

#[test]
fn an_error_on_our_side_kills_the_whole_process_group() {
    // `yes | cat` never ends by itself; the pipeline's two processes must both die.
    let (_dir, cmd) = command("yes | cat");
    let started = Instant::now();
    let mut seen = 0;
    let result = run(&cmd, |_| Ok(()), &mut |_: &[u8], _: &[u8]| {
        seen += 1;
        if seen == 10 {
            Err(Error::User("collector full".into()))
        } else {
            Ok(())
        }
    });
    assert!(matches!(result, Err(Error::User(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn reporter_lines_are_parsed_as_hadoop_does() {
    let mut outcome = StreamOutcome::default();
    assert!(parse_reporter("reporter:counter:g,c,5", &mut outcome));
    assert!(parse_reporter("reporter:counter:g,c,-2", &mut outcome));
    assert!(!parse_reporter("reporter:counter:g,c", &mut outcome));
    assert!(!parse_reporter("reporter:counter:g,c,x", &mut outcome));
    assert!(!parse_reporter("reporter:counter:g,c,1,2", &mut outcome));
    assert!(parse_reporter("reporter:status:50% done", &mut outcome));
    assert!(!parse_reporter("reporter:other", &mut outcome));
    assert_eq!(outcome.counters.get("g", "c"), 3);
    assert_eq!(outcome.status.as_deref(), Some("50% done"));
    assert_eq!(split_output_line(b"k\tv\tw"), (&b"k"[..], &b"v\tw"[..]));
    assert_eq!(split_output_line(b"\t"), (&b""[..], &b""[..]));
}
