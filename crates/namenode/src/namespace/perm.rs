//! The permission checker: POSIX-style owner/group/other bits as HDFS's
//! `FSPermissionChecker` applies them (no ACLs yet).

use super::{Error, Inode, SUPERGROUP, SUPERUSER};

pub const READ: u16 = 4;
pub const WRITE: u16 = 2;
pub const EXECUTE: u16 = 1;
pub const ALL: u16 = 7;
/// The sticky bit: in such a directory only the owner of an entry, or of the directory, may
/// delete or rename the entry.
pub const STICKY: u16 = 0o1000;
/// The bits an inode's permission may hold.
pub const MODE_MASK: u16 = 0o1777;

/// Who is calling: a user and the groups it belongs to (as the RPC layer resolved them).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
}

impl<'a> Caller<'a> {
    pub fn new(user: &'a str, groups: &'a [String]) -> Self {
        Caller { user, groups }
    }

    /// The file system's owner, or a member of the superuser group: every check passes.
    pub fn is_superuser(&self) -> bool {
        self.user == SUPERUSER || self.in_group(SUPERGROUP)
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Whether the caller has `access` (a combination of READ, WRITE, EXECUTE) on `inode`. As
    /// in POSIX, only the first class that matches (owner, then group, then other) counts.
    pub fn allows(&self, inode: &Inode, access: u16) -> bool {
        if self.is_superuser() {
            return true;
        }
        let bits = if inode.owner == self.user {
            inode.perm >> 6
        } else if self.in_group(&inode.group) {
            inode.perm >> 3
        } else {
            inode.perm
        } & 7;
        bits & access == access
    }

    pub fn check(&self, inode: &Inode, path: &str, access: u16) -> Result<(), Error> {
        if self.allows(inode, access) {
            Ok(())
        } else {
            Err(Error::AccessControl(format!(
                "Permission denied: user={}, access={}, inode=\"{}\":{}:{}:{}",
                self.user,
                action(access),
                path,
                inode.owner,
                inode.group,
                mode_string(inode.is_dir(), inode.perm)
            )))
        }
    }

    /// The sticky-bit rule for removing or renaming `child` out of `dir`.
    pub fn check_sticky(&self, dir: &Inode, dir_path: &str, child: &Inode, child_path: &str) -> Result<(), Error> {
        if self.is_superuser() || dir.perm & STICKY == 0 || dir.owner == self.user || child.owner == self.user {
            return Ok(());
        }
        Err(Error::AccessControl(format!(
            "Permission denied by sticky bit: user={}, path=\"{}\":{}:{}:{}, parent=\"{}\":{}:{}:{}",
            self.user,
            child_path,
            child.owner,
            child.group,
            mode_string(child.is_dir(), child.perm),
            dir_path,
            dir.owner,
            dir.group,
            mode_string(true, dir.perm)
        )))
    }

    pub fn check_owner(&self, inode: &Inode, path: &str) -> Result<(), Error> {
        if self.is_superuser() || inode.owner == self.user {
            return Ok(());
        }
        Err(Error::AccessControl(format!("Permission denied. user={} is not the owner of inode={}", self.user, path)))
    }
}

/// Hadoop's `FsAction` symbol for an access (`READ_EXECUTE`, `ALL`, ...).
fn action(access: u16) -> &'static str {
    ["NONE", "EXECUTE", "WRITE", "WRITE_EXECUTE", "READ", "READ_EXECUTE", "READ_WRITE", "ALL"][(access & 7) as usize]
}

/// `drwxr-xr-t`, as `ls` and Hadoop print a mode.
pub fn mode_string(is_dir: bool, perm: u16) -> String {
    let mut s = String::with_capacity(10);
    s.push(if is_dir { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let b = perm >> shift;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        let x = b & 1 != 0;
        if shift == 0 && perm & STICKY != 0 {
            s.push(if x { 't' } else { 'T' });
        } else {
            s.push(if x { 'x' } else { '-' });
        }
    }
    s
}
