//! The Keyway gateway as an axum application: inference routes (`/v1/...`, and the same under
//! OpenRouter's `/api/v1/...`), the BYOK management API, authentication, the attempt loop that
//! walks a route plan, and usage recording. `keyway serve` is [`serve`] on [`AppState::build`].

pub mod admission;
pub mod api_schema;
pub mod app;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod estimate;
pub mod explain;
pub mod extract;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod periodic;
pub mod proxy;
pub mod record;
pub mod redact;
pub mod render;
pub mod routing;
pub mod routes;
pub mod security;
pub mod server;
pub mod sessions;
pub mod state;
pub mod stats;
pub mod telemetry;
pub mod usage;

pub use config::Config;
pub use state::{AppState, Bootstrap, SharedState};

pub use server::{serve, serve_with_grace};
