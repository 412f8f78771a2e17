//! The OpenAI-compatible family (OpenAI, Mistral, DeepSeek, xAI, Groq, ...): bearer auth, the
//! body passed through with only `model` replaced, so unknown fields reach the provider untouched.

use crate::error::ProviderError;
use crate::http::{self, read_body};
pub use crate::openai_shape::chunk_has_content;
use crate::timeouts::Timeouts;
use crate::types::{openai_usage, Call, UsageView, ChatRequest, ChatResponse, ChunkShape, EmbeddingsResponse, RequestBody, RequestPreview, Span, StreamEvent};
use crate::body::Body;
use crate::provider::Provider;
use crate::raw::RawObject;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use keyway_core::{Credential, ProviderSlug, Usage};
use secrecy::ExposeSecret;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub struct OpenAiCompat {
    slug: ProviderSlug,
    base_url: String,
    /// `{base_url}/chat/completions` and `{base_url}/embeddings`, parsed once: parsing a URL
    /// per request (host parsing, IDNA) cost more than the whole route plan.
    chat_url: Option<reqwest::Url>,
    embeddings_url: Option<reqwest::Url>,
    /// The `Host` of both, built once (see [`crate::client::host_header`]).
    host: Option<::http::HeaderValue>,
    http: crate::client::HttpClient,
    timeouts: Timeouts,
}

#[derive(Clone, Copy)]
enum Endpoint {
    Chat,
    Embeddings,
}

impl OpenAiCompat {
    pub fn new(slug: ProviderSlug, base_url: String, http: crate::client::HttpClient, timeouts: Timeouts) -> Self {
        let parse = |path: &str| reqwest::Url::parse(&format!("{base_url}{path}")).ok();
        let (chat_url, embeddings_url) = (parse("/chat/completions"), parse("/embeddings"));
        let host = chat_url.as_ref().and_then(crate::client::host_header);
        Self { slug, base_url, chat_url, embeddings_url, host, http, timeouts }
    }

    fn build(&self, call: &Call<'_>, endpoint: Endpoint, body: &UpstreamBody<'_>) -> Result<reqwest::Request, ProviderError> {
        let key = match call.credential {
            Credential::ApiKey(k) => k,
            _ => return Err(ProviderError::Unsupported(format!("{} takes an API key credential", self.slug))),
        };
        // Sized for the client's text: grown from serde_json's 128 bytes, a long conversation
        // was copied two or three times over on its way out.
        let mut out = Vec::with_capacity(body.len_hint());
        serde_json::to_writer(&mut out, body).map_err(|e| ProviderError::Unsupported(e.to_string()))?;
        let body = out;
        let (parsed, path) = match endpoint {
            Endpoint::Chat => (&self.chat_url, "/chat/completions"),
            Endpoint::Embeddings => (&self.embeddings_url, "/embeddings"),
        };
        let builder = match (parsed, &self.host) {
            (Some(url), Some(host)) => self.http.post(url.clone()).header(reqwest::header::HOST, host.clone()),
            (Some(url), None) => self.http.post(url.clone()),
            // An unparsable base URL fails here, per request, with reqwest's own message.
            (None, _) => self.http.post(format!("{}{path}", self.base_url)),
        };
        builder
            .bearer_auth(key.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .build()
            .map_err(|e| ProviderError::Unsupported(format!("could not build the request: {}", e.without_url())))
    }

    fn chat_body<'a>(&self, call: &Call<'a>, req: &'a ChatRequest) -> UpstreamBody<'a> {
        UpstreamBody { body: &req.body, model: call.model, stream_usage: req.stream() }
    }
}

/// The client's body as it goes upstream, serialised straight from the borrowed map: `model`
/// replaced, and for a stream `stream_options.include_usage` set (usage only arrives in
/// OpenAI-style streams that ask for it). Cloning the body to edit it was a deep copy of every
/// message on every attempt. Everything else passes through untouched.
pub struct UpstreamBody<'a> {
    pub body: &'a RequestBody,
    pub model: &'a str,
    pub stream_usage: bool,
}

impl UpstreamBody<'_> {
    /// About the serialised length (the client's text and a little), for sizing the buffer.
    fn len_hint(&self) -> usize {
        match self.body {
            RequestBody::Raw { raw, .. } => raw.len_hint() + self.model.len() + 64,
            RequestBody::Map(_) => 1024,
        }
    }
}

