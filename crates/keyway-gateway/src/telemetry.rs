//! OpenTelemetry trace export (OTLP over HTTP, protobuf), switched on by
//! `[telemetry] otlp_endpoint`. The gateway's `tracing` spans (`request`, and one `attempt` per
//! upstream try, see [`crate::proxy`]) become OTel spans through `tracing-opentelemetry`.
//!
//! Spans carry ids only: generation ids, provider and model slugs, credential ids, an 8-character
//! prefix of the caller's key hash. Never a secret or a whole key hash.
//!
//! The SDK's batch processor exports from its own thread with a blocking executor; the HTTP
//! client here hands each export to the tokio runtime it was started on, so the workspace's one
//! reqwest (rustls) does the sending and no second HTTP stack is built.

use crate::config::TelemetryConfig;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry: `otlp_endpoint` {0:?} is not an http(s) URL")]
    Endpoint(String),
    #[error("telemetry: trace export needs a tokio runtime")]
    NoRuntime,
    #[error("telemetry: could not build the HTTP client: {0}")]
    Client(String),
    #[error("telemetry: could not build the OTLP exporter: {0}")]
    Exporter(String),
}

/// The running exporter. Call [`Telemetry::shutdown`] before exit: it flushes the spans still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    endpoint: String,
}

/// `http://host:4318` → `http://host:4318/v1/traces`; a URL already naming `/v1/traces` is kept.
pub fn traces_url(endpoint: &str) -> Result<String, TelemetryError> {
    let u = url::Url::parse(endpoint).map_err(|_| TelemetryError::Endpoint(endpoint.to_owned()))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(TelemetryError::Endpoint(endpoint.to_owned()));
    }
    let base = endpoint.trim_end_matches('/');
    Ok(if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") })
}

/// Sends the exporter's requests on the tokio runtime it was built on.
#[derive(Debug)]
struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: http::Request<bytes::Bytes>) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let send = async move {
            let (parts, body) = request.into_parts();
            let resp = client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
            let mut out = http::Response::builder().status(resp.status());
            if let Some(h) = out.headers_mut() {
                *h = resp.headers().clone();
            }
            let body = resp.bytes().await?;
            Ok::<_, opentelemetry_http::HttpError>(out.body(body)?)
        };
        self.runtime.spawn(send).await?
    }
}

impl Telemetry {
    /// `None` when `otlp_endpoint` is unset (export off). Must run inside a tokio runtime.
    pub fn start(cfg: &TelemetryConfig) -> Result<Option<Self>, TelemetryError> {
        let Some(endpoint) = cfg.otlp_endpoint.as_deref().filter(|e| !e.trim().is_empty()) else {
            return Ok(None);
        };
        let endpoint = traces_url(endpoint.trim())?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
        let timeout = Duration::from_millis(cfg.export_timeout_ms.max(1));
        let client = reqwest::Client::builder().timeout(timeout).build().map_err(|e| TelemetryError::Client(e.to_string()))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(timeout)
            .with_http_client(RuntimeClient { client, runtime })
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(cfg.service_name.clone()).build())
            .build();
        Ok(Some(Self { provider, endpoint }))
    }

    /// Where spans are sent (for the startup log line).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The `tracing` layer that turns spans into OTel spans for this exporter.
    pub fn layer<S>(&self) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("keyway"))
    }

    /// Exports what is still queued and stops the exporter. The SDK blocks while it flushes, and
    /// the flush itself runs on this runtime, so it waits on a blocking thread.
    pub async fn shutdown(self) {
        let provider = self.provider;
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "trace export: flush on shutdown failed"),
            Err(e) => tracing::warn!(error = %e, "trace export: flush on shutdown failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url_appends_the_signal_path_once() {
        assert_eq!(traces_url("http://127.0.0.1:4318").ok().as_deref(), Some("http://127.0.0.1:4318/v1/traces"));
        assert_eq!(traces_url("http://c:4318/").ok().as_deref(), Some("http://c:4318/v1/traces"));
        assert_eq!(traces_url("https://c/otlp/v1/traces").ok().as_deref(), Some("https://c/otlp/v1/traces"));
        assert!(traces_url("127.0.0.1:4318").is_err());
        assert!(traces_url("ftp://c").is_err());
    }

    #[test]
    fn off_without_an_endpoint() {
        assert!(matches!(Telemetry::start(&TelemetryConfig::default()), Ok(None)));
    }
}
