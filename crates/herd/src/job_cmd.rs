//! `herd job`: submit MapReduce jobs and follow them, as Hadoop's `mapred job` / `hadoop jar`.
//!
//! `run` writes the job file (and streaming's `-file`s) to a staging dir in the DFS
//! (`/user/<user>/.staging/<job key>`), submits an application whose AM is `herd appmaster`,
//! and, unless `--detach`, waits with a progress line (map %, reduce %, failed and killed
//! attempts), then prints the counters and exits 0 only if the job succeeded. `status`, `list`,
//! `kill` and `logs` talk to the ResourceManager (and the AM or the final report for counters).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use compute_proto::ids::{ApplicationId, ContainerId};
use compute_proto::records::{
    ApplicationReport, ApplicationState, ApplicationSubmission, ContainerLaunchContext, EnvVar, Resource,
};
use compute_proto::{ApplicationClientRequest as Q, ApplicationClientResponse as A};
use dfs_client::Dfs;
use mrapp::conf::{JobConf, JobKind, ShippedFile};
use mrapp::JobReport;
use rpc::client::{Caller, RetryPolicy, RpcClient};
use rpc::frame::Protocol;

#[derive(Args)]
pub struct JobArgs {
    /// Cluster directory of `herd up`: its cluster.json names the ResourceManager and NameNode.
    #[arg(long, env = "HERD_CLUSTER", value_name = "DIR")]
    cluster: Option<PathBuf>,
    /// The ResourceManager's address, host:port (instead of --cluster).
    #[arg(long, value_name = "ADDR")]
    rm: Option<String>,
    /// The NameNode's RPC address, host:port (instead of --cluster).
    #[arg(long, value_name = "ADDR")]
    namenode: Option<String>,
    #[command(subcommand)]
    cmd: JobCmd,
}

impl JobArgs {
    /// The `herd up` cluster dir given (--cluster or HERD_CLUSTER), if any.
    pub fn cluster_dir(&self) -> Option<&std::path::Path> {
        self.cluster.as_deref()
    }
}