impl serde::Serialize for UpstreamBody<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        let mut has_options = false;
        let mut options = |m: &mut S::SerializeMap, k: &str, v: Option<Value>| -> Result<(), S::Error> {
            has_options = true;
            match v {
                Some(Value::Object(o)) => m.serialize_entry(k, &WithIncludeUsage(Some(&o))),
                Some(Value::Null) | None => m.serialize_entry(k, &WithIncludeUsage(None)),
                // Not an object: the provider's own 400 says so.
                Some(other) => m.serialize_entry(k, &other),
            }
        };
        match self.body {
            // The client's text, value by value; only `stream_options` is parsed (to add to it).
            RequestBody::Raw { raw, .. } => {
                for (k, v) in raw.iter() {
                    match k {
                        "model" => continue,
                        "stream_options" if self.stream_usage => options(&mut m, k, serde_json::from_str(v.get()).ok())?,
                        _ => m.serialize_entry(k, v)?,
                    }
                }
            }
            RequestBody::Map(body) => {
                for (k, v) in body {
                    match k.as_str() {
                        "model" => continue,
                        "stream_options" if self.stream_usage => options(&mut m, k, Some(v.clone()))?,
                        _ => m.serialize_entry(k, v)?,
                    }
                }
            }
        }
        m.serialize_entry("model", self.model)?;
        if self.stream_usage && !has_options {
            m.serialize_entry("stream_options", &WithIncludeUsage(None))?;
        }
        m.end()
    }
}

/// `stream_options` with `include_usage: true` (the client's other options kept).
struct WithIncludeUsage<'a>(Option<&'a Map<String, Value>>);

impl serde::Serialize for WithIncludeUsage<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0.into_iter().flatten() {
            if k != "include_usage" {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("include_usage", &true)?;
        m.end()
    }
}

/// Reads an OpenAI-shaped chat answer (whole or SSE, per `stream`) from a 2xx response:
/// shared by every adapter whose upstream answers in OpenAI's format.
pub async fn read_chat(resp: crate::client::Response, stream: bool, t: &Timeouts) -> Result<ChatResponse, ProviderError> {
    if !stream {
        let (body, usage) = read_whole(resp, t).await?;
        return Ok(ChatResponse::Complete { body, usage });
    }
    let state = OpenAiStream { events: http::sse_events(resp, t).boxed(), seen: 0, finished: false, over: false };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if st.over {
            return None;
        }
        let items = match st.events.next().await {
            Some(Ok(ev)) if ev.data.trim() == "[DONE]" => return None,
            Some(Ok(ev)) => {
                let (items, finish) = chunk_items(ev.data);
                st.finished |= finish;
                items
            }
            Some(Err(e)) => vec![Err(e)],
            // Perplexity ends its streams without [DONE]: the answer is whole once a choice finished.
            None if st.finished => return None,
            // A cut connection or a body that isn't an event stream: never a success.
            None if st.seen == 0 => vec![Err(ProviderError::Protocol("the upstream answered 200 without an event stream".into()))],
            None => vec![Err(ProviderError::Protocol("the stream ended before [DONE] and before any finish_reason".into()))],
        };
        st.seen += 1;
        // The stream ends at its first error.
        st.over = items.iter().any(Result::is_err);
        Some((futures::stream::iter(items), st))
    })
    .flatten();
    Ok(ChatResponse::Stream(Box::pin(stream)))
}

struct OpenAiStream {
    events: futures::stream::BoxStream<'static, Result<crate::sse::SseEvent, ProviderError>>,
    /// Events read so far.
    seen: usize,
    /// A choice carried a `finish_reason`.
    finished: bool,
    /// An error was passed on; nothing follows it.
    over: bool,
}

/// One `data:` payload of an OpenAI stream as stream items (the chunk and its usage, or an
/// error), and whether a choice finished in it.
pub fn chunk_items(data: String) -> (Vec<Result<StreamEvent, ProviderError>>, bool) {
    // The few fields read, borrowed raw from the payload: one scan, nothing copied or built.
    // A chunk the view can't take (a field of an odd type, a duplicate key) goes the general
    // way, which reads it as before.
    let Ok(view) = serde_json::from_str::<ChunkView<'_>>(&data) else { return chunk_items_by_value(data) };
    if let Some(e) = view.error {
        return match serde_json::from_str::<Value>(e.get()) {
            Ok(e) => (vec![Err(error_object(&e))], false),
            Err(_) => chunk_items_by_value(data),
        };
    }
    let choices = view.choices.as_deref().unwrap_or_default();
    let finish = choices.iter().any(|c| c.finish_reason.is_some());
    let content = choices.iter().any(ChoiceView::has_content);
    let usage = view.usage.and_then(|u| u.0);
    let spans = [view.id, view.model, view.provider].map(|v| v.map(|v| Span::within(&data, v.get())));
    // A borrowed view's values are always inside `data`; were one not, no shape (the slow path).
    let shape = spans.iter().all(|s| s.is_none_or(|s| s.is_some())).then(|| {
        let [id, model, provider] = spans.map(Option::flatten);
        ChunkShape {
            id,
            model,
            provider,
            usage_only: view.choices.as_ref().is_some_and(Vec::is_empty) && view.usage.is_some(),
            finish_reason: choices.first().and_then(|c| c.finish_reason).and_then(|r| serde_json::from_str::<String>(r.get()).ok()),
        }
    });
    (chunk_and_usage(data, content, usage, shape), finish)
}

