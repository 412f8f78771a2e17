//! Helpers shared by the adapter tests: build `Providers` pointed at a fake, make calls, and
//! read streams back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use futures::StreamExt;
use keyway_core::{Credential, ProviderSlug, Usage};
use keyway_providers::{Call, ChatRequest, ChatResponse, ProviderError, Providers, ProvidersConfig, StreamEvent, Timeouts, Transport};
use secrecy::SecretString;
use serde_json::Value;
use std::time::{Duration, Instant};

pub fn providers(slug: ProviderSlug, base: String) -> Providers {
    providers_with(slug, base, Timeouts::default())
}

pub fn providers_with(slug: ProviderSlug, base: String, timeouts: Timeouts) -> Providers {
    let config = ProvidersConfig { base_urls: [(slug, base)].into_iter().collect(), timeouts, transport: None, extra_roots: Vec::new() };
    Providers::new(config).unwrap()
}

/// Providers sending through the given transport (both must behave the same).
pub fn providers_via(slug: ProviderSlug, base: String, transport: Transport) -> Providers {
    let config = ProvidersConfig { base_urls: [(slug, base)].into_iter().collect(), timeouts: Timeouts::default(), transport: Some(transport), extra_roots: Vec::new() };
    Providers::new(config).unwrap()
}

/// Providers with every slug in `slugs` pointed at `base`.
pub fn providers_for(slugs: &[ProviderSlug], base: &str) -> Providers {
    let config = ProvidersConfig { base_urls: slugs.iter().map(|s| (*s, base.to_owned())).collect(), timeouts: Timeouts::default(), transport: None, extra_roots: Vec::new() };
    Providers::new(config).unwrap()
}

/// Timeouts with a short idle limit between stream chunks (and a generous first byte).
pub fn short_idle() -> Timeouts {
    Timeouts { connect: Duration::from_secs(5), first_byte: Duration::from_secs(10), idle: Duration::from_millis(300), ..Timeouts::default() }
}

/// A loopback URL nothing listens on: a port bound then released.
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// The error a stream ended with, asserting content arrived before it and nothing after.
pub fn error_after_content(items: &[Result<StreamEvent, ProviderError>]) -> &ProviderError {
    let at = items.iter().position(Result::is_err).unwrap_or_else(|| panic!("no error in {items:?}"));
    assert!(items[..at].iter().any(|i| matches!(i, Ok(StreamEvent::Chunk { content: true, .. }))), "no content before the error: {items:?}");
    assert_eq!(at, items.len() - 1, "the stream ends at its first error: {items:?}");
    items[at].as_ref().err().unwrap()
}

/// A stream whose upstream stalls after its first content (for longer than [`short_idle`]) ends
/// with an idle timeout at once, not after the stall: `p` must use `short_idle()` timeouts.
pub async fn assert_idle_timeout_mid_stream(fake: &keyway_fakes::FakeServer, p: &Providers, c: &Call<'_>, body: Value) {
    fake.fail_next(keyway_fakes::Fault::StallMidStream(Duration::from_secs(5)));
    let started = Instant::now();
    let items = collect(chat(p, c, body).await.unwrap()).await;
    assert_eq!(error_after_content(&items), &ProviderError::Timeout(keyway_providers::error::TimeoutKind::Idle));
    assert!(started.elapsed() < Duration::from_secs(4), "gave up after the stall, not the idle limit: {:?}", started.elapsed());
}

/// Timeouts short enough to see a slow first byte fail fast.
pub fn short_first_byte() -> Timeouts {
    Timeouts { connect: Duration::from_secs(5), first_byte: Duration::from_millis(400), idle: Duration::from_secs(10), ..Timeouts::default() }
}

pub fn api_key(k: &str) -> Credential {
    Credential::ApiKey(SecretString::from(k.to_owned()))
}

pub fn call<'a>(provider: ProviderSlug, model: &'a str, gateway_model: &'a str, credential: &'a Credential) -> Call<'a> {
    Call { provider, model, gateway_model, credential, region: None }
}