#[derive(Subcommand)]
enum JobCmd {
    /// Run a job: `wordcount IN... OUT`, `grep IN OUT PATTERN`, `sort IN OUT` (a total order
    /// over the reduces), `teragen ROWS OUT`, `teravalidate IN OUT`, or
    /// `streaming -input IN -output OUT -mapper CMD [-reducer CMD] [-file F]...
    /// [-numReduceTasks N] [-D name=value]...` (Hadoop Streaming's flags).
    Run(RunArgs),
    /// One job's state, progress and counters.
    Status { app_id: String },
    /// Every job the ResourceManager knows.
    List,
    /// Kill a running job.
    Kill { app_id: String },
    /// Print a job's container logs (stdout and stderr of every container).
    Logs {
        app_id: String,
        /// Only this container.
        #[arg(long)]
        container: Option<String>,
        /// Only this file (stdout or stderr).
        #[arg(long)]
        file: Option<String>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Reduce tasks (Hadoop's mapreduce.job.reduces).
    #[arg(long, default_value_t = 1)]
    reduces: u32,
    /// The job's name (default: the job type).
    #[arg(long)]
    name: Option<String>,
    /// A task attempt silent this long is failed and re-run (Hadoop's mapreduce.task.timeout).
    #[arg(long, default_value_t = mrapp::conf::TASK_TIMEOUT_MS_DEFAULT)]
    task_timeout_ms: u64,
    /// Attempts per task before the job fails (Hadoop's mapreduce.map.maxattempts).
    #[arg(long, default_value_t = mrapp::conf::MAX_TASK_ATTEMPTS_DEFAULT)]
    max_attempts: u32,
    /// Memory of each task's container, MiB.
    #[arg(long, default_value_t = mrapp::conf::TASK_MEMORY_MB_DEFAULT)]
    task_memory_mb: u64,
    /// Map tasks of `teragen` (other jobs have one map per input block).
    #[arg(long, default_value_t = 4)]
    maps: u32,
    /// Submit and print the job id without waiting.
    #[arg(long)]
    detach: bool,
    /// The job type, then its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "JOB ARGS")]
    args: Vec<String>,
}

/// The AM's container.
const AM_MEMORY_MB: u64 = 512;
/// AM attempts (YARN's default).
const AM_MAX_ATTEMPTS: u32 = 2;

pub fn run(a: JobArgs) -> anyhow::Result<i32> {
    let user = dfs_client::default_user();
    let cluster = a.cluster.as_deref();
    let rm_addr = match (&a.rm, cluster) {
        (Some(rm), _) => rm.clone(),
        (None, Some(dir)) => crate::cluster::rm_addr_from_cluster(dir)?,
        (None, None) => bail!("no ResourceManager given: use --cluster DIR (or HERD_CLUSTER) or --rm HOST:PORT"),
    };
    let mut rm = rm_client(&rm_addr, &user);
    match a.cmd {
        JobCmd::Run(r) => {
            let namenode = match (&a.namenode, cluster) {
                (Some(nn), _) => nn.clone(),
                (None, Some(dir)) => dfs_client::cluster::namenode_addr(dir)?,
                (None, None) => bail!("no NameNode given: use --cluster DIR (or HERD_CLUSTER) or --namenode HOST:PORT"),
            };
            run_job(&mut rm, &namenode, &user, r)
        }
        JobCmd::Status { app_id } => {
            let app = parse_app(&app_id)?;
            let report = app_report(&mut rm, app)?;
            let namenode =
                a.namenode.clone().or_else(|| cluster.and_then(|d| dfs_client::cluster::namenode_addr(d).ok()));
            let job = job_report(&report, namenode.as_deref(), &user);
            print_status(&report, job.as_ref());
            Ok(0)
        }
        JobCmd::List => {
            let reports = match rm.call::<_, A>(&Q::ListApplications { states: Vec::new() })? {
                A::Applications { reports } => reports,
                other => bail!("unexpected answer: {other:?}"),
            };
            println!("Total jobs:{}", reports.len());
            println!("{:<32} {:<10} {:<10} {:>6}  {:<12} Name", "JobId", "State", "Final", "Prog", "User");
            for r in reports {
                println!(
                    "{:<32} {:<10} {:<10} {:>5.0}%  {:<12} {}",
                    r.app_id.to_string(),
                    format!("{:?}", r.state).to_uppercase(),
                    format!("{:?}", r.final_status).to_uppercase(),
                    r.progress.fraction() * 100.0,
                    r.user,
                    r.name
                );
            }
            Ok(0)
        }
        JobCmd::Kill { app_id } => {
            let app = parse_app(&app_id)?;
            match rm.call::<_, A>(&Q::KillApplication { app_id: app })? {
                A::KillRequested { .. } => {}
                other => bail!("unexpected answer: {other:?}"),
            }
            for _ in 0..100 {
                let r = app_report(&mut rm, app)?;
                if r.state.is_final() {
                    println!("Killed job {app}");
                    return Ok(0);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            println!("Kill of job {app} requested");
            Ok(0)
        }
        JobCmd::Logs { app_id, container, file } => {
            let app = parse_app(&app_id)?;
            let container: Option<ContainerId> = container.map(|c| c.parse()).transpose().context("--container")?;
            let mut out = std::io::stdout().lock();
            crate::job_logs::print_logs(&rm_addr, &user, app, container, file.as_deref(), &mut out)?;
            Ok(0)
        }
    }
}

fn parse_app(s: &str) -> anyhow::Result<ApplicationId> {
    // Hadoop prints jobs as job_<ts>_<seq>; accept that spelling too.
    let s = s.strip_prefix("job_").map(|rest| format!("application_{rest}")).unwrap_or_else(|| s.to_string());
    s.parse().with_context(|| format!("{s:?} is not an application id"))
}

pub(crate) fn rm_client(addr: &str, user: &str) -> RpcClient {
    RpcClient::new(
        addr.to_owned(),
        Protocol::ClientResourceManager,
        Caller::new(user.to_owned(), Vec::new()),
        RetryPolicy { io_timeout: Duration::from_secs(10), retry_for: Duration::from_secs(30), ..Default::default() },
    )
}

pub(crate) fn app_report(rm: &mut RpcClient, app: ApplicationId) -> anyhow::Result<ApplicationReport> {
    match rm.call::<_, A>(&Q::GetApplicationReport { app_id: app })? {
        A::Report { report } => Ok(report),
        other => bail!("unexpected answer: {other:?}"),
    }
}

/// The job's own report: from its AM while it runs, else from the report file it left.
pub(crate) fn job_report(r: &ApplicationReport, namenode: Option<&str>, user: &str) -> Option<JobReport> {
    if !r.state.is_final() && r.am_rpc_port != 0 {
        if let Ok(j) = mrapp::am::fetch_report(&format!("{}:{}", r.am_host, r.am_rpc_port), user) {
            return Some(j);
        }
    }
    let path = &r.tracking_url;
    if r.state.is_final() && path.starts_with('/') {
        let dfs = Dfs::connect(namenode?, user).ok()?;
        let bytes = mrapp::am::read_dfs_file(&dfs, path, 16 << 20).ok()?;
        return JobReport::from_json(&String::from_utf8_lossy(&bytes)).ok();
    }
    None
}

/// Parses `run`'s job type and arguments into a job description (without staging).
fn parse_job(r: &RunArgs, user: &str) -> anyhow::Result<(JobConf, Vec<PathBuf>)> {
    let (kind_name, rest) = r.args.split_first().context("no job type")?;
    let rest: Vec<String> = rest.to_vec();
    let mut local_files = Vec::new();
    let mut reduces = r.reduces;
    let mut timeout = r.task_timeout_ms;
    let mut attempts = r.max_attempts;
    let (kind, input, output) = match kind_name.as_str() {
        "wordcount" => {
            if rest.len() < 2 {
                bail!("usage: herd job run wordcount IN... OUT");
            }
            let (out, ins) = rest.split_last().expect("two or more");
            (JobKind::Wordcount, ins.to_vec(), out.clone())
        }
        "grep" => {
            let [i, o, p] = rest.as_slice() else { bail!("usage: herd job run grep IN OUT PATTERN") };
            (JobKind::Grep { pattern: p.clone() }, vec![i.clone()], o.clone())
        }
        "sort" => {
            let [i, o] = rest.as_slice() else { bail!("usage: herd job run sort IN OUT") };
            (JobKind::Sort, vec![i.clone()], o.clone())
        }
        "teragen" => {
            let [n, o] = rest.as_slice() else { bail!("usage: herd job run [--maps M] teragen ROWS OUT") };
            let rows: u64 = n.parse().with_context(|| format!("teragen: {n:?} is not a row count"))?;
            reduces = 0;
            (JobKind::Teragen { rows, maps: r.maps }, Vec::new(), o.clone())
        }
        "teravalidate" => {
            let [i, o] = rest.as_slice() else { bail!("usage: herd job run teravalidate IN OUT") };
            reduces = 1;
            (JobKind::Teravalidate, vec![i.clone()], o.clone())
        }
        "streaming" => {
            let (mut input, mut output, mut mapper, mut reducer, mut combiner) = (Vec::new(), None, None, None, None);
            let mut it = rest.iter();
            while let Some(flag) = it.next() {
                let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
                match flag.as_str() {
                    "-input" => input.push(value()?.clone()),
                    "-output" => output = Some(value()?.clone()),
                    "-mapper" => mapper = Some(value()?.clone()),
                    "-reducer" => reducer = Some(value()?.clone()),
                    "-combiner" => combiner = Some(value()?.clone()),
                    "-file" | "-files" => {
                        for f in value()?.split(',') {
                            local_files.push(PathBuf::from(f));
                        }
                    }
                    "-numReduceTasks" => reduces = value()?.parse().context("-numReduceTasks")?,
                    "-D" => {
                        let kv = value()?;
                        let (k, v) = kv.split_once('=').with_context(|| format!("-D {kv}: expected name=value"))?;
                        match k {
                            "mapreduce.job.reduces" | "mapred.reduce.tasks" => reduces = v.parse().context("-D")?,
                            "mapreduce.task.timeout" | "mapred.task.timeout" => timeout = v.parse().context("-D")?,
                            "mapreduce.map.maxattempts" | "mapreduce.reduce.maxattempts" => {
                                attempts = v.parse().context("-D")?
                            }
                            "mapreduce.job.name" | "mapred.job.name" => {}
                            other => eprintln!("herd job: -D {other} is not used by herd; ignored"),
                        }
                    }
                    other => bail!("streaming: unknown option {other:?}"),
                }
            }
            let mapper = mapper.context("streaming: -mapper is required")?;
            // `-reducer NONE` is Hadoop's map-only job.
            if reducer.as_deref() == Some("NONE") {
                reducer = None;
                reduces = 0;
            }
            if input.is_empty() {
                bail!("streaming: -input is required");
            }
            let output = output.context("streaming: -output is required")?;
            (JobKind::Streaming { mapper, reducer, combiner }, input, output)
        }
        other => bail!("unknown job type {other:?}: wordcount, grep, sort, teragen, teravalidate or streaming"),
    };
    let abs = |p: &str| if p.starts_with('/') { p.to_string() } else { format!("/user/{user}/{p}") };
    let key = format!(
        "job_{}_{:08x}",
        mrapp::now_ms(),
        u32::from_be_bytes(rpc::client::random_id()[..4].try_into().expect("4 bytes"))
    );
    let staging = format!("/user/{user}/.staging/{key}");
    let name = r.name.clone().unwrap_or_else(|| kind_name.clone());
    let mut conf = JobConf::new(&name, user, kind, input.iter().map(|p| abs(p)).collect(), &abs(&output), &staging);
    conf.reduces = reduces;
    conf.task_timeout_ms = timeout;
    conf.max_task_attempts = attempts;
    conf.task_memory_mb = r.task_memory_mb;
    for f in &local_files {
        let local_name = f
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("-file {}: no file name", f.display()))?
            .to_string();
        conf.files.push(ShippedFile { path: format!("{staging}/files/{local_name}"), local_name });
    }
    conf.validate().map_err(|e| anyhow::anyhow!(e))?;
    Ok((conf, local_files))
}

fn run_job(rm: &mut RpcClient, namenode: &str, user: &str, r: RunArgs) -> anyhow::Result<i32> {
    let (conf, local_files) = parse_job(&r, user)?;
    let dfs = Dfs::connect(namenode, user)?;
    // Hadoop's checks before submission.
    if dfs.status(&conf.output)?.is_some() {
        bail!("org.apache.hadoop.mapred.FileAlreadyExistsException: Output directory {} already exists", conf.output);
    }
    for i in &conf.input {
        if dfs.status(i)?.is_none() {
            bail!("org.apache.hadoop.mapreduce.lib.input.InvalidInputException: Input path does not exist: {i}");
        }
    }
    dfs.mkdirs(&format!("{}/files", conf.staging), 0o700, true)?;
    for (f, shipped) in local_files.iter().zip(&conf.files) {
        let bytes = std::fs::read(f).with_context(|| format!("-file {}", f.display()))?;
        mrapp::am::write_dfs_file(&dfs, &shipped.path, &bytes).map_err(|e| anyhow::anyhow!(e))?;
        // An executable local file stays executable (the NodeManager keeps the x bits).
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f)?.permissions().mode();
        if mode & 0o111 != 0 {
            dfs.set_permission(&shipped.path, 0o755)?;
        }
    }
    mrapp::am::write_dfs_file(&dfs, &conf.job_file(), conf.to_json().as_bytes()).map_err(|e| anyhow::anyhow!(e))?;
    let herd = std::env::current_exe().context("this executable")?;
    let submission = ApplicationSubmission {
        name: conf.name.clone(),
        queue: "default".into(),
        am_launch: ContainerLaunchContext {
            command: vec![herd.display().to_string(), "appmaster".into(), "--job".into(), conf.job_file()],
            env: vec![EnvVar { name: mrapp::am::ENV_NAMENODE.into(), value: namenode.to_owned() }],
            files: Vec::new(),
        },
        am_resource: Resource { memory_mb: AM_MEMORY_MB, vcores: 1 },
        max_attempts: AM_MAX_ATTEMPTS,
    };
    let app = match rm.call::<_, A>(&Q::SubmitApplication { submission })? {
        A::Submitted { app_id } => app_id,
        other => bail!("unexpected answer: {other:?}"),
    };
    eprintln!("Submitted application {app}");
    if r.detach {
        println!("{app}");
        return Ok(0);
    }
    eprintln!("Running job: {app}");
    let tty = std::io::stderr().is_terminal();
    let mut last_line = String::new();
    let report = loop {
        let report = app_report(rm, app)?;
        if report.state.is_final() {
            break report;
        }
        if report.am_rpc_port != 0 {
            if let Ok(j) = mrapp::am::fetch_report(&format!("{}:{}", report.am_host, report.am_rpc_port), user) {
                let line = format!(
                    " map {:>3.0}% reduce {:>3.0}%  failed {} killed {}",
                    (j.map_progress * 100.0).floor(),
                    (j.reduce_progress * 100.0).floor(),
                    j.maps.failed_attempts + j.reduces.failed_attempts,
                    j.maps.killed_attempts + j.reduces.killed_attempts,
                );
                if line != last_line {
                    if tty {
                        eprint!("\r{line}");
                    } else {
                        eprintln!("{line}");
                    }
                    last_line = line;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if tty && !last_line.is_empty() {
        eprintln!();
    }
    let job = job_report(&report, Some(namenode), user);
    let ok = report.state == ApplicationState::Finished
        && report.final_status == compute_proto::records::FinalApplicationStatus::Succeeded;
    if let Some(j) = &job {
        eprintln!(" map {:.0}% reduce {:.0}%", j.map_progress * 100.0, j.reduce_progress * 100.0);
    }
    if ok {
        eprintln!("Job {app} completed successfully");
    } else {
        eprintln!(
            "Job {app} failed with state {} due to: {}",
            format!("{:?}", report.final_status).to_uppercase(),
            report.diagnostics
        );
    }
    if let Some(j) = &job {
        eprint!("{}", counters_text(j));
        if !ok && !j.diagnostics.is_empty() && !report.diagnostics.contains(&j.diagnostics) {
            eprintln!("{}", j.diagnostics);
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// `Counters: N`, then each group and its `name=value`s, as Hadoop prints them.
fn counters_text(j: &JobReport) -> String {
    let n: usize = j.counters.values().map(|g| g.len()).sum();
    let mut s = format!("Counters: {n}\n");
    for (group, counters) in &j.counters {
        s.push_str(&format!("\t{group}\n"));
        for (name, value) in counters {
            s.push_str(&format!("\t\t{name}={value}\n"));
        }
    }
    s
}

fn print_status(r: &ApplicationReport, job: Option<&JobReport>) {
    println!("Job: {}", r.app_id);
    println!("Job name: {}", r.name);
    println!("User: {}", r.user);
    println!("State: {}", format!("{:?}", r.state).to_uppercase());
    println!("Final status: {}", format!("{:?}", r.final_status).to_uppercase());
    if let Some(a) = &r.current_attempt {
        println!("AM attempt: {a}");
    }
    if !r.diagnostics.is_empty() {
        println!("Diagnostics: {}", r.diagnostics);
    }
    match job {
        Some(j) => {
            println!("map() completion: {:.2}", j.map_progress);
            println!("reduce() completion: {:.2}", j.reduce_progress);
            println!(
                "Maps: {} total, {} completed ({} recovered), {} running, {} failed attempts, {} killed attempts",
                j.maps.total,
                j.maps.completed,
                j.maps.recovered,
                j.maps.running,
                j.maps.failed_attempts,
                j.maps.killed_attempts
            );
            println!(
                "Reduces: {} total, {} completed ({} recovered), {} running, {} failed attempts, {} killed attempts",
                j.reduces.total,
                j.reduces.completed,
                j.reduces.recovered,
                j.reduces.running,
                j.reduces.failed_attempts,
                j.reduces.killed_attempts
            );
            if !j.diagnostics.is_empty() {
                println!("Job diagnostics:\n{}", j.diagnostics);
            }
            print!("{}", counters_text(j));
        }
        None => println!("(no job report: the AM has not started, or the report is gone)"),
    }
}
