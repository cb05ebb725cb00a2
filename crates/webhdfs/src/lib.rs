//! WebHDFS: the file system through Hadoop's REST API (`/webhdfs/v1/<path>?op=...`), so that
//! HdfsCLI, fsspec, pandas and curl work against herd unchanged. The reference is apache/hadoop's
//! WebHDFS.md; where it is silent, what Hadoop's `NamenodeWebHdfsMethods` and
//! `DatanodeWebHdfsMethods` do.
//!
//! Both roles are gateways over [`dfs_client`]: a request runs as the user its `user.name`
//! names (pseudo-authentication), through a client of the NameNode acting as that user, so the
//! namespace's own permission checks apply. The NameNode's router ([`namenode::router`])
//! answers metadata ops and redirects data ops (CREATE, APPEND, OPEN, GETFILECHECKSUM) to a
//! DataNode with `307 Temporary Redirect`; the DataNode's router ([`datanode::router`]) streams
//! the bytes through a [`dfs_client::FileWriter`] or [`dfs_client::FileReader`], never holding
//! a whole body.
//!
//! [`serve`] runs a router on a listener: HTTP/1.1, the request head read within
//! [`HEAD_TIMEOUT`] and bounded by [`MAX_HEAD`] (hyper checks its buffer between reads, so a
//! head somewhat longer that arrives in one read can pass; a longer one gets 431), at most
//! [`MAX_CONNECTIONS`] connections at once (the next waits to be accepted).

pub mod datanode;
pub mod error;
pub mod json;
pub mod namenode;
pub mod params;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use dfs_client::Dfs;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use error::WebError;

/// The URL prefix of every WebHDFS request.
pub const PREFIX: &str = "/webhdfs/v1";
/// The user a request without `user.name` acts as (Hadoop's `hadoop.http.staticuser.user`).
pub const DEFAULT_USER: &str = "dr.who";
/// The longest request head (Hadoop's `hadoop.http.max.request.header.size`, 64 KiB).
pub const MAX_HEAD: usize = 64 << 10;
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_CONNECTIONS: usize = 256;
/// Users whose NameNode clients are kept; past it one is dropped (its open writers keep theirs).
const USERS_KEPT: usize = 64;

/// The NameNode clients a gateway acts through, one per user.
pub struct Clients {
    namenode: String,
    users: Mutex<HashMap<String, Dfs>>,
}

impl Clients {
    /// Clients of the NameNode at `namenode` (`host:port` of its RPC port).
    pub fn new(namenode: impl Into<String>) -> Clients {
        Clients { namenode: namenode.into(), users: Mutex::new(HashMap::new()) }
    }

    pub fn namenode(&self) -> &str {
        &self.namenode
    }

    /// The client acting as `user` (made on first use; it connects on its first call).
    pub fn dfs(&self, user: &str) -> Result<Dfs, WebError> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = users.get(user) {
            return Ok(d.clone());
        }
        if users.len() >= USERS_KEPT {
            let victim = users.keys().next().cloned();
            if let Some(v) = victim {
                users.remove(&v);
            }
        }
        let d = Dfs::connect(&self.namenode, user)?;
        users.insert(user.to_string(), d.clone());
        Ok(d)
    }
}

/// What every WebHDFS request names: the op (for its HTTP method), its checked parameters,
/// the file system path and the user it acts as.
pub struct Call {
    pub op: params::Op,
    pub params: params::Params,
    pub path: String,
    pub user: String,
}

impl Call {
    pub fn of(req: &axum::extract::Request) -> Result<Call, WebError> {
        let method = namenode::method_of(req.method())?;
        let params = params::Params::parse(req.uri().query());
        let op = params::Op::parse(method, &params)?;
        params.check_all()?;
        let path = fs_path(req.uri().path())?;
        let user = params.user(DEFAULT_USER)?;
        tracing::debug!(op = op.name(), %path, %user, "webhdfs");
        Ok(Call { op, params, path, user })
    }
}

/// Runs blocking file system work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| WebError::io(format!("request task failed: {e}")))?
}

/// The file system path of a request URI's path (`/webhdfs/v1/a/b` -> `/a/b`): percent-decoded,
/// empty components dropped (Hadoop's `Path` normalizes `//` and a trailing `/`); `.` and
/// `..` components are an `InvalidPathException` (400), as the NameNode's name check makes
/// them, and never resolved.
pub fn fs_path(uri_path: &str) -> Result<String, WebError> {
    let rest = uri_path.strip_prefix(PREFIX).unwrap_or(uri_path);
    let decoded = percent_decode(rest).ok_or_else(|| invalid_path(rest))?;
    normalize(&decoded)
}

/// A path named in a parameter (RENAME's `destination`, CONCAT's `sources`; already decoded
/// with the query): absolute, normalized and checked as [`fs_path`] does.
pub fn param_path(name: &str, value: &str) -> Result<String, WebError> {
    if !value.starts_with('/') {
        return Err(WebError::illegal_argument(format!(
            "Invalid value for webhdfs parameter \"{name}\": {value} is not an absolute path"
        )));
    }
    normalize(value)
}

fn normalize(decoded: &str) -> Result<String, WebError> {
    let mut out = String::with_capacity(decoded.len() + 1);
    for c in decoded.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." || c.contains('\0') {
            return Err(invalid_path(decoded));
        }
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

fn invalid_path(p: &str) -> WebError {
    WebError::of_class("org.apache.hadoop.fs.InvalidPathException", format!("Invalid path name Invalid file name: {p}"))
}

/// `%XX` decoding of a URI path (`+` stays `+`); `None` for a bad escape or non-UTF-8 bytes.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `%XX` encoding of a path for a URL (unreserved characters and `/` kept).
pub fn percent_encode_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for &b in p.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Serves `router` on `listener` until `stop` is cancelled (connections in progress are
/// dropped then).
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_normalized_and_checked() {
        assert_eq!(fs_path("/webhdfs/v1").unwrap(), "/");
        assert_eq!(fs_path("/webhdfs/v1/").unwrap(), "/");
        assert_eq!(fs_path("/webhdfs/v1/a//b/").unwrap(), "/a/b");
        assert_eq!(fs_path("/webhdfs/v1/a%20b/c%2Bd+e").unwrap(), "/a b/c+d+e");
        for bad in
            ["/webhdfs/v1/a/../b", "/webhdfs/v1/..", "/webhdfs/v1/a/./b", "/webhdfs/v1/a%2F..%2Fb", "/webhdfs/v1/%zz"]
        {
            let e = fs_path(bad).unwrap_err();
            assert_eq!((e.status, e.exception.as_str()), (400, "InvalidPathException"), "{bad}");
        }
        assert_eq!(percent_encode_path("/a b/c+d"), "/a%20b/c%2Bd");
        assert_eq!(param_path("destination", "/x/%41//").unwrap(), "/x/%41");
        assert_eq!(param_path("destination", "x").unwrap_err().status, 400);
        assert_eq!(param_path("sources", "/a/../b").unwrap_err().exception, "InvalidPathException");
    }
}
