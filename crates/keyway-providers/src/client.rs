//! The upstream HTTP client.
//!
//! Adapters build their requests with reqwest's builder (headers, JSON bodies, URLs) and send
//! them through hyper-util's pooled client directly. reqwest's own `execute` re-parses the URL
//! twice per request (its redirect layer and its pending-request state, even with redirects
//! off) and wraps every body in two more boxes; on the OpenAI-compatible path that was ~20k of
//! the gateway's ~215k instructions per request. Where an HTTP(S) proxy is configured through
//! the environment (`HTTPS_PROXY`, `ALL_PROXY`, ...), requests go through reqwest instead, which
//! honours those variables (hyper-util's client has no proxy support).
//!
//! Both speak HTTP/1.1 only, over TLS too (ALPN offers `http/1.1` alone). With HTTP/2, hyper's
//! pool sends every request to a host over one connection and queues those beyond the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` (100–256 at the providers' edges) until a stream ends; a
//! gateway's streams last as long as a model writes, so request 101 would wait for one of them
//! (hyperium/hyper#2197, #3623: the pool does not open a second connection). HTTP/1.1 keep-alive
//! gives each in-flight request its own pooled connection, which is also what the providers'
//! own SDKs do by default.

use crate::error::{ProviderError, TimeoutKind};
use crate::timeouts::Timeouts;
use bytes::Bytes;
use http_body_util::{BodyDataStream, BodyExt, Either};
use hyper::body::Incoming;
use http::header::{HeaderValue, USER_AGENT};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

const AGENT: &str = concat!("keyway/", env!("CARGO_PKG_VERSION"));
/// Idle upstream connections are closed after this (hyper-util checks at this interval, so one
/// goes within twice it). Each holds ~25 KB of buffers: after a burst of 1,000 concurrent
/// requests, 90 s kept ~25 MB for up to three minutes (bench/README.md, 2026-12-07); a provider
/// reached again after 30 s quiet pays one new handshake.
const POOL_IDLE: Duration = Duration::from_secs(30);
const POOL_MAX_IDLE_PER_HOST: usize = 1024;

type Direct = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, reqwest::Body>;

#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client: {0}")]
pub struct BuildError(String);

pub use rustls::pki_types::CertificateDer;

/// The certificates of a PEM file (the config's top-level `upstream_ca_file`), trusted for upstream TLS
/// beside the Mozilla roots. A file with none, or anything unreadable in it, is an error.
pub fn read_pem_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    use rustls::pki_types::pem::PemObject;
    let roots = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| BuildError(format!("upstream CA file: {e}")))?;
    if roots.is_empty() {
        return Err(BuildError("upstream CA file: no PEM certificate in it".into()));
    }
    Ok(roots)
}

/// How upstream requests are sent; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// hyper-util's pooled client.
    Direct,
    /// reqwest's client, for its proxy support.
    Reqwest,
}

impl Transport {
    /// `Reqwest` when the environment names a proxy reqwest would use, else `Direct`.
    pub fn from_env() -> Self {
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        let proxy = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"].into_iter().any(set);
        if proxy {
            Transport::Reqwest
        } else {
            Transport::Direct
        }
    }
}

/// Cheap to clone: both clients are handles to shared pools.
#[derive(Clone)]
pub struct HttpClient {
    reqwest: reqwest::Client,
    direct: Option<Direct>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("transport", &self.transport()).finish_non_exhaustive()
    }
}

impl HttpClient {
    /// `extra_roots` are trusted beside the Mozilla roots (a private CA in front of a
    /// self-hosted upstream).
    pub fn new(timeouts: &Timeouts, transport: Transport, extra_roots: &[CertificateDer<'static>]) -> Result<Self, BuildError> {
        let mut reqwest = reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(AGENT);
        for root in extra_roots {
            let cert = reqwest::Certificate::from_der(root).map_err(|e| BuildError(format!("upstream CA file: {e}")))?;
            reqwest = reqwest.add_root_certificate(cert);
        }
        let reqwest = reqwest.build().map_err(|e| BuildError(e.to_string()))?;
        let direct = match transport {
            Transport::Reqwest => None,
            Transport::Direct => {
                let mut tcp = HttpConnector::new();
                tcp.set_nodelay(true);
                tcp.set_connect_timeout(Some(timeouts.connect));
                tcp.enforce_http(false);
                let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| BuildError(e.to_string()))?
                    .with_root_certificates(roots(extra_roots)?)
                    .with_no_client_auth();
                let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(tcp);
                Some(
                    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                        .pool_timer(TokioTimer::new())
                        .timer(TokioTimer::new())
                        .pool_idle_timeout(POOL_IDLE)
                        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
                        .build(https),
                )
            }
        };
        Ok(Self { reqwest, direct })
    }

    pub fn transport(&self) -> Transport {
        if self.direct.is_some() {
            Transport::Direct
        } else {
            Transport::Reqwest
        }
    }

    /// A request builder; send what it builds with [`HttpClient::execute`].
    pub fn post<U: reqwest::IntoUrl>(&self, url: U) -> reqwest::RequestBuilder {
        self.reqwest.post(url)
    }

    /// Sends `req` and waits for the response head; any status is `Ok`. Transport failures are
    /// folded into [`ProviderError`] without the URL (AI Studio keeps its key in the query).
    pub async fn execute(&self, req: reqwest::Request) -> Result<Response, ProviderError> {
        let Some(direct) = &self.direct else {
            let resp = self.reqwest.execute(req).await.map_err(|e| reqwest_error(&e))?;
            return Ok(Response::from_http(http::Response::from(resp)));
        };
        let mut req = http::Request::<reqwest::Body>::try_from(req)
            .map_err(|e| ProviderError::Unsupported(format!("could not build the request: {}", source_chain(&e))))?;
        if !req.headers().contains_key(USER_AGENT) {
            req.headers_mut().insert(USER_AGENT, HeaderValue::from_static(AGENT));
        }
        match direct.request(req).await {
            Ok(resp) => {
                let (head, body) = resp.into_parts();
                Ok(Response { head, body: Either::Left(body) })
            }
            Err(e) => Err(hyper_error(&e)),
        }
    }
}

