//! The shuffle server: a reducer fetches its partition of every map's output from the
//! NodeManager that ran the map (Hadoop's ShuffleHandler, on framed TCP instead of HTTP).
//! The format is in docs/compute-formats.md, "Shuffle".
//!
//! ```text
//! connection  "HSHF" | version u8 = 1, once, client -> server
//! request     frame (len u32 BE | body, len <= REQUEST_MAX): ShuffleRequest
//! answer      per map, in request order: frame ShuffleHeader, then `length` raw bytes
//!             (the segment) when its status is Ok
//! ```
//!
//! **Invariant:** no path is taken from the request: the user is checked against a strict
//! alphabet and the ids are typed (decoded by `compute-proto`, printed back by it), so a
//! request can only name `LOCAL/usercache/<user>/appcache/<app>/output/<attempt>/file.out` of
//! the app it names. Bounded: connections (a semaphore; one over is closed at once), the
//! request frame, maps per request, and the time a connection may stay idle.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use compute_proto::ids::{ApplicationId, TaskAttemptId};
use rpc::codec::Message;
use rpc::{wire_enum, wire_struct};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The connection preamble.
pub const PREAMBLE: [u8; 5] = *b"HSHF\x01";
/// The largest request frame.
pub const REQUEST_MAX: usize = 1 << 20;
/// The largest answer header frame (its message is short).
pub const HEADER_MAX: usize = 64 << 10;
/// Map attempts one request may name.
pub const MAPS_MAX: usize = 10_000;
/// Where the shuffle port listens unless told otherwise (Hadoop's `mapreduce.shuffle.port`).
pub const LISTEN_DEFAULT: &str = "127.0.0.1:13562";
/// Connections served at once (Hadoop's `mapreduce.shuffle.max.connections` is unbounded).
pub const MAX_CONNECTIONS_DEFAULT: usize = 256;
/// A connection that sends no request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

wire_struct! {
    /// One fetch: `app | user | maps vec<attempt> | partition u32`.
    pub struct ShuffleRequest {
        pub app: ApplicationId,
        /// The job's user (whose usercache holds the outputs).
        pub user: String,
        /// Map attempts of `app`, each answered in this order.
        pub maps: Vec<TaskAttemptId>,
        /// The reduce partition.
        pub partition: u32,
    }
}

wire_enum! {
    /// How one map's segment fares.
    #[derive(Copy)]
    pub enum ShuffleStatus {
        /// `length` bytes follow.
        Ok = 0,
        /// No output of this map here (not run here, deleted with its app, lost).
        NotFound = 1,
        /// The request names something it may not (a map of another app, a bad user name, a
        /// partition past the map's).
        BadRequest = 2,
        /// The output is here but cannot be read (a corrupt index, an I/O error).
        Error = 3,
    }
}

wire_struct! {
    /// Before each map's bytes: `map | status | length u64 | crc32c u32 | message`.
    pub struct ShuffleHeader {
        pub map: TaskAttemptId,
        pub status: ShuffleStatus,
        /// Bytes of the segment that follow (0 unless Ok).
        pub length: u64,
        /// The segment's CRC32C from the map's index: the reducer checks the bytes against it.
        pub crc32c: u32,
        /// Why not, for humans ("" when Ok).
        pub message: String,
    }
}

/// Whether `user` is a user name that may be a path component: 1 to 64 of `[A-Za-z0-9._-]`,
/// not starting with `.` or `-`.
pub fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && !user.starts_with(['.', '-'])
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `LOCAL/usercache/<user>/appcache/<app>`: an application's local dir under one local dir.
pub fn app_dir(local: &Path, user: &str, app: &ApplicationId) -> PathBuf {
    debug_assert!(valid_user(user));
    local.join("usercache").join(user).join("appcache").join(app.to_string())
}

/// `LOCAL/usercache/<user>/appcache/<app>/output/<map attempt>`: where a map's output is.
pub fn map_output_dir(local: &Path, user: &str, map: &TaskAttemptId) -> PathBuf {
    app_dir(local, user, &map.task.app).join("output").join(map.to_string())
}

