//! The control port: ApplicationMasters (and the RM, for AM containers) start, stop and ask
//! about containers (`ContainerManagementProtocol` over the rpc framing; see `daemon.rs` for
//! what a token must be).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use compute_proto::am_nm::{ContainerManagementRequest, ContainerManagementResponse};
use compute_proto::errors::{INVALID_CONTAINER, YARN_EXCEPTION};
use compute_proto::records::{ContainerLaunchContext, ContainerState, ContainerStatus};
use compute_proto::{exit_status, ContainerId, ContainerToken};
use rpc::codec::Message;
use rpc::frame::{self, MAX_FRAME_LEN};
use rpc::{Protocol, RemoteError, Request, RequestHeader, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Shared, MAX_CONTAINERS};
use crate::containers::{ContainerExit, ContainerSpec, Ended};
use crate::localize::{self, LocalizeError};
use crate::shuffle::{app_dir, valid_user};

/// A control connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Environment variables a launch context may set at most, and their names' length.
const ENV_MAX: usize = 1024;

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let (max, stop) = (shared.cfg.max_connections, shared.stop.clone());
    rpc::server::accept_loop("ctl", listener, max, stop, |stream, peer| serve(stream, peer, shared.clone())).await
}

async fn serve(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut pre = [0u8; 6];
    stream.read_exact(&mut pre).await.map_err(|e| format!("preamble: {e}"))?;
    match Protocol::from_preamble(pre) {
        Ok(Protocol::ApplicationMasterNodeManager) => {}
        Ok(p) => return Err(format!("refused: protocol {p:?} is not served here")),
        Err(e) => return Err(format!("refused: bad preamble: {e}")),
    }
    loop {
        let mut prefix = [0u8; 4];
        match tokio::time::timeout(IDLE_TIMEOUT, stream.read_exact(&mut prefix)).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r.map_err(|e| e.to_string())?,
        };
        let len = frame::frame_len(prefix, MAX_FRAME_LEN).map_err(|e| e.to_string())?;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.map_err(|e| e.to_string())?;
        let req = match Request::<ContainerManagementRequest>::from_bytes(&body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, "refused a malformed request: {e}");
                let call_id = body.first_chunk::<8>().map(|b| u64::from_be_bytes(*b)).unwrap_or(0);
                let r: Response<ContainerManagementResponse> = Response {
                    call_id,
                    result: Err(RemoteError::new(YARN_EXCEPTION, format!("malformed request: {e}"))),
                };
                let f = frame::encode_frame(&r, MAX_FRAME_LEN).unwrap_or_default();
                let _ = stream.write_all(&f).await;
                return Err("malformed request".into());
            }
        };
        let call_id = req.header.call_id;
        let result = handle(&shared, &req.header, req.body).await;
        if let Err(e) = &result {
            tracing::info!(%peer, "refused: {e}");
        }
        let f = frame::encode_frame(&Response { call_id, result }, MAX_FRAME_LEN).map_err(|e| e.to_string())?;
        stream.write_all(&f).await.map_err(|e| e.to_string())?;
    }
}

fn invalid(message: String) -> RemoteError {
    RemoteError::new(INVALID_CONTAINER, message)
}

async fn handle(
    shared: &Arc<Shared>,
    header: &RequestHeader,
    req: ContainerManagementRequest,
) -> Result<ContainerManagementResponse, RemoteError> {
    match req {
        ContainerManagementRequest::StartContainer { token, launch } => {
            start(shared, &header.user, token, launch).await
        }
        ContainerManagementRequest::StopContainer { container_id } => {
            if shared.kill(&container_id, exit_status::KILLED_BY_APPMASTER) {
                Ok(ContainerManagementResponse::Stopped)
            } else {
                Err(invalid(format!("container {container_id} is not running on {}", shared.node_id)))
            }
        }
        ContainerManagementRequest::GetContainerStatus { container_id } => {
            let st = shared.lock();
            if st.live.contains(&container_id) {
                return Ok(ContainerManagementResponse::Status {
                    status: ContainerStatus {
                        container_id,
                        state: ContainerState::Running,
                        exit_status: exit_status::INVALID,
                        diagnostics: String::new(),
                    },
                });
            }
            match st.recent.iter().rev().find(|s| s.container_id == container_id) {
                Some(s) => Ok(ContainerManagementResponse::Status { status: s.clone() }),
                None => Err(invalid(format!("container {container_id} is not known on {}", shared.node_id))),
            }
        }
    }
}

/// Whether `token` lets this node start its container now.
async fn check_token(shared: &Arc<Shared>, token: &ContainerToken) -> Result<(), RemoteError> {
    let id = token.container_id;
    if token.node_id != shared.node_id {
        return Err(invalid(format!("container token of {id} is for node {}, not {}", token.node_id, shared.node_id)));
    }
    if id.attempt != token.app_attempt {
        return Err(invalid(format!("container token of {id} names attempt {}", token.app_attempt)));
    }
    let verifies = |shared: &Shared| shared.lock().secret.as_ref().is_some_and(|s| token.verify(s));
    // A token that does not verify may be signed under a secret made after this node read
    // it (or before the RM made one): read it again, at most once a second.
    // (A read just made by a concurrent call counts: verify again whatever this one did.)
    let ok = verifies(shared) || {
        shared.reread_secret().await;
        verifies(shared)
    };
    if !ok {
        let why = if shared.lock().secret.is_none() { "no RM secret is known yet" } else { "a bad MAC" };
        return Err(invalid(format!("container token of {id} does not verify under the RM's secret ({why})")));
    }
    if token.rm_epoch < shared.fence.current() {
        return Err(invalid(format!(
            "container token of {id} was signed by RM epoch {}, older than {}",
            token.rm_epoch,
            shared.fence.current()
        )));
    }
    let st = shared.lock();
    if st.finished_attempts.contains(&token.app_attempt) {
        return Err(invalid(format!("container {id}: attempt {} has finished", token.app_attempt)));
    }
    if st.live.contains(&id) || st.recent.iter().any(|s| s.container_id == id) {
        return Err(invalid(format!("container {id} was started already")));
    }
    if st.live.len() >= MAX_CONTAINERS {
        return Err(RemoteError::new(YARN_EXCEPTION, format!("{MAX_CONTAINERS} containers are running already")));
    }
    Ok(())
}

