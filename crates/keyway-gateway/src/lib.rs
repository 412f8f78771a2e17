//! The Keyway gateway as an axum application: inference routes (`/v1/...`, and the same under
//! OpenRouter's `/api/v1/...`), the BYOK management API, authentication, the attempt loop that
//! walks a route plan, and usage recording. `keyway serve` is [`serve`] on [`AppState::build`].

pub mod auth;
pub mod billing;
pub mod cache;
pub mod config;
pub mod error;
pub mod extract;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod proxy;
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

/// Serves the application on `listener` until `shutdown` resolves. Accepted connections get
/// `TCP_NODELAY`: without it a keep-alive client's next request waits on Nagle (~40 ms).
pub async fn serve(listener: TcpListener, state: SharedState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let app = routes::router(state);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    // `into_make_service`: serving a `Router` directly rebuilds its route table for every
    // connection (`Router::with_state` per accept), ~9 KB held per open connection.
    axum::serve(listener, app.into_make_service()).with_graceful_shutdown(shutdown).await
}
