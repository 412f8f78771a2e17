//! Upstream TLS: a private CA from `upstream_ca_file` is trusted, and connections stay HTTP/1.1
//! even when the server offers HTTP/2, so that a request is never queued behind the streams
//! already open on a multiplexed connection (hyper's pool would not open a second one).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyway_providers::client::{read_pem_roots, HttpClient};
use keyway_providers::{ProviderError, Timeouts, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CA: &[u8] = include_bytes!("data/tls/ca.pem");
const CERT: &[u8] = include_bytes!("data/tls/localhost.pem");
const KEY: &[u8] = include_bytes!("data/tls/localhost.key");

/// A TLS server that offers `h2` first, allows one HTTP/2 stream per connection, and records
/// the protocol each connection negotiated. `/hold` answers a stream head and one event, then
/// never finishes.
struct Upstream {
    addr: SocketAddr,
    alpn: Arc<Mutex<Vec<String>>>,
}

async fn handle(req: http::Request<Incoming>) -> Result<http::Response<BoxBody<Bytes, Infallible>>, Infallible> {
    if req.uri().path() == "/hold" {
        let first = futures::stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"data: {}\n\n")))]);
        let body = StreamBody::new(futures::StreamExt::chain(first, futures::stream::pending()));
        return Ok(http::Response::builder().header("content-type", "text/event-stream").body(BodyExt::boxed(body)).unwrap());
    }
    Ok(http::Response::builder().header("content-type", "application/json").body(Full::new(Bytes::from_static(b"{\"ok\":true}")).boxed()).unwrap())
}

async fn upstream() -> Upstream {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(CERT).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let alpn = Arc::new(Mutex::new(Vec::new()));
    let seen = alpn.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let proto = tls.get_ref().1.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_else(|| "none".into());
                seen.lock().unwrap().push(proto);
                let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http2().max_concurrent_streams(1);
                let _ = builder.serve_connection(TokioIo::new(tls), hyper::service::service_fn(handle)).await;
            });
        }
    });
    Upstream { addr, alpn }
}

fn client(transport: Transport, roots: &[CertificateDer<'static>]) -> HttpClient {
    HttpClient::new(&Timeouts::default(), transport, roots).unwrap()
}

async fn post(c: &HttpClient, url: &str) -> Result<keyway_providers::client::Response, ProviderError> {
    let req = c.post(url).header("content-type", "application/json").body("{}").build().unwrap();
    c.execute(req).await
}

#[tokio::test]
async fn a_private_ca_is_trusted_and_a_request_is_not_queued_behind_an_open_stream() {
    let roots = read_pem_roots(CA).unwrap();
    for transport in [Transport::Direct, Transport::Reqwest] {
        let up = upstream().await;
        let c = client(transport, &roots);
        // `localhost` is the certificate's name; the connection itself goes to 127.0.0.1.
        let base = format!("https://localhost:{}", up.addr.port());
        let mut held = post(&c, &format!("{base}/hold")).await.unwrap();
        assert_eq!(held.status(), 200);
        assert_eq!(&held.chunk().await.unwrap().unwrap()[..], b"data: {}\n\n", "{transport:?}");
        // Over one HTTP/2 connection limited to one stream this request would wait for `held`.
        let second = tokio::time::timeout(Duration::from_secs(5), post(&c, &format!("{base}/answer")))
            .await
            .unwrap_or_else(|_| panic!("{transport:?}: the second request waited behind the open stream"))
            .unwrap();
        let body = keyway_providers::http::read_body(second, &Timeouts::default()).await.unwrap();
        assert_eq!(&body[..], b"{\"ok\":true}");
        // hyper-rustls offers no ALPN when only HTTP/1.1 is enabled, reqwest offers `http/1.1`.
        let alpn = up.alpn.lock().unwrap().clone();
        assert_eq!(alpn.len(), 2, "{transport:?}: one connection per in-flight request: {alpn:?}");
        assert!(alpn.iter().all(|p| p == "http/1.1" || p == "none"), "{transport:?}: {alpn:?}");
        drop(held);
    }
}

#[tokio::test]
async fn without_the_private_ca_the_handshake_fails_with_a_connect_error() {
    let up = upstream().await;
    for transport in [Transport::Direct, Transport::Reqwest] {
        let c = client(transport, &[]);
        let err = post(&c, &format!("https://localhost:{}/answer", up.addr.port())).await.unwrap_err();
        match err {
            ProviderError::Connect(msg) => assert!(msg.to_ascii_lowercase().contains("certificate"), "{transport:?}: {msg}"),
            other => panic!("{transport:?}: {other:?}"),
        }
    }
    assert!(up.alpn.lock().unwrap().is_empty(), "no connection got past the handshake");
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    assert!(read_pem_roots(b"").is_err());
    assert!(read_pem_roots(b"not a pem file").is_err());
    assert!(read_pem_roots(KEY).is_err(), "a key is not a certificate");
    assert_eq!(read_pem_roots(CA).unwrap().len(), 1);
}