async fn start(
    shared: &Arc<Shared>,
    user: &str,
    token: ContainerToken,
    launch: ContainerLaunchContext,
) -> Result<ContainerManagementResponse, RemoteError> {
    check_token(shared, &token).await?;
    let id: ContainerId = token.container_id;
    if !valid_user(user) {
        return Err(invalid(format!("container {id}: bad user name {user:?}")));
    }
    if launch.command.is_empty() {
        return Err(invalid(format!("container {id}: empty command")));
    }
    localize::check(&launch.files).map_err(|e| invalid(format!("container {id}: {e}")))?;
    let namenode = match (&shared.cfg.namenode, launch.files.is_empty()) {
        (None, false) => return Err(invalid(format!("container {id}: {}", LocalizeError::NoNamenode))),
        (nn, _) => nn.clone(),
    };
    if launch.env.len() > ENV_MAX
        || launch.env.iter().any(|e| e.name.is_empty() || e.name.contains(['=', '\0']) || e.value.contains('\0'))
    {
        return Err(invalid(format!("container {id}: bad environment")));
    }
    let app = id.app();
    let local = &shared.cfg.local_dirs;
    // Containers are spread over the local dirs by their number.
    let pick = &local[(id.seq % local.len() as u64) as usize];
    let work_dir = app_dir(pick, user, &app).join(id.to_string());
    let local_dirs: Vec<String> = local.iter().map(|d| app_dir(d, user, &app).display().to_string()).collect();
    let mut env = vec![
        ("HERD_NM_ADDR".to_string(), shared.ctl_addr.to_string()),
        ("HERD_SHUFFLE_ADDR".to_string(), shared.shuffle_addr.to_string()),
        ("HERD_RM_ADDR".to_string(), shared.cfg.rm.clone()),
        ("LOCAL_DIRS".to_string(), local_dirs.join(",")),
        ("USER".to_string(), user.to_string()),
    ];
    env.extend(launch.env.into_iter().map(|e| (e.name, e.value)));
    let spec = ContainerSpec {
        id: id.to_string(),
        argv: launch.command,
        env,
        work_dir,
        log_dir: shared.cfg.log_dir.join(app.to_string()).join(id.to_string()),
        memory_limit: token.resource.memory_mb.saturating_mul(1 << 20),
    };
    // Live from here: a second start is refused, and a stop while its files are fetched is
    // remembered (in `kill_reason`) and obeyed below.
    if !shared.lock().live.insert(id) {
        return Err(invalid(format!("container {id} was started already")));
    }
    if let (Some(nn), false) = (namenode, launch.files.is_empty()) {
        let (user, files, dir) = (user.to_string(), launch.files, spec.work_dir.clone());
        let fetched = tokio::task::spawn_blocking(move || localize::localize(&nn, &user, &files, &dir)).await;
        let refused = match fetched {
            Ok(Ok(bytes)) => {
                tracing::info!(container = %id, bytes, "files fetched from the DFS");
                None
            }
            Ok(Err(e)) => Some(invalid(format!("container {id}: {e}"))),
            Err(e) => Some(RemoteError::new(YARN_EXCEPTION, format!("container {id}: fetching its files: {e}"))),
        };
        if let Some(e) = refused {
            forget(shared, &id);
            return Err(e);
        }
        if shared.lock().kill_reason.contains_key(&id) {
            // Stopped while its files were fetched: it ends without a process, as a killed one.
            shared.completed(ContainerExit {
                id: id.to_string(),
                ended: Ended::Killed,
                exit_status: 0,
                diagnostics: "Container was stopped before it was launched (while its files were fetched)".into(),
            });
            return Err(invalid(format!("container {id} was stopped before it was launched")));
        }
    }
    // On this runtime worker (not spawn_blocking): PDEATHSIG is tied to the forking thread.
    match shared.containers.launch(spec) {
        Ok(pid) => {
            tracing::info!(container = %id, pid, user, "container launched");
            // A stop that came after the check above and before the launch found no process.
            if let Some(reason) = shared.lock().kill_reason.get(&id).copied() {
                shared.kill(&id, reason);
            }
            Ok(ContainerManagementResponse::Started { container_id: id })
        }
        Err(e) => {
            forget(shared, &id);
            Err(RemoteError::new(YARN_EXCEPTION, format!("launching: {e}")))
        }
    }
}

/// A container that will not start: no longer live, and a stop asked meanwhile is moot.
fn forget(shared: &Shared, id: &ContainerId) {
    let mut st = shared.lock();
    st.live.remove(id);
    st.kill_reason.remove(id);
}
