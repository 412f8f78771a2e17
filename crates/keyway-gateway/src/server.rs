//! The accept loop and what each connection may hold: timeouts for slow and silent clients, a
//! cap on open connections that sheds with a 503 (and still answers `/health`), and a back-off
//! when `accept` fails (out of file descriptors).
//!
//! hyper's own `header_read_timeout` also runs while a keep-alive connection waits for its next
//! request, so it can't give a head timeout and a longer idle timeout; and the HTTP/1-or-2
//! detection of hyper-util's auto builder reads with no timeout at all (a silent client held its
//! connection forever). So each connection has a watchdog instead: it knows whether a request is
//! in flight (the service counts them) and when bytes last arrived without one (the I/O wrapper
//! notes it), and closes the connection when the head or idle deadline passes. A body is timed
//! by [`DeadlineBody`], which fails the read (408) once its deadline passes. A connection that
//! wakes itself while being polled is polled again at once ([`NoSelfWake`]), not requeued.

use crate::config::ServerConfig;
use crate::extract::BodyReadTimeout;
use crate::state::SharedState;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use hyper::body::{Frame, Incoming, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Timeouts of one class of connection, in force.
#[derive(Debug, Clone, Copy)]
struct Limits {
    head: Duration,
    body: Duration,
    idle: Duration,
}

/// What the accept loop was configured with, after the open-files limit is applied.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// Connections served in full at once.
    pub connections: usize,
    /// Connections past the cap that are still read for one request (answered 503, `/health`
    /// 200) before closing; past both, a new connection is closed at once.
    pub shed: usize,
}

impl Capacity {
    /// `max_connections`, lowered to half of the open-files limit less 64 (every proxied request
    /// may hold an upstream socket too, and the store and listener need a few).
    pub fn from_config(c: &ServerConfig) -> Self {
        let mut connections = c.max_connections.max(1);
        if let Some(nofile) = open_files_limit() {
            let fit = (nofile.saturating_sub(64) / 2).max(8);
            if fit < connections {
                tracing::info!(max_connections = fit, configured = connections, open_files_limit = nofile, "max_connections lowered to fit the open-files limit (ulimit -n)");
                connections = fit;
            }
        }
        Self { connections, shed: (connections / 16).clamp(4, 256) }
    }
}

fn open_files_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        limit.current.and_then(|n| usize::try_from(n).ok())
    }
    #[cfg(not(unix))]
    None
}

/// Serves the application on `listener` until `shutdown` resolves, then lets open connections
/// finish (in-flight requests and streams run to their end; idle keep-alive connections close).
/// With `grace`, connections still open that long after `shutdown` are dropped.
///
/// Our own accept loop rather than `axum::serve`, for settings it does not expose:
/// - `TCP_NODELAY` on every accepted connection: without it a keep-alive client's next request
///   waits on Nagle (~40 ms);
/// - HTTP/1 `max_buf_size` of 8 KiB (hyper's minimum; it caps a request head at 8 KiB, as
///   nginx does by default). With hyper's default (~400 KiB) every connection's read buffer
///   grew to 16 KiB on its first request: the HTTP/1-or-2 detection reads the first 24 bytes
///   ahead, hyper then asks for a full 8 KiB more, and the buffer doubles. Held streams pay
///   that per connection (bench/README.md, scenario 4);
/// - the timeouts and connection cap of `[server]` (module doc).
pub async fn serve(listener: TcpListener, state: SharedState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    serve_with_grace(listener, state, shutdown, None).await
}

/// `/metrics` on its own address when `[metrics] listen` is set.
struct MetricsServer(Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>);

impl MetricsServer {
    async fn start(state: &SharedState) -> std::io::Result<Self> {
        let Some(addr) = state.config.metrics.listen else { return Ok(Self(None)) };
        let metrics_listener = TcpListener::bind(addr).await?;
        tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = crate::metrics::router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(metrics_listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        });
        Ok(Self(Some((tx, task))))
    }

    fn stop(self) {
        if let Some((stop, task)) = self.0 {
            let _ = stop.send(());
            task.abort();
        }
    }
}