pub fn request(v: Value) -> ChatRequest {
    match v {
        Value::Object(m) => ChatRequest::new(m),
        other => panic!("request body must be an object, got {other}"),
    }
}

pub async fn chat(p: &Providers, c: &Call<'_>, body: Value) -> Result<ChatResponse, ProviderError> {
    p.get(c.provider).expect("adapter registered").chat(c, &request(body)).await
}

pub fn complete(r: ChatResponse) -> (Value, Option<Usage>) {
    match r {
        ChatResponse::Complete { body, usage } => (body.into_value(), usage),
        ChatResponse::Stream(_) => panic!("expected a complete answer, got a stream"),
    }
}

/// Every item of a stream, each with the instant it arrived.
pub async fn collect_timed(r: ChatResponse) -> Vec<(Instant, Result<StreamEvent, ProviderError>)> {
    let ChatResponse::Stream(mut s) = r else { panic!("expected a stream") };
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push((Instant::now(), item));
    }
    out
}

pub async fn collect(r: ChatResponse) -> Vec<Result<StreamEvent, ProviderError>> {
    collect_timed(r).await.into_iter().map(|(_, i)| i).collect()
}

/// The chunks of a stream (parsed) with their content flags; panics on an error item.
pub fn chunks(items: &[Result<StreamEvent, ProviderError>]) -> Vec<(Value, bool)> {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(StreamEvent::Chunk { json, content, .. }) => Some((serde_json::from_slice(json).unwrap(), *content)),
            Ok(StreamEvent::Usage(_)) => None,
            Err(e) => panic!("unexpected stream error {e:?}"),
        })
        .collect()
}

pub fn stream_text(items: &[Result<StreamEvent, ProviderError>]) -> String {
    chunks(items)
        .iter()
        .filter_map(|(c, _)| c.pointer("/choices/0/delta/content").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

pub fn finish_reason(items: &[Result<StreamEvent, ProviderError>]) -> Option<String> {
    chunks(items)
        .iter()
        .find_map(|(c, _)| c.pointer("/choices/0/finish_reason").and_then(Value::as_str).map(str::to_owned))
}

/// Reassembles streamed tool calls: (id, name, arguments) per index.
pub fn stream_tool_calls(items: &[Result<StreamEvent, ProviderError>]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for (c, _) in chunks(items) {
        for tc in c.pointer("/choices/0/delta/tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let i = tc["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.resize(i + 1, Default::default());
            }
            if let Some(id) = tc["id"].as_str() {
                calls[i].0 = id.to_owned();
            }
            if let Some(n) = tc.pointer("/function/name").and_then(Value::as_str) {
                calls[i].1 = n.to_owned();
            }
            if let Some(a) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                calls[i].2.push_str(a);
            }
        }
    }
    calls
}

pub fn stream_usage(items: &[Result<StreamEvent, ProviderError>]) -> Option<Usage> {
    items.iter().rev().find_map(|i| match i {
        Ok(StreamEvent::Usage(u)) => Some(*u),
        _ => None,
    })
}

/// Asserts the stream delivered its first content chunk well before it ended: chunks are
/// passed on as they arrive, not buffered. With `delay` between upstream events and at least
/// `gaps_after_first` delays after the first content event, a buffering adapter would see its
/// first content at (nearly) the same instant as the end. Half the minimum gap leaves a wide
/// margin for a loaded machine.
pub fn assert_streams_incrementally(items: &[(Instant, Result<StreamEvent, ProviderError>)], delay: Duration, gaps_after_first: u32) {
    let first = items
        .iter()
        .find(|(_, i)| matches!(i, Ok(StreamEvent::Chunk { content: true, .. })))
        .map(|(t, _)| *t)
        .expect("a content chunk");
    let last = items.last().map(|(t, _)| *t).expect("items");
    let gap = last.duration_since(first);
    assert!(gap >= delay * gaps_after_first / 2, "first content chunk only {gap:?} before the end: the stream was buffered");
}
