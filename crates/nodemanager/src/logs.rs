//! Container logs over HTTP (YARN's NodeManager web server's `containerlogs`, in a small JSON
//! and raw-bytes form), and a blocking client of it.
//!
//! ```text
//! GET /logs/<app id>
//!     200 {"containers":[{"id":"container_...","files":[{"name":"stderr","length":N},...]},...]}
//!     404 when no container of the app has logs here
//! GET /logs/<app id>/<container id>/<stdout|stderr>[?start=N]
//!     200 the file's bytes from `start` (N < 0: the last -N bytes, YARN's convention; N >= 0:
//!     from offset N, at most the end), with Content-Length
//!     400 a bad id, file name or start, or a container of another app; 404 a missing file
//! ```
//!
//! **Invariant:** no path is taken from the request: the ids are parsed as typed ids and
//! printed back by `compute-proto` (so they hold only `[a-z0-9_]`), and the file name is one
//! of two constants; a request can only name `<log_dir>/<app>/<container>/{stdout,stderr}`.
//! Bounded as webhdfs's server is: connections ([`MAX_CONNECTIONS`]), the request head
//! ([`MAX_HEAD`]) and the time to read it ([`HEAD_TIMEOUT`]); the client bounds what it reads
//! ([`FETCH_MAX`], [`LIST_MAX`]) and how long it waits ([`CONNECT_TIMEOUT`], [`IO_TIMEOUT`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use compute_proto::ids::{ApplicationId, ContainerId};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The files of a container's log dir that are served.
pub const FILES: [&str; 2] = ["stderr", "stdout"];
/// The longest request head (as webhdfs's, Hadoop's `hadoop.http.max.request.header.size`).
pub const MAX_HEAD: usize = 64 << 10;
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_CONNECTIONS: usize = 256;
/// The most bytes [`fetch`] reads: ask for the last ones with a negative `start`.
pub const FETCH_MAX: u64 = 64 << 20;
/// The most bytes of a listing [`list`] reads.
pub const LIST_MAX: u64 = 16 << 20;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Each read and write of the client.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read from a log file per body chunk.
const CHUNK: usize = 64 << 10;

/// One log file of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// `stdout` or `stderr`.
    pub name: String,
    pub length: u64,
}

/// A container's log files on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLogs {
    pub id: ContainerId,
    pub files: Vec<LogFile>,
}

