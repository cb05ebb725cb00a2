//! `truncate [-w] LENGTH PATH...` as Hadoop's shell runs it (`hadoop fs -truncate`): files cut at
//! a block boundary are done at once; the others wait for the NameNode's block recovery, which
//! `-w` waits for (polling the length, as Hadoop does).

use std::io::Write as _;
use std::time::{Duration, Instant};

use dfs_client::FileKind;

use super::{Item, Shell};

/// How long `-w` waits for one file (Hadoop waits forever).
const WAIT_MAX: Duration = Duration::from_secs(600);

pub(super) fn run(sh: &mut Shell, length: &str, paths: Vec<String>, wait: bool) {
    let Ok(new_length) = length.parse::<u64>() else {
        return sh.fail_msg("Illegal length, a non-negative integer expected");
    };
    let mut waiting = Vec::new();
    for arg in paths {
        for item in sh.expand(&arg) {
            if item.status.kind == FileKind::Dir {
                sh.fail_with(&item.shown, "Is a directory");
                continue;
            }
            let old = item.status.length;
            if new_length > old {
                sh.fail_msg(&format!(
                    "Cannot truncate to a larger file size. Current size: {old}, truncate size: {new_length}."
                ));
                continue;
            }
            match sh.dfs.truncate(&item.abs, new_length) {
                Ok(true) => println!("Truncated {} to length: {new_length}", item.shown),
                Ok(false) if wait => waiting.push(item),
                Ok(false) => println!(
                    "Truncating {} to length: {new_length}. Wait for block recovery to complete before further updating this file.",
                    item.shown
                ),
                Err(e) => sh.fail(&item.shown, &e),
            }
        }
    }
    for item in waiting {
        wait_for(sh, &item, new_length);
    }
}

/// Polls until the file is closed at its new length.
fn wait_for(sh: &mut Shell, item: &Item, new_length: u64) {
    println!("Waiting for {} ...", item.shown);
    let _ = std::io::stdout().flush();
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        match sh.dfs.status(&item.abs) {
            Ok(Some(s)) if s.length == new_length && !s.under_construction => break,
            Ok(Some(_)) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Ok(Some(_)) => return sh.fail_with(&item.shown, "block recovery did not finish in ten minutes"),
            Ok(None) => return sh.fail_with(&item.shown, "No such file or directory"),
            Err(e) => return sh.fail(&item.shown, &e),
        }
    }
    println!("Truncated {} to length: {new_length}", item.shown);
}
