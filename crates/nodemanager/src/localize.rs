//! Localization (YARN's, for its one resource kind, a file): a launch context's files are
//! fetched from the DFS, as the container's user, into its working directory before the
//! process starts.
//!
//! **Invariant:** a container never sees a partial file, and a refused start leaves no working
//! dir: every file is written into a staging dir beside the working dir
//! (`<app dir>/.<container>.localizing`, a name no container id has), which becomes the working
//! dir by one rename once every file is complete, and is deleted on any failure.
//!
//! The NameNode's permission checks apply (the client acts as the container's user). Bounded:
//! [`FILES_MAX`] files and [`BYTES_MAX`] bytes in all per container, checked against the files'
//! lengths before a byte is fetched, and again while copying (a file may grow meanwhile).
//! A file's mode is 0755 if its DFS permission has any execute bit, else 0644.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use compute_proto::records::LocalResource;
use dfs_client::FileKind;
use dfs_client::{ClientConfig, Dfs, DfsError};

/// Files one launch context may name.
pub const FILES_MAX: usize = 256;
/// Bytes of all of one container's files together (4 GiB).
pub const BYTES_MAX: u64 = 4 << 30;
/// How long one NameNode call keeps retrying an unreachable NameNode (the client's default, 30 s,
/// is long for a caller waiting on StartContainer).
pub const NAMENODE_RETRY_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LocalizeError {
    #[error("{n} files from the DFS, more than {FILES_MAX}")]
    TooManyFiles { n: usize },
    #[error("bad local name {0:?} for a file from the DFS (one path component: not empty, not . or .., no / or NUL)")]
    BadName(String),
    #[error("local name {0:?} is given to two files from the DFS")]
    DuplicateName(String),
    #[error("{0:?} is not an absolute DFS path")]
    RelativePath(String),
    #[error("files from the DFS need a NameNode, and this NodeManager has none (--namenode)")]
    NoNamenode,
    /// The NameNode refused (`FileNotFoundException: ...`, `AccessControlException: ...`) or could
    /// not be reached, or a DataNode read failed.
    #[error("DFS file {path}: {reason}")]
    Dfs { path: String, reason: String },
    #[error("DFS file {path} is a directory (only files can be localized)")]
    Directory { path: String },
    #[error("the files from the DFS come to more than {BYTES_MAX} bytes")]
    TooLarge,
    #[error("DFS file {path}: writing {local}: {source}")]
    Local { path: String, local: PathBuf, source: std::io::Error },
    /// The staging dir could not be made, or could not become the working dir.
    #[error("{dir}: {source}")]
    WorkDir { dir: PathBuf, source: std::io::Error },
}

/// Whether `name` is one plain path component: not empty, not `.` or `..`, no `/` or NUL.
pub fn valid_local_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']) && name.len() <= 255
}

/// The checks that need no DFS: how many files, their local names (valid and distinct), and
/// absolute DFS paths.
pub fn check(files: &[LocalResource]) -> Result<(), LocalizeError> {
    if files.len() > FILES_MAX {
        return Err(LocalizeError::TooManyFiles { n: files.len() });
    }
    let mut names = BTreeSet::new();
    for f in files {
        if !valid_local_name(&f.local_name) {
            return Err(LocalizeError::BadName(f.local_name.clone()));
        }
        if !names.insert(f.local_name.as_str()) {
            return Err(LocalizeError::DuplicateName(f.local_name.clone()));
        }
        if !f.path.starts_with('/') {
            return Err(LocalizeError::RelativePath(f.path.clone()));
        }
    }
    Ok(())
}

/// The staging dir of a working dir: `<parent>/.<name>.localizing`.
pub fn staging_dir(work_dir: &Path) -> PathBuf {
    let name = work_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    work_dir.with_file_name(format!(".{name}.localizing"))
}

/// Fetches `files` from the NameNode at `namenode` as `user` into `work_dir` (created; it must
/// not exist yet, or the files are moved into it one by one). Blocking: run it off the async
/// runtime. Returns the bytes fetched.
pub fn localize(namenode: &str, user: &str, files: &[LocalResource], work_dir: &Path) -> Result<u64, LocalizeError> {
    check(files)?;
    let config = ClientConfig { namenode_retry_for: NAMENODE_RETRY_FOR, ..ClientConfig::default() };
    let dfs = Dfs::connect_with(namenode, user, config).map_err(|e| LocalizeError::Dfs {
        path: files.first().map(|f| f.path.clone()).unwrap_or_default(),
        reason: reason(&e),
    })?;
    let staging = staging_dir(work_dir);
    let dir_err = |dir: &Path, source| LocalizeError::WorkDir { dir: dir.to_path_buf(), source };
    // A staging dir left by a NodeManager that died mid-fetch holds nothing of value.
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| dir_err(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| dir_err(&staging, e))?;
    let fetched = fetch_all(&dfs, files, &staging)
        .and_then(|n| publish(files, &staging, work_dir).map(|()| n).map_err(|e| dir_err(work_dir, e)));
    if fetched.is_err() {
        if let Err(e) = std::fs::remove_dir_all(&staging) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %staging.display(), "deleting a failed localization's staging dir: {e}");
            }
        }
    }
    fetched
}