/// A running log server.
pub struct LogServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LogServer {
    /// Binds `listen` and serves the logs under `log_dir`. Runs on a tokio runtime.
    pub async fn start(listen: SocketAddr, log_dir: PathBuf) -> std::io::Result<LogServer> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, router(log_dir), stop.clone()));
        Ok(LogServer { addr, stop, task: Some(task) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and drops the connections in progress.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for LogServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The routes, over the logs under `log_dir`.
pub fn router(log_dir: PathBuf) -> Router {
    Router::new().route("/logs/{*rest}", get(logs)).with_state(Arc::new(log_dir))
}

/// What went wrong, as a status and a line of text.
struct HttpError(StatusCode, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{}\n", self.1)).into_response()
    }
}

fn bad(m: String) -> HttpError {
    HttpError(StatusCode::BAD_REQUEST, m)
}

async fn logs(State(log_dir): State<Arc<PathBuf>>, req: Request) -> Result<Response, HttpError> {
    let path = req.uri().path().strip_prefix("/logs/").unwrap_or_default();
    let parts: Vec<&str> = path.split('/').collect();
    match parts[..] {
        [app] => list_app(&log_dir, parse_app(app)?).await,
        [app, container, file] => {
            let app = parse_app(app)?;
            let container: ContainerId =
                container.parse().map_err(|_| bad(format!("bad container id {container:?}")))?;
            if container.app() != app {
                return Err(bad(format!("container {container} does not belong to {app}")));
            }
            let Some(file) = FILES.iter().find(|f| **f == file) else {
                return Err(bad(format!("bad log file name {file:?} (stdout or stderr)")));
            };
            let start = parse_start(req.uri().query())?;
            serve_file(&log_dir, app, container, file, start).await
        }
        _ => Err(bad("want /logs/<app id> or /logs/<app id>/<container id>/<stdout|stderr>".into())),
    }
}

fn parse_app(s: &str) -> Result<ApplicationId, HttpError> {
    s.parse().map_err(|_| bad(format!("bad application id {s:?}")))
}

/// The `start` parameter (others are ignored, as YARN's web server ignores them).
fn parse_start(query: Option<&str>) -> Result<Option<i64>, HttpError> {
    let mut start = None;
    for kv in query.unwrap_or_default().split('&') {
        if let Some(v) = kv.strip_prefix("start=") {
            start = Some(v.parse::<i64>().map_err(|_| bad(format!("bad start {v:?} (an integer)")))?);
        }
    }
    Ok(start)
}

/// The offset `start` names in a file of `len` bytes.
pub fn offset_of(start: Option<i64>, len: u64) -> u64 {
    match start {
        None => 0,
        Some(n) if n < 0 => len.saturating_sub(n.unsigned_abs()),
        Some(n) => (n as u64).min(len),
    }
}

fn container_dir(log_dir: &Path, app: ApplicationId, container: ContainerId) -> PathBuf {
    log_dir.join(app.to_string()).join(container.to_string())
}

async fn list_app(log_dir: &Path, app: ApplicationId) -> Result<Response, HttpError> {
    let log_dir = log_dir.to_path_buf();
    let found = tokio::task::spawn_blocking(move || list_dir(&log_dir, app))
        .await
        .map_err(|e| HttpError(StatusCode::INTERNAL_SERVER_ERROR, format!("listing: {e}")))?;
    if found.is_empty() {
        return Err(HttpError(StatusCode::NOT_FOUND, format!("no logs of {app} on this node")));
    }
    let containers: Vec<serde_json::Value> = found
        .iter()
        .map(|c| {
            let files: Vec<_> =
                c.files.iter().map(|f| serde_json::json!({"name": f.name, "length": f.length})).collect();
            serde_json::json!({"id": c.id.to_string(), "files": files})
        })
        .collect();
    let body = serde_json::json!({ "containers": containers }).to_string();
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The containers of `app` with a log dir under `log_dir`, in id order; only names that are
/// container ids of `app` as printed.
fn list_dir(log_dir: &Path, app: ApplicationId) -> Vec<ContainerLogs> {
    let Ok(entries) = std::fs::read_dir(log_dir.join(app.to_string())) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<ContainerId>().ok()) else { continue };
        if id.app() != app || e.file_name().to_str() != Some(id.to_string().as_str()) {
            continue;
        }
        let dir = container_dir(log_dir, app, id);
        let files = FILES
            .iter()
            .filter_map(|name| {
                let m = std::fs::metadata(dir.join(name)).ok().filter(|m| m.is_file())?;
                Some(LogFile { name: name.to_string(), length: m.len() })
            })
            .collect();
        out.push(ContainerLogs { id, files });
    }
    out.sort_by_key(|c| c.id);
    out
}

async fn serve_file(
    log_dir: &Path,
    app: ApplicationId,
    container: ContainerId,
    file: &str,
    start: Option<i64>,
) -> Result<Response, HttpError> {
    let path = container_dir(log_dir, app, container).join(file);
    let not_found = || HttpError(StatusCode::NOT_FOUND, format!("no {file} of {container} on this node"));
    let mut f = tokio::fs::File::open(&path).await.map_err(|_| not_found())?;
    let len = f.metadata().await.ok().filter(|m| m.is_file()).ok_or_else(not_found)?.len();
    let offset = offset_of(start, len);
    f.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| HttpError(StatusCode::INTERNAL_SERVER_ERROR, format!("{file} of {container}: {e}")))?;
    let n = len - offset;
    // Exactly `n` bytes (a running container's log grows meanwhile); a file that ends early
    // ends the body short, and hyper closes the connection.
    let stream = futures_util::stream::unfold((f, n), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        match f.read(&mut buf).await {
            Ok(0) => Some((Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)), (f, 0))),
            Ok(k) => {
                buf.truncate(k);
                Some((Ok(Bytes::from(buf)), (f, left - k as u64)))
            }
            Err(e) => Some((Err(e), (f, 0))),
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    Ok(r)
}

/// Serves `router` on `listener` until `stop` is cancelled (a copy of `webhdfs::serve`: the
/// NodeManager does not depend on the file system's gateway).
async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("http accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(MAX_HEAD)
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(%peer, "http connection: {e}") },
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("{addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    /// The server answered with an error status.
    #[error("{addr}: HTTP {status}: {message}")]
    Status { addr: String, status: u16, message: String },
    #[error("{addr}: bad answer: {message}")]
    BadAnswer { addr: String, message: String },
    #[error("{addr}: the answer is {length} bytes, more than {max} (ask for the last bytes with a negative start)")]
    TooLarge { addr: String, length: u64, max: u64 },
}

