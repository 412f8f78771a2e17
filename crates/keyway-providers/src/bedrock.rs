//! AWS Bedrock through the Converse API: `POST {base}/model/{modelId}/converse` and
//! `/converse-stream`, where `base` is a template (`https://bedrock-runtime.{region}.amazonaws.com`).
//!
//! Model ids hold `:` (`anthropic.claude-3-haiku-20240307-v1:0`), so the id is percent-encoded in
//! the path, and SigV4 signs that path exactly as sent. Cross-region inference profiles
//! (`us.`, `eu.`, `global.` prefixes) are plain ids here and pass through unchanged.
//! Auth is SigV4 from an IAM key set or `Authorization: Bearer` for a Bedrock API key.

pub mod eventstream;
pub mod sign;

pub use eventstream::{EventStreamDecoder, FrameError};

/// The conversion lives in [`crate::translate::bedrock`]; this path stays for existing callers.
pub use crate::translate::bedrock as convert;

use crate::error::{ProviderError, TimeoutKind};
use crate::stream::translate;
use crate::http::{self, parse_json, read_body};
use crate::timeouts::Timeouts;
use crate::types::{Call, ChatRequest, ChatResponse, RequestPreview};
use crate::provider::Provider;
use async_trait::async_trait;
use aws_smithy_types::event_stream::Message;
use futures::{Stream, StreamExt};
use keyway_core::Credential;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::ExposeSecret;
use sign::Auth;
use std::time::{Duration, SystemTime};

/// RFC 3986 unreserved characters stay; everything else (`:` above all) is encoded.
const MODEL_ID: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub struct Bedrock {
    base_template: String,
    http: crate::client::HttpClient,
    timeouts: Timeouts,
}

impl Bedrock {
    pub fn new(base_template: String, http: crate::client::HttpClient, timeouts: Timeouts) -> Self {
        Self { base_template, http, timeouts }
    }

    /// The endpoint for `region` (already validated as a region name by [`sign::choose`]).
    pub fn url(&self, region: &str, model: &str, stream: bool) -> String {
        let base = self.base_template.replace("{region}", region);
        let op = if stream { "converse-stream" } else { "converse" };
        format!("{}/model/{}/{op}", base.trim_end_matches('/'), utf8_percent_encode(model, MODEL_ID))
    }

    fn build(&self, call: &Call<'_>, req: &ChatRequest, time: SystemTime) -> Result<reqwest::Request, ProviderError> {
        let Credential::Bedrock(cred) = call.credential else {
            return Err(ProviderError::Unsupported("Amazon Bedrock takes an IAM key set or a Bedrock API key".into()));
        };
        let (auth, region) = sign::choose(cred, call.region)?;
        let body = serde_json::to_vec(&convert::request(req.body.map()?)?).map_err(|e| ProviderError::Unsupported(e.to_string()))?;
        let url = self.url(&region, call.model, req.stream());
        let parsed = url::Url::parse(&url).map_err(|_| ProviderError::Unsupported("the Bedrock base URL is not a valid URL".into()))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(ProviderError::Unsupported("the Bedrock base URL has no host".into())),
        };
        let accept = if req.stream() { "application/vnd.amazon.eventstream" } else { "application/json" };
        // Every header listed here is signed, and sent with exactly this value.
        let signed = [("host", host.as_str()), ("content-type", "application/json"), ("accept", accept)];
        let mut builder = self.http.post(parsed);
        for (k, v) in signed {
            builder = builder.header(k, v);
        }
        match auth {
            Auth::Bearer(key) => builder = builder.bearer_auth(key.expose_secret()),
            Auth::Iam(set) => {
                for (k, v) in sign::sigv4_headers(set, &region, "POST", &url, &signed, &body, time)? {
                    builder = builder.header(k, v);
                }
            }
        }
        builder
            .body(body)
            .build()
            .map_err(|e| ProviderError::Unsupported(format!("could not build the request: {}", e.without_url())))
    }

    async fn send(&self, request: reqwest::Request) -> Result<crate::client::Response, ProviderError> {
        let resp = match tokio::time::timeout(self.timeouts.first_byte, self.http.execute(request)).await {
            Err(_) => return Err(ProviderError::Timeout(TimeoutKind::FirstByte)),
            Ok(r) => r?,
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        // `x-amzn-ErrorType: ThrottlingException:http://internal.amazon.com/...` names the class
        // even where the status alone would not (a throttle sent as 400).
        let kind = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or("").to_owned())
            .unwrap_or_default();
        Err(reclassify(http::error_from_response(resp, &self.timeouts).await, &kind))
    }
}

