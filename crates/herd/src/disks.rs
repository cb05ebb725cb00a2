//! `herd up --disk-mb N`: each DataNode keeps its replicas on a file system of its own, a
//! tmpfs of N MiB mounted at its data dir, so that `herd chaos fill-disk` fills that DataNode's
//! disk and no one else's (the machine's own disk is never filled). A tmpfs lives in memory: a
//! DataNode killed and restarted finds its replicas, a machine that reboots loses them (and
//! the NameNode re-replicates from the others' — with every DataNode on tmpfs, nothing
//! survives a reboot; this is a test and demo setting).
//!
//! Mounts are made before the DataNodes start and removed after they stop. A `herd up` killed
//! with -9 leaves them mounted; the next `herd up` on the same dir unmounts them first
//! (`umount DIR/datanode-*` does it by hand).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// Whether `path` is a mount point (listed in /proc/self/mountinfo).
fn is_mount(path: &Path) -> bool {
    let Ok(canonical) = path.canonicalize() else { return false };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = canonical.display().to_string();
    // Field 5 is the mount point (spaces escaped as \040, which our paths do not have).
    info.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

fn umount(path: &Path) -> anyhow::Result<()> {
    let out = Command::new("umount").arg(path).output().context("running umount")?;
    if !out.status.success() {
        bail!("umount {}: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Mounts a tmpfs of `mb` MiB at each of `dirs` (made if missing; a mount left there by an
/// interrupted run is removed first, with what it held).
pub fn mount(dirs: &[PathBuf], mb: u64) -> anyhow::Result<()> {
    for d in dirs {
        std::fs::create_dir_all(d).with_context(|| d.display().to_string())?;
        while is_mount(d) {
            umount(d)?;
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m,mode=0755"), "herd-disk"])
            .arg(d)
            .output()
            .context("running mount (--disk-mb needs root)")?;
        if !out.status.success() {
            bail!(
                "--disk-mb: mounting a {mb} MiB tmpfs at {}: {} (it needs root)",
                d.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// Unmounts what [`mount`] mounted; errors are logged, not returned (this runs on the way out).
pub fn unmount(dirs: &[PathBuf]) {
    for d in dirs {
        if is_mount(d) {
            if let Err(e) = umount(d) {
                tracing::warn!("{e:#}");
            }
        }
    }
}
