//! `POST /v1/chat/completions` and `POST /v1/embeddings` (also under `/api/v1`).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::proxy::{proxy, Operation};
use crate::state::SharedState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use keyway_providers::{RawObject, RequestBody};

pub async fn chat_completions(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RawObject>,
) -> Result<Response, ApiError> {
    Ok(proxy(state, caller, &headers, RequestBody::from(body), Operation::Chat).await?.into_openai())
}

pub async fn embeddings(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RawObject>,
) -> Result<Response, ApiError> {
    let body = RequestBody::from(body);
    if !body.is_set("input") {
        return Err(ApiError::BadRequest("`input` is required".into()));
    }
    Ok(proxy(state, caller, &headers, body, Operation::Embeddings).await?.into_openai())
}
