use std::cell::RefCell;
use std::collections::BTreeMap;

use super::*;

/// An in-memory file system with HDFS's rename rules: a path is a directory (`true`) or a file
/// (`false`, with its bytes).
#[derive(Default)]
struct MemFs {
    entries: RefCell<BTreeMap<String, Option<Vec<u8>>>>,
}

fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) => "/",
        Some(i) => &p[..i],
        None => "/",
    }
}

impl MemFs {
    fn write(&self, path: &str, bytes: &[u8]) {
        self.mkdirs(parent(path)).unwrap();
        self.entries.borrow_mut().insert(path.to_string(), Some(bytes.to_vec()));
    }

    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.entries.borrow().get(path).cloned().flatten()
    }

    /// Every path under `root` (not `root` itself), sorted.
    fn tree(&self, root: &str) -> Vec<String> {
        let prefix = format!("{root}/");
        self.entries.borrow().keys().filter(|k| k.starts_with(&prefix)).cloned().collect()
    }
}

impl CommitFs for MemFs {
    type Error = String;

    fn mkdirs(&self, path: &str) -> Result<(), String> {
        let mut e = self.entries.borrow_mut();
        let mut p = String::new();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            p.push('/');
            p.push_str(c);
            match e.get(&p) {
                Some(Some(_)) => return Err(format!("{p} is a file")),
                Some(None) => {}
                None => {
                    e.insert(p.clone(), None);
                }
            }
        }
        Ok(())
    }

    fn kind(&self, path: &str) -> Result<Option<bool>, String> {
        Ok(self.entries.borrow().get(path).map(|v| v.is_none()))
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, String> {
        if self.kind(dir)? != Some(true) {
            return Err(format!("{dir}: no such directory"));
        }
        let prefix = format!("{dir}/");
        Ok(self
            .entries
            .borrow()
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(String::from)
            .collect())
    }

    fn rename(&self, src: &str, dst: &str) -> Result<(), String> {
        let mut e = self.entries.borrow_mut();
        if !e.contains_key(src) {
            return Err(format!("{src}: no such file"));
        }
        if e.contains_key(dst) {
            return Err(format!("{dst}: exists"));
        }
        if e.get(parent(dst)) != Some(&None) {
            return Err(format!("{dst}: parent is not a directory"));
        }
        let moved: Vec<String> = e.keys().filter(|k| *k == src || k.starts_with(&format!("{src}/"))).cloned().collect();
        for k in moved {
            let v = e.remove(&k).unwrap();
            e.insert(format!("{dst}{}", &k[src.len()..]), v);
        }
        Ok(())
    }

    fn delete(&self, path: &str) -> Result<bool, String> {
        let mut e = self.entries.borrow_mut();
        let gone: Vec<String> =
            e.keys().filter(|k| *k == path || k.starts_with(&format!("{path}/"))).cloned().collect();
        for k in &gone {
            e.remove(k);
        }
        Ok(!gone.is_empty())
    }

    fn touch(&self, path: &str) -> Result<(), String> {
        self.write(path, b"");
        Ok(())
    }
}

const OUT: &str = "/out";

#[test]
fn one_attempt_per_task_reaches_the_output_and_success_comes_last() {
    let fs = MemFs::default();
    let c = FileOutputCommitter::new(OUT, 0).unwrap();
    c.setup_job(&fs).unwrap();
    // Task r_0: two attempts write; one commits, the other is aborted.
    for (attempt, body) in [("attempt_1_0001_r_000000_0", b"a0"), ("attempt_1_0001_r_000000_1", b"a1")] {
        fs.write(&format!("{}/part-r-00000", c.task_attempt_path(attempt).unwrap()), body);
    }
    // Task r_1 writes a file and a subdirectory.
    let p1 = c.task_attempt_path("attempt_1_0001_r_000001_0").unwrap();
    fs.write(&format!("{p1}/part-r-00001"), b"b");
    fs.write(&format!("{p1}/side/extra"), b"x");
    assert!(c.needs_task_commit(&fs, "attempt_1_0001_r_000000_1").unwrap());
    assert!(!c.needs_task_commit(&fs, "attempt_1_0001_r_000002_0").unwrap());
    c.commit_task(&fs, "task_1_0001_r_000000", "attempt_1_0001_r_000000_1").unwrap();
    c.abort_task(&fs, "attempt_1_0001_r_000000_0").unwrap();
    c.commit_task(&fs, "task_1_0001_r_000001", "attempt_1_0001_r_000001_0").unwrap();
    // A task that wrote nothing commits nothing.
    c.commit_task(&fs, "task_1_0001_r_000002", "attempt_1_0001_r_000002_0").unwrap();
    assert!(fs.read("/out/_SUCCESS").is_none(), "no success marker before the job commits");
    c.commit_job(&fs).unwrap();
    assert_eq!(
        fs.tree(OUT),
        ["/out/_SUCCESS", "/out/part-r-00000", "/out/part-r-00001", "/out/side", "/out/side/extra"]
    );
    assert_eq!(fs.read("/out/part-r-00000").unwrap(), b"a1");
}

