//! Ids print as Hadoop's and parse back; strangers are refused.

use crate::ids::*;
use std::fmt::Debug;
use std::str::FromStr;

const TS: u64 = 1_410_901_177_871;

fn app(seq: u32) -> ApplicationId {
    ApplicationId { cluster_ts: TS, seq }
}

fn attempt(seq: u32, n: u32) -> ApplicationAttemptId {
    ApplicationAttemptId { app: app(seq), attempt: n }
}

fn task(kind: TaskType, index: u32) -> TaskId {
    TaskId { app: app(1), kind, index }
}

/// `id` prints as `text`, and `text` parses to `id`.
fn both_ways<T: FromStr<Err = ParseIdError> + ToString + PartialEq + Debug>(id: T, text: &str) {
    assert_eq!(id.to_string(), text);
    assert_eq!(text.parse::<T>().unwrap(), id, "{text}");
}

#[test]
fn ids_print_as_hadoop_and_parse_back() {
    both_ways(app(1), "application_1410901177871_0001");
    both_ways(app(12345), "application_1410901177871_12345");
    both_ways(attempt(1, 1), "appattempt_1410901177871_0001_000001");
    // YARN's own examples (ContainerId.toString's javadoc): the epoch part only when non-zero.
    both_ways(ContainerId { attempt: attempt(1, 1), epoch: 17, seq: 5 }, "container_e17_1410901177871_0001_01_000005");
    both_ways(ContainerId { attempt: attempt(1, 1), epoch: 0, seq: 5 }, "container_1410901177871_0001_01_000005");
    both_ways(ContainerId { attempt: attempt(1, 1), epoch: 3, seq: 1 }, "container_e03_1410901177871_0001_01_000001");
    both_ways(
        ContainerId { attempt: attempt(2, 123), epoch: ContainerId::EPOCH_MAX, seq: ContainerId::SEQ_MAX },
        "container_e16777215_1410901177871_0002_123_1099511627775",
    );
    both_ways(task(TaskType::Map, 5), "task_1410901177871_0001_m_000005");
    both_ways(task(TaskType::Reduce, 1234567), "task_1410901177871_0001_r_1234567");
    both_ways(TaskAttemptId { task: task(TaskType::Map, 5), attempt: 0 }, "attempt_1410901177871_0001_m_000005_0");
    both_ways(TaskAttemptId { task: task(TaskType::Reduce, 2), attempt: 3 }, "attempt_1410901177871_0001_r_000002_3");
    both_ways(NodeId { host: "nm1.example".into(), port: 8041 }, "nm1.example:8041");
    both_ways(NodeId { host: "::1".into(), port: 8041 }, "::1:8041");
}

#[test]
fn lenient_digits_parse_as_hadoop_does() {
    assert_eq!("application_5_1".parse::<ApplicationId>().unwrap(), ApplicationId { cluster_ts: 5, seq: 1 });
    assert_eq!("container_e0_5_1_1_1".parse::<ContainerId>().unwrap().to_string(), "container_5_0001_01_000001");
}

#[test]
fn strangers_are_refused() {
    for s in [
        "",
        "application",
        "application_",
        "application_1",
        "application_1_",
        "application__1",
        "application_1_1_1",
        "application_-1_1",
        "application_+1_1",
        "application_1_ 1",
        "application_1_4294967296",
        "application_18446744073709551616_1",
        "Application_1_1",
        "job_1_1",
    ] {
        assert!(s.parse::<ApplicationId>().is_err(), "{s:?}");
    }
    for s in ["appattempt_1_1", "appattempt_1_1_1_1", "appattempt_1_1_x", "application_1_1_1"] {
        assert!(s.parse::<ApplicationAttemptId>().is_err(), "{s:?}");
    }
    for s in [
        "container_1_1_1",
        "container_e_1_1_1_1",
        "container_e1_1_1_1",
        "container_ex_1_1_1_1",
        "container_1_1_1_1_1_1",
        "container_e16777216_1_1_1_1",
        "container_1_1_1_1099511627776",
        "container_E1_1_1_1_1",
        "containers_1_1_1_1",
    ] {
        assert!(s.parse::<ContainerId>().is_err(), "{s:?}");
    }
    for s in ["task_1_1_x_1", "task_1_1_M_1", "task_1_1_m", "task_1_1_m_1_1", "attempt_1_1_m_1"] {
        assert!(s.parse::<TaskId>().is_err(), "{s:?}");
    }
    for s in ["attempt_1_1_m_1", "attempt_1_1_m_1_", "attempt_1_1_s_1_0", "task_1_1_m_1_0"] {
        assert!(s.parse::<TaskAttemptId>().is_err(), "{s:?}");
    }
    for s in ["nm1", ":8041", "nm1:", "nm1:65536", "nm1:-1", "nm1:80a"] {
        assert!(s.parse::<NodeId>().is_err(), "{s:?}");
    }
    let e = "job_1_1".parse::<ApplicationId>().unwrap_err();
    assert_eq!(e.to_string(), "invalid application id: \"job_1_1\"");
}

#[test]
fn container_id_limits_hold() {
    assert!(ContainerId::new(attempt(1, 1), ContainerId::EPOCH_MAX + 1, 1).is_none());
    assert!(ContainerId::new(attempt(1, 1), 0, ContainerId::SEQ_MAX + 1).is_none());
    assert!(ContainerId::new(attempt(1, 1), ContainerId::EPOCH_MAX, ContainerId::SEQ_MAX).is_some());
}