/// A running shuffle server.
pub struct ShuffleServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ShuffleServer {
    /// Binds `listen` and serves the map outputs under `local_dirs`.
    pub async fn start(
        listen: SocketAddr,
        local_dirs: Vec<PathBuf>,
        max_connections: usize,
    ) -> std::io::Result<ShuffleServer> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let dirs = Arc::new(local_dirs);
        let task = tokio::spawn(accept_loop(listener, dirs, max_connections.max(1), stop.clone()));
        Ok(ShuffleServer { addr, stop, task: Some(task) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and ends every connection.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for ShuffleServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, dirs: Arc<Vec<PathBuf>>, max: usize, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(max));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("shuffle accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "shuffle: refused, {max} connections already");
            continue;
        };
        let (dirs, stop) = (dirs.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                r = serve(stream, &dirs) => if let Err(e) = r {
                    tracing::debug!(%peer, "shuffle connection ended: {e}");
                },
            }
            drop(permit);
        });
    }
}

async fn serve(mut stream: TcpStream, dirs: &[PathBuf]) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut pre = [0u8; 5];
    tokio::time::timeout(IDLE_TIMEOUT, stream.read_exact(&mut pre)).await??;
    if pre != PREAMBLE {
        return Err(std::io::Error::other("bad preamble"));
    }
    loop {
        let mut prefix = [0u8; 4];
        match tokio::time::timeout(IDLE_TIMEOUT, stream.read_exact(&mut prefix)).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        };
        let len = rpc::frame::frame_len(prefix, REQUEST_MAX).map_err(std::io::Error::other)?;
        let mut body = vec![0u8; len];
        tokio::time::timeout(IDLE_TIMEOUT, stream.read_exact(&mut body)).await??;
        // A request that does not decode cannot be answered per map: the connection closes.
        let req = ShuffleRequest::from_bytes(&body).map_err(std::io::Error::other)?;
        if req.maps.len() > MAPS_MAX {
            return Err(std::io::Error::other(format!("{} maps in one request, over {MAPS_MAX}", req.maps.len())));
        }
        for map in &req.maps {
            answer(&mut stream, dirs, &req, map).await?;
        }
        stream.flush().await?;
    }
}

/// Sends one map's header and segment.
async fn answer(
    stream: &mut TcpStream,
    dirs: &[PathBuf],
    req: &ShuffleRequest,
    map: &TaskAttemptId,
) -> std::io::Result<()> {
    let refuse = |status, message: String| ShuffleHeader { map: *map, status, length: 0, crc32c: 0, message };
    let found = if map.task.app != req.app {
        Err(refuse(ShuffleStatus::BadRequest, format!("{map} is not a map of {}", req.app)))
    } else if !valid_user(&req.user) {
        Err(refuse(ShuffleStatus::BadRequest, format!("bad user name {:?}", req.user)))
    } else {
        locate(dirs, &req.user, map, req.partition).await
    };
    match found {
        Err(header) => {
            stream.write_all(&frame(&header)?).await?;
        }
        Ok((data, offset, length, crc32c)) => {
            let header = ShuffleHeader { map: *map, status: ShuffleStatus::Ok, length, crc32c, message: String::new() };
            let mut file = tokio::fs::File::open(&data).await?;
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            stream.write_all(&frame(&header)?).await?;
            // The length was checked against the file's; a file shortened meanwhile ends the
            // connection (the reducer sees a short segment), never a wrong answer.
            let sent = tokio::io::copy(&mut (&mut file).take(length), stream).await?;
            if sent != length {
                return Err(std::io::Error::other(format!("{}: {sent} of {length} bytes", data.display())));
            }
        }
    }
    Ok(())
}

fn frame(h: &ShuffleHeader) -> std::io::Result<Vec<u8>> {
    rpc::frame::encode_frame(h, HEADER_MAX).map_err(std::io::Error::other)
}