fn reclassify(e: ProviderError, kind: &str) -> ProviderError {
    let message = |e: &ProviderError| match e {
        ProviderError::RateLimited { message, .. }
        | ProviderError::Auth { message, .. }
        | ProviderError::BadRequest { message, .. }
        | ProviderError::Upstream5xx { message, .. } => message.clone(),
        other => other.to_string(),
    };
    match kind {
        "ThrottlingException" | "TooManyRequestsException" if !matches!(e, ProviderError::RateLimited { .. }) => {
            ProviderError::RateLimited { status: 429, retry_after: None, message: message(&e), body: None }
        }
        "UnrecognizedClientException" | "InvalidSignatureException" | "AccessDeniedException" | "ExpiredTokenException"
            if !matches!(e, ProviderError::Auth { .. }) =>
        {
            ProviderError::Auth { status: 403, message: message(&e), body: None }
        }
        _ => e,
    }
}

/// The response body as event-stream messages, with the idle timeout between chunks.
fn messages(resp: crate::client::Response, idle: Duration) -> impl Stream<Item = Result<Message, ProviderError>> + Send + Unpin {
    let bytes = resp.bytes_stream().boxed();
    Box::pin(futures::stream::unfold(Some((bytes, EventStreamDecoder::new())), move |state| async move {
        let (mut bytes, mut dec) = state?;
        loop {
            match dec.next_message() {
                Ok(Some(m)) => return Some((Ok(m), Some((bytes, dec)))),
                Ok(None) => {}
                Err(e) => return Some((Err(e.into()), None)),
            }
            match tokio::time::timeout(idle, bytes.next()).await {
                Err(_) => return Some((Err(ProviderError::Timeout(TimeoutKind::Idle)), None)),
                Ok(Some(Ok(chunk))) => dec.push(&chunk),
                Ok(Some(Err(e))) => {
                    let msg = crate::client::body_error(&e);
                    return Some((Err(ProviderError::Protocol(format!("stream cut short: {msg}"))), None));
                }
                Ok(None) => return dec.finish().err().map(|e| (Err(e.into()), None)),
            }
        }
    }))
}

#[async_trait]
impl Provider for Bedrock {
    async fn chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let resp = self.send(self.build(call, req, SystemTime::now())?).await?;
        if !req.stream() {
            let v = parse_json(&read_body(resp, &self.timeouts).await?)?;
            let (body, usage) = convert::response(&v, call.model)?;
            return Ok(ChatResponse::Complete { body: body.into(), usage });
        }
        let stream = messages(resp, self.timeouts.idle);
        Ok(ChatResponse::Stream(translate(stream, eventstream::StreamTranslator::new(call.model))))
    }

    async fn preview_chat(&self, call: &Call<'_>, req: &ChatRequest) -> Result<RequestPreview, ProviderError> {
        Ok(RequestPreview::from_request(&self.build(call, req, SystemTime::now())?))
    }

    fn test_model(&self) -> &str {
        "amazon.nova-micro-v1:0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_the_model_id() {
        let b = Bedrock::new("https://bedrock-runtime.{region}.amazonaws.com".into(), crate::client::HttpClient::new(&Timeouts::default(), crate::client::Transport::Direct, &[]).unwrap(), Timeouts::default());
        assert_eq!(
            b.url("eu-west-1", "us.anthropic.claude-3-5-haiku-20241022-v1:0", true),
            "https://bedrock-runtime.eu-west-1.amazonaws.com/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
        );
        assert!(b.url("us-east-1", "a/b", false).ends_with("/model/a%2Fb/converse"));
    }

    #[test]
    fn error_type_header_reclassifies() {
        let e = ProviderError::BadRequest { status: 400, message: "slow down".into(), body: None };
        assert!(matches!(reclassify(e, "ThrottlingException"), ProviderError::RateLimited { .. }));
        let e = ProviderError::BadRequest { status: 400, message: "m".into(), body: None };
        assert!(matches!(reclassify(e, "ValidationException"), ProviderError::BadRequest { .. }));
    }
}
