//! The DataNode's WebHDFS router (HDFS's `DatanodeWebHdfsMethods`): the second step of
//! CREATE (`201 Created`) and APPEND (`200`), OPEN, and GETFILECHECKSUM (HDFS's
//! MD5-of-MD5-of-CRC32C from one replica of each block). Data is streamed through a client of the
//! DataNode's own NameNode acting as the request's user. The request body goes to a
//! [`dfs_client::FileWriter`] chunk by chunk as it arrives (a bounded channel between the
//! connection and the writer's thread); a read goes out packet by packet. Nothing is held
//! whole.
//!
//! The file is created (or reopened) before the first body byte is read, so a refusal (the
//! file exists, no permission) is answered before a client that sent `Expect: 100-continue`
//! sends its data. `namenoderpcaddress` is accepted and only named back in CREATE's Location:
//! the DataNode talks to the NameNode it was started with, never to one a request names.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use dfs_client::CreateOptions;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::error::WebError;
use crate::namenode::empty_ok;
use crate::params::{Op, Params};
use crate::{Call, Clients, PREFIX};

/// Bytes read from a file per chunk sent (a packet's worth).
const READ_CHUNK: usize = 256 << 10;
/// Chunks buffered between a connection and its file's thread, each way.
const CHANNEL_CHUNKS: usize = 8;

struct Gateway {
    clients: Clients,
}

/// The router of a DataNode's HTTP port; `namenode_rpc` is the NameNode it reports to.
pub fn router(namenode_rpc: &str) -> Router {
    let gw = Arc::new(Gateway { clients: Clients::new(namenode_rpc) });
    Router::new()
        .route(PREFIX, any(handle))
        .route(&format!("{PREFIX}/"), any(handle))
        .route(&format!("{PREFIX}/{{*path}}"), any(handle))
        .with_state(gw)
        .fallback(|req: Request| async move {
            WebError { status: 404, ..WebError::not_found(format!("no such page: {}", req.uri().path())) }
        })
}

async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    match answer(&gw, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn answer(gw: &Gateway, req: Request) -> Result<Response, WebError> {
    let Call { op, params, path, user } = Call::of(&req)?;
    match op {
        Op::Create | Op::Append => write(gw, op, &params, path, &user, req.into_body()).await,
        Op::Open => read(gw, &params, path, &user).await,
        Op::GetFileChecksum => {
            let dfs = gw.clients.dfs(&user)?;
            let sum = crate::blocking(move || Ok(dfs.file_checksum(&path)?)).await?;
            crate::namenode::ok_json(crate::json::file_checksum(&sum))
        }
        other => Err(WebError::unsupported(format!("op={} is not supported by a DataNode", other.name()))),
    }
}

/// CREATE or APPEND: opens the file, then streams the body into it; answers once the file is
/// closed (every byte acknowledged by every replica, the NameNode closed it).
async fn write(gw: &Gateway, op: Op, p: &Params, path: String, user: &str, body: Body) -> Result<Response, WebError> {
    let opts = CreateOptions {
        overwrite: p.bool("overwrite", false)?,
        replication: p.replication()?,
        block_size: p.size("blocksize")?,
        perm: p.permission(0o644)?,
        create_parent: p.bool("createparent", true)?,
    };
    let dfs = gw.clients.dfs(user)?;
    let namenode = p.get("namenoderpcaddress").unwrap_or(gw.clients.namenode()).to_string();
    let (opened_tx, opened_rx) = oneshot::channel::<Result<(), WebError>>();
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, String>>(CHANNEL_CHUNKS);
    let file = path.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<(), WebError> {
        let opened = if op == Op::Create { dfs.create(&file, opts) } else { dfs.append(&file) };
        let mut w = match opened {
            Ok(w) => {
                let _ = opened_tx.send(Ok(()));
                w
            }
            Err(e) => {
                let e = WebError::from(e);
                let _ = opened_tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        while let Some(chunk) = rx.blocking_recv() {
            // An error drops the writer: the file is abandoned, and lease recovery closes it
            // at what its replicas acknowledged.
            let chunk = chunk.map_err(|e| WebError::io(format!("reading the request body: {e}")))?;
            w.write_all(&chunk).map_err(|e| WebError::io(format!("writing {file}: {e}")))?;
        }
        w.close()?;
        Ok(())
    });
    match opened_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(joined(writer.await)),
    }
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let failed = chunk.is_err();
        // A send fails only when the writer stopped: its result says why.
        if tx.send(chunk.map_err(|e| e.to_string())).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    writer.await.map_err(|e| WebError::io(format!("writer task failed: {e}")))??;
    if op == Op::Append {
        return Ok(empty_ok());
    }
    let mut r = StatusCode::CREATED.into_response();
    let location = format!("hdfs://{namenode}{}", crate::percent_encode_path(&path));
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok(r)
}

fn joined(r: Result<Result<(), WebError>, tokio::task::JoinError>) -> WebError {
    match r {
        Ok(Err(e)) => e,
        Ok(Ok(())) => WebError::io("the writer stopped before opening the file"),
        Err(e) => WebError::io(format!("writer task failed: {e}")),
    }
}

/// OPEN: `length` bytes (default: to the end) from `offset`, checksums verified, failing over
/// between replicas. The length is known before the first byte, so it is sent as
/// Content-Length; a failure after that cuts the body short, which the client sees.
async fn read(gw: &Gateway, p: &Params, path: String, user: &str) -> Result<Response, WebError> {
    let offset = p.size("offset")?.unwrap_or(0);
    let length = p.size("length")?;
    let dfs = gw.clients.dfs(user)?;
    let (ready_tx, ready_rx) = oneshot::channel::<Result<u64, WebError>>();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let opened = dfs.open(&path).map_err(WebError::from).and_then(|mut r| {
            let len = r.len();
            if offset > len {
                return Err(WebError::io(format!("Offset={offset} out of the range [0, {len}]: {path}")));
            }
            r.seek(SeekFrom::Start(offset)).map_err(|e| WebError::io(e.to_string()))?;
            Ok((r, (len - offset).min(length.unwrap_or(u64::MAX))))
        });
        let (mut reader, n) = match opened {
            Ok(x) => x,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let _ = ready_tx.send(Ok(n));
        let mut left = n;
        while left > 0 {
            let mut buf = vec![0u8; READ_CHUNK.min(left as usize)];
            let got = match reader.read(&mut buf) {
                Ok(0) => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file ended early")),
                Ok(k) => Ok(k),
                Err(e) => Err(e),
            };
            let msg = got.map(|k| {
                buf.truncate(k);
                left -= k as u64;
                Bytes::from(buf)
            });
            let stop = msg.is_err();
            if tx.blocking_send(msg).is_err() || stop {
                return; // the client went away, or the read failed (the body ends short)
            }
        }
    });
    let n = match ready_rx.await {
        Ok(r) => r?,
        Err(_) => return Err(WebError::io("the reader stopped before opening the file")),
    };
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    Ok(r)
}
