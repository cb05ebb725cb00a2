//! The accept loop every RPC server shares (feature `server`): connections bounded by a
//! semaphore (one past the bound is closed at once, so a flood cannot queue up work), a failed
//! accept retried after a pause, each connection on its own task that ends when `stop` is
//! cancelled. What a connection does is the caller's `serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Accepts connections on `listener` until `stop`, at most `max_connections` at once, and runs
/// `serve(stream, peer)` for each; its error ends only that connection (logged at debug, named
/// `what`).
pub async fn accept_loop<F, Fut>(
    what: &'static str,
    listener: TcpListener,
    max_connections: usize,
    stop: CancellationToken,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let max = max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("{what}: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "{what}: refused, {max} connections already");
            continue;
        };
        let conn = serve(stream, peer);
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                r = conn => if let Err(why) = r {
                    tracing::debug!(%peer, "{what}: connection ended: {why}");
                },
            }
            drop(permit);
        });
    }
}
