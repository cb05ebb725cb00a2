//! `herd chaos`: faults on demand against a running `herd up` cluster — kill -9, SIGSTOP and
//! SIGCONT, network partitions (a cluster started with `--netns`), a full disk (a cluster
//! started with `--disk-mb`), and `random`, a seeded schedule of all of them that prints
//! itself so that a run can be replayed.
//!
//! Targets are `ROLE[:ID]`: a role of cluster.json (keeper, namenode, datanode,
//! resourcemanager, nodemanager) or a container's process (appmaster, task: found under the
//! NodeManagers' process trees; their ID is the container id or the pid). Without an ID one
//! process of the role is picked at random (and named in the output).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

pub mod random;
pub mod workload;

#[derive(Args)]
pub struct ChaosArgs {
    /// Cluster directory of `herd up` (its cluster.json).
    #[arg(long, env = "HERD_CLUSTER", value_name = "DIR", default_value = ".herd")]
    cluster: PathBuf,
    #[command(subcommand)]
    cmd: ChaosCmd,
}

impl ChaosArgs {
    /// The `herd up` cluster dir (--cluster, HERD_CLUSTER or the default).
    pub fn cluster_dir(&self) -> &std::path::Path {
        &self.cluster
    }
}

#[derive(Subcommand)]
enum ChaosCmd {
    /// kill -9 a process; `herd up`'s supervisor restarts a role (a container's process is
    /// the ApplicationMaster's to re-run).
    Kill {
        #[arg(value_name = "ROLE[:ID]")]
        target: String,
    },
    /// Hang a process (SIGSTOP) until `resume` or `heal`.
    Pause {
        #[arg(value_name = "ROLE[:ID]")]
        target: String,
    },
    /// Continue paused processes (SIGCONT): the one named, or every paused one of the role.
    Resume {
        #[arg(value_name = "ROLE[:ID]")]
        target: String,
    },
    /// Cut a role off the network (a cluster started with `herd up --netns`): from every other
    /// role and the clients, or only from those named with --from; both ways unless --one-way.
    Partition {
        #[arg(value_name = "ROLE[:ID]")]
        target: String,
        /// Cut only the links to these (repeatable); default: everyone else.
        #[arg(long, value_name = "ROLE[:ID]")]
        from: Vec<String>,
        /// Drop only what the target sends: it still receives (a one-way partition).
        #[arg(long)]
        one_way: bool,
    },
    /// Undo every fault that can be undone: resume paused processes, remove partitions, free
    /// filled disks — of the role named, or of the whole cluster.
    Heal {
        #[arg(value_name = "ROLE[:ID]")]
        target: Option<String>,
    },
    /// Fill the file system under a role's data dir until writes fail with ENOSPC (a cluster
    /// started with `herd up --disk-mb`, whose DataNodes have small disks of their own).
    FillDisk {
        #[arg(value_name = "ROLE[:ID]")]
        target: String,
    },
    /// A seeded schedule of faults, printed before it runs (the same seed against the same
    /// cluster shape gives the same schedule); optionally with a workload and its checkers.
    Random(random::RandomArgs),
}

/// Roles of cluster.json.
pub const ROLES: [&str; 5] = ["keeper", "namenode", "datanode", "resourcemanager", "nodemanager"];
/// A container's processes, found under the NodeManagers.
pub const CONTAINER_ROLES: [&str; 2] = ["appmaster", "task"];
/// The filler `fill-disk` writes into a role's data dir (removed by `heal`).
const FILLER: &str = "chaos-fill";
/// `fill-disk` fills only file systems up to this size: never the machine's own disk.
const FILL_MAX_BYTES: u64 = 8 << 30;

/// One process a fault can hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    pub role: String,
    pub id: String,
    pub pid: i32,
    /// The network namespace it runs in (`herd up --netns`).
    pub netns: Option<String>,
}

impl std::fmt::Display for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} (pid {})", self.role, self.id, self.pid)
    }
}

/// `ROLE[:ID]` as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub role: String,
    pub id: Option<String>,
}

impl Target {
    pub fn parse(s: &str) -> anyhow::Result<Target> {
        let (role, id) = match s.split_once(':') {
            Some((r, i)) => (r, Some(i.to_owned())),
            None => (s, None),
        };
        if !ROLES.contains(&role) && !CONTAINER_ROLES.contains(&role) {
            bail!(
                "{s:?}: no role {role:?}; a target is ROLE[:ID] with ROLE one of {} or {}",
                ROLES.join(", "),
                CONTAINER_ROLES.join(", ")
            );
        }
        if id.as_deref() == Some("") {
            bail!("{s:?}: an empty ID; leave out the colon to pick one at random");
        }
        Ok(Target { role: role.to_owned(), id })
    }