/// [`serve`], giving open connections at most `grace` after `shutdown` to finish.
pub async fn serve_with_grace(
    listener: TcpListener,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Option<Duration>,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioExecutor;
    use hyper_util::server::conn::auto::Builder;

    let cfg = state.config.server.clone();
    let capacity = Capacity::from_config(&cfg);
    let full = Limits {
        head: Duration::from_millis(cfg.header_read_timeout_ms.max(1)),
        body: Duration::from_millis(cfg.body_read_timeout_ms.max(1)),
        idle: Duration::from_millis(cfg.idle_timeout_ms.max(1)),
    };
    // A shed connection gets one short chance to say what it wants.
    let brief = Duration::from_secs(2).min(full.head);
    let shed_limits = Limits { head: brief, body: brief, idle: brief };

    let app = crate::app::router(state.clone());
    let metrics_server = MetricsServer::start(&state).await?;
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(HTTP1_MAX_BUF);
    builder.http2().enable_connect_protocol();
    let builder = Arc::new(builder);
    let mut shed_builder = Builder::new(TokioExecutor::new());
    shed_builder.http1().max_buf_size(HTTP1_MAX_BUF).keep_alive(false);
    let shed_builder = Arc::new(shed_builder);

    let slots = Arc::new(tokio::sync::Semaphore::new(capacity.connections));
    let shed_slots = Arc::new(tokio::sync::Semaphore::new(capacity.shed));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Duration::ZERO;
    // The connection tasks, so that those still running when the grace period ends are
    // cancelled before the caller flushes usage (a cancelled stream records what it served).
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    backoff = Duration::ZERO;
                    pair
                }
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors and the like: back off (5 ms doubling to 1 s) instead
                    // of spinning on accept; the pending connection waits in the backlog.
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                    state.metrics.accept_error();
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        let (permit, shed) = match slots.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => match shed_slots.clone().try_acquire_owned() {
                Ok(p) => (p, true),
                Err(_) => {
                    // Past both caps: closing now costs the least.
                    state.metrics.connection_shed();
                    drop(tcp);
                    continue;
                }
            },
        };
        let watcher = graceful.watcher();
        if shed {
            state.metrics.connection_shed();
            let builder = shed_builder.clone();
            conns.spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Body>| async move { Ok::<_, std::convert::Infallible>(shed_response(req.uri().path())) });
                run_connection(tcp, shed_limits, |io, activity| {
                    let svc = Tracked { inner: svc, activity, body_timeout: shed_limits.body };
                    watcher.watch(builder.serve_connection(io, svc).into_owned())
                })
                .await;
                drop(permit);
            });
        } else {
            let builder = builder.clone();
            // The peer address rides along for the audit log and the failed-authentication limit
            // (`ConnectInfo`, as `axum::serve` would give it).
            let app = tower::ServiceExt::map_request(app.clone(), move |mut req: Request<Body>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req
            });
            conns.spawn(async move {
                run_connection(tcp, full, |io, activity| {
                    let svc = Tracked { inner: hyper_util::service::TowerToHyperService::new(app), activity, body_timeout: full.body };
                    watcher.watch(builder.serve_connection_with_upgrades(io, svc).into_owned())
                })
                .await;
                drop(permit);
            });
        }
    }
    drop(listener);
    metrics_server.stop();
    match grace {
        Some(g) => {
            if tokio::time::timeout(g, graceful.shutdown()).await.is_err() {
                tracing::warn!(grace_secs = g.as_secs(), open = conns.len(), "connections still open after the shutdown grace period are closed");
                conns.abort_all();
            }
        }
        None => graceful.shutdown().await,
    }
    while conns.join_next().await.is_some() {}
    Ok(())
}

