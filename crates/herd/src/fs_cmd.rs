//! `herd fs ...`: Hadoop's file system shell (`hadoop fs -ls` and friends, as subcommands
//! without the dash) over the dfs-client library.
//!
//! Paths are absolute or relative to the user's home, `/user/<user>`; arguments that name
//! existing paths take Hadoop's globs. Errors go to stderr as Hadoop words them
//! (`ls: `/x': No such file or directory`); a command that failed for any argument goes on
//! with the others and exits 1. Layout: this file parses the arguments and runs the metadata
//! commands; `copy.rs` has put/get/cat, `fsck.rs` fsck, `checksum.rs` checksum, `truncate.rs`
//! and `concat.rs` those two, `format.rs` the output formats and `mode.rs` chmod's modes.

mod checksum;
mod concat;
mod copy;
mod format;
mod fsck;
mod mode;
mod truncate;

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use dfs_client::{Dfs, DfsError, FileKind, FileStatus};

#[derive(Args)]
pub struct FsArgs {
    /// Cluster directory of `herd up`: its cluster.json names the NameNode.
    #[arg(long, env = "HERD_CLUSTER", value_name = "DIR")]
    cluster: Option<PathBuf>,
    /// The NameNode's RPC address, host:port (instead of --cluster).
    #[arg(long, value_name = "ADDR")]
    namenode: Option<String>,
    #[command(subcommand)]
    cmd: FsCmd,
}

impl FsArgs {
    /// The `herd up` cluster dir given (--cluster or HERD_CLUSTER), if any.
    pub fn cluster_dir(&self) -> Option<&std::path::Path> {
        self.cluster.as_deref()
    }
}

