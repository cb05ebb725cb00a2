//! Named counters in groups, as Hadoop's `Counters`: built-in task counters under Hadoop's own
//! group and names (so tools that know Hadoop's read them unchanged), and user counters from
//! streaming's `reporter:counter:` lines. Serializable for the umbilical and the RM.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Hadoop's group for the built-in task counters.
pub const TASK_COUNTER_GROUP: &str = "org.apache.hadoop.mapreduce.TaskCounter";

/// The built-in task counters this engine keeps, named as Hadoop's `TaskCounter` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskCounter {
    MapInputRecords,
    MapOutputRecords,
    MapOutputBytes,
    MapOutputMaterializedBytes,
    SpilledRecords,
    CombineInputRecords,
    CombineOutputRecords,
    ReduceInputGroups,
    ReduceInputRecords,
    ReduceOutputRecords,
    ReduceShuffleBytes,
}

impl TaskCounter {
    pub fn name(self) -> &'static str {
        match self {
            TaskCounter::MapInputRecords => "MAP_INPUT_RECORDS",
            TaskCounter::MapOutputRecords => "MAP_OUTPUT_RECORDS",
            TaskCounter::MapOutputBytes => "MAP_OUTPUT_BYTES",
            TaskCounter::MapOutputMaterializedBytes => "MAP_OUTPUT_MATERIALIZED_BYTES",
            TaskCounter::SpilledRecords => "SPILLED_RECORDS",
            TaskCounter::CombineInputRecords => "COMBINE_INPUT_RECORDS",
            TaskCounter::CombineOutputRecords => "COMBINE_OUTPUT_RECORDS",
            TaskCounter::ReduceInputGroups => "REDUCE_INPUT_GROUPS",
            TaskCounter::ReduceInputRecords => "REDUCE_INPUT_RECORDS",
            TaskCounter::ReduceOutputRecords => "REDUCE_OUTPUT_RECORDS",
            TaskCounter::ReduceShuffleBytes => "REDUCE_SHUFFLE_BYTES",
        }
    }
}

/// Counters by group, then by name. Ordered maps, so the JSON form is deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counters {
    groups: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Counters {
    pub fn new() -> Counters {
        Counters::default()
    }

    /// Adds `amount` (which may be negative, as Hadoop's `incrCounter` allows); saturates
    /// rather than wraps.
    pub fn add(&mut self, group: &str, name: &str, amount: i64) {
        let value = self.groups.entry(group.to_string()).or_default().entry(name.to_string()).or_insert(0);
        *value = value.saturating_add(amount);
    }

    pub fn add_task(&mut self, counter: TaskCounter, amount: u64) {
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        self.add(TASK_COUNTER_GROUP, counter.name(), amount);
    }

    /// The value, 0 when never added (as Hadoop reports an absent counter).
    pub fn get(&self, group: &str, name: &str) -> i64 {
        self.groups.get(group).and_then(|names| names.get(name)).copied().unwrap_or(0)
    }

    pub fn task(&self, counter: TaskCounter) -> i64 {
        self.get(TASK_COUNTER_GROUP, counter.name())
    }

    /// Adds every counter of `other` into this one (a job's counters are its tasks' sum).
    pub fn merge(&mut self, other: &Counters) {
        for (group, names) in &other.groups {
            for (name, amount) in names {
                self.add(group, name, *amount);
            }
        }
    }

    /// Every (group, name, value), groups and names in byte order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, i64)> {
        self.groups
            .iter()
            .flat_map(|(group, names)| names.iter().map(move |(name, value)| (group.as_str(), name.as_str(), *value)))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a map of strings to integers always serializes")
    }

    pub fn from_json(text: &str) -> Result<Counters, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_merge_and_absent_counters() {
        let mut a = Counters::new();
        a.add_task(TaskCounter::MapInputRecords, 3);
        a.add("wc", "words", 5);
        a.add("wc", "words", -2);
        let mut b = Counters::new();
        b.add_task(TaskCounter::MapInputRecords, 4);
        b.add("other", "x", 1);
        a.merge(&b);
        assert_eq!(a.task(TaskCounter::MapInputRecords), 7);
        assert_eq!(a.get(TASK_COUNTER_GROUP, "MAP_INPUT_RECORDS"), 7, "Hadoop's group and name");
        assert_eq!(a.get("wc", "words"), 3);
        assert_eq!(a.get("other", "x"), 1);
        assert_eq!(a.get("other", "missing"), 0);
        assert_eq!(a.iter().count(), 3);
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let mut c = Counters::new();
        c.add("g", "n", i64::MAX);
        c.add("g", "n", 1);
        assert_eq!(c.get("g", "n"), i64::MAX);
    }

    #[test]
    fn json_round_trip_is_deterministic() {
        let mut c = Counters::new();
        c.add("b", "y", 2);
        c.add("a", "x", 1);
        let text = c.to_json();
        assert_eq!(text, r#"{"a":{"x":1},"b":{"y":2}}"#);
        assert_eq!(Counters::from_json(&text).unwrap(), c);
        assert!(Counters::from_json(r#"{"a":{"x":"one"}}"#).is_err());
    }
}