const HTTP1_MAX_BUF: usize = 8 * 1024;

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// Serves one connection with its watchdog: closes it (drops the connection future) when a
/// head takes too long or it sits idle with no request in flight.
async fn run_connection<F, C, E>(tcp: TcpStream, limits: Limits, serve: F)
where
    F: FnOnce(hyper_util::rt::TokioIo<Watched>, Arc<Activity>) -> C,
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let activity = Arc::new(Activity::new());
    let io = hyper_util::rt::TokioIo::new(Watched { inner: tcp, activity: activity.clone() });
    let conn = NoSelfWake::new(serve(io, activity.clone()));
    let mut conn = std::pin::pin!(conn);
    let mut check_at = Instant::now() + limits.head.min(limits.idle);
    loop {
        tokio::select! {
            ended = &mut conn => {
                if let Err(e) = ended {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(check_at) => {
                match activity.deadline(limits) {
                    Some(deadline) if deadline <= Instant::now() => {
                        tracing::debug!("closing a connection that sent no complete request in time");
                        return;
                    }
                    Some(deadline) => check_at = deadline,
                    // A request in flight: its body has its own deadline; look again later.
                    None => check_at = Instant::now() + limits.head.min(limits.idle),
                }
            }
        }
    }
}

/// A connection future polled again at once when it wakes itself while being polled, instead of
/// through tokio's scheduler.
///
/// axum's handler runs inside hyper's connection task, and reading the request body from hyper's
/// one-slot body channel wakes the channel's sender, hyper's dispatcher: the connection task
/// itself, even after it sent the last chunk. tokio takes a task woken during its own poll for
/// one that yielded: it requeues it and wakes a parked worker to steal it. At a low request rate
/// that woke the gateway's second worker thread for nothing on every request: ~2 context
/// switches per request beyond a bare hyper proxy's, and most of the gap between the CPU per
/// request at 1,000/s and in the closed loop (bench/README.md, 2026-12-08, third pass).
///
/// Wakes from this thread during the poll are noted and answered with another poll, at most
/// [`REPOLLS`] times in a row: a connection that keeps waking itself (hyper's own yield after 16
/// pipelined requests, tokio's cooperative budget running out) then yields through the
/// scheduler as before, so others still get their turn. Wakes from anywhere else go straight to
/// the task's waker.
struct NoSelfWake<F> {
    inner: Pin<Box<F>>,
    waker: Arc<ConnWaker>,
    own: std::task::Waker,
}

/// Polls in a row after a self-wake before handing the wake to the scheduler.
const REPOLLS: usize = 2;

struct ConnWaker {
    task: futures::task::AtomicWaker,
    /// Set by a wake from the thread polling the connection, during the poll.
    woke_itself: std::sync::atomic::AtomicBool,
}

thread_local! {
    /// The connection being polled on this thread (its `ConnWaker`'s address), or 0.
    static POLLING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl ConnWaker {
    fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }
}

impl std::task::Wake for ConnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if POLLING.with(std::cell::Cell::get) == self.id() {
            self.woke_itself.store(true, Ordering::Relaxed);
        } else {
            self.task.wake();
        }
    }
}

impl<F: Future> NoSelfWake<F> {
    fn new(inner: F) -> Self {
        let waker = Arc::new(ConnWaker { task: futures::task::AtomicWaker::new(), woke_itself: std::sync::atomic::AtomicBool::new(false) });
        let own = std::task::Waker::from(waker.clone());
        Self { inner: Box::pin(inner), waker, own }
    }
}

impl<F: Future> Future for NoSelfWake<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        this.waker.task.register(cx.waker());
        let mut own = Context::from_waker(&this.own);
        for _ in 0..=REPOLLS {
            let outer = POLLING.with(|p| p.replace(this.waker.id()));
            let polled = this.inner.as_mut().poll(&mut own);
            POLLING.with(|p| p.set(outer));
            if polled.is_ready() {
                return polled;
            }
            if !this.waker.woke_itself.swap(false, Ordering::Relaxed) {
                return Poll::Pending;
            }
        }
        // Still waking itself: yield through the scheduler.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// What the watchdog knows of one connection. Times are milliseconds since `start`, plus one
/// (0: not set).
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// When the first byte of a request head arrived with no request in flight.
    head_started: AtomicU64,
    /// When the connection last became idle (accepted, or its last response ended).
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self { start: Instant::now(), in_flight: AtomicUsize::new(0), head_started: AtomicU64::new(0), idle_since: AtomicU64::new(1) }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    fn at(&self, stamp: u64) -> Instant {
        self.start + Duration::from_millis(stamp.saturating_sub(1))
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && self.head_started.load(Ordering::Relaxed) == 0 {
            let _ = self.head_started.compare_exchange(0, self.now(), Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Relaxed);
    }

    fn request_ended(&self) {
        self.idle_since.store(self.now(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// When the connection is to be closed unless something changes; None with a request in flight.
    fn deadline(&self, limits: Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_started.load(Ordering::Relaxed) {
            0 => Some(self.at(self.idle_since.load(Ordering::Relaxed)) + limits.idle),
            started => Some(self.at(started) + limits.head),
        }
    }
}

/// The client socket, noting when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Counts a request in flight from its head until its response body ends (or is dropped), and
/// puts a deadline on its body.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    body_timeout: Duration,
}

/// Ends the request's in-flight count when dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let guard = InFlight(self.activity.clone());
        let deadline = Instant::now() + self.body_timeout;
        let req = req.map(|b| Body::new(DeadlineBody { inner: b, sleep: Box::pin(tokio::time::sleep_until(deadline)), done: false }));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(resp.map(|b| Body::new(GuardedBody { inner: Body::new(b), _guard: guard })))
        })
    }
}