/// Finds a map's output under the local dirs: (file.out, offset, length, crc32c) of the
/// partition's segment, or the header refusing it.
async fn locate(
    dirs: &[PathBuf],
    user: &str,
    map: &TaskAttemptId,
    partition: u32,
) -> Result<(PathBuf, u64, u64, u32), ShuffleHeader> {
    let refuse = |status, message: String| ShuffleHeader { map: *map, status, length: 0, crc32c: 0, message };
    let outputs: Vec<PathBuf> = dirs.iter().map(|d| map_output_dir(d, user, map)).collect();
    let (map, partition) = (*map, partition);
    let found = tokio::task::spawn_blocking(move || {
        let dir = outputs.iter().find(|d| d.join(mapreduce::collector::INDEX_FILE).is_file())?;
        let data = dir.join(mapreduce::collector::DATA_FILE);
        let index = mapreduce::spill::read_index(&dir.join(mapreduce::collector::INDEX_FILE));
        let len = std::fs::metadata(&data).map(|m| m.len());
        Some((data, index, len))
    })
    .await
    .map_err(|e| refuse(ShuffleStatus::Error, format!("looking for the output: {e}")))?;
    let Some((data, index, len)) = found else {
        return Err(refuse(ShuffleStatus::NotFound, format!("no output of {map} on this node")));
    };
    let index = index.map_err(|e| refuse(ShuffleStatus::Error, format!("{map}: {e}")))?;
    let len = len.map_err(|e| refuse(ShuffleStatus::Error, format!("{}: {e}", data.display())))?;
    let Some(entry) = index.get(partition as usize) else {
        return Err(refuse(
            ShuffleStatus::BadRequest,
            format!("{map} has {} partitions, not partition {partition}", index.len()),
        ));
    };
    if entry.offset.checked_add(entry.raw_length).is_none_or(|end| end > len) {
        return Err(refuse(ShuffleStatus::Error, format!("{}: shorter than its index says", data.display())));
    }
    Ok((data, entry.offset, entry.raw_length, entry.crc32c))
}

/// Why a fetch failed as a whole (a map's own refusal is its [`ShuffleHeader`]).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("shuffle {addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("shuffle {addr}: bad answer: {detail}")]
    Protocol { addr: String, detail: String },
}

/// Fetches `req`'s segments from the shuffle server at `addr` (blocking): per map, its
/// header and its bytes (empty unless Ok). Segments are held in memory, at most
/// `segment_max` bytes each; the caller checks each against its CRC32C.
pub fn fetch(
    addr: &str,
    req: &ShuffleRequest,
    timeout: Duration,
    segment_max: u64,
) -> Result<Vec<(ShuffleHeader, Vec<u8>)>, FetchError> {
    use std::io::{Read, Write};
    let io = |source| FetchError::Io { addr: addr.to_string(), source };
    let proto = |detail: String| FetchError::Protocol { addr: addr.to_string(), detail };
    let sock: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(io)?
        .next()
        .ok_or_else(|| proto("resolves to nothing".into()))?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, timeout).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut out = PREAMBLE.to_vec();
    out.extend(rpc::frame::encode_frame(req, REQUEST_MAX).map_err(|e| proto(e.to_string()))?);
    s.write_all(&out).map_err(io)?;
    let mut got = Vec::with_capacity(req.maps.len());
    for map in &req.maps {
        let h: ShuffleHeader = rpc::frame::read_message(&mut s, HEADER_MAX).map_err(|e| proto(e.to_string()))?;
        if h.map != *map {
            return Err(proto(format!("answer for {} where {map} was expected", h.map)));
        }
        let mut bytes = Vec::new();
        if h.status == ShuffleStatus::Ok {
            if h.length > segment_max {
                return Err(proto(format!("{map}: segment of {} bytes over the limit {segment_max}", h.length)));
            }
            (&mut s).take(h.length).read_to_end(&mut bytes).map_err(io)?;
            if bytes.len() as u64 != h.length {
                return Err(proto(format!("{map}: {} of {} bytes", bytes.len(), h.length)));
            }
        }
        got.push((h, bytes));
    }
    Ok(got)
}