/// The items of a chunk that is not an error: the chunk, then its usage if it has one.
fn chunk_and_usage(data: String, content: bool, usage: Option<Usage>, shape: Option<ChunkShape>) -> Vec<Result<StreamEvent, ProviderError>> {
    let mut out = Vec::with_capacity(if usage.is_some() { 2 } else { 1 });
    out.push(Ok(StreamEvent::Chunk { json: Bytes::from(data), content, shape }));
    if let Some(u) = usage {
        out.push(Ok(StreamEvent::Usage(u)));
    }
    out
}

/// A streamed chunk's fields that steer the gateway; `null` reads as absent.
#[derive(serde::Deserialize)]
struct ChunkView<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceView<'a>>>,
    // These four are `Some` for a `null` too: the key is there (see [`ChunkShape`]).
    #[serde(default, deserialize_with = "present")]
    usage: Option<UsageView>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    model: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    provider: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// A key's raw value, `null` included (a plain `Option` reads `null` as absent).
fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(serde::Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<DeltaView<'a>>,
}

#[derive(serde::Deserialize)]
struct DeltaView<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refusal: Option<&'a RawValue>,
}

impl ChoiceView<'_> {
    /// As [`chunk_has_content`] for one choice.
    fn has_content(&self) -> bool {
        // A raw JSON string of more than its two quotes is a non-empty string.
        let text = |v: Option<&RawValue>| v.is_some_and(|v| v.get().starts_with('"') && v.get().len() > 2);
        let d = self.delta.as_ref();
        text(d.and_then(|d| d.content)) || d.is_some_and(|d| d.tool_calls.is_some()) || text(d.and_then(|d| d.refusal)) || self.finish_reason.is_some()
    }
}

/// [`chunk_items`] over a parsed `Value`: for chunks the borrowed view can't read (and the
/// oracle it is tested against; the benchmark reaches it through `keyway_providers::bench`, `bench` feature).
pub(crate) fn chunk_items_by_value(data: String) -> (Vec<Result<StreamEvent, ProviderError>>, bool) {
    let v = match serde_json::from_str::<Value>(&data) {
        Ok(v) => v,
        Err(e) => return (vec![Err(ProviderError::Protocol(format!("invalid JSON in stream: {e}")))], false),
    };
    if let Some(err) = stream_error(&v) {
        return (vec![Err(err)], false);
    }
    let finish = v
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c.get("finish_reason").is_some_and(|f| !f.is_null())));
    let usage = v.get("usage").and_then(openai_usage);
    let content = chunk_has_content(&v);
    (chunk_and_usage(data, content, usage, None), finish)
}

/// Reads an OpenAI-shaped embeddings answer from a 2xx response.
pub async fn read_embeddings(resp: crate::client::Response, t: &Timeouts) -> Result<EmbeddingsResponse, ProviderError> {
    let (body, usage) = read_whole(resp, t).await?;
    Ok(EmbeddingsResponse { body, usage })
}

/// A whole OpenAI-shaped answer, kept as the upstream wrote it (see [`crate::body`]): its usage,
/// or the error object some providers send with a 200.
async fn read_whole(resp: crate::client::Response, t: &Timeouts) -> Result<(Body, Option<Usage>), ProviderError> {
    read_answer(&read_body(resp, t).await?)
}

/// A whole OpenAI-shaped answer from its bytes, as [`read_whole`] reads it once the body is in:
/// the body kept as the upstream wrote it, its usage, or the error object a 200 may carry.
pub fn read_answer(bytes: &Bytes) -> Result<(Body, Option<Usage>), ProviderError> {
    // What the borrowed view can't take (not UTF-8, not an object, a duplicated or odd-typed
    // field) is split at the top level and read as before, which names any JSON error.
    read_shaped(bytes).unwrap_or_else(|| read_raw(bytes))
}

/// The answer split at the top level: [`read_answer`]'s fallback and oracle (the benchmark
/// reaches it through `keyway_providers::bench`, `bench` feature).
pub(crate) fn read_raw(bytes: &[u8]) -> Result<(Body, Option<Usage>), ProviderError> {
    let body = RawObject::parse(bytes).map_err(|e| ProviderError::Protocol(format!("invalid JSON from upstream: {e}")))?;
    if let Some(e) = body.get_as::<Value>("error").filter(|e| !e.is_null()) {
        return Err(error_object(&e));
    }
    let usage = body.get_as::<Value>("usage").as_ref().and_then(openai_usage);
    Ok((Body::Raw(body), usage))
}