    pub fn matches(&self, p: &Proc) -> bool {
        if p.role != self.role {
            return false;
        }
        match &self.id {
            None => true,
            // NodeManagers are nm1..nmN: "nodemanager:2" means nm2.
            Some(id) => {
                *id == p.id || *id == p.pid.to_string() || (p.role == "nodemanager" && p.id == format!("nm{id}"))
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{}:{id}", self.role),
            None => f.write_str(&self.role),
        }
    }
}

/// The cluster as `herd chaos` sees it: cluster.json's roles that run, and the containers'
/// processes under the NodeManagers.
pub struct Cluster {
    pub dir: PathBuf,
    pub procs: Vec<Proc>,
}

impl Cluster {
    pub fn load(dir: &Path) -> anyhow::Result<Cluster> {
        let path = dir.join("cluster.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{} (is `herd up` running there?)", path.display()))?;
        let mut procs = roles_in(&text).with_context(|| path.display().to_string())?;
        procs.extend(container_procs(&procs));
        Ok(Cluster { dir: dir.to_path_buf(), procs })
    }

    /// Every process the target names (any number, for `resume` and `heal`).
    pub fn all(&self, t: &Target) -> Vec<&Proc> {
        self.procs.iter().filter(|p| t.matches(p)).collect()
    }

    /// The one process the target names, or one picked with `pick` among those of its role.
    pub fn one(&self, t: &Target, pick: &mut dyn FnMut(usize) -> usize) -> anyhow::Result<Proc> {
        let all = self.all(t);
        match (all.len(), &t.id) {
            (0, _) => {
                let known: Vec<String> =
                    self.procs.iter().filter(|p| p.role == t.role).map(|p| format!("{}:{}", p.role, p.id)).collect();
                if known.is_empty() {
                    bail!("no running {} in {}", t.role, self.dir.display())
                }
                bail!("no {t} in {}; there are {}", self.dir.display(), known.join(", "))
            }
            (1, _) | (_, None) => Ok(all[pick(all.len())].clone()),
            (_, Some(_)) => Ok(all[0].clone()),
        }
    }
}

/// Role processes of cluster.json's text that are running.
pub fn roles_in(text: &str) -> anyhow::Result<Vec<Proc>> {
    let v: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let list = v["processes"].as_array().context("no \"processes\" list")?;
    Ok(list
        .iter()
        .filter(|p| p["state"].as_str() == Some("running"))
        .filter_map(|p| {
            Some(Proc {
                role: p["role"].as_str()?.to_owned(),
                id: p["id"].as_str()?.to_owned(),
                pid: i32::try_from(p["pid"].as_u64()?).ok()?,
                netns: p["netns"].as_str().map(str::to_owned),
            })
        })
        .collect())
}

/// A process's command line, split at its NULs.
fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
        })
        .unwrap_or_default()
}

/// A process's parent pid and state letter (R, S, T for stopped, ...), from /proc/PID/stat.
fn stat(pid: i32) -> Option<(i32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses; it ends at the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

pub fn is_paused(pid: i32) -> bool {
    matches!(stat(pid), Some((_, 'T')))
}

/// The NodeManager of `roles` that `pid` descends from (a container runs under a launcher or
/// two at most).
pub fn parent_nodemanager(pid: i32, roles: &[Proc]) -> Option<&Proc> {
    let mut up = pid;
    for _ in 0..8 {
        match stat(up) {
            Some((ppid, _)) => {
                if let Some(nm) = roles.iter().find(|p| p.role == "nodemanager" && p.pid == ppid) {
                    return Some(nm);
                }
                if ppid <= 1 {
                    return None;
                }
                up = ppid;
            }
            None => return None,
        }
    }
    None
}

/// ApplicationMaster and task processes that descend from one of the cluster's NodeManagers.
fn container_procs(roles: &[Proc]) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let args = cmdline(pid);
        let role = match args.get(1).map(String::as_str) {
            Some("appmaster") if args.get(2).map(String::as_str) == Some("--job") => "appmaster",
            Some("task") if args.get(2).map(String::as_str) == Some("--am") => "task",
            _ => continue,
        };
        let Some(nm) = parent_nodemanager(pid, roles) else { continue };
        let id = std::fs::read(format!("/proc/{pid}/environ"))
            .ok()
            .and_then(|env| {
                env.split(|c| *c == 0)
                    .find_map(|kv| kv.strip_prefix(b"CONTAINER_ID=").map(|v| String::from_utf8_lossy(v).into_owned()))
            })
            .unwrap_or_else(|| pid.to_string());
        found.push(Proc { role: role.to_owned(), id, pid, netns: nm.netns.clone() });
    }
    found.sort_by(|a, b| (&a.role, &a.id).cmp(&(&b.role, &b.id)));
    found
}

