//! The Keyway gateway as an axum application: inference routes (`/v1/...`, and the same under
//! OpenRouter's `/api/v1/...`), the BYOK management API, authentication, the attempt loop that
//! walks a route plan, and usage recording. `keyway serve` is [`serve`] on [`AppState::build`].

pub mod audit;
pub mod auth;
pub mod billing;
pub mod cache;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod proxy;
pub mod redact;
pub mod routes;
pub mod security;
pub mod state;
pub mod telemetry;
pub mod stats;
pub mod usage;

pub use config::Config;
pub use state::{AppState, Bootstrap, SharedState};

use std::future::Future;
use tokio::net::TcpListener;

/// Serves the application on `listener` until `shutdown` resolves, then lets open connections
/// finish (in-flight requests and streams run to their end; idle keep-alive connections close).
///
/// Our own accept loop rather than `axum::serve`, for two settings it does not expose:
/// - `TCP_NODELAY` on every accepted connection: without it a keep-alive client's next request
///   waits on Nagle (~40 ms);
/// - HTTP/1 `max_buf_size` of 8 KiB (hyper's minimum; it caps a request head at 8 KiB, as
///   nginx does by default). With hyper's default (~400 KiB) every connection's read buffer
///   grew to 16 KiB on its first request: the HTTP/1-or-2 detection reads the first 24 bytes
///   ahead, hyper then asks for a full 8 KiB more, and the buffer doubles. Held streams pay
///   that per connection (bench/README.md, scenario 4).
pub async fn serve(listener: TcpListener, state: SharedState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let app = routes::router(state);
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(HTTP1_MAX_BUF);
    builder.http2().enable_connect_protocol();
    let builder = std::sync::Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning on accept.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        // The peer address rides along for the audit log (`ConnectInfo`, as axum::serve would give it).
        let service = TowerToHyperService::new(app.clone().map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            req
        }));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

const HTTP1_MAX_BUF: usize = 8 * 1024;

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}