/// The fields of a whole answer the gateway reads or sets, borrowed from its text in one scan;
/// everything else is checked for valid JSON and skipped.
#[derive(serde::Deserialize)]
struct AnswerView<'a> {
    // `Some` for a `null` too: the key is there, and is edited where it sits.
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    system_fingerprint: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    provider: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(default)]
    usage: Option<UsageView>,
    #[serde(borrow, default)]
    choices: Option<Vec<FinishView<'a>>>,
}

#[derive(serde::Deserialize)]
struct FinishView<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<std::borrow::Cow<'a, str>>,
}

/// [`read_whole`]'s answer by the borrowed view, `None` when the view can't read `bytes`.
fn read_shaped(bytes: &Bytes) -> Option<Result<(Body, Option<Usage>), ProviderError>> {
    // UTF-8 checked once for the whole text: the view skips most of it unread.
    let text = std::str::from_utf8(bytes).ok()?;
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let view = serde_json::from_str::<AnswerView<'_>>(text).ok()?;
    if let Some(e) = view.error {
        return Some(Err(error_object(&serde_json::from_str::<Value>(e.get()).ok()?)));
    }
    let usage = view.usage.and_then(|u| u.0);
    let mut at = [None; 4];
    for (slot, v) in at.iter_mut().zip([view.id, view.system_fingerprint, view.provider, view.model]) {
        if let Some(v) = v {
            *slot = Some(Span::within(text, v.get())?);
        }
    }
    let finish_reason = view.choices.and_then(|c| c.into_iter().next()).and_then(|c| c.finish_reason).map(|r| r.into_owned());
    let body = Body::Shaped(Box::new(crate::body::Shaped::new(bytes.clone(), at, finish_reason)));
    Some(Ok((body, usage)))
}

/// An `{"error": {...}}` object sent inside a 200 stream.
pub fn stream_error(v: &Value) -> Option<ProviderError> {
    v.get("error").filter(|e| !e.is_null()).map(error_object)
}

/// The class of an OpenAI-style error object (`{"message", "type", "code"}`).
fn error_object(e: &Value) -> ProviderError {
    let message = e.get("message").and_then(Value::as_str).unwrap_or("upstream stream error").to_owned();
    let kind = [e.get("type"), e.get("code")]
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
        .collect::<Vec<_>>()
        .join(" ");
    if kind.contains("rate_limit") || kind.contains("429") {
        ProviderError::RateLimited { status: 429, retry_after: None, message, body: None }
    } else {
        ProviderError::Upstream5xx { status: 502, message }
    }
}