fn signal(p: &Proc, sig: i32) -> anyhow::Result<()> {
    // SAFETY: a signal to a pid of this cluster, read from cluster.json or /proc just now.
    if unsafe { libc::kill(p.pid, sig) } != 0 {
        bail!("signalling {p}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

pub fn kill(p: &Proc) -> anyhow::Result<()> {
    signal(p, libc::SIGKILL)
}

pub fn pause(p: &Proc) -> anyhow::Result<()> {
    signal(p, libc::SIGSTOP)
}

pub fn resume(p: &Proc) -> anyhow::Result<()> {
    signal(p, libc::SIGCONT)
}

/// The dir a role keeps its data in (from its command line): where `fill-disk` writes.
fn data_dir(p: &Proc) -> anyhow::Result<PathBuf> {
    let args = cmdline(p.pid);
    args.iter()
        .position(|a| a == "--data-dir" || a == "--local-dir")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .with_context(|| format!("{p} has no data dir on its command line"))
}

/// Fills the file system under `p`'s data dir: a file written until the disk refuses more
/// (ENOSPC). Returns the filler's path and size. Refuses a file system larger than
/// [`FILL_MAX_BYTES`], so that the machine's own disk is never the one filled.
pub fn fill_disk(p: &Proc) -> anyhow::Result<(PathBuf, u64)> {
    use std::io::Write;
    let dir = data_dir(p)?;
    let (size, _free) = fs_space(&dir)?;
    if size > FILL_MAX_BYTES {
        bail!(
            "{p}'s data dir {} is on a file system of {} GiB; fill-disk fills only small ones (at most {} GiB): \
             start the cluster with `herd up --disk-mb N` to give each DataNode a disk of its own",
            dir.display(),
            size >> 30,
            FILL_MAX_BYTES >> 30
        );
    }
    let path = dir.join(FILLER);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| path.display().to_string())?;
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => return Err(e).with_context(|| format!("filling {}", path.display())),
        }
    }
    // What is left in the page cache must reach the disk too, or the disk is not yet full.
    let _ = f.sync_all();
    Ok((path, written))
}

/// Whether `fill-disk` may fill `p`'s disk (its data dir is on a small file system).
pub fn fill_possible(p: &Proc) -> bool {
    data_dir(p).ok().and_then(|d| fs_space(&d).ok()).is_some_and(|(size, _)| size <= FILL_MAX_BYTES)
}

/// Removes `fill-disk`'s filler from `p`'s data dir; whether there was one.
pub fn free_disk(p: &Proc) -> anyhow::Result<bool> {
    let path = data_dir(p)?.join(FILLER);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| path.display().to_string()),
    }
}

/// (size, free) of the file system holding `dir`, bytes.
fn fs_space(dir: &Path) -> anyhow::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: statvfs fills the zeroed struct from a NUL-terminated path we own.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        bail!("statvfs {}: {}", dir.display(), std::io::Error::last_os_error());
    }
    let unit = s.f_frsize as u64;
    Ok((s.f_blocks as u64 * unit, s.f_bavail as u64 * unit))
}

/// Undoes what can be undone for the processes `t` names (all when None): SIGCONT to paused
/// ones, partitions removed, fillers deleted. Returns one line per thing undone.
pub fn heal(c: &Cluster, t: Option<&Target>) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    let procs: Vec<&Proc> = match t {
        Some(t) => c.all(t),
        None => c.procs.iter().collect(),
    };
    for p in &procs {
        if is_paused(p.pid) {
            resume(p)?;
            done.push(format!("resumed {p}"));
        }
        if ROLES.contains(&p.role.as_str()) && data_dir(p).is_ok() && free_disk(p)? {
            done.push(format!("freed the disk of {p}"));
        }
    }
    done.extend(crate::netcluster::heal(&c.dir, t)?);
    Ok(done)
}