/// A response body that holds the request's [`InFlight`] until it ends.
struct GuardedBody {
    inner: Body,
    _guard: InFlight,
}

impl hyper::body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails with [`BodyReadTimeout`] once its deadline passes.
struct DeadlineBody {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl hyper::body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(r)) => Poll::Ready(Some(r.map_err(Into::into))),
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    Poll::Ready(Some(Err(Box::new(BodyReadTimeout))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}


/// The answer on a connection past the cap: `/health` stays 200 (the process is alive, just
/// full); everything else is 503 in its surface's error shape, with `Retry-After`.
fn shed_response(path: &str) -> Response<Body> {
    let message = "the gateway is at its connection limit; retry shortly";
    let (status, body) = if path == "/health" {
        (StatusCode::OK, Body::from("ok"))
    } else if path.starts_with("/api/v1/") {
        (StatusCode::SERVICE_UNAVAILABLE, Body::from(serde_json::json!({"error": {"code": 503, "message": message}}).to_string()))
    } else if path.ends_with("/messages") {
        (StatusCode::SERVICE_UNAVAILABLE, Body::from(serde_json::json!({"type": "error", "error": {"type": "overloaded_error", "message": message}}).to_string()))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Body::from(serde_json::json!({"error": {"message": message, "type": "server_error", "code": "overloaded"}}).to_string()))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    if status != StatusCode::OK {
        headers.insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
        headers.insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    }
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Counts the wakes it gets.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wakes itself in each of its first `self_wakes` polls; then pending, holding its waker.
    struct Waking {
        polls: usize,
        self_wakes: usize,
        ready_at: Option<usize>,
        kept: Arc<std::sync::Mutex<Option<std::task::Waker>>>,
    }

    impl Future for Waking {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if Some(self.polls) == self.ready_at {
                return Poll::Ready(self.polls);
            }
            *self.kept.lock().unwrap() = Some(cx.waker().clone());
            if self.polls <= self.self_wakes {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }
    }

    fn poll_once<F: Future>(f: &mut NoSelfWake<F>, outer: &Arc<Count>) -> Poll<F::Output> {
        let waker = std::task::Waker::from(outer.clone());
        Pin::new(f).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_self_wake_is_answered_by_polling_again_not_by_the_scheduler() {
        let outer = Arc::new(Count::default());
        let mut f = NoSelfWake::new(Waking { polls: 0, self_wakes: 1, ready_at: Some(2), kept: Arc::default() });
        assert_eq!(poll_once(&mut f, &outer), Poll::Ready(2));
        assert_eq!(outer.0.load(Ordering::Relaxed), 0, "the task was woken for a wake it handled itself");
    }

    #[test]
    fn a_future_that_keeps_waking_itself_still_yields_through_the_scheduler() {
        let outer = Arc::new(Count::default());
        let mut f = NoSelfWake::new(Waking { polls: 0, self_wakes: usize::MAX, ready_at: None, kept: Arc::default() });
        assert!(poll_once(&mut f, &outer).is_pending());
        assert_eq!(f.inner.polls, REPOLLS + 1);
        assert_eq!(outer.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn wakes_after_the_poll_or_from_another_thread_reach_the_task() {
        let outer = Arc::new(Count::default());
        let kept = Arc::default();
        let mut f = NoSelfWake::new(Waking { polls: 0, self_wakes: 0, ready_at: Some(3), kept: Arc::clone(&kept) });
        assert!(poll_once(&mut f, &outer).is_pending());
        assert_eq!(outer.0.load(Ordering::Relaxed), 0);
        // Later, on this thread (another task's poll, say).
        kept.lock().unwrap().take().unwrap().wake();
        assert_eq!(outer.0.load(Ordering::Relaxed), 1);
        assert!(poll_once(&mut f, &outer).is_pending());
        // From another thread.
        let w = kept.lock().unwrap().take().unwrap();
        std::thread::spawn(move || w.wake()).join().unwrap();
        assert_eq!(outer.0.load(Ordering::Relaxed), 2);
        assert_eq!(poll_once(&mut f, &outer), Poll::Ready(3));
    }
}