#[async_trait]
impl Provider for OpenAiCompat {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let request = self.build(call, Endpoint::Chat, &self.chat_body(call, req))?;
        let resp = http::send(&self.http, request, &self.timeouts).await?;
        read_chat(resp, req.stream(), &self.timeouts).await
    }

    async fn embeddings(&self, call: &Call<'_>, req: &ChatRequest) -> Result<EmbeddingsResponse, ProviderError> {
        let body = UpstreamBody { body: &req.body, model: call.model, stream_usage: false };
        let request = self.build(call, Endpoint::Embeddings, &body)?;
        let resp = http::send(&self.http, request, &self.timeouts).await?;
        read_embeddings(resp, &self.timeouts).await
    }

    async fn preview_chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<RequestPreview, ProviderError> {
        Ok(RequestPreview::from_request(&self.build(call, Endpoint::Chat, &self.chat_body(call, req))?))
    }

    fn test_model(&self) -> &str {
        match self.slug {
            ProviderSlug::OpenAi => "gpt-4o-mini",
            ProviderSlug::Mistral => "mistral-small-latest",
            ProviderSlug::DeepSeek => "deepseek-chat",
            ProviderSlug::XAi => "grok-3-mini",
            ProviderSlug::ZAi => "glm-4.5-flash",
            ProviderSlug::Groq => "llama-3.1-8b-instant",
            ProviderSlug::DeepInfra => "meta-llama/Meta-Llama-3.1-8B-Instruct",
            ProviderSlug::Perplexity => "sonar",
            ProviderSlug::MoonshotAi => "moonshot-v1-8k",
            ProviderSlug::Baseten => "meta-llama/Llama-4-Scout-17B-16E-Instruct",
            ProviderSlug::Fireworks => "accounts/fireworks/models/llama-v3p1-8b-instruct",
            ProviderSlug::Together => "meta-llama/Llama-3.2-3B-Instruct-Turbo",
            _ => "gpt-4o-mini",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    /// The upstream body from a parsed map and from the client's raw text: both must agree.
    fn upstream(body: Value, stream_usage: bool) -> Value {
        let raw = RequestBody::from(RawObject::parse(&serde_json::to_vec(&body).unwrap()).unwrap());
        let Value::Object(map) = body else { panic!("an object") };
        let from_map = serde_json::to_value(UpstreamBody { body: &map.into(), model: "gpt-4o-mini", stream_usage }).unwrap();
        let from_raw = serde_json::to_value(UpstreamBody { body: &raw, model: "gpt-4o-mini", stream_usage }).unwrap();
        assert_eq!(from_raw, from_map);
        from_map
    }

    #[test]
    fn a_raw_body_goes_upstream_as_the_client_wrote_it() {
        let client = r#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"h\u00e9llo \"x\""}],"temperature":1.10,"logit_bias":{"50256":-1e2},"stream":true,"seed":3,"seed":4}"#;
        let body = RequestBody::from(RawObject::parse(client.as_bytes()).unwrap());
        let sent = String::from_utf8(serde_json::to_vec(&UpstreamBody { body: &body, model: "gpt-4o-mini", stream_usage: true }).unwrap()).unwrap();
        // Values byte for byte (escapes, number spelling), the client's order, one `seed` (the
        // last, as a parsed map keeps it), `model` replaced, usage asked for.
        assert_eq!(
            sent,
            r#"{"messages":[{"role":"user","content":"h\u00e9llo \"x\""}],"temperature":1.10,"logit_bias":{"50256":-1e2},"stream":true,"seed":4,"model":"gpt-4o-mini","stream_options":{"include_usage":true}}"#
        );
        assert!(matches!(body, RequestBody::Raw { ref parsed, .. } if parsed.get().is_none()), "sent without parsing the body");
        // A translating adapter reads the same body as a map.
        let map = body.map().unwrap();
        assert_eq!(map.get("seed"), Some(&json!(4)));
        assert_eq!(map["messages"][0]["content"], "h\u{e9}llo \"x\"");
        // What splitting lets through and a parse refuses is a 400 for a translating adapter.
        for bad in [r#"{"messages":[{"role":"user","content":"\ud800"}]}"#, r#"{"messages":[],"temperature":1e400}"#] {
            let body = RequestBody::from(RawObject::parse(bad.as_bytes()).unwrap());
            let err = body.map().unwrap_err();
            assert!(matches!(&err, ProviderError::BadRequest { status: 400, message, .. } if message.starts_with("request body is not valid JSON")), "{bad}: {err:?}");
        }
    }

    #[test]
    fn the_upstream_body_replaces_model_and_asks_for_stream_usage() {
        let base = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "seed": 3});
        let mut want = base.clone();
        want["model"] = json!("gpt-4o-mini");
        assert_eq!(upstream(base.clone(), false), want, "not a stream: only model changes");
        let with = |opts: Value| {
            let mut b = base.clone();
            b["stream_options"] = opts;
            b
        };
        // Not a stream: the client's stream_options go as they are.
        assert_eq!(upstream(with(json!({"include_usage": false})), false)["stream_options"], json!({"include_usage": false}));
        // A stream: include_usage forced on, the client's other options kept.
        assert_eq!(upstream(base.clone(), true)["stream_options"], json!({"include_usage": true}));
        assert_eq!(upstream(with(Value::Null), true)["stream_options"], json!({"include_usage": true}));
        assert_eq!(upstream(with(json!({"include_usage": false, "x": 1})), true)["stream_options"], json!({"x": 1, "include_usage": true}));
        // Not an object: passed on for the provider to refuse.
        assert_eq!(upstream(with(json!("bad")), true)["stream_options"], json!("bad"));
        let sent = upstream(with(json!({})), true);
        assert_eq!(sent["model"], "gpt-4o-mini");
        assert_eq!(sent["seed"], 3);
    }

    async fn whole(body: &'static str) -> Result<(Body, Option<Usage>), ProviderError> {
        let t = Timeouts { connect: Duration::from_secs(1), first_byte: Duration::from_secs(1), idle: Duration::from_secs(1), ..Timeouts::default() };
        read_whole(crate::client::Response::from_http(::http::Response::new(reqwest::Body::from(body))), &t).await
    }

    #[test]
    fn a_shaped_answer_reads_and_edits_as_the_split_one_does() {
        let answers = [
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"h\u00e9llo \"x\"","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":1}},"service_tier":"default","system_fingerprint":"fp_1"}"#,
            // Pretty-printed, the edited keys absent, a null id, an escaped finish reason.
            "{\n  \"object\": \"chat.completion\",\n  \"choices\": [ {\"finish_reason\": \"len\\u0067th\"} ]\n}\n",
            r#"{"id":null,"model":null,"provider":"upstream-said","choices":[]}"#,
            r#"{}"#,
            r#"  { }  "#,
            r#"{"choices":null,"usage":null,"error":null,"x":[1.0e-7,1.10,2]}"#,
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-2e-3]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":2,"total_tokens":2}}"#,
            r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#,
            r#"{"error":{"message":"boom","type":"server_error"},"choices":[]}"#,
            // Odd types where the gateway writes or doesn't look are read alike.
            r#"{"id":1,"usage":"many"}"#,
            // What the view leaves to the split path.
            r#"{"id":"a","id":"b","choices":[]}"#,
            r#"{"choices":[1]}"#,
            r#"{"choices":[{"finish_reason":3}]}"#,
            r#"["not","an","object"]"#,
            r#"{"id":"x"} trailing"#,
            "",
        ];
        let edit = |b: &mut Body| {
            b.set("id", &"gen-1");
            b.set_if_absent("system_fingerprint", &Value::Null);
            b.set("provider", &"OpenAI");
            b.set("model", &"openai/gpt-4o-mini");
        };
        let keys = |v: &[u8]| RawObject::parse(v).unwrap().iter().map(|(k, _)| k.to_owned()).collect::<Vec<_>>();
        let mut shaped_count = 0;
        for a in answers {
            let bytes = Bytes::from(a.to_owned());
            let raw = read_raw(&bytes);
            let Some(shaped) = read_shaped(&bytes) else { continue };
            shaped_count += 1;
            match (shaped, raw) {
                (Ok((mut s, su)), Ok((mut r, ru))) => {
                    assert!(matches!(s, Body::Shaped(_)), "{a}");
                    assert_eq!(su, ru, "{a}");
                    assert_eq!(s.first_finish_reason(), r.first_finish_reason(), "{a}");
                    assert_eq!(s.get_str("model"), r.get_str("model"), "{a}");
                    edit(&mut s);
                    edit(&mut r);
                    let (sv, rv) = (s.to_vec(), r.to_vec());
                    assert_eq!(serde_json::from_slice::<Value>(&sv).unwrap(), serde_json::from_slice::<Value>(&rv).unwrap(), "{a}");
                    assert_eq!(keys(&sv), keys(&rv), "{a}: key order");
                    assert_eq!(s.get_str("id").as_deref(), Some("gen-1"));
                    assert_eq!(s.clone().into_value(), r.clone().into_value(), "{a}");
                    // An untracked field set on a shaped body makes it split, edits kept.
                    s.set("x_extra", &1);
                    assert!(matches!(s, Body::Raw(_)), "{a}");
                    assert_eq!(s.get_str("provider").as_deref(), Some("OpenAI"));
                }
                (Err(se), Err(re)) => assert_eq!(format!("{se:?}"), format!("{re:?}"), "{a}"),
                (s, r) => panic!("{a}: shaped {s:?}, split {r:?}"),
            }
        }
        assert_eq!(shaped_count, 10, "the view takes every answer above the line and none below");
        let not_utf8 = Bytes::from_static(b"{\"id\":\"\xff\"}");
        assert!(read_shaped(&not_utf8).is_none());
        assert!(matches!(read_raw(&not_utf8), Err(ProviderError::Protocol(_))));
    }

    #[tokio::test]
    async fn a_whole_answer_gives_its_usage_or_its_error() {
        let (body, usage) = whole(r#"{"id":"x","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5},"error":null}"#).await.unwrap();
        assert!(matches!(body, Body::Shaped(_)));
        assert_eq!(usage.map(|u| (u.prompt_tokens, u.completion_tokens)), Some((2, 3)));
        let limited = whole(r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#).await.unwrap_err();
        assert!(matches!(limited, ProviderError::RateLimited { .. }), "{limited:?}");
        let other = whole(r#"{"error":{"message":"boom","type":"server_error"}}"#).await.unwrap_err();
        assert!(matches!(other, ProviderError::Upstream5xx { .. }), "{other:?}");
        for bad in ["[1]", "not json", ""] {
            assert!(matches!(whole(bad).await, Err(ProviderError::Protocol(_))), "{bad}");
        }
        assert!(stream_error(&json!({"error": null})).is_none());
    }

    /// What a chunk yields, comparable: each item's `Debug` (or an error's class and message),
    /// and whether a choice finished.
    fn items_summary((items, finish): (Vec<Result<StreamEvent, ProviderError>>, bool)) -> (Vec<String>, bool) {
        let items = items
            .into_iter()
            .map(|i| match i {
                // The shape is only the view's (the value path has none): compared apart.
                Ok(StreamEvent::Chunk { json, content, .. }) => format!("{:?}", StreamEvent::Chunk { json, content, shape: None }),
                Ok(e) => format!("{e:?}"),
                Err(e) => format!("error {} {e}", e.class()),
            })
            .collect();
        (items, finish)
    }

    const CHUNKS: [&str; 19] = [
            r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"\"quoted\" \u00e9"},"finish_reason":null}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":3}}}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":null,"refusal":"no"}}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"refusal":""}}]}"#,
            r#"{"id":"c","choices":null}"#,
            r#"{"id":"c"}"#,
            r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#,
            r#"{"error":{"message":"boom","code":500}}"#,
            r#"{"error":null,"choices":[{"delta":{"content":"x"}}]}"#,
            // Odd shapes the view can't take: they go the general way.
            r#"{"choices":{"not":"a list"}}"#,
            r#"{"choices":[{"delta":"text"}]}"#,
            r#"{"choices":[{"delta":{"content":5}}],"choices":[]}"#,
            r#"{"choices":[1,2]}"#,
            r#"[1]"#,
            "not json",
        ];

    #[test]
    fn the_borrowed_chunk_view_reads_every_chunk_as_the_value_path_does() {
        let chunks = CHUNKS;
        for c in chunks {
            assert_eq!(items_summary(chunk_items(c.to_owned())), items_summary(chunk_items_by_value(c.to_owned())), "{c}");
        }
        let (items, finish) = items_summary(chunk_items(chunks[4].to_owned()));
        assert_eq!((items.len(), finish), (2, false));
        assert!(items[1].contains("prompt_tokens: 9, completion_tokens: 4, cached_tokens: 3"), "{items:?}");
        assert!(items_summary(chunk_items(chunks[1].to_owned())).0[0].contains("content: true"));
        assert!(items_summary(chunk_items(chunks[0].to_owned())).0[0].contains("content: false"));
        assert!(items_summary(chunk_items(chunks[3].to_owned())).1);
    }

    #[test]
    fn a_chunk_shape_edits_the_chunk_as_the_parsed_object_does() {
        let more = [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"x"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            // Whitespace where JSON allows it, `model` before `id`, a `provider` of its own.
            " { \"model\" : \"m\" ,\n\"provider\":\"Groq\", \"id\" :\"x\", \"choices\": [ {\"delta\":{\"content\":\"}{\"},\"finish_reason\":\"length\"} ] } \n",
            r#"{"id":null,"model":null,"choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"choices":[{"delta":{"content":"no id, no model"}}]}"#,
            r#"{}"#,
            r#"{ }"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            r#"{"choices":[],"usage":null}"#,
            r#"{"choices":[]}"#,
        ];
        let (id, provider, model) = ("gen-01\"quoted\"", "OpenAI", "openai/gpt-4o-mini");
        let texts = [id, provider, model].map(crate::types::json_str);
        let [id_json, provider_json, model_json] = texts.each_ref().map(String::as_str);
        let mut shaped = 0;
        for c in CHUNKS.iter().chain(&more) {
            let (items, _) = chunk_items((*c).to_owned());
            let Some(Ok(StreamEvent::Chunk { json, shape, .. })) = items.into_iter().next() else { continue };
            let Some(shape) = shape else { continue };
            shaped += 1;
            let mut out = Vec::new();
            assert!(shape.write_edited(&json, id_json, provider_json, model_json, &mut out), "{c}");
            // The parsed way: a raw object, read for what the shape says, then the three fields set.
            let input = RawObject::parse(&json).unwrap();
            let no_choices = input.get("choices").is_some_and(|c| c.get().replace(' ', "") == "[]");
            assert_eq!(shape.usage_only, no_choices && input.get("usage").is_some(), "{c}");
            let mut body = Body::Raw(input);
            assert_eq!(shape.finish_reason, body.first_finish_reason(), "{c}");
            body.set("id", &id);
            body.set("provider", &provider);
            body.set("model", &model);
            let edited = RawObject::parse(&out).unwrap_or_else(|e| panic!("{c}: {e}: {}", String::from_utf8_lossy(&out)));
            let Body::Raw(expected) = body else { unreachable!() };
            // Same keys, same order, same values; every key once.
            assert_eq!(edited, expected, "{c}\n{}", String::from_utf8_lossy(&out));
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!((v["id"].as_str(), v["provider"].as_str(), v["model"].as_str()), (Some(id), Some(provider), Some(model)), "{c}");
        }
        // 11 of CHUNKS (the rest are errors or go the value way) and the 9 above.
        assert_eq!(shaped, 20, "every chunk the view reads has a shape");
        // Spans from another chunk don't fit: refused, nothing written.
        let (items, _) = chunk_items(more[0].to_owned());
        let Some(Ok(StreamEvent::Chunk { shape: Some(shape), .. })) = items.into_iter().next() else { panic!("no shape") };
        let mut out = Vec::new();
        assert!(!shape.write_edited(br#"{"id":"x"}"#, id_json, provider_json, model_json, &mut out));
        assert!(out.is_empty());
    }
}

/// The slow readers stay as fallbacks for what the borrowed views can't take (a duplicated key,
/// a field of an odd type, invalid JSON, which they name); here they are also the oracles the
/// fast readers must agree with on every input.
#[cfg(test)]
mod oracle {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u32>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            Just(json!(1.5)),
            "[a-z\"\\\\é]{0,6}".prop_map(Value::from),
            Just(json!("")),
            Just(json!([])),
            Just(json!({})),
        ]
    }

    fn usage() -> impl Strategy<Value = Value> {
        prop_oneof![
            scalar(),
            (scalar(), scalar(), scalar(), scalar()).prop_map(|(p, c, r, w)| json!({
                "prompt_tokens": p, "completion_tokens": c, "total_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": r, "cache_write_tokens": w}})),
            (0u64..1000, 0u64..1000, 0u64..100, 0u64..100).prop_map(|(p, c, r, w)| json!({
                "prompt_tokens": p, "completion_tokens": c, "prompt_tokens_details": {"cached_tokens": r, "cache_write_tokens": w}})),
        ]
    }

    fn choice() -> impl Strategy<Value = Value> {
        (scalar(), scalar(), scalar(), scalar(), prop::bool::ANY).prop_map(|(content, tools, refusal, finish, message)| {
            let inner = json!({"role": "assistant", "content": content, "tool_calls": tools, "refusal": refusal});
            let key = if message { "message" } else { "delta" };
            json!({"index": 0, key: inner, "finish_reason": finish})
        })
    }

    /// Answer- and chunk-like objects: each field absent, `null`, well-typed or odd.
    fn object() -> impl Strategy<Value = Value> {
        let field = |s: BoxedStrategy<Value>| prop::option::of(s);
        (
            field(scalar().boxed()),
            field(scalar().boxed()),
            field(scalar().boxed()),
            field(prop_oneof![scalar(), prop::collection::vec(choice(), 0..3).prop_map(Value::from)].boxed()),
            field(usage().boxed()),
            field(prop_oneof![scalar(), Just(json!({"message": "boom", "type": "server_error"})), Just(json!({"code": 429}))].boxed()),
            field(scalar().boxed()),
        )
            .prop_map(|(id, model, provider, choices, usage, error, fp)| {
                let mut m = Map::new();
                for (k, v) in [("id", id), ("model", model), ("provider", provider), ("choices", choices), ("usage", usage), ("error", error), ("system_fingerprint", fp)] {
                    if let Some(v) = v {
                        m.insert(k.to_owned(), v);
                    }
                }
                Value::Object(m)
            })
    }

    /// The object as text: compact, pretty, or with a key duplicated (which a `Value` keeps once).
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            object().prop_map(|v| v.to_string()),
            object().prop_map(|v| serde_json::to_string_pretty(&v).unwrap()),
            (object(), prop_oneof![Just("id"), Just("usage"), Just("choices"), Just("model")]).prop_map(|(v, k)| {
                let s = v.to_string();
                format!("{{\"{k}\":null,{}", s.strip_prefix('{').unwrap_or("}"))
            }),
            "[{}\\[\\]a-z\":,0-9 ]{0,24}",
        ]
    }

    /// A stream item without what only the fast reader finds (the chunk's shape).
    type Plain = Result<(Bytes, bool, Option<Usage>), ProviderError>;

    fn plain(items: Vec<Result<StreamEvent, ProviderError>>) -> Vec<Plain> {
        items
            .into_iter()
            .map(|i| {
                i.map(|e| match e {
                    StreamEvent::Chunk { json, content, .. } => (json, content, None),
                    StreamEvent::Usage(u) => (Bytes::new(), false, Some(u)),
                })
            })
            .collect()
    }

    /// What the gateway reads of a whole answer: its finish reason and usage, or the error.
    fn answer(r: Result<(Body, Option<Usage>), ProviderError>) -> Result<(Option<String>, Option<Usage>), ProviderError> {
        r.map(|(b, u)| (b.first_finish_reason(), u))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn chunk_items_agrees_with_the_value_reader(data in text()) {
            let (fast, fast_finish) = chunk_items(data.clone());
            let (slow, slow_finish) = chunk_items_by_value(data);
            prop_assert_eq!(fast_finish, slow_finish);
            prop_assert_eq!(plain(fast), plain(slow));
        }

        #[test]
        fn read_answer_agrees_with_the_raw_reader(data in text()) {
            let bytes = Bytes::from(data);
            let fast = read_answer(&bytes);
            let slow = read_raw(&bytes);
            let fast_value = fast.as_ref().ok().map(|(b, _)| b.clone().into_value());
            let slow_value = slow.as_ref().ok().map(|(b, _)| b.clone().into_value());
            prop_assert_eq!(fast_value, slow_value);
            prop_assert_eq!(answer(fast), answer(slow));
        }
    }
}
