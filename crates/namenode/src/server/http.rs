//! The NameNode's HTTP port (HDFS's 9870): for now `GET /status`, the NameNode's state as
//! JSON (DataNodes, block health, namespace size); the WebHDFS REST API will be served here.
//!
//! HTTP/1.1, one request per connection (`Connection: close`), the request head bounded to
//! [`HEAD_MAX`] bytes and read within [`READ_TIMEOUT`]. Anything else than `GET /status` (or
//! `/`) is answered 404 or 405 with a JSON error body.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Shared;

/// The longest request head read.
const HEAD_MAX: usize = 8 << 10;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else { continue };
        let s = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(READ_TIMEOUT, answer(stream, &s)).await.unwrap_or(Ok(())) {
                tracing::debug!(%peer, "http: {e}");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > HEAD_MAX {
            return reply(&mut stream, 431, "Request Header Fields Too Large", &error_body("request head too large"))
                .await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/" | "/status") => {
            let body = status_json(shared).await;
            reply(&mut stream, 200, "OK", &body).await
        }
        ("GET", _) => reply(&mut stream, 404, "Not Found", &error_body(&format!("no such page: {path}"))).await,
        _ => reply(&mut stream, 405, "Method Not Allowed", &error_body(&format!("method {method} not allowed"))).await,
    }
}

async fn reply(stream: &mut TcpStream, code: u16, reason: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

fn error_body(message: &str) -> String {
    format!("{{\"error\":{}}}", quote(message))
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn status_json(shared: &Shared) -> String {
    let inodes = shared.journal.read(|ns| ns.inode_count()).await.unwrap_or(0);
    let st = shared.state();
    let b = st.blocks.stats();
    let mut datanodes = Vec::new();
    for (id, r) in &st.datanodes {
        let Some((rack, capacity, free, blocks, decommissioning)) = st.blocks.datanode_summary(id) else { continue };
        let state = match (decommissioning, st.blocks.decommission_done(id)) {
            (false, _) => "In Service",
            (true, Ok(true)) => "Decommissioned",
            (true, _) => "Decommission In Progress",
        };
        datanodes.push(format!(
            "{{\"id\":{},\"data\":{},\"rack\":{},\"incarnation\":{},\"state\":{},\"capacity\":{capacity},\"free\":{free},\"blocks\":{blocks}}}",
            quote(id),
            quote(&r.info.data_addr),
            quote(&rack),
            r.incarnation,
            quote(state)
        ));
    }
    format!(
        "{{\"namenode\":{},\"epoch\":{},\"inodes\":{inodes},\"datanodes\":[{}],\"blocks\":{{\"total\":{},\"under_construction\":{},\"under_replicated\":{},\"pending\":{},\"corrupt\":{},\"missing\":{}}}}}",
        quote(&shared.config.id),
        shared.epoch(),
        datanodes.join(","),
        b.blocks,
        b.under_construction,
        b.under_replicated,
        b.pending,
        b.corrupt,
        b.missing
    )
}
