//! `checksum PATH...`: HDFS's file checksum of each file, one line each as `hadoop fs
//! -checksum` prints it: path, algorithm and hex bytes separated by tabs
//! (`/f MD5-of-0MD5-of-512CRC32C 000002000000000000000000...`). A directory is an error
//! (`Is a directory`), as in Hadoop.

use dfs_client::FileKind;

use super::Shell;

pub(super) fn run(sh: &mut Shell, paths: Vec<String>) {
    for arg in paths {
        for item in sh.expand(&arg) {
            if item.status.kind == FileKind::Dir {
                sh.fail_with(&item.shown, "Is a directory");
                continue;
            }
            match sh.dfs.file_checksum(&item.abs) {
                Ok(c) => println!("{}\t{}\t{}", item.shown, c.algorithm, c.hex()),
                Err(e) => sh.fail(&item.shown, &e),
            }
        }
    }
}
