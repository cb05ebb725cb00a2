//! put, get and cat: bytes between local files (or stdin/stdout) and the file system.
//!
//! As Hadoop's shell does, a copy goes to `<target>._COPYING_` first and is renamed to the
//! target once complete, so a failed copy never leaves a partial file under the real name.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dfs_client::{CreateOptions, DfsError, FileKind};

use super::{child, format, Shell};

const COPYING: &str = "._COPYING_";

/// A progress line on stderr (`\r` updates) when stderr is a terminal.
struct Progress {
    name: String,
    total: Option<u64>,
    done: u64,
    start: Instant,
    last: Instant,
    on: bool,
}

impl Progress {
    fn new(name: &str, total: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress { name: name.to_string(), total, done: 0, start: now, last: now, on: io::stderr().is_terminal() }
    }

    fn add(&mut self, n: usize) {
        self.done += n as u64;
        if self.on && self.last.elapsed() >= Duration::from_millis(200) {
            self.last = Instant::now();
            self.draw();
        }
    }

    fn draw(&self) {
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let rate = format::human((self.done as f64 / secs) as u64);
        let line = match self.total {
            Some(t) if t > 0 => format!(
                "{}: {}B / {}B ({}%) {rate}B/s",
                self.name,
                format::human(self.done),
                format::human(t),
                self.done * 100 / t
            ),
            _ => format!("{}: {}B {rate}B/s", self.name, format::human(self.done)),
        };
        eprint!("\r{line}\x1b[K");
    }

    fn finish(&self) {
        if self.on {
            self.draw();
            eprintln!();
        }
    }
}

/// Copies `r` to `w` in pieces of 1 MiB, counting progress.
fn pump(r: &mut impl Read, w: &mut impl Write, p: &mut Progress) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
        p.add(n);
    }
}

impl Shell {
    pub(super) fn put(
        &mut self,
        mut args: Vec<String>,
        force: bool,
        replication: Option<u16>,
        block_size: Option<String>,
    ) {
        let block_size = match block_size.as_deref().map(format::parse_size) {
            Some(None) => return self.fail_msg("-b: expected a size in bytes (or with k, m, g)"),
            Some(Some(0)) => return self.fail_msg("-b: the block size must be positive"),
            Some(b) => b,
            None => None,
        };
        let opts = CreateOptions { overwrite: true, replication, block_size, perm: 0o644, create_parent: false };
        let dst_arg = args.pop().expect("clap requires two");
        let dst = self.abs(&dst_arg);
        let dst_dir = match self.dfs.status(&dst) {
            Ok(s) => s.is_some_and(|s| s.kind == FileKind::Dir),
            Err(e) => return self.fail(&dst_arg, &e),
        };
        if args.len() > 1 && !dst_dir {
            return self.fail_with(&dst_arg, "Is not a directory");
        }
        for src in args {
            let target = if dst_dir {
                let name = if src == "-" {
                    return self.fail_msg("cannot put stdin into a directory: name the file");
                } else {
                    Path::new(&src).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                };
                child(&dst, &name)
            } else {
                dst.clone()
            };
            let shown = self.shown(&dst_arg, &target);
            self.put_one(&src, &target, &shown, force, &opts);
        }
    }

    fn put_one(&mut self, src: &str, target: &str, shown: &str, force: bool, opts: &CreateOptions) {
        let local = Path::new(src);
        if src != "-" {
            match std::fs::metadata(local) {
                Ok(m) if m.is_dir() => return self.put_dir(local, target, shown, force, opts),
                Ok(_) => {}
                Err(_) => return self.fail_with(src, "No such file or directory"),
            }
        }
        match self.dfs.status(target) {
            Ok(Some(s)) if s.kind == FileKind::Dir => return self.fail_with(shown, "Is a directory"),
            Ok(Some(_)) if !force => return self.fail_with(shown, "File exists"),
            Ok(_) => {}
            Err(e) => return self.fail(shown, &e),
        }
        let copying = format!("{target}{COPYING}");
        let r = (|| -> Result<(), DfsError> {
            let mut w = self.dfs.create(&copying, opts.clone())?;
            let mut p;
            if src == "-" {
                p = Progress::new("stdin", None);
                pump(&mut io::stdin().lock(), &mut w, &mut p)?;
            } else {
                let mut f = std::fs::File::open(local)?;
                p = Progress::new(src, f.metadata().ok().map(|m| m.len()));
                pump(&mut f, &mut w, &mut p)?;
            }
            w.close()?;
            p.finish();
            self.dfs.rename(&copying, target, force)?;
            Ok(())
        })();
        if let Err(e) = r {
            let _ = self.dfs.delete(&copying, false);
            self.fail(shown, &e);
        }
    }

