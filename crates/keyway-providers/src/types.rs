//! Requests and responses as they cross the `Provider` trait.

use crate::error::ProviderError;
use bytes::Bytes;
use futures::Stream;
use keyway_core::{Credential, ProviderSlug, Usage};
use serde_json::{Map, Value};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use crate::raw::{splice, Edit, RawObject};
pub use crate::usage::openai_usage;
pub(crate) use crate::usage::UsageView;
pub use crate::raw::{json_str, Span};

/// Who to call and with what: one attempt of a route plan.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub provider: ProviderSlug,
    /// The model id sent upstream (after catalog lookup and model mappings).
    pub model: &'a str,
    /// The slug the client asked for (picks Azure deployments).
    pub gateway_model: &'a str,
    pub credential: &'a Credential,
    /// Bedrock region / Vertex location wanted by the request, if any.
    pub region: Option<&'a str>,
}

/// An OpenAI chat (or embeddings) request body, routing fields removed. Unknown fields are
/// passed through untouched by adapters whose protocol is OpenAI's.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub body: RequestBody,
    /// Set by `POST /v1/messages`: the client's own Anthropic body, for adapters that speak
    /// Anthropic's protocol to send as is (no round trip through `body`, which loses fields).
    pub anthropic: Option<Arc<AnthropicNative>>,
}

/// The client's Anthropic Messages request, routing fields removed.
#[derive(Debug, Clone, Default)]
pub struct AnthropicNative {
    /// The body as the client sent it; the adapter replaces `model` with the upstream id.
    pub body: Map<String, Value>,
    /// The client's `anthropic-beta` header, forwarded with the body.
    pub beta: Option<String>,
    /// Why `ChatRequest::body` is not a faithful translation (server tools, ...), if it isn't:
    /// then only an adapter that sends `body` natively may serve the request.
    pub native_only: Option<String>,
}

impl ChatRequest {
    pub fn new(body: impl Into<RequestBody>) -> Self {
        Self { body: body.into(), anthropic: None }
    }

    pub fn with_anthropic(mut self, anthropic: Option<AnthropicNative>) -> Self {
        self.anthropic = anthropic.map(Arc::new);
        self
    }

    pub fn stream(&self) -> bool {
        self.body.value("stream").and_then(|v| v.as_bool()).unwrap_or(false)
    }

    /// A top-level value (parsed on its own from a raw body).
    pub fn get(&self, key: &str) -> Option<Value> {
        self.body.value(key)
    }
}

/// A request body as it crosses the `Provider` trait. From a client, its JSON split at the top
/// level only ([`RequestBody::Raw`]): OpenAI-compatible adapters copy each value upstream as the
/// client wrote it, without parsing the messages into a `Value` tree and printing them again
/// (the largest parse on the request path). Adapters that translate read it as a `Map`
/// ([`RequestBody::map`]), parsed from the text once, on first use. A `Map` body (a translated
/// `POST /v1/messages`, tests) is used as it is; editing either ([`RequestBody::map_mut`]) makes
/// it a `Map`.
#[derive(Debug, Clone)]
pub enum RequestBody {
    Raw { raw: RawObject, parsed: OnceLock<Map<String, Value>> },
    Map(Map<String, Value>),
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::Map(Map::new())
    }
}

impl From<Map<String, Value>> for RequestBody {
    fn from(m: Map<String, Value>) -> Self {
        RequestBody::Map(m)
    }
}

/// A client's object: one copy per key (the last), as a parsed `Map` would hold.
impl From<RawObject> for RequestBody {
    fn from(mut raw: RawObject) -> Self {
        raw.dedup_keys();
        RequestBody::Raw { raw, parsed: OnceLock::new() }
    }
}

impl RequestBody {
    /// The body as a parsed map, for adapters that translate it: a raw body is parsed on first
    /// use and kept. An error (a 400) for what splitting the text lets through but a parse
    /// refuses: a lone surrogate escape in a string, a number beyond `f64`.
    pub fn map(&self) -> Result<&Map<String, Value>, ProviderError> {
        match self {
            RequestBody::Map(m) => Ok(m),
            RequestBody::Raw { raw, parsed } => {
                if let Some(m) = parsed.get() {
                    return Ok(m);
                }
                let m = raw.try_to_map().map_err(|e| ProviderError::BadRequest {
                    status: 400,
                    message: format!("request body is not valid JSON: {e}"),
                    body: None,
                })?;
                Ok(parsed.get_or_init(|| m))
            }
        }
    }

