//! HDFS path rules (`DFSUtil.isValidName`, `FSDirectory` limits).

use super::Error;

/// Longest path accepted, in bytes (HDFS `MAX_PATH_LENGTH`).
pub const MAX_PATH_LEN: usize = 8000;
/// Most components in a path (HDFS `MAX_PATH_DEPTH`). Also bounds the inodes one entry creates.
pub const MAX_DEPTH: usize = 1000;
/// Longest component, in bytes (`dfs.namenode.fs-limits.max-component-length`).
pub const MAX_COMPONENT_LEN: usize = 255;
/// The root's reserved name (`/.reserved`), which herd does not serve.
pub const RESERVED: &str = ".reserved";

/// Whether `name` may name an inode: non-empty, no `/`, no `:`, not `.` or `..`, not too long.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COMPONENT_LEN
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains(':')
}

/// The components of an absolute path (`/` has none). As in HDFS, trailing slashes are
/// allowed and ignored; an empty, `.` or `..` component, or one with a `:`, is refused.
pub fn components(p: &str) -> Result<Vec<&str>, Error> {
    let bad = || Error::InvalidPath(format!("Invalid path name {p}"));
    if !p.starts_with('/') || p.len() > MAX_PATH_LEN {
        return Err(bad());
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let comps: Vec<&str> = trimmed[1..].split('/').collect();
    if comps.len() > MAX_DEPTH || !comps.iter().all(|c| valid_name(c)) || comps[0] == RESERVED {
        return Err(bad());
    }
    Ok(comps)
}

/// The normal form of a path built from components.
pub fn join(comps: &[&str]) -> String {
    if comps.is_empty() {
        return "/".into();
    }
    let mut s = String::with_capacity(comps.iter().map(|c| c.len() + 1).sum());
    for c in comps {
        s.push('/');
        s.push_str(c);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdfs_path_rules() {
        assert_eq!(components("/").unwrap(), Vec::<&str>::new());
        assert_eq!(components("/a/b").unwrap(), vec!["a", "b"]);
        assert_eq!(components("/a/b//").unwrap(), vec!["a", "b"]);
        for bad in ["", "a", "a/b", "//a", "/a//b", "/a/./b", "/a/../b", "/a/b:c", "/.reserved/x", "/."] {
            assert!(matches!(components(bad), Err(Error::InvalidPath(_))), "{bad}");
        }
        assert!(components(&format!("/{}", "x".repeat(256))).is_err());
        assert!(components(&format!("/{}", "x".repeat(255))).is_ok());
        assert!(components(&"/a".repeat(1001)).is_err());
        assert_eq!(join(&["a", "b"]), "/a/b");
        assert_eq!(join(&[]), "/");
    }
}