/// Every file's status and every file opened first (the NameNode checks READ at open), so that
/// a missing or forbidden file, or too many bytes, costs no transfer; then every file's bytes.
fn fetch_all(dfs: &Dfs, files: &[LocalResource], staging: &Path) -> Result<u64, LocalizeError> {
    let mut modes = Vec::with_capacity(files.len());
    let mut total: u64 = 0;
    for f in files {
        let dfs_err = |e: DfsError| LocalizeError::Dfs { path: f.path.clone(), reason: reason(&e) };
        let status = dfs.status(&f.path).map_err(dfs_err)?.ok_or_else(|| LocalizeError::Dfs {
            path: f.path.clone(),
            reason: format!("FileNotFoundException: File {} does not exist.", f.path),
        })?;
        if status.kind == FileKind::Dir {
            return Err(LocalizeError::Directory { path: f.path.clone() });
        }
        total = total.saturating_add(status.length);
        if total > BYTES_MAX {
            return Err(LocalizeError::TooLarge);
        }
        modes.push(if status.perm & 0o111 != 0 { 0o755 } else { 0o644 });
    }
    // A reader holds its block locations only; it connects to a DataNode on its first read.
    let readers = files
        .iter()
        .map(|f| dfs.open(&f.path).map_err(|e| LocalizeError::Dfs { path: f.path.clone(), reason: reason(&e) }))
        .collect::<Result<Vec<_>, _>>()?;
    let mut left = BYTES_MAX;
    for ((f, mode), reader) in files.iter().zip(modes).zip(readers) {
        let local = staging.join(&f.local_name);
        let local_err = |source| LocalizeError::Local { path: f.path.clone(), local: local.clone(), source };
        let mut out: File =
            OpenOptions::new().write(true).create_new(true).mode(mode).open(&local).map_err(local_err)?;
        // The umask may have taken bits away.
        out.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(local_err)?;
        let n = copy(reader.take(left.saturating_add(1)), &mut out).map_err(|e| match e {
            CopyError::Read(e) => LocalizeError::Dfs { path: f.path.clone(), reason: e.to_string() },
            CopyError::Write(e) => local_err(e),
        })?;
        if n > left {
            return Err(LocalizeError::TooLarge);
        }
        left -= n;
    }
    Ok(BYTES_MAX - left)
}

enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// `std::io::copy` that tells a DFS read error from a local write error.
fn copy(mut from: impl Read, to: &mut File) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        let k = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buf[..k]).map_err(CopyError::Write)?;
        n += k as u64;
    }
    to.flush().map_err(CopyError::Write)?;
    Ok(n)
}

/// The staging dir becomes the working dir: one rename when there is none yet (the usual
/// case), else each file renamed into it.
fn publish(files: &[LocalResource], staging: &Path, work_dir: &Path) -> std::io::Result<()> {
    if !work_dir.exists() {
        return std::fs::rename(staging, work_dir);
    }
    for f in files {
        std::fs::rename(staging.join(&f.local_name), work_dir.join(&f.local_name))?;
    }
    std::fs::remove_dir(staging)
}

/// A DFS error in the protocol's words: Hadoop's exception's simple name and its message.
fn reason(e: &DfsError) -> String {
    match e.remote() {
        Some(r) => format!("{}: {}", r.exception_name(), r.message),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str, name: &str) -> LocalResource {
        LocalResource { path: path.into(), local_name: name.into() }
    }

    #[test]
    fn local_names_are_one_plain_component_and_distinct() {
        for good in ["job.jar", "a b", ".hidden", "..x", "x.."] {
            assert!(valid_local_name(good), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "/abs", "x/", "a\0b"] {
            assert!(!valid_local_name(bad), "{bad:?}");
            assert!(matches!(check(&[res("/f", bad)]), Err(LocalizeError::BadName(_))), "{bad:?}");
        }
        assert!(check(&[res("/f", "a"), res("/g", "b")]).is_ok());
        assert!(matches!(check(&[res("/f", "a"), res("/g", "a")]), Err(LocalizeError::DuplicateName(_))));
        assert!(matches!(check(&[res("f", "a")]), Err(LocalizeError::RelativePath(_))));
        let many: Vec<_> = (0..=FILES_MAX).map(|i| res("/f", &i.to_string())).collect();
        assert!(matches!(check(&many), Err(LocalizeError::TooManyFiles { .. })));
        assert!(check(&many[..FILES_MAX]).is_ok());
    }

    #[test]
    fn staging_is_a_hidden_sibling() {
        assert_eq!(
            staging_dir(Path::new("/l/app/container_1_0001_01_000002")),
            Path::new("/l/app/.container_1_0001_01_000002.localizing")
        );
    }

    #[test]
    fn publish_renames_the_staging_dir_or_moves_its_files() {
        let d = tempfile::tempdir().unwrap();
        let (staging, work) = (d.path().join(".w.localizing"), d.path().join("w"));
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("a"), b"1").unwrap();
        publish(&[res("/a", "a")], &staging, &work).unwrap();
        assert_eq!(std::fs::read(work.join("a")).unwrap(), b"1");
        assert!(!staging.exists());
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("b"), b"2").unwrap();
        publish(&[res("/b", "b")], &staging, &work).unwrap();
        assert_eq!(std::fs::read(work.join("b")).unwrap(), b"2");
        assert!(!staging.exists());
    }
}
