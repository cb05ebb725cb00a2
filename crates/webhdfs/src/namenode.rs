//! The NameNode's WebHDFS router (HDFS's `NamenodeWebHdfsMethods`): metadata ops answered
//! here through a client of the NameNode's own RPC port acting as the request's user; CREATE,
//! APPEND, OPEN and GETFILECHECKSUM redirected to a DataNode (`307`, or `200 {"Location"}`
//! with `noredirect=true`). Nothing is created before the redirect, as in Hadoop: the DataNode
//! creates the file when the data arrives.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method as HttpMethod, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use dfs_client::{AdminState, DatanodeInfo, Dfs, FileKind};
use serde_json::Value;

use crate::error::WebError;
use crate::params::{Method, Op, Params};
use crate::{blocking, json, param_path, percent_encode_path, Call, Clients, PREFIX};

/// A page of `LISTSTATUS_BATCH` (Hadoop's `dfs.ls.limit`).
pub const LIST_PAGE: u32 = 1000;

/// What the NameNode's `/status` page shows (the NameNode's own state as JSON).
pub type StatusFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

struct Gateway {
    clients: Clients,
    /// Spreads CREATEs over the DataNodes.
    next: AtomicUsize,
}

/// The router of the NameNode's HTTP port: `/webhdfs/v1/...`, and `GET /status` (and `/`)
/// from `status`.
pub fn router(namenode_rpc: &str, status: Option<StatusFn>) -> Router {
    let gw = Arc::new(Gateway { clients: Clients::new(namenode_rpc), next: AtomicUsize::new(0) });
    let mut r = Router::new()
        .route(PREFIX, any(handle))
        .route(&format!("{PREFIX}/"), any(handle))
        .route(&format!("{PREFIX}/{{*path}}"), any(handle))
        .with_state(gw);
    if let Some(status) = status {
        let page = move || {
            let status = status.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], status().await) }
        };
        r = r.route("/status", get(page.clone())).route("/", get(page));
    }
    r.fallback(|req: Request| async move {
        WebError { status: 404, ..WebError::not_found(format!("no such page: {}", req.uri().path())) }
    })
}

/// The HTTP method as WebHDFS groups its ops; any other method is refused.
pub(crate) fn method_of(m: &HttpMethod) -> Result<Method, WebError> {
    match *m {
        HttpMethod::GET | HttpMethod::HEAD => Ok(Method::Get),
        HttpMethod::PUT => Ok(Method::Put),
        HttpMethod::POST => Ok(Method::Post),
        HttpMethod::DELETE => Ok(Method::Delete),
        ref other => Err(WebError {
            status: 405,
            ..WebError::unsupported(format!("HTTP method {other} is not supported by WebHDFS"))
        }),
    }
}

