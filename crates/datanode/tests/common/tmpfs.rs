//! A tmpfs for tests (a real disk that fills up). Shared by the datanode and herd tests
//! (`#[path]`-included), so there is one copy.

use std::path::Path;
use std::process::Command;

/// A tmpfs mounted on a temp dir (a real disk that fills up), unmounted when dropped, also when
/// a test panics. Mounting needs root; without it, `mount` returns None after saying why, and
/// the test passes vacuously — unless `HERD_EXTERNAL_CLIENTS=required` (CI), where it fails.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(Tmpfs { dir }),
            Ok(o) => format!("cannot mount a tmpfs: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => format!("cannot run mount: {e}"),
        };
        assert!(std::env::var("HERD_EXTERNAL_CLIENTS").as_deref() != Ok("required"), "{why}");
        eprintln!("SKIPPED: {why}");
        None
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(self.dir.path()).status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            // Something still holds a file open: detach it so the temp dir can go.
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}