pub fn run(a: ChaosArgs) -> anyhow::Result<i32> {
    let mut pick_rng = test_rng::Rng(crate::chaos::random::seed_from_clock());
    let mut pick = |n: usize| pick_rng.below(n as u64) as usize;
    match a.cmd {
        ChaosCmd::Random(r) => return random::run(&a.cluster, r),
        ChaosCmd::Heal { target } => {
            let c = Cluster::load(&a.cluster)?;
            let t = target.as_deref().map(Target::parse).transpose()?;
            let done = heal(&c, t.as_ref())?;
            if done.is_empty() {
                println!("nothing to heal");
            }
            for line in done {
                println!("{line}");
            }
        }
        ChaosCmd::Kill { target } => {
            let c = Cluster::load(&a.cluster)?;
            let p = c.one(&Target::parse(&target)?, &mut pick)?;
            kill(&p)?;
            println!("killed {p} with SIGKILL");
        }
        ChaosCmd::Pause { target } => {
            let c = Cluster::load(&a.cluster)?;
            let p = c.one(&Target::parse(&target)?, &mut pick)?;
            pause(&p)?;
            println!("paused {p} with SIGSTOP; `herd chaos resume {}:{}` continues it", p.role, p.id);
        }
        ChaosCmd::Resume { target } => {
            let c = Cluster::load(&a.cluster)?;
            let t = Target::parse(&target)?;
            let paused: Vec<&Proc> = c.all(&t).into_iter().filter(|p| is_paused(p.pid)).collect();
            if paused.is_empty() {
                bail!("no paused {t} in {}", a.cluster.display());
            }
            for p in paused {
                resume(p)?;
                println!("resumed {p} with SIGCONT");
            }
        }
        ChaosCmd::Partition { target, from, one_way } => {
            let c = Cluster::load(&a.cluster)?;
            let t = Target::parse(&target)?;
            let p = c.one(&t, &mut pick)?;
            let mut others = Vec::new();
            for f in &from {
                others.push(c.one(&Target::parse(f)?, &mut pick)?);
            }
            println!("{}", crate::netcluster::partition(&c.dir, &p, &others, one_way)?);
        }
        ChaosCmd::FillDisk { target } => {
            let c = Cluster::load(&a.cluster)?;
            let p = c.one(&Target::parse(&target)?, &mut pick)?;
            let (path, bytes) = fill_disk(&p)?;
            println!(
                "filled the disk of {p}: {} ({} MiB) until ENOSPC; `herd chaos heal {}:{}` frees it",
                path.display(),
                bytes >> 20,
                p.role,
                p.id
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_match() {
        assert_eq!(Target::parse("datanode").unwrap(), Target { role: "datanode".into(), id: None });
        assert_eq!(Target::parse("keeper:2").unwrap(), Target { role: "keeper".into(), id: Some("2".into()) });
        assert!(Target::parse("datanodes:1").unwrap_err().to_string().contains("no role \"datanodes\""));
        assert!(Target::parse("keeper:").is_err());
        let nm = Proc { role: "nodemanager".into(), id: "nm2".into(), pid: 77, netns: None };
        assert!(Target::parse("nodemanager:2").unwrap().matches(&nm));
        assert!(Target::parse("nodemanager:nm2").unwrap().matches(&nm));
        assert!(Target::parse("nodemanager:77").unwrap().matches(&nm));
        assert!(!Target::parse("nodemanager:1").unwrap().matches(&nm));
        assert!(!Target::parse("datanode:2").unwrap().matches(&nm));
    }

    #[test]
    fn only_running_roles_are_targets() {
        let text = r#"{"processes": [
            {"role": "keeper", "id": "1", "state": "running", "pid": 10, "addrs": {}},
            {"role": "datanode", "id": "2", "state": "restarting", "pid": 11, "addrs": {}},
            {"role": "datanode", "id": "3", "state": "running", "pid": 12, "netns": "h3", "addrs": {}}]}"#;
        let procs = roles_in(text).unwrap();
        assert_eq!(procs.len(), 2);
        assert_eq!(procs[1], Proc { role: "datanode".into(), id: "3".into(), pid: 12, netns: Some("h3".into()) });
        let c = Cluster { dir: "/x".into(), procs };
        let err = c.one(&Target::parse("datanode:2").unwrap(), &mut |_| 0).unwrap_err().to_string();
        assert!(err.contains("there are datanode:3"), "{err}");
        assert!(c
            .one(&Target::parse("task").unwrap(), &mut |_| 0)
            .unwrap_err()
            .to_string()
            .contains("no running task"));
    }

    #[test]
    fn stat_reads_this_process() {
        let (ppid, state) = stat(std::process::id() as i32).unwrap();
        assert!(ppid > 0);
        assert!(state == 'R' || state == 'S', "{state}");
    }
}