async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    match answer(&gw, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn answer(gw: &Arc<Gateway>, req: Request) -> Result<Response, WebError> {
    let Call { op, params, path, user } = Call::of(&req)?;
    let dfs = gw.clients.dfs(&user)?;
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    let gw = gw.clone();
    blocking(move || gw.run(op, &dfs, &path, &user, &params, &host)).await
}

impl Gateway {
    fn run(&self, op: Op, dfs: &Dfs, path: &str, user: &str, p: &Params, host: &str) -> Result<Response, WebError> {
        match op {
            Op::GetFileStatus => {
                let s = dfs.status(path)?.ok_or_else(|| WebError::not_found(format!("File does not exist: {path}")))?;
                ok_json(serde_json::json!({ "FileStatus": json::file_status(&s) }))
            }
            Op::ListStatus => ok_json(json::file_statuses(&dfs.list(path)?)),
            Op::ListStatusBatch => {
                let start_after = p.get("startafter").unwrap_or("");
                let (entries, remaining) = dfs.list_page(path, start_after, LIST_PAGE)?;
                ok_json(json::directory_listing(&entries, remaining))
            }
            Op::GetContentSummary => ok_json(json::content_summary(&dfs.content_summary(path)?)),
            Op::GetHomeDirectory => ok_json(json::path(&format!("/user/{user}"))),
            Op::GetTrashRoot => ok_json(json::path(&format!("/user/{user}/.Trash"))),
            Op::GetFileBlockLocations => {
                let offset = p.size("offset")?.unwrap_or(0);
                let length = p.size("length")?.unwrap_or(u64::MAX >> 1);
                ok_json(json::block_locations(&dfs.block_locations(path, offset, length)?))
            }
            Op::Mkdirs => ok_json(json::boolean(dfs.mkdirs(path, p.permission(0o755)?, true)?)),
            Op::Rename => self.rename(dfs, path, p),
            Op::SetReplication => {
                let r = match p.replication()? {
                    Some(r) => r,
                    None => dfs.server_defaults()?.replication,
                };
                ok_json(json::boolean(dfs.set_replication(path, r)?))
            }
            Op::SetOwner => {
                let (owner, group) = (p.get("owner"), p.get("group"));
                if owner.is_none() && group.is_none() {
                    return Err(WebError::illegal_argument("Both owner and group are empty."));
                }
                dfs.set_owner(path, owner, group)?;
                Ok(empty_ok())
            }
            Op::SetPermission => {
                dfs.set_permission(path, p.permission(0o755)?)?;
                Ok(empty_ok())
            }
            Op::SetTimes => {
                let t = |name: &str| -> Result<Option<u64>, WebError> {
                    Ok(p.long(name, -1)?.filter(|v| *v >= 0).map(|v| v as u64))
                };
                dfs.set_times(path, t("modificationtime")?, t("accesstime")?)?;
                Ok(empty_ok())
            }
            Op::Delete => ok_json(json::boolean(dfs.delete(path, p.bool("recursive", false)?)?)),
            Op::Create | Op::Append | Op::Open | Op::GetFileChecksum => self.redirect(op, dfs, path, user, p, host),
            Op::Truncate => {
                p.required("newlength", "TRUNCATE")?;
                let n = p.size("newlength")?.unwrap_or_default();
                ok_json(json::boolean(dfs.truncate(path, n)?))
            }
            Op::Concat => {
                let sources = p.required("sources", "CONCAT")?;
                let srcs =
                    sources.split(',').map(|s| param_path("sources", s.trim())).collect::<Result<Vec<_>, _>>()?;
                let srcs: Vec<&str> = srcs.iter().map(String::as_str).collect();
                dfs.concat(path, &srcs)?;
                Ok(empty_ok())
            }
        }
    }

    /// RENAME: with `renameoptions` HDFS's `rename2` (`{"boolean": true}` or an exception);
    /// without, the old `rename`: into an existing directory, and `{"boolean": false}` instead
    /// of the errors a name clash or a missing source give.
    fn rename(&self, dfs: &Dfs, src: &str, p: &Params) -> Result<Response, WebError> {
        let dst = param_path("destination", p.required("destination", "RENAME")?)?;
        if let Some(opts) = p.get("renameoptions") {
            let mut overwrite = false;
            for o in opts.split(',').map(str::trim) {
                match o.to_ascii_uppercase().as_str() {
                    "OVERWRITE" => overwrite = true,
                    "NONE" | "" => {}
                    other => {
                        return Err(WebError::illegal_argument(format!(
                            "Invalid value for webhdfs parameter \"renameoptions\": No enum constant org.apache.hadoop.fs.Options.Rename.{other}"
                        )))
                    }
                }
            }
            dfs.rename(src, &dst, overwrite)?;
            return ok_json(json::boolean(true));
        }
        // Old semantics: a directory destination means "into it".
        let target = match dfs.status(&dst)? {
            Some(s) if s.kind == FileKind::Dir => {
                let name = src.rsplit('/').next().unwrap_or("");
                if dst == "/" {
                    format!("/{name}")
                } else {
                    format!("{dst}/{name}")
                }
            }
            _ => dst,
        };
        match dfs.rename(src, &target, false) {
            Ok(()) => ok_json(json::boolean(true)),
            Err(e) => match e.exception_name() {
                Some(
                    "FileNotFoundException"
                    | "FileAlreadyExistsException"
                    | "ParentNotDirectoryException"
                    | "IOException"
                    | "InvalidPathException",
                ) => ok_json(json::boolean(false)),
                _ => Err(e.into()),
            },
        }
    }

    /// Where a data op goes: a DataNode holding the data (OPEN at the offset, APPEND's last
    /// block, GETFILECHECKSUM's first block) or any live one, minus `excludedatanodes`; the
    /// request's parameters go along, with the user and the NameNode's RPC address.
    fn redirect(
        &self,
        op: Op,
        dfs: &Dfs,
        path: &str,
        user: &str,
        p: &Params,
        host: &str,
    ) -> Result<Response, WebError> {
        // Every parameter was checked (check_all): a bad one is refused before any data is sent.
        let offset = p.size("offset")?.unwrap_or(0);
        let excluded = p.excluded_datanodes();
        let usable = |d: &DatanodeInfo| {
            !d.http_addr.is_empty() && !excluded.iter().any(|x| x == &d.id || x == &d.data_addr || x == &d.http_addr)
        };
        let holder = match op {
            Op::Open | Op::GetFileChecksum | Op::Append => {
                let st =
                    dfs.status(path)?.ok_or_else(|| WebError::not_found(format!("File does not exist: {path}")))?;
                if st.kind == FileKind::Dir {
                    return Err(WebError::of_class(
                        "java.io.FileNotFoundException",
                        format!("Path is not a file: {path}"),
                    ));
                }
                let at = match op {
                    Op::Open => offset,
                    Op::Append => st.length.saturating_sub(1),
                    _ => 0,
                };
                let located = dfs.block_locations(path, at, 1)?;
                let block = if op == Op::Append { located.last_block } else { located.blocks.into_iter().next() };
                block.and_then(|b| b.locations.into_iter().find(|d| usable(d)))
            }
            _ => None,
        };
        let dn = match holder {
            Some(d) => d,
            None => {
                let live: Vec<DatanodeInfo> = dfs
                    .datanode_report()?
                    .into_iter()
                    .filter(|s| s.state == AdminState::InService)
                    .map(|s| s.datanode)
                    .filter(|d| usable(d))
                    .collect();
                if live.is_empty() {
                    return Err(WebError::io("Failed to find datanode, suggest to check cluster health."));
                }
                live[self.next.fetch_add(1, Ordering::Relaxed) % live.len()].clone()
            }
        };
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("op", op.name());
        for (k, v) in p.iter().filter(|(k, _)| !matches!(*k, "op" | "user.name" | "namenoderpcaddress" | "noredirect"))
        {
            query.append_pair(k, v);
        }
        query.append_pair("user.name", user);
        query.append_pair("namenoderpcaddress", &namenode_name(self.clients.namenode(), host));
        let location = format!("http://{}{PREFIX}{}?{}", dn.http_addr, percent_encode_path(path), query.finish());
        if p.bool("noredirect", false)? {
            return ok_json(serde_json::json!({ "Location": location }));
        }
        let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
        let value = HeaderValue::from_str(&location).map_err(|e| WebError::io(format!("bad redirect: {e}")))?;
        r.headers_mut().insert(header::LOCATION, value);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        Ok(r)
    }
}

/// The NameNode's RPC address as the DataNode should reach it: the configured one, with an
/// unspecified host (`0.0.0.0`) replaced by the host the client used.
fn namenode_name(rpc: &str, host: &str) -> String {
    match rpc.rsplit_once(':') {
        Some(("0.0.0.0" | "[::]", port)) if !host.is_empty() => format!("{}:{port}", json::host_of(host)),
        _ => rpc.to_string(),
    }
}

pub(crate) fn ok_json(v: Value) -> Result<Response, WebError> {
    let mut r = (StatusCode::OK, v.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// 200 with no body (SETOWNER, SETPERMISSION, SETTIMES, CONCAT; APPEND at the DataNode).
pub(crate) fn empty_ok() -> Response {
    let mut r = Response::new(Body::empty());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    r
}