    /// The body as a map to edit (a raw body is parsed and becomes a map).
    pub fn map_mut(&mut self) -> Result<&mut Map<String, Value>, ProviderError> {
        if matches!(self, RequestBody::Raw { .. }) {
            let m = self.map()?.clone();
            *self = RequestBody::Map(m);
        }
        match self {
            RequestBody::Map(m) => Ok(m),
            RequestBody::Raw { .. } => Err(ProviderError::Unsupported("the body could not be made a map".into())),
        }
    }

    /// A top-level value, parsed on its own (for the few small fields the gateway reads).
    pub fn value(&self, key: &str) -> Option<Value> {
        match self {
            RequestBody::Raw { raw, parsed } => match parsed.get() {
                Some(m) => m.get(key).cloned(),
                None => raw.get_as(key),
            },
            RequestBody::Map(m) => m.get(key).cloned(),
        }
    }

    /// Whether `key` is there with a value other than `null` (the value is not parsed).
    pub fn is_set(&self, key: &str) -> bool {
        match self {
            RequestBody::Raw { raw, .. } => raw.get(key).is_some_and(|v| v.get() != "null"),
            RequestBody::Map(m) => m.get(key).is_some_and(|v| !v.is_null()),
        }
    }

    /// Whether `key` holds a list with at least one item (the list's items are not parsed).
    pub fn is_nonempty_list(&self, key: &str) -> bool {
        match self {
            RequestBody::Raw { raw, .. } => raw.get(key).is_some_and(|v| {
                let t = v.get().trim_start();
                t.starts_with('[') && !t[1..].trim_start().starts_with(']')
            }),
            RequestBody::Map(m) => m.get(key).and_then(Value::as_array).is_some_and(|a| !a.is_empty()),
        }
    }

    /// Each top-level key and whether its value is other than `null`.
    pub fn keys_set(&self) -> impl Iterator<Item = (&str, bool)> {
        // One of the two is empty: an iterator over either body without collecting it.
        let (raw, map) = match self {
            RequestBody::Raw { raw, .. } => (Some(raw), None),
            RequestBody::Map(m) => (None, Some(m)),
        };
        let raw = raw.into_iter().flat_map(|r| r.iter().map(|(k, v)| (k, v.get() != "null")));
        raw.chain(map.into_iter().flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), !v.is_null()))))
    }

    /// Takes `key` out, parsed; an error when its text doesn't parse (a lone surrogate escape,
    /// a number beyond `f64`), so that a field the caller acts on is never dropped unread.
    pub fn remove(&mut self, key: &str) -> Result<Option<Value>, serde_json::Error> {
        match self {
            RequestBody::Raw { raw, parsed } => {
                if let Some(m) = parsed.get_mut() {
                    m.remove(key);
                }
                raw.remove(key).map(|v| serde_json::from_str(v.get())).transpose()
            }
            RequestBody::Map(m) => Ok(m.remove(key)),
        }
    }

    /// Sets `key` (appended when new).
    pub fn insert(&mut self, key: &str, value: Value) {
        match self {
            RequestBody::Raw { raw, parsed } => {
                raw.set(key, &value);
                if let Some(m) = parsed.get_mut() {
                    m.insert(key.to_owned(), value);
                }
            }
            RequestBody::Map(m) => {
                m.insert(key.to_owned(), value);
            }
        }
    }
}

/// One item of a translated stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// One OpenAI `chat.completion.chunk`, serialised. `content` is true when it carries output
    /// (text, a tool call, a finish reason) rather than only a role or metadata: the router may
    /// still fall back while nothing with content has reached the client.
    /// `shape`, when set, is what the adapter's scan of the upstream's own chunk found, so the
    /// gateway edits it without parsing it again; translated chunks have none.
    Chunk { json: Bytes, content: bool, shape: Option<ChunkShape> },
    /// Usage for the whole response (may come alone or after the last chunk).
    Usage(Usage),
}