    fn put_dir(&mut self, local: &Path, target: &str, shown: &str, force: bool, opts: &CreateOptions) {
        match self.dfs.status(target) {
            Ok(Some(s)) if s.kind == FileKind::File => return self.fail_with(shown, "File exists"),
            Ok(Some(_)) => {}
            Ok(None) => {
                if let Err(e) = self.dfs.mkdirs(target, 0o755, false) {
                    return self.fail(shown, &e);
                }
            }
            Err(e) => return self.fail(shown, &e),
        }
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(local) {
            Ok(d) => d.flatten().map(|e| e.path()).collect(),
            Err(e) => return self.fail_msg(&format!("{}: {e}", local.display())),
        };
        entries.sort();
        for e in entries {
            let name = e.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let src = e.to_string_lossy().into_owned();
            self.put_one(&src, &child(target, &name), &child(shown, &name), force, opts);
        }
    }

    pub(super) fn get(&mut self, mut args: Vec<String>, force: bool) {
        let dst = PathBuf::from(args.pop().expect("clap requires two"));
        let dst_dir = dst.is_dir();
        let srcs: Vec<super::Item> = args.iter().flat_map(|a| self.expand(a)).collect();
        if srcs.len() > 1 && !dst_dir {
            return self.fail_with(&dst.to_string_lossy(), "Is not a directory");
        }
        for src in srcs {
            let name = src.abs.rsplit('/').next().unwrap_or("").to_string();
            let target = if dst_dir { dst.join(if name.is_empty() { "root" } else { &name }) } else { dst.clone() };
            self.get_one(&src.abs, &src.shown, src.status.kind, &target, force);
        }
    }

    fn get_one(&mut self, src: &str, shown: &str, kind: FileKind, target: &Path, force: bool) {
        let target_shown = target.to_string_lossy().into_owned();
        if kind == FileKind::Dir {
            if target.is_file() {
                return self.fail_with(&target_shown, "File exists");
            }
            if let Err(e) = std::fs::create_dir_all(target) {
                return self.fail_msg(&format!("{target_shown}: {e}"));
            }
            let entries = match self.dfs.list(src) {
                Ok(e) => e,
                Err(e) => return self.fail(shown, &e),
            };
            for e in entries {
                self.get_one(&child(src, &e.name), &child(shown, &e.name), e.kind, &target.join(&e.name), force);
            }
            return;
        }
        if target.exists() && !force {
            return self.fail_with(&target_shown, "File exists");
        }
        let copying = PathBuf::from(format!("{target_shown}{COPYING}"));
        let r = (|| -> Result<(), DfsError> {
            let mut reader = self.dfs.open(src)?;
            let mut p = Progress::new(shown, Some(reader.len()));
            let mut out = io::BufWriter::new(std::fs::File::create(&copying)?);
            pump(&mut reader, &mut out, &mut p)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            p.finish();
            std::fs::rename(&copying, target)?;
            Ok(())
        })();
        if let Err(e) = r {
            let _ = std::fs::remove_file(&copying);
            self.fail(shown, &e);
        }
    }

    pub(super) fn cat(&mut self, paths: Vec<String>) {
        let stdout = io::stdout();
        let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
        for arg in paths {
            for item in self.expand(&arg) {
                if item.status.kind == FileKind::Dir {
                    self.fail_with(&item.shown, "Is a directory");
                    continue;
                }
                let r = self.dfs.open(&item.abs).and_then(|mut r| {
                    let mut p = Progress { on: false, ..Progress::new("", None) };
                    pump(&mut r, &mut out, &mut p).map_err(DfsError::from)
                });
                match r {
                    Ok(_) => {}
                    // A reader that went away (`| head`): stop quietly, as cat does.
                    Err(DfsError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => return,
                    Err(e) => self.fail(&item.shown, &e),
                }
            }
        }
        if let Err(e) = out.flush() {
            if e.kind() != io::ErrorKind::BrokenPipe {
                self.fail_msg(&e.to_string());
            }
        }
    }
}