/// The `Host` header hyper-util writes for `url` — the host, and the port unless it is the
/// scheme's default — for an adapter to build once: hyper-util formats and validates it per
/// request (~2.3k instructions) when the request has none.
pub fn host_header(url: &reqwest::Url) -> Option<HeaderValue> {
    let host = url.host_str()?;
    match url.port() {
        Some(port) => HeaderValue::from_str(&format!("{host}:{port}")).ok(),
        None => HeaderValue::from_str(host).ok(),
    }
}

/// An upstream answer: hyper's own on the direct transport, reqwest's behind a proxy. Turning
/// hyper's into a `reqwest::Response` parsed a placeholder URL and boxed the body once more, ~3.6k
/// instructions per request (bench/README.md) for nothing the adapters read.
pub struct Response {
    head: http::response::Parts,
    body: Either<Incoming, reqwest::Body>,
}

/// A body read failure; name it with [`body_error`].
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response").field("status", &self.head.status).finish_non_exhaustive()
    }
}

impl Response {
    /// A response whose body reqwest reads (the proxy transport; tests).
    pub fn from_http(resp: http::Response<reqwest::Body>) -> Self {
        let (head, body) = resp.into_parts();
        Self { head, body: Either::Right(body) }
    }

    pub fn status(&self) -> http::StatusCode {
        self.head.status
    }

    pub fn headers(&self) -> &http::HeaderMap {
        &self.head.headers
    }

    /// The body's length when the upstream declared it.
    pub fn content_length(&self) -> Option<u64> {
        hyper::body::Body::size_hint(&self.body).exact()
    }

    /// The next piece of the body (`None` at its end); trailers are skipped.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        while let Some(frame) = self.body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
        }
        Ok(None)
    }

    /// The body as a stream of pieces.
    pub fn bytes_stream(self) -> impl futures::Stream<Item = Result<Bytes, BodyError>> + Send {
        BodyDataStream::new(self.body)
    }
}

/// What went wrong reading a body, without a URL: reqwest's own message names it (AI Studio keeps
/// its key in the query), so only its causes are told; hyper's names none and is kept.
pub(crate) fn body_error(e: &BodyError) -> String {
    let e: &(dyn std::error::Error + 'static) = &**e;
    if e.downcast_ref::<reqwest::Error>().is_some() {
        return source_chain(e);
    }
    std::iter::once(e).chain(chain(e)).map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

fn roots(extra: &[CertificateDer<'static>]) -> Result<rustls::RootCertStore, BuildError> {
    let mut store = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for cert in extra {
        store.add(cert.clone()).map_err(|e| BuildError(format!("upstream CA file: {e}")))?;
    }
    Ok(store)
}

fn reqwest_error(e: &reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout(if e.is_connect() { TimeoutKind::Connect } else { TimeoutKind::FirstByte })
    } else {
        ProviderError::Connect(source_chain(e))
    }
}

fn hyper_error(e: &hyper_util::client::legacy::Error) -> ProviderError {
    let timed_out = chain(e).any(|s| s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut));
    if e.is_connect() && timed_out {
        ProviderError::Timeout(TimeoutKind::Connect)
    } else {
        ProviderError::Connect(source_chain(e))
    }
}

fn chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(e.source(), |s| s.source())
}

/// The causes below the top-level error: reqwest's own Display names the URL, which may hold a
/// query-string key, and hyper-util's says only "client error (Connect)".
pub(crate) fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let parts: Vec<String> = chain(e).map(ToString::to_string).collect();
    if parts.is_empty() {
        "connection failed".to_owned()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An upstream that promises 100 bytes, sends 5 and hangs up.
    async fn cut_short_upstream() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\"").await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_body_cut_short_is_a_protocol_error_that_names_no_url() {
        let addr = cut_short_upstream().await;
        for transport in [Transport::Direct, Transport::Reqwest] {
            let c = HttpClient::new(&Timeouts::default(), transport, &[]).unwrap();
            let url = format!("http://{addr}/v1/models/m:generate?key=secret-in-query");
            let resp = c.execute(c.post(url).body("{}").build().unwrap()).await.unwrap();
            assert_eq!(resp.content_length(), Some(100), "{transport:?}");
            match crate::http::read_body(resp, &Timeouts::default()).await {
                Err(ProviderError::Protocol(m)) => {
                    assert!(m.starts_with("body cut short: ") && m.len() > "body cut short: ".len(), "{transport:?}: {m}");
                    assert!(!m.contains("secret-in-query") && !m.contains("127.0.0.1"), "{transport:?}: {m}");
                }
                other => panic!("{transport:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_host_header_is_the_one_hyper_util_would_write() {
        for (url, host) in [
            ("http://127.0.0.1:8080/v1/chat/completions", "127.0.0.1:8080"),
            ("https://api.openai.com/v1/chat/completions", "api.openai.com"),
            ("https://example.com:443/v1", "example.com"),
            ("http://example.com:80/v1", "example.com"),
            ("https://example.com:8443/v1", "example.com:8443"),
            ("http://[::1]:9000/v1", "[::1]:9000"),
            ("https://user:pass@example.com/v1", "example.com"),
        ] {
            assert_eq!(host_header(&reqwest::Url::parse(url).unwrap()).unwrap(), host, "{url}");
        }
    }
}