/// An upstream OpenAI chunk's layout, read in the adapter's one scan of it: where its
/// top-level `id`, `model` and `provider` values are (a `null` included), whether it is the
/// usage-only chunk that ends a stream, and its first choice's finish reason. Re-parsing every
/// chunk in the gateway to set three fields cost more than the adapter's whole read of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkShape {
    pub id: Option<Span>,
    pub model: Option<Span>,
    pub provider: Option<Span>,
    /// `choices` is `[]` and the chunk has a `usage` key.
    pub usage_only: bool,
    /// `choices[0].finish_reason`, when it is a string.
    pub finish_reason: Option<String>,
}

impl ChunkShape {
    /// Appends `json` to `out` with its top-level `id`, `provider` and `model` set to these
    /// values, each given as JSON text (see [`json_str`]: a stream writes the same three into
    /// every chunk, so it escapes them once): each value replaced where it is, the missing keys
    /// added at the end (in that order, as `Body::set` adds them). `false` (and nothing written)
    /// when the spans don't fit `json`, which is then not the chunk they were read from. The
    /// caller sizes `out`.
    pub fn write_edited(&self, json: &[u8], id: &str, provider: &str, model: &str, out: &mut Vec<u8>) -> bool {
        let mut edits = [
            Edit { key: "id", at: self.id, value: id },
            Edit { key: "provider", at: self.provider, value: provider },
            Edit { key: "model", at: self.model, value: model },
        ];
        splice(json, &mut edits, out)
    }
}


pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

pub enum ChatResponse {
    /// A whole OpenAI `chat.completion` object.
    Complete { body: crate::body::Body, usage: Option<Usage> },
    Stream(ChunkStream),
}

impl std::fmt::Debug for ChatResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatResponse::Complete { body, usage } => {
                f.debug_struct("Complete").field("body", body).field("usage", usage).finish()
            }
            ChatResponse::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmbeddingsResponse {
    /// An OpenAI `list` of `embedding` objects.
    pub body: crate::body::Body,
    pub usage: Option<Usage>,
}

/// A request as sent upstream, with secret headers masked: Test key shows it as a curl line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestPreview {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

const SECRET_HEADERS: [&str; 6] =
    ["authorization", "x-api-key", "api-key", "x-goog-api-key", "x-amz-security-token", "x-amz-content-sha256"];

impl RequestPreview {
    pub fn from_request(req: &reqwest::Request) -> Self {
        let headers = req
            .headers()
            .iter()
            // The URL says it (an adapter may set it ahead of the HTTP client, which would anyway).
            .filter(|(k, _)| *k != http::header::HOST)
            .map(|(k, v)| {
                let name = k.as_str().to_owned();
                let value = if SECRET_HEADERS.contains(&name.as_str()) {
                    mask_header(v.to_str().unwrap_or(""))
                } else {
                    v.to_str().unwrap_or("<binary>").to_owned()
                };
                (name, value)
            })
            .collect();
        let body = req
            .body()
            .and_then(|b| b.as_bytes())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        Self { method: req.method().to_string(), url: req.url().to_string(), headers, body }
    }

    /// The equivalent curl command (secrets already masked).
    pub fn to_curl(&self) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let mut out = format!("curl -X {} {}", self.method, q(&self.url));
        for (k, v) in &self.headers {
            out.push_str(&format!(" \\\n  -H {}", q(&format!("{k}: {v}"))));
        }
        if !self.body.is_empty() {
            out.push_str(&format!(" \\\n  -d {}", q(&self.body)));
        }
        out
    }
}

fn mask_header(v: &str) -> String {
    match v.split_once(' ') {
        // "Bearer sk-..." / "AWS4-HMAC-SHA256 Credential=AKIA.../..., Signature=..."
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => format!("{scheme} {}", keyway_core::credential::mask(rest)),
        Some((scheme, _)) => format!("{scheme} ***"),
        None => keyway_core::credential::mask(v),
    }
}
