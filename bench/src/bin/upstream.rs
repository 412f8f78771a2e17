//! `keyway-upstream`: the fake OpenAI-compatible upstream the benchmarks run against.
//!
//! Two modes:
//! - `lean` (default): a bare hyper HTTP/1.1 server answering `POST /v1/chat/completions` with a
//!   fixed, realistic body. Per request it does only what a real upstream must do at minimum: one
//!   header compare against the accepted keys and a parse of the few body fields that choose the
//!   answer's shape (`stream`, and the benchmark knobs `bench_chunk_delay_ms`, `bench_chunks`,
//!   `bench_delay_ms`, which Keyway passes through untouched as unknown fields).
//! - `fake`: `keyway_fakes::openai`'s router with call recording off (the test fake, heavier:
//!   it parses the whole body into a `Value`, builds the answer with `json!`, takes locks).
//! - `proxy --to URL`: not an upstream but the floor under any hyper-based gateway: a bare
//!   HTTP/1.1 server that forwards every request unchanged through hyper-util's pooled client
//!   and streams the answer back, with no auth, routing, parsing or recording. Run in Keyway's
//!   place, it shows what the two extra loopback hops and hyper's codecs cost on this machine.
//!
//! Streams send the role chunk and the first content chunk back to back (Keyway holds chunks
//! without content until the first content chunk, so that an early error can still fall back),
//! then wait `chunk_delay` before each further frame, except the usage chunk, which follows the
//! finish chunk at once as OpenAI's does. (Keyway always asks for usage; were the usage chunk
//! paced like content, every stream through Keyway would last one `chunk_delay` longer than
//! the same stream direct, and its last gap would count double.)
#![allow(clippy::print_stdout)]

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "keyway-upstream", about = "A fast fake OpenAI-compatible upstream for benchmarks")]
struct Args {
    /// Address to listen on; port 0 picks one. The bound address is printed as `listening ADDR`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// `lean` (fixed answers, minimal work) or `fake` (keyway-fakes' OpenAI router, record=false).
    #[arg(long, default_value = "lean")]
    mode: String,
    /// Accepted bearer keys (comma-separated); empty accepts any non-empty key.
    #[arg(long, default_value = "")]
    keys: String,
    /// Default wait between streamed frames, in milliseconds (a request's `bench_chunk_delay_ms` overrides it).
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Default number of content chunks in a stream (a request's `bench_chunks` overrides it).
    #[arg(long, default_value_t = 8)]
    chunks: usize,
    /// Fixed delay before every answer's head, in microseconds.
    #[arg(long, default_value_t = 0)]
    delay_us: u64,
    /// `proxy` mode: the upstream base URL requests are forwarded to (`http://host:port`).
    #[arg(long)]
    to: Option<String>,
}

struct Lean {
    keys: Vec<Vec<u8>>,
    chunk_delay: Duration,
    chunks: usize,
    delay: Duration,
}

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Keys turn in the lock; a gateway hums, quick and light; tokens pass like wind.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":27,"completion_tokens":19,"total_tokens":46,"prompt_tokens_details":{"cached_tokens":0}},"system_fingerprint":"fp_bench"}"#;

fn chunk(delta: &str, finish: &str) -> Bytes {
    Bytes::from(format!(
        "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
    ))
}

/// As OpenAI streams: the usage chunk only when `stream_options.include_usage` asks for it.
/// Each frame comes with whether it waits `chunk_delay` before it.
fn stream_frames(n: usize, usage: bool) -> Vec<(Bytes, bool)> {
    let mut frames = vec![chunk(r#"{"role":"assistant","content":""}"#, "null")];
    for i in 0..n.max(1) {
        frames.push(chunk(&format!("{{\"content\":\"tok{i} \"}}"), "null"));
    }
    frames.push(chunk("{}", "\"stop\""));
    // Role and first content back to back; a wait before every later frame but the usage chunk.
    let mut frames: Vec<(Bytes, bool)> = frames.into_iter().enumerate().map(|(i, f)| (f, i >= 2)).collect();
    if usage {
        frames.push((Bytes::from_static(b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":27,\"completion_tokens\":19,\"total_tokens\":46}}\n\n"), false));
    }
    frames.push((Bytes::from_static(b"data: [DONE]\n\n"), true));
    frames
}

/// The body fields that choose the answer; everything else is skipped by the parser.
#[derive(Deserialize, Default)]
struct Knobs {
    #[serde(default)]
    stream: bool,
    bench_chunk_delay_ms: Option<u64>,
    bench_chunks: Option<usize>,
    bench_delay_ms: Option<u64>,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

type Body = BoxBody<Bytes, Infallible>;

fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

async fn handle(lean: Arc<Lean>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if req.method() != http::Method::POST || req.uri().path() != "/v1/chat/completions" {
        return Ok(plain(StatusCode::NOT_FOUND, r#"{"error":{"message":"not found","type":"invalid_request_error","code":null}}"#));
    }
    let auth = req.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or(b"");
    let key = auth.strip_prefix(b"Bearer ").unwrap_or(b"");
    if key.is_empty() || !(lean.keys.is_empty() || lean.keys.iter().any(|k| k.as_slice() == key)) {
        return Ok(plain(StatusCode::UNAUTHORIZED, r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}"#));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, r#"{"error":{"message":"bad body","type":"invalid_request_error","code":null}}"#)),
    };
    let Ok(knobs) = serde_json::from_slice::<Knobs>(&body) else {
        return Ok(plain(StatusCode::BAD_REQUEST, r#"{"error":{"message":"We could not parse the JSON body of your request.","type":"invalid_request_error","code":null}}"#));
    };
    let delay = knobs.bench_delay_ms.map(Duration::from_millis).unwrap_or(lean.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if !knobs.stream {
        return Ok(plain(StatusCode::OK, COMPLETION));
    }
    let gap = knobs.bench_chunk_delay_ms.map(Duration::from_millis).unwrap_or(lean.chunk_delay);
    let usage = knobs.stream_options.is_some_and(|o| o.include_usage);
    let frames = stream_frames(knobs.bench_chunks.unwrap_or(lean.chunks), usage);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        for (f, wait) in frames {
            if wait && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if tx.send(Ok(Frame::data(f))).await.is_err() {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/event-stream"));
    h.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    Ok(r)
}

type Pool = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Incoming>;

/// The floor proxy's whole work per request: swap the authority, forward, stream back.
async fn forward(pool: Pool, to: Arc<http::uri::Authority>, mut req: Request<Incoming>) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some((*to).clone());
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    pool.request(req).await
}

async fn serve_proxy(listener: tokio::net::TcpListener, to: &str) -> anyhow::Result<()> {
    let to: http::Uri = to.parse().context("--to")?;
    let to = Arc::new(to.authority().cloned().context("--to needs host:port")?);
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.set_nodelay(true);
    let pool: Pool = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_max_idle_per_host(1024)
        .build(tcp);
    loop {
        let tcp = accept(&listener).await;
        let (pool, to) = (pool.clone(), to.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| forward(pool.clone(), to.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
        });
    }
}

async fn serve_lean(listener: tokio::net::TcpListener, lean: Arc<Lean>) -> anyhow::Result<()> {
    loop {
        let tcp = accept(&listener).await;
        let lean = lean.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(lean.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
        });
    }
}

/// The next connection, with `TCP_NODELAY` set.
async fn accept(listener: &tokio::net::TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                return tcp;
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keys: Vec<String> = args.keys.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned).collect();
    let listener = tokio::net::TcpListener::bind(args.listen).await.context("bind")?;
    let addr = listener.local_addr()?;
    println!("listening {addr}");
    std::io::stdout().flush()?;
    match args.mode.as_str() {
        "lean" => {
            let lean = Arc::new(Lean {
                keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
                chunk_delay: Duration::from_millis(args.chunk_delay_ms),
                chunks: args.chunks,
                delay: Duration::from_micros(args.delay_us),
            });
            serve_lean(listener, lean).await
        }
        "fake" => {
            let opts = keyway_fakes::server::FakeOptions {
                keys: keys.into_iter().collect(),
                chunk_delay: Duration::from_millis(args.chunk_delay_ms),
                chunks: args.chunks,
                record: false,
            };
            let router = keyway_fakes::openai::router(keyway_fakes::FakeState::new(opts));
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router).await.context("serve")
        }
        "proxy" => serve_proxy(listener, args.to.as_deref().context("proxy mode needs --to")?).await,
        other => anyhow::bail!("unknown mode `{other}` (lean, fake or proxy)"),
    }
}
