//! `concat TARGET SRC...` as Hadoop's shell runs it (`hdfs dfs -concat`): at least two sources,
//! the target and every source existing files; the NameNode checks the rest (one directory,
//! closed, non-empty sources) and answers with Hadoop's exceptions.

use dfs_client::FileKind;

use super::Shell;

pub(super) fn run(sh: &mut Shell, target: &str, srcs: Vec<String>) {
    const USAGE: &str = "<target path> <src path> <src path> ...";
    if srcs.len() < 2 {
        return sh.fail_msg(&format!("The number of source paths is less than 2. {USAGE}"));
    }
    let mut items = Vec::new();
    for arg in std::iter::once(target).chain(srcs.iter().map(String::as_str)) {
        let found = sh.expand(arg);
        if found.is_empty() {
            // expand printed why.
            return;
        }
        items.extend(found);
    }
    let target = items.remove(0);
    if target.status.kind != FileKind::File {
        return sh.fail_msg(&format!("Target path {} does not exist or is not file.", target.shown));
    }
    if let Some(bad) = items.iter().find(|i| i.status.kind != FileKind::File) {
        let shown = bad.shown.clone();
        return sh.fail_msg(&format!("{shown} does not exist or is not file."));
    }
    let srcs: Vec<&str> = items.iter().map(|i| i.abs.as_str()).collect();
    if let Err(e) = sh.dfs.concat(&target.abs, &srcs) {
        sh.fail(&target.shown, &e);
    }
}