#[test]
fn a_recommit_replaces_the_earlier_one_and_an_abort_leaves_nothing_complete() {
    let fs = MemFs::default();
    let c = FileOutputCommitter::new("/out/", 0).unwrap();
    c.setup_job(&fs).unwrap();
    let task = "task_1_0001_m_000000";
    for (attempt, body) in [("attempt_1_0001_m_000000_0", b"old"), ("attempt_1_0001_m_000000_1", b"new")] {
        fs.write(&format!("{}/part-m-00000", c.task_attempt_path(attempt).unwrap()), body);
        c.commit_task(&fs, task, attempt).unwrap();
    }
    assert_eq!(fs.read(&format!("{}/part-m-00000", c.committed_task_path(task).unwrap())).unwrap(), b"new");
    c.abort_job(&fs).unwrap();
    assert!(fs.tree(OUT).is_empty(), "an aborted job left {:?}", fs.tree(OUT));
}

#[test]
fn a_new_am_attempt_recovers_committed_tasks_and_only_those() {
    let fs = MemFs::default();
    let first = FileOutputCommitter::new(OUT, 0).unwrap();
    first.setup_job(&fs).unwrap();
    let done = first.task_attempt_path("attempt_1_0001_r_000000_0").unwrap();
    fs.write(&format!("{done}/part-r-00000"), b"done");
    first.commit_task(&fs, "task_1_0001_r_000000", "attempt_1_0001_r_000000_0").unwrap();
    // Task r_1 was running (written, not committed) when the AM died.
    let running = first.task_attempt_path("attempt_1_0001_r_000001_0").unwrap();
    fs.write(&format!("{running}/part-r-00001"), b"half");

    let second = FileOutputCommitter::new(OUT, 1).unwrap();
    second.setup_job(&fs).unwrap();
    assert!(second.recover_task(&fs, "task_1_0001_r_000000").unwrap());
    assert!(!second.recover_task(&fs, "task_1_0001_r_000001").unwrap(), "an uncommitted task was recovered");
    let rerun = second.task_attempt_path("attempt_1_0001_r_000001_1").unwrap();
    fs.write(&format!("{rerun}/part-r-00001"), b"full");
    second.commit_task(&fs, "task_1_0001_r_000001", "attempt_1_0001_r_000001_1").unwrap();
    second.commit_job(&fs).unwrap();
    assert_eq!(fs.tree(OUT), ["/out/_SUCCESS", "/out/part-r-00000", "/out/part-r-00001"]);
    assert_eq!(fs.read("/out/part-r-00000").unwrap(), b"done");
    assert_eq!(fs.read("/out/part-r-00001").unwrap(), b"full");
}

#[test]
fn bad_names_are_refused() {
    assert!(FileOutputCommitter::new("relative", 0).is_err());
    assert!(FileOutputCommitter::new("/", 0).is_err());
    let c = FileOutputCommitter::new(OUT, 0).unwrap();
    for bad in ["", ".", "..", "a/b", "_temporary"] {
        assert!(c.task_attempt_path(bad).is_err(), "{bad:?}");
        assert!(c.committed_task_path(bad).is_err(), "{bad:?}");
    }
}