#[derive(Subcommand)]
enum FsCmd {
    /// List directories (or show files): `Found N items`, then one line per entry.
    Ls {
        /// Recurse into subdirectories.
        #[arg(short = 'R')]
        recursive: bool,
        /// List directories as plain entries, not their contents.
        #[arg(short = 'd')]
        dirs: bool,
        paths: Vec<String>,
    },
    /// Print statistics about paths in FORMAT (default %y): %b length, %F type, %g group,
    /// %n name, %o block size, %r replication, %u owner, %y/%Y modification time, %a/%A
    /// permission, %x/%X access time.
    Stat {
        #[arg(required = true, value_name = "[FORMAT] PATH")]
        args: Vec<String>,
    },
    /// Create directories.
    Mkdir {
        /// Create parents as needed; an existing directory is not an error.
        #[arg(short = 'p')]
        parents: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Copy local files (`-` = stdin) to the file system: put [-f] [-r REPL] [-b SIZE] LOCAL... DST.
    Put {
        /// Overwrite the destination if it exists.
        #[arg(short = 'f')]
        force: bool,
        /// Replication of the new files.
        #[arg(short = 'r')]
        replication: Option<u16>,
        /// Block size of the new files (bytes, or with k/m/g).
        #[arg(short = 'b', value_name = "SIZE")]
        block_size: Option<String>,
        #[arg(required = true, num_args = 2.., value_name = "LOCAL... DST")]
        args: Vec<String>,
    },
    /// Copy files to the local file system: get [-f] SRC... LOCALDST.
    Get {
        /// Overwrite local files.
        #[arg(short = 'f')]
        force: bool,
        #[arg(required = true, num_args = 2.., value_name = "SRC... LOCALDST")]
        args: Vec<String>,
    },
    /// Print files to stdout.
    Cat {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Delete files (and with -r directories).
    Rm {
        #[arg(short = 'r', short_alias = 'R')]
        recursive: bool,
        /// No error if nothing matches.
        #[arg(short = 'f')]
        force: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Move (rename) paths; into DST if it is a directory.
    Mv {
        #[arg(required = true, num_args = 2.., value_name = "SRC... DST")]
        args: Vec<String>,
    },
    /// Space used: size and space consumed by all replicas, per entry (or -s per argument).
    #[command(disable_help_flag = true)]
    Du {
        /// One line per argument.
        #[arg(short = 's')]
        summary: bool,
        /// Sizes as 1.5 K, 3 M, ...
        #[arg(short = 'h')]
        human: bool,
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        paths: Vec<String>,
    },
    /// Set the replication of files (of every file under a directory).
    Setrep {
        /// Wait until every block has that many replicas.
        #[arg(short = 'w')]
        wait: bool,
        replication: u16,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Change permissions: octal (755) or symbolic (u+x,go-w).
    Chmod {
        #[arg(short = 'R')]
        recursive: bool,
        #[arg(allow_hyphen_values = true)]
        mode: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Change owner and/or group: OWNER, OWNER:GROUP or :GROUP.
    Chown {
        #[arg(short = 'R')]
        recursive: bool,
        owner: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Print HDFS's checksum of files (MD5-of-MD5-of-CRC32C): path, algorithm, hex bytes.
    Checksum {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Check the blocks of every file under PATH: each block with its replicas, then a
    /// summary; exits 0 only if the file system there is HEALTHY.
    Fsck { path: String },
    /// Truncate files to LENGTH bytes; a cut inside a block finishes after a block recovery.
    Truncate {
        /// Wait until the block recovery is done.
        #[arg(short = 'w')]
        wait: bool,
        length: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Concatenate source files (removed) onto the end of TARGET, all in one directory.
    Concat {
        target: String,
        #[arg(required = true, value_name = "SRC")]
        srcs: Vec<String>,
    },
}

pub fn run(a: FsArgs) -> anyhow::Result<()> {
    let user = dfs_client::default_user();
    let (dfs, namenode) = connect("fs", a.cluster.as_deref(), a.namenode.as_deref(), &user)?;
    let mut sh = Shell { dfs, home: format!("/user/{user}"), user, namenode, cmd: "", failed: false };
    let code = sh.dispatch(a.cmd);
    let _ = std::io::stdout().flush();
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

/// The client for `--cluster DIR` or `--namenode ADDR` (exactly one), and the address used.
pub(crate) fn connect(
    cmd: &str,
    cluster: Option<&std::path::Path>,
    namenode: Option<&str>,
    user: &str,
) -> anyhow::Result<(Dfs, String)> {
    match (cluster, namenode) {
        (Some(_), Some(_)) => anyhow::bail!(
            "{cmd}: give the NameNode either with --cluster DIR (or HERD_CLUSTER) or with --namenode ADDR, not both"
        ),
        (None, None) => anyhow::bail!(
            "{cmd}: no NameNode given: use --cluster DIR (the directory of `herd up`, or HERD_CLUSTER) or --namenode HOST:PORT"
        ),
        (Some(dir), None) => {
            let addr = dfs_client::cluster::namenode_addr(dir)?;
            Ok((Dfs::connect(&addr, user)?, addr))
        }
        (None, Some(addr)) => Ok((Dfs::connect(addr, user)?, addr.to_string())),
    }
}

/// One command's context: the client, the user's home, and whether any argument failed.
pub(crate) struct Shell {
    dfs: Dfs,
    home: String,
    user: String,
    namenode: String,
    cmd: &'static str,
    failed: bool,
}

/// A path argument resolved: absolute path, how to print it, its status.
pub(crate) struct Item {
    abs: String,
    shown: String,
    status: FileStatus,
}

impl Shell {
    fn dispatch(&mut self, cmd: FsCmd) -> i32 {
        match cmd {
            FsCmd::Ls { recursive, dirs, paths } => self.with("ls", |s| s.ls(paths, recursive, dirs)),
            FsCmd::Stat { args } => self.with("stat", |s| s.stat(args)),
            FsCmd::Mkdir { parents, paths } => self.with("mkdir", |s| s.mkdir(paths, parents)),
            FsCmd::Put { force, replication, block_size, args } => {
                self.with("put", |s| s.put(args, force, replication, block_size))
            }
            FsCmd::Get { force, args } => self.with("get", |s| s.get(args, force)),
            FsCmd::Cat { paths } => self.with("cat", |s| s.cat(paths)),
            FsCmd::Rm { recursive, force, paths } => self.with("rm", |s| s.rm(paths, recursive, force)),
            FsCmd::Mv { args } => self.with("mv", |s| s.mv(args)),
            FsCmd::Du { summary, human, paths, .. } => self.with("du", |s| s.du(paths, summary, human)),
            FsCmd::Setrep { wait, replication, paths } => self.with("setrep", |s| s.setrep(paths, replication, wait)),
            FsCmd::Chmod { recursive, mode, paths } => self.with("chmod", |s| s.chmod(&mode, paths, recursive)),
            FsCmd::Chown { recursive, owner, paths } => self.with("chown", |s| s.chown(&owner, paths, recursive)),
            FsCmd::Checksum { paths } => self.with("checksum", |s| checksum::run(s, paths)),
            FsCmd::Fsck { path } => {
                self.cmd = "fsck";
                fsck::run(self, &path)
            }
            FsCmd::Truncate { wait, length, paths } => {
                self.with("truncate", |s| truncate::run(s, &length, paths, wait))
            }
            FsCmd::Concat { target, srcs } => self.with("concat", |s| concat::run(s, &target, srcs)),
        }
    }

    fn with(&mut self, cmd: &'static str, f: impl FnOnce(&mut Shell)) -> i32 {
        self.cmd = cmd;
        f(self);
        i32::from(self.failed)
    }

    /// An absolute, normalized path for an argument (relative ones are under the home).
    fn abs(&self, arg: &str) -> String {
        let joined = if arg.starts_with('/') { arg.to_string() } else { format!("{}/{arg}", self.home) };
        let mut parts: Vec<&str> = Vec::new();
        for c in joined.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        format!("/{}", parts.join("/"))
    }

    /// How a path found for argument `arg` is printed: relative to the home if `arg` was.
    fn shown(&self, arg: &str, abs: &str) -> String {
        if arg.starts_with('/') {
            return abs.to_string();
        }
        match abs.strip_prefix(&self.home) {
            Some("") => ".".to_string(),
            Some(rest) => rest.trim_start_matches('/').to_string(),
            None => abs.to_string(),
        }
    }

    /// Prints an error about `path` as Hadoop's shell does, and marks the command failed.
    fn fail(&mut self, path: &str, e: &DfsError) {
        let r = e.shell_reason();
        if r.about_path {
            eprintln!("{}: `{path}': {}", self.cmd, r.text);
        } else {
            eprintln!("{}: {}", self.cmd, r.text);
        }
        self.failed = true;
    }

    fn fail_with(&mut self, path: &str, reason: &str) {
        eprintln!("{}: `{path}': {reason}", self.cmd);
        self.failed = true;
    }

    fn fail_msg(&mut self, msg: &str) {
        eprintln!("{}: {msg}", self.cmd);
        self.failed = true;
    }

    /// The (absolute path, status) of what an argument names: its glob expanded, or the one
    /// path if it has no wildcard (none if nothing is there).
    fn lookup(&self, arg: &str) -> Result<Vec<(String, FileStatus)>, DfsError> {
        if dfs_client::glob::is_glob(arg) {
            // Keep the pattern's own slashes: globbing works on the argument, made absolute.
            let pattern = if arg.starts_with('/') { arg.to_string() } else { format!("{}/{arg}", self.home) };
            self.dfs.glob(&pattern)
        } else {
            let abs = self.abs(arg);
            self.dfs.status(&abs).map(|s| s.map(|s| (abs.clone(), s)).into_iter().collect())
        }
    }

    /// The paths an argument names (its glob expanded); an error printed if none.
    fn expand(&mut self, arg: &str) -> Vec<Item> {
        let found = self.lookup(arg);
        match found {
            Ok(v) if v.is_empty() => {
                self.fail_with(arg, "No such file or directory");
                Vec::new()
            }
            Ok(v) => v.into_iter().map(|(p, status)| Item { shown: self.shown(arg, &p), abs: p, status }).collect(),
            Err(e) => {
                self.fail(arg, &e);
                Vec::new()
            }
        }
    }

    fn ls(&mut self, paths: Vec<String>, recursive: bool, dirs: bool) {
        let paths = if paths.is_empty() { vec![".".to_string()] } else { paths };
        for arg in paths {
            for item in self.expand(&arg) {
                if item.status.kind == FileKind::Dir && !dirs {
                    self.ls_dir(&arg, &item.abs, recursive);
                } else {
                    let w = format::LsWidths::of([&item.status], false);
                    println!("{}", format::ls_line(&item.status, &item.shown, &w, false));
                }
            }
        }
    }

    fn ls_dir(&mut self, arg: &str, dir: &str, recursive: bool) {
        let entries = match self.dfs.list(dir) {
            Ok(e) => e,
            Err(e) => return self.fail(&self.shown(arg, dir), &e),
        };
        if !recursive && !entries.is_empty() {
            println!("Found {} items", entries.len());
        }
        let w = format::LsWidths::of(&entries, false);
        for e in &entries {
            let abs = child(dir, &e.name);
            println!("{}", format::ls_line(e, &self.shown(arg, &abs), &w, false));
            if recursive && e.kind == FileKind::Dir {
                self.ls_dir(arg, &abs, true);
            }
        }
    }

    fn stat(&mut self, mut args: Vec<String>) {
        let format = if args.len() > 1 && args[0].contains('%') { args.remove(0) } else { "%y".to_string() };
        for arg in args {
            for item in self.expand(&arg) {
                let name = item.abs.rsplit('/').next().unwrap_or("").to_string();
                println!("{}", format::stat_line(&format, &item.status, &name));
            }
        }
    }

    fn mkdir(&mut self, paths: Vec<String>, parents: bool) {
        for arg in paths {
            let abs = self.abs(&arg);
            match self.dfs.status(&abs) {
                Ok(Some(s)) => {
                    if s.kind == FileKind::File {
                        self.fail_with(&arg, "Not a directory");
                    } else if !parents {
                        self.fail_with(&arg, "File exists");
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.fail(&arg, &e);
                    continue;
                }
            }
            if !parents {
                let parent = parent_of(&abs);
                match self.dfs.status(&parent) {
                    Ok(Some(p)) if p.kind == FileKind::Dir => {}
                    Ok(Some(_)) => {
                        self.fail_with(&self.shown(&arg, &parent), "Is not a directory");
                        continue;
                    }
                    Ok(None) => {
                        self.fail_with(&arg, "No such file or directory");
                        continue;
                    }
                    Err(e) => {
                        self.fail(&arg, &e);
                        continue;
                    }
                }
            }
            if let Err(e) = self.dfs.mkdirs(&abs, 0o755, true) {
                self.fail(&arg, &e);
            }
        }
    }

    fn rm(&mut self, paths: Vec<String>, recursive: bool, force: bool) {
        for arg in paths {
            let items = if force {
                // -f: nothing there is not an error.
                let was = self.failed;
                let found = self.expand_quiet(&arg);
                self.failed = was || found.is_err();
                found.unwrap_or_default()
            } else {
                self.expand(&arg)
            };
            for item in items {
                if item.status.kind == FileKind::Dir && !recursive {
                    self.fail_with(&item.shown, "Is a directory");
                    continue;
                }
                match self.dfs.delete(&item.abs, recursive) {
                    Ok(true) => println!("Deleted {}", item.shown),
                    Ok(false) if force => {}
                    Ok(false) => self.fail_with(&item.shown, "No such file or directory"),
                    Err(e) => self.fail(&item.shown, &e),
                }
            }
        }
    }

    /// [`Shell::expand`] without the "No such file" error (for rm -f); other errors printed.
    fn expand_quiet(&mut self, arg: &str) -> Result<Vec<Item>, ()> {
        let found = self.lookup(arg);
        match found {
            Ok(v) => Ok(v.into_iter().map(|(p, status)| Item { shown: self.shown(arg, &p), abs: p, status }).collect()),
            Err(e) => {
                self.fail(arg, &e);
                Err(())
            }
        }
    }

    fn mv(&mut self, mut args: Vec<String>) {
        let dst_arg = args.pop().expect("clap requires two");
        let dst = self.abs(&dst_arg);
        let dst_status = match self.dfs.status(&dst) {
            Ok(s) => s,
            Err(e) => return self.fail(&dst_arg, &e),
        };
        let dst_is_dir = dst_status.as_ref().is_some_and(|s| s.kind == FileKind::Dir);
        let srcs: Vec<Item> = args.iter().flat_map(|a| self.expand(a)).collect();
        if srcs.len() > 1 && !dst_is_dir {
            return self.fail_with(
                &dst_arg,
                if dst_status.is_some() { "Is not a directory" } else { "No such file or directory" },
            );
        }
        for src in srcs {
            let name = src.abs.rsplit('/').next().unwrap_or("").to_string();
            let target = if dst_is_dir { child(&dst, &name) } else { dst.clone() };
            if target == src.abs {
                self.fail_with(&src.shown, "File exists");
                continue;
            }
            if dst_is_dir {
                match self.dfs.status(&target) {
                    Ok(Some(_)) => {
                        self.fail_with(&self.shown(&dst_arg, &target), "File exists");
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.fail(&dst_arg, &e);
                        continue;
                    }
                }
            } else if dst_status.is_some() {
                self.fail_with(&dst_arg, "File exists");
                continue;
            }
            if let Err(e) = self.dfs.rename(&src.abs, &target, false) {
                self.fail(&src.shown, &e);
            }
        }
    }

    fn du(&mut self, paths: Vec<String>, summary: bool, human: bool) {
        let paths = if paths.is_empty() { vec![".".to_string()] } else { paths };
        let size = |n: u64| if human { format::human(n) } else { n.to_string() };
        let mut rows = Vec::new();
        for arg in paths {
            for item in self.expand(&arg) {
                let targets: Vec<(String, String)> = if summary || item.status.kind == FileKind::File {
                    vec![(item.abs.clone(), item.shown.clone())]
                } else {
                    match self.dfs.list(&item.abs) {
                        Ok(entries) => entries
                            .iter()
                            .map(|e| {
                                let abs = child(&item.abs, &e.name);
                                (self.shown(&arg, &abs), abs)
                            })
                            .map(|(shown, abs)| (abs, shown))
                            .collect(),
                        Err(e) => {
                            self.fail(&item.shown, &e);
                            continue;
                        }
                    }
                };
                for (abs, shown) in targets {
                    match self.dfs.content_summary(&abs) {
                        Ok(c) => rows.push(vec![size(c.length), size(c.space_consumed), shown]),
                        Err(e) => self.fail(&shown, &e),
                    }
                }
            }
        }
        for line in format::table(&rows) {
            println!("{line}");
        }
    }

    /// Every path under `item` (itself first), depth first, for -R and setrep.
    fn walk(&mut self, item: Item, out: &mut Vec<Item>) {
        let is_dir = item.status.kind == FileKind::Dir;
        let (abs, shown) = (item.abs.clone(), item.shown.clone());
        out.push(item);
        if !is_dir {
            return;
        }
        match self.dfs.list(&abs) {
            Ok(entries) => {
                for e in entries {
                    let c = Item { abs: child(&abs, &e.name), shown: child(&shown, &e.name), status: e };
                    self.walk(c, out);
                }
            }
            Err(e) => self.fail(&shown, &e),
        }
    }

    fn setrep(&mut self, paths: Vec<String>, replication: u16, wait: bool) {
        if replication == 0 {
            return self.fail_msg("replication must be >= 1");
        }
        let mut files = Vec::new();
        for arg in paths {
            for item in self.expand(&arg) {
                let mut all = Vec::new();
                self.walk(item, &mut all);
                files.extend(all.into_iter().filter(|i| i.status.kind == FileKind::File));
            }
        }
        let mut set = Vec::new();
        for f in files {
            match self.dfs.set_replication(&f.abs, replication) {
                Ok(true) => {
                    println!("Replication {replication} set: {}", f.shown);
                    set.push(f);
                }
                Ok(false) => self.fail_with(&f.shown, "Not a file"),
                Err(e) => self.fail(&f.shown, &e),
            }
        }
        if wait {
            for f in set {
                self.wait_replication(&f, replication);
            }
        }
    }

    /// setrep -w: polls until every block of the file has exactly `n` live replicas (at most
    /// ten minutes).
    fn wait_replication(&mut self, f: &Item, n: u16) {
        print!("Waiting for {} ...", f.shown);
        let _ = std::io::stdout().flush();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        loop {
            let done = match self.dfs.block_health(&f.abs) {
                Ok(blocks) => blocks.iter().all(|b| {
                    b.replicas.iter().filter(|r| r.state == dfs_client::ReplicaHealthState::Live).count() == n as usize
                }),
                Err(e) => {
                    println!();
                    return self.fail(&f.shown, &e);
                }
            };
            if done {
                println!(" done");
                return;
            }
            if std::time::Instant::now() > deadline {
                println!();
                return self.fail_with(&f.shown, &format!("still not at replication {n} after ten minutes"));
            }
            print!(".");
            let _ = std::io::stdout().flush();
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }

    /// What chmod/chown act on: each argument's paths (globs expanded), with everything
    /// below the directories among them if `recursive`.
    fn targets(&mut self, paths: Vec<String>, recursive: bool) -> Vec<Item> {
        let mut all = Vec::new();
        for arg in paths {
            for item in self.expand(&arg) {
                if recursive {
                    self.walk(item, &mut all);
                } else {
                    all.push(item);
                }
            }
        }
        all
    }

    fn chmod(&mut self, spec: &str, paths: Vec<String>, recursive: bool) {
        let m = match mode::Mode::parse(spec) {
            Ok(m) => m,
            Err(e) => return self.fail_msg(&e),
        };
        for i in self.targets(paths, recursive) {
            let perm = m.apply(i.status.perm, i.status.kind == FileKind::Dir);
            if let Err(e) = self.dfs.set_permission(&i.abs, perm) {
                self.fail(&i.shown, &e);
            }
        }
    }

    fn chown(&mut self, spec: &str, paths: Vec<String>, recursive: bool) {
        let (owner, group) = match spec.split_once(':') {
            Some((o, g)) => (Some(o).filter(|o| !o.is_empty()), Some(g).filter(|g| !g.is_empty())),
            None => (Some(spec).filter(|o| !o.is_empty()), None),
        };
        if owner.is_none() && group.is_none() {
            return self.fail_msg(&format!("'{spec}' does not match expected pattern for [owner][:group]."));
        }
        for i in self.targets(paths, recursive) {
            if let Err(e) = self.dfs.set_owner(&i.abs, owner, group) {
                self.fail(&i.shown, &e);
            }
        }
    }
}

pub(crate) fn child(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

pub(crate) fn parent_of(abs: &str) -> String {
    match abs.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => abs[..i].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell() -> Shell {
        Shell {
            dfs: Dfs::connect("127.0.0.1:1", "ann").unwrap(),
            home: "/user/ann".into(),
            user: "ann".into(),
            namenode: "127.0.0.1:1".into(),
            cmd: "ls",
            failed: false,
        }
    }

    #[test]
    fn relative_paths_live_under_the_home() {
        let sh = shell();
        assert_eq!(sh.abs("/a/b"), "/a/b");
        assert_eq!(sh.abs("x"), "/user/ann/x");
        assert_eq!(sh.abs("."), "/user/ann");
        assert_eq!(sh.abs("../bob/y"), "/user/bob/y");
        assert_eq!(sh.abs("/a//b/./c/.."), "/a/b");
        assert_eq!(sh.abs("/.."), "/");
        assert_eq!(sh.shown("x*", "/user/ann/x1"), "x1");
        assert_eq!(sh.shown(".", "/user/ann"), ".");
        assert_eq!(sh.shown("/user/ann/x", "/user/ann/x"), "/user/ann/x");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(child("/", "a"), "/a");
    }
}
