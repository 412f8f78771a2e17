//! Google AI Studio (the Gemini API) and the Gemini wire format that Vertex shares.
//!
//! `POST {base}/v1beta/models/{model}:generateContent` (or `:streamGenerateContent?alt=sse`) with
//! the key in `x-goog-api-key`: never as `?key=`, because URLs end up in logs. Embeddings go to
//! `:embedContent` (one input) or `:batchEmbedContents` and come back as OpenAI's list.

/// The conversion lives in [`crate::translate::gemini`]; this path stays for existing callers.
pub use crate::translate::gemini as convert;

use crate::error::ProviderError;
use crate::openai_shape::bad_request;
use crate::stream::translate;
use crate::http::{self, parse_json, read_body};
use crate::timeouts::Timeouts;
use crate::types::{Call, ChatRequest, ChatResponse, EmbeddingsResponse, RequestPreview};
use crate::provider::Provider;
use async_trait::async_trait;
use keyway_core::Credential;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

/// Characters left as they are in a model id path segment.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'@');

pub(crate) fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

pub struct GoogleAiStudio {
    base_url: String,
    http: crate::client::HttpClient,
    timeouts: Timeouts,
}

impl GoogleAiStudio {
    pub fn new(base_url: String, http: crate::client::HttpClient, timeouts: Timeouts) -> Self {
        Self { base_url, http, timeouts }
    }

    fn url(&self, model: &str, method: &str) -> String {
        // `models/gemini-x` is accepted as well as the bare id.
        let model = model.strip_prefix("models/").unwrap_or(model);
        format!("{}/v1beta/models/{}:{method}", self.base_url, encode_segment(model))
    }

    fn build(&self, call: &Call<'_>, url: String, body: &Value) -> Result<reqwest::Request, ProviderError> {
        let Credential::ApiKey(key) = call.credential else {
            return Err(ProviderError::Unsupported("Google AI Studio takes an API key credential".into()));
        };
        let body = serde_json::to_vec(body).map_err(|e| ProviderError::Unsupported(e.to_string()))?;
        self.http
            .post(url)
            .header("x-goog-api-key", key.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .build()
            .map_err(|e| ProviderError::Unsupported(format!("could not build the request: {}", e.without_url())))
    }

    fn chat_request(&self, call: &Call<'_>, req: &ChatRequest) -> Result<reqwest::Request, ProviderError> {
        let body = convert::request(req.body.map()?)?;
        let method = if req.stream() { "streamGenerateContent?alt=sse" } else { "generateContent" };
        self.build(call, self.url(call.model, method), &body)
    }

    async fn send(&self, request: reqwest::Request) -> Result<crate::client::Response, ProviderError> {
        http::send(&self.http, request, &self.timeouts).await.map_err(api_key_invalid_is_auth)
    }
}

/// AI Studio answers a wrong key with 400 `API_KEY_INVALID`; the router must see it as an auth failure.
fn api_key_invalid_is_auth(e: ProviderError) -> ProviderError {
    match e {
        ProviderError::BadRequest { message, body: Some(b), .. } if b.contains("API_KEY_INVALID") => {
            ProviderError::Auth { status: 401, message, body: None }
        }
        other => other,
    }
}

/// Sends a Gemini chat request and translates the answer; shared with Vertex.
pub(crate) async fn chat_over(
    resp: crate::client::Response,
    stream: bool,
    model: &str,
    timeouts: &Timeouts,
) -> Result<ChatResponse, ProviderError> {
    if !stream {
        let v = parse_json(&read_body(resp, timeouts).await?)?;
        let (body, usage) = convert::response(&v, model)?;
        return Ok(ChatResponse::Complete { body: body.into(), usage });
    }
    let events = Box::pin(http::sse_events(resp, timeouts));
    Ok(ChatResponse::Stream(translate(events, convert::StreamTranslator::new(model))))
}

/// The OpenAI embeddings `input` as a list of strings.
fn embedding_inputs(req: &ChatRequest) -> Result<(Vec<String>, bool), ProviderError> {
    match req.get("input") {
        Some(Value::String(s)) => Ok((vec![s.clone()], true)),
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| ProviderError::Unsupported("Gemini embeddings take text inputs only".into())))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| (v, false)),
        _ => Err(bad_request("`input` must be a string or a non-empty array of strings")),
    }
}

#[async_trait]
impl Provider for GoogleAiStudio {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let resp = self.send(self.chat_request(call, req)?).await?;
        chat_over(resp, req.stream(), call.model, &self.timeouts).await
    }

    async fn embeddings(&self, call: &Call<'_>, req: &ChatRequest) -> Result<EmbeddingsResponse, ProviderError> {
        let (inputs, single) = embedding_inputs(req)?;
        let dims = req.get("dimensions").and_then(|v| v.as_u64());
        let model = call.model.strip_prefix("models/").unwrap_or(call.model);
        let one = |text: &str| {
            let mut r = json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}});
            if let Some(d) = dims {
                r["outputDimensionality"] = json!(d);
            }
            r
        };
        let request = if single {
            self.build(call, self.url(model, "embedContent"), &one(&inputs[0]))?
        } else {
            let reqs: Vec<Value> = inputs.iter().map(|t| one(t)).collect();
            self.build(call, self.url(model, "batchEmbedContents"), &json!({"requests": reqs}))?
        };
        let v = parse_json(&read_body(self.send(request).await?, &self.timeouts).await?)?;
        let vectors: Vec<&Value> = if single {
            v.pointer("/embedding/values").into_iter().collect()
        } else {
            v.get("embeddings").and_then(Value::as_array).into_iter().flatten().filter_map(|e| e.get("values")).collect()
        };
        if vectors.len() != inputs.len() {
            return Err(ProviderError::Protocol(format!("expected {} embeddings, got {}", inputs.len(), vectors.len())));
        }
        let data: Vec<Value> = vectors
            .into_iter()
            .enumerate()
            .map(|(i, values)| json!({"object": "embedding", "index": i, "embedding": values}))
            .collect();
        // The Gemini API reports no token counts for embeddings.
        let body = json!({"object": "list", "data": data, "model": call.model, "usage": {"prompt_tokens": 0, "total_tokens": 0}});
        Ok(EmbeddingsResponse { body: body.into(), usage: None })
    }

    async fn preview_chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<RequestPreview, ProviderError> {
        Ok(RequestPreview::from_request(&self.chat_request(call, req)?))
    }

    fn test_model(&self) -> &str {
        "gemini-2.5-flash-lite"
    }
}
