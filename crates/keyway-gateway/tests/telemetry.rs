//! OpenTelemetry export end to end: the real gateway with `[telemetry]`'s exporter installed,
//! a 429 on the first BYOK key, and a fake OTLP/HTTP collector on loopback that decodes what it
//! receives. One test in this binary: the tracing subscriber is process-wide.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use keyway_fakes::server::FakeOptions;
use keyway_fakes::Fault;
use keyway_gateway::config::TelemetryConfig;
use keyway_gateway::telemetry::Telemetry;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::sync::{Arc, Mutex};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A collector: every body POSTed to /v1/traces, with its content type.
async fn collector() -> (String, Arc<Mutex<Vec<(String, bytes::Bytes)>>>) {
    let got: Arc<Mutex<Vec<(String, bytes::Bytes)>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let sink = sink.clone();
            async move {
                let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                sink.lock().unwrap().push((ct, body));
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    let kv = span.attributes.iter().find(|kv| kv.key == key)?;
    match kv.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        AnyValue::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_fallback_exports_one_request_span_and_two_attempt_spans() {
    let (endpoint, received) = collector().await;
    let telemetry = Telemetry::start(&TelemetryConfig { otlp_endpoint: Some(endpoint.clone()), ..TelemetryConfig::default() }).unwrap().expect("export is on");
    assert_eq!(telemetry.endpoint(), format!("{endpoint}/v1/traces"));
    tracing_subscriber::registry().with(tracing_subscriber::EnvFilter::new("info")).with(telemetry.layer()).try_init().unwrap();

    let (fake, g, _) = openai_gateway(FakeOptions::default(), "sk-system-telemetry-0000").await;
    let (key, hash) = g.inference_key().await;
    let k1 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-otel-one-0001", "sort_order": 1})).await;
    let k2 = g.add_byok(json!({"provider": "openai", "key": "sk-byok-otel-two-0002", "sort_order": 2})).await;
    fake.set_fault_for_key("sk-byok-otel-one-0001", Fault::RateLimit { retry_after_secs: 60 });
    let (s, v, h) = g
        .req("POST", "/v1/chat/completions", Some(&key), Some(json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "trace me"}]})))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-keyway-attempts"], "2");
    let generation_id = h["x-keyway-generation-id"].to_str().unwrap().to_owned();

    // A stream that stalls halfway: its request span must last until the stream ends.
    fake.set_fault_for_key("sk-byok-otel-two-0002", Fault::StallMidStream(std::time::Duration::from_millis(400)));
    let (s, body, h) = g
        .req("POST", "/v1/chat/completions", Some(&key), Some(json!({"model": "openai/gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "stream me slowly"}]})))
        .await;
    assert_eq!(s, 200);
    assert!(body.as_str().unwrap_or("").contains("[DONE]"), "{body}");
    let stream_id = h["x-keyway-generation-id"].to_str().unwrap().to_owned();

    // Flush: the batch processor would otherwise wait for its interval.
    telemetry.shutdown().await;

    let bodies = received.lock().unwrap().clone();
    assert!(!bodies.is_empty(), "the collector received nothing");
    let mut spans: Vec<Span> = Vec::new();
    for (ct, body) in &bodies {
        assert_eq!(ct, "application/x-protobuf", "OTLP/HTTP binary protobuf");
        let raw = String::from_utf8_lossy(body);
        for secret in ["sk-byok-otel-one-0001", "sk-byok-otel-two-0002", "sk-system-telemetry-0000", key.as_str(), hash.as_str()] {
            assert!(!raw.contains(secret), "an exported span carries a secret or a whole key hash");
        }
        let req = ExportTraceServiceRequest::decode(body.as_ref()).expect("a valid ExportTraceServiceRequest");
        for rs in req.resource_spans {
            let service = rs.resource.as_ref().and_then(|r| r.attributes.iter().find(|a| a.key == "service.name")).and_then(|a| a.value.clone());
            assert!(format!("{service:?}").contains("keyway"), "service.name is keyway: {service:?}");
            spans.extend(rs.scope_spans.into_iter().flat_map(|ss| ss.spans));
        }
    }

    let requests: Vec<&Span> = spans.iter().filter(|s| s.name == "request" && attr(s, "generation_id").as_deref() == Some(&generation_id)).collect();
    assert_eq!(requests.len(), 1, "one request span for {generation_id}; got {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    let request = requests[0];
    assert_eq!(attr(request, "model").as_deref(), Some("openai/gpt-4o-mini"));
    assert_eq!(attr(request, "caller").as_deref(), Some(&hash[..8]));
    assert_eq!(attr(request, "status").as_deref(), Some("200"));
    assert_eq!(attr(request, "attempts").as_deref(), Some("2"));

    let mut attempts: Vec<&Span> = spans.iter().filter(|s| s.name == "attempt" && s.parent_span_id == request.span_id).collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(attempts.len(), 2, "two attempt spans under the request span");
    for a in &attempts {
        assert_eq!(a.trace_id, request.trace_id);
        assert_eq!(attr(a, "provider").as_deref(), Some("openai"));
        assert_eq!(attr(a, "model").as_deref(), Some("openai/gpt-4o-mini"));
        assert!(attr(a, "latency_ms").is_some(), "latency recorded");
    }
    assert_eq!(attr(attempts[0], "credential"), Some(k1));
    assert_eq!(attr(attempts[0], "status").as_deref(), Some("429"));
    assert_eq!(attr(attempts[0], "outcome").as_deref(), Some("rate_limited"));
    assert_eq!(attempts[0].status.as_ref().map(|s| s.code), Some(2), "the 429 attempt is an OTel error");
    assert_eq!(attr(attempts[1], "credential"), Some(k2));
    assert_eq!(attr(attempts[1], "status").as_deref(), Some("200"));
    assert_eq!(attr(attempts[1], "outcome").as_deref(), Some("ok"));

    let streamed: Vec<&Span> = spans.iter().filter(|s| s.name == "request" && attr(s, "generation_id").as_deref() == Some(&stream_id)).collect();
    assert_eq!(streamed.len(), 1, "one request span for the stream");
    let (req, att) = (streamed[0], spans.iter().find(|s| s.name == "attempt" && s.parent_span_id == streamed[0].span_id).expect("its attempt span"));
    let ms = |s: &Span| (s.end_time_unix_nano - s.start_time_unix_nano) / 1_000_000;
    assert!(ms(req) >= 350, "the request span ends with the stream (stalled 400 ms), not at its head: {} ms", ms(req));
    assert!(att.end_time_unix_nano <= req.end_time_unix_nano);
}