/// The containers of `app` with logs on the node whose HTTP server is `http_addr`; empty when
/// it has none.
pub fn list(http_addr: &str, app: ApplicationId) -> Result<Vec<ContainerLogs>, LogsError> {
    let bad = |message: String| LogsError::BadAnswer { addr: http_addr.to_string(), message };
    let body = match http_get(http_addr, &format!("/logs/{app}"), LIST_MAX) {
        Ok(b) => b,
        Err(LogsError::Status { status: 404, .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let containers = v["containers"].as_array().ok_or_else(|| bad("no \"containers\" array".into()))?;
    let mut out = Vec::with_capacity(containers.len());
    for c in containers {
        let id = c["id"].as_str().and_then(|s| s.parse::<ContainerId>().ok());
        let id = id.ok_or_else(|| bad(format!("a container without a good id: {c}")))?;
        let files = c["files"].as_array().ok_or_else(|| bad(format!("{id}: no \"files\" array")))?;
        let files = files
            .iter()
            .map(|f| match (f["name"].as_str(), f["length"].as_u64()) {
                (Some(name), Some(length)) => Ok(LogFile { name: name.to_string(), length }),
                _ => Err(bad(format!("{id}: a bad file entry {f}"))),
            })
            .collect::<Result<_, _>>()?;
        out.push(ContainerLogs { id, files });
    }
    Ok(out)
}

/// The bytes of `file` (`stdout` or `stderr`) of `container` of `app`, from `start` (see the
/// module's routes), at most [`FETCH_MAX`] of them.
pub fn fetch(
    http_addr: &str,
    app: ApplicationId,
    container: ContainerId,
    file: &str,
    start: Option<i64>,
) -> Result<Vec<u8>, LogsError> {
    if !FILES.contains(&file) {
        return Err(LogsError::BadAnswer { addr: http_addr.to_string(), message: format!("no log file {file:?}") });
    }
    let mut path = format!("/logs/{app}/{container}/{file}");
    if let Some(s) = start {
        path.push_str(&format!("?start={s}"));
    }
    http_get(http_addr, &path, FETCH_MAX)
}

/// One `GET path` over HTTP/1.1 (`Connection: close`); the body of a 200, else the status and
/// the body's first line. Bodies with a Content-Length or ended by the close; at most `max`.
pub fn http_get(http_addr: &str, path: &str, max: u64) -> Result<Vec<u8>, LogsError> {
    let io = |source| LogsError::Io { addr: http_addr.to_string(), source };
    let bad = |message: String| LogsError::BadAnswer { addr: http_addr.to_string(), message };
    let addr = http_addr
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| io(std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))?;
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(io)?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {http_addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut head_len = 0usize;
    let mut read_line = |r: &mut BufReader<TcpStream>, line: &mut String| -> Result<(), LogsError> {
        line.clear();
        let n = r.by_ref().take((MAX_HEAD - head_len.min(MAX_HEAD)) as u64).read_line(line).map_err(io)?;
        head_len += n;
        if n == 0 || !line.ends_with('\n') {
            return Err(bad("the head ends early or is too long".into()));
        }
        Ok(())
    };
    read_line(&mut r, &mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad(format!("status line {:?}", line.trim_end())))?;
    let mut length: Option<u64> = None;
    loop {
        read_line(&mut r, &mut line)?;
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else { return Err(bad(format!("header {h:?}"))) };
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse().map_err(|_| bad(format!("header {h:?}")))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad(format!("unsupported {h:?}")));
        }
    }
    if let Some(n) = length.filter(|n| *n > max) {
        if status == 200 {
            return Err(LogsError::TooLarge { addr: http_addr.to_string(), length: n, max });
        }
    }
    let mut body = Vec::new();
    let want = length.unwrap_or(max + 1).min(max + 1);
    r.take(want).read_to_end(&mut body).map_err(io)?;
    if let Some(n) = length {
        if (body.len() as u64) < n.min(max) {
            return Err(bad(format!("the body ends after {} of {n} bytes", body.len())));
        }
    } else if body.len() as u64 > max {
        return Err(LogsError::TooLarge { addr: http_addr.to_string(), length: body.len() as u64, max });
    }
    if status != 200 {
        let message = String::from_utf8_lossy(&body).lines().next().unwrap_or_default().to_string();
        return Err(LogsError::Status { addr: http_addr.to_string(), status, message });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_is_yarns() {
        assert_eq!(offset_of(None, 10), 0);
        assert_eq!(offset_of(Some(-5), 10), 5);
        assert_eq!(offset_of(Some(-50), 10), 0);
        assert_eq!(offset_of(Some(i64::MIN), 10), 0);
        assert_eq!(offset_of(Some(2), 10), 2);
        assert_eq!(offset_of(Some(20), 10), 10);
        assert_eq!(parse_start(Some("a=b&start=-5")).ok().flatten(), Some(-5));
        assert!(parse_start(Some("start=x")).is_err());
        assert_eq!(parse_start(None).ok().flatten(), None);
    }
}
