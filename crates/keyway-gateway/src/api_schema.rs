//! The shapes the management API answers with, as schema-only types that mirror its `json!`
//! builders field by field (read by utoipa, never built). A leaf: the handlers name these in
//! their `#[utoipa::path]` annotations, and `openapi.rs` gathers the handlers.

#![allow(dead_code)] // Schema-only types: read by utoipa, never built.

use serde_json::Value;
use utoipa::ToSchema;

// ---- errors ----

/// OpenRouter's error shape: `code` is the HTTP status as an integer.
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    pub code: u16,
    pub message: String,
    /// Keyway's error class (`invalid_request`, `not_found`, ...).
    pub r#type: Option<String>,
    pub metadata: Option<Object>,
}

/// Any JSON object.
#[derive(ToSchema, serde::Serialize)]
pub struct Object {}

/// The error answers every management operation may give, in OpenRouter's error shape.
#[derive(utoipa::IntoResponses)]
pub enum Errors {
    #[response(status = 400, description = "Bad input")]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "No key, or a key Keyway does not know")]
    Unauthorized(ErrorBody),
    #[response(status = 403, description = "The key's role may not do this")]
    Forbidden(ErrorBody),
    #[response(status = 404, description = "Not found (or not in the key's workspace)")]
    NotFound(ErrorBody),
    #[response(status = 409, description = "Conflicts with the current state")]
    Conflict(ErrorBody),
    #[response(status = 413, description = "Body too large")]
    PayloadTooLarge(ErrorBody),
    #[response(status = 422, description = "Invalid credential shape")]
    InvalidCredential(ErrorBody),
    #[response(status = 429, description = "Too many failed authentications from this address")]
    TooManyRequests(ErrorBody),
}

// ---- BYOK ----

#[derive(ToSchema)]
pub struct CredentialHealth {
    /// `ok`, `cooling_down` or `unhealthy`.
    pub status: String,
    pub last_used_at: Option<String>,
    pub last_success_at: Option<String>,
    pub last_error: Option<HealthError>,
    pub cooldown_until: Option<String>,
    pub consecutive_auth_failures: u32,
}

#[derive(ToSchema)]
pub struct HealthError {
    pub at: String,
    pub kind: String,
}

#[derive(ToSchema)]
pub struct ModelMapping {
    pub from: String,
    pub to: String,
}

/// A provider credential; the secret never comes back, `label` shows it masked.
#[derive(ToSchema)]
pub struct Byok {
    pub id: String,
    /// `null`: shared by every workspace.
    pub workspace_id: Option<String>,
    #[schema(example = "openai")]
    pub provider: String,
    pub name: String,
    pub label: String,
    pub disabled: bool,
    pub is_fallback: bool,
    pub is_required: bool,
    pub always_use: bool,
    pub is_byok_only: bool,
    pub sort_order: i64,
    pub allowed_models: Option<Vec<String>>,
    pub allowed_api_key_hashes: Option<Vec<String>>,
    pub allowed_user_ids: Option<Vec<String>>,
    pub model_mappings: Vec<Object>,
    pub declared_region: Option<String>,
    pub declared_zdr: bool,
    pub created_at: String,
    pub updated_at: String,
    pub health: CredentialHealth,
}

#[derive(ToSchema)]
pub struct ByokItem {
    pub data: Byok,
}

#[derive(ToSchema)]
pub struct ByokList {
    pub data: Vec<Byok>,
    pub total_count: i64,
}

#[derive(ToSchema)]
pub struct ByokCreated {
    pub data: Byok,
    /// Present when the body asked for `"test": true`.
    pub test: Option<TestResult>,
}

/// Create (and the body of an unsaved Test key). `key` is the provider's secret: a string, or
/// an object for Azure, Bedrock and Vertex.
#[derive(ToSchema)]
pub struct ByokCreate {
    #[schema(schema_with = provider_schema)]
    pub provider: String,
    #[schema(schema_with = secret_schema)]
    pub key: Value,
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub workspace_id: Option<String>,
    pub disabled: Option<bool>,
    pub is_fallback: Option<bool>,
    pub is_required: Option<bool>,
    pub always_use: Option<bool>,
    pub is_byok_only: Option<bool>,
    pub sort_order: Option<i64>,
    pub allowed_models: Option<Vec<String>>,
    pub allowed_api_key_hashes: Option<Vec<String>>,
    pub allowed_user_ids: Option<Vec<String>>,
    pub model_mappings: Option<Vec<ModelMapping>>,
    pub declared_region: Option<String>,
    pub declared_zdr: Option<bool>,
    /// Test the key first; store it only if the test passes.
    pub test: Option<bool>,
}

/// Every field optional; an absent or empty `key` keeps the stored secret.
#[derive(ToSchema)]
pub struct ByokPatch {
    #[schema(schema_with = secret_schema)]
    pub key: Option<Value>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub disabled: Option<bool>,
    pub is_fallback: Option<bool>,
    pub is_required: Option<bool>,
    pub always_use: Option<bool>,
    pub is_byok_only: Option<bool>,
    pub sort_order: Option<i64>,
    pub allowed_models: Option<Vec<String>>,
    pub allowed_api_key_hashes: Option<Vec<String>>,
    pub allowed_user_ids: Option<Vec<String>>,
    pub model_mappings: Option<Vec<ModelMapping>>,
    pub declared_region: Option<String>,
    pub declared_zdr: Option<bool>,
}

/// Provider slugs Keyway routes to (display names and aliases are accepted too).
fn provider_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    let slugs = keyway_core::ProviderSlug::ALL.iter().map(|p| p.as_str());
    Schema::Object(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(slugs)).description(Some("A provider slug (display names and aliases are accepted too)")).build())
}

/// A provider secret: an API key string, or an object (Azure, Bedrock, Vertex credentials).
fn secret_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).examples(["sk-test-0123456789abcdef"]))
            .item(ObjectBuilder::new().schema_type(Type::Object))
            .build(),
    )
}

#[derive(ToSchema)]
pub struct TestOptions {
    /// The model to test with (default: a cheap one of the provider).
    pub model: Option<String>,
    pub region: Option<String>,
}

/// What Test key saw: the upstream's status and answer, scrubbed of the secret.
#[derive(ToSchema)]
pub struct TestResult {
    pub ok: bool,
    pub status: u16,
    pub latency_ms: u64,
    pub model: String,
    /// The equivalent curl command, secret masked.
    pub request: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub response: Option<Value>,
    pub error: Option<String>,
    pub error_class: Option<String>,
}

#[derive(ToSchema)]
pub struct Deleted {
    pub deleted: bool,
    pub id: Option<String>,
}

// ---- API keys ----

#[derive(ToSchema, serde::Serialize)]
pub struct KeyLimits {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub budget_daily_micros: Option<u64>,
    pub budget_monthly_micros: Option<u64>,
}

/// OpenRouter's API-key object plus Keyway's `id`, `kind`, `role` and `limits`.
#[derive(ToSchema, serde::Serialize)]
pub struct ApiKey {
    pub id: String,
    pub hash: String,
    pub name: String,
    pub label: String,
    pub workspace_id: String,
    /// `inference` or `management`.
    pub kind: String,
    /// `admin`, `owner`, `viewer` or `inference`.
    pub role: String,
    pub disabled: bool,
    pub limits: KeyLimits,
    pub limit: Option<f64>,
    pub limit_remaining: Option<f64>,
    pub limit_reset: Option<String>,
    pub include_byok_in_limit: bool,
    pub usage: f64,
    pub usage_daily: f64,
    pub usage_weekly: f64,
    pub usage_monthly: f64,
    pub byok_usage: f64,
    pub byok_usage_daily: f64,
    pub byok_usage_weekly: f64,
    pub byok_usage_monthly: f64,
    pub creator_user_id: Option<String>,
    pub external_user: Option<String>,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(ToSchema)]
pub struct ApiKeyItem {
    pub data: ApiKey,
}

#[derive(ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKey>,
    pub total_count: i64,
}

#[derive(ToSchema)]
pub struct ApiKeyCreated {
    pub data: ApiKey,
    /// The raw key, shown this once.
    pub key: String,
}

/// `GET /api/v1/key`: the calling key, with OpenRouter's extra fields.
#[derive(ToSchema)]
pub struct CurrentKey {
    #[schema(inline)]
    pub data: CurrentKeyData,
}

#[derive(ToSchema, serde::Serialize)]
pub struct CurrentKeyData {
    #[serde(flatten)]
    pub key: ApiKey,
    pub is_management_key: bool,
    pub is_provisioning_key: bool,
    pub is_free_tier: bool,
    pub organization_id: Option<String>,
    pub allowed_data_regions: Vec<String>,
    pub budgets: Vec<Object>,
    pub effective_budget: Option<Object>,
    pub free_model_daily_requests: Object,
    pub rate_limit: Object,
}

// ---- keyring ----

#[derive(ToSchema)]
pub struct KeyringKey {
    pub id: String,
    /// `active` or `retired`.
    pub state: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// Records sealed under it right now.
    pub records: i64,
}

#[derive(ToSchema)]
pub struct KeyringList {
    pub data: Vec<KeyringKey>,
    pub total_count: i64,
    pub current_key_id: String,
}

#[derive(ToSchema)]
pub struct RotationFailure {
    pub id: String,
    pub error: String,
}

#[derive(ToSchema)]
pub struct RotationReport {
    pub key_id: String,
    pub resumed: bool,
    pub rewrapped: u64,
    pub already_current: u64,
    pub failed: Vec<RotationFailure>,
}

#[derive(ToSchema)]
pub struct Rotation {
    pub data: RotationReport,
    /// `false` when some records could not be opened (listed in `failed`, left as they were).
    pub complete: bool,
}

// ---- audit ----

#[derive(ToSchema)]
pub struct AuditActor {
    /// The key's hash prefix.
    pub key: String,
    pub name: String,
    pub source: Option<String>,
}

#[derive(ToSchema)]
pub struct AuditTarget {
    pub r#type: String,
    pub id: Option<String>,
}

#[derive(ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    pub workspace_id: Option<String>,
    pub actor: AuditActor,
    pub action: String,
    pub target: AuditTarget,
    /// The fields changed (never a secret value).
    #[schema(value_type = Object)]
    pub changes: Value,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
}

#[derive(ToSchema)]
pub struct AuditList {
    pub data: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

// ---- workspaces ----

#[derive(ToSchema)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct WorkspaceItem {
    pub data: Workspace,
}

#[derive(ToSchema)]
pub struct WorkspaceList {
    pub data: Vec<Workspace>,
    pub total_count: i64,
}

// ---- credits ----

#[derive(ToSchema)]
pub struct CreditEntry {
    pub id: String,
    pub kind: String,
    pub amount_micros: i64,
    pub note: Option<String>,
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct Credits {
    /// USD, as OpenRouter's SDK reads it.
    pub total_credits: f64,
    /// USD.
    pub total_usage: f64,
    pub balance_micros: i64,
    pub used_this_month_micros: i64,
    pub total_credits_micros: i64,
    pub total_usage_micros: i64,
    pub byok_requests_this_month: u64,
    pub byok_free_requests_per_month: u64,
    pub byok_fee_percent: u64,
    pub credits_enabled: bool,
    pub workspace_id: String,
    /// The ledger entry a top-up wrote.
    pub entry: Option<CreditEntry>,
}

#[derive(ToSchema)]
pub struct CreditsItem {
    pub data: Credits,
}

// ---- generations and activity ----

#[derive(ToSchema)]
pub struct ProviderResponse {
    pub model_permaslug: Option<String>,
    pub status: Option<i64>,
    pub latency: Option<i64>,
    pub is_byok: bool,
    pub provider_name: Option<String>,
}

/// OpenRouter's generation object plus Keyway's own fields.
#[derive(ToSchema)]
pub struct Generation {
    pub id: String,
    pub upstream_id: Option<String>,
    pub total_cost: f64,
    pub cache_discount: Option<f64>,
    pub upstream_inference_cost: Option<f64>,
    pub created_at: String,
    pub model: String,
    pub app_id: Option<i64>,
    pub streamed: bool,
    pub cancelled: bool,
    pub provider_name: Option<String>,
    pub latency: i64,
    pub moderation_latency: Option<i64>,
    pub generation_time: Option<i64>,
    pub finish_reason: Option<String>,
    pub native_finish_reason: Option<String>,
    pub tokens_prompt: Option<i64>,
    pub tokens_completion: Option<i64>,
    pub native_tokens_prompt: Option<i64>,
    pub native_tokens_completion: Option<i64>,
    pub native_tokens_completion_images: Option<i64>,
    pub native_tokens_reasoning: Option<i64>,
    pub native_tokens_cached: Option<i64>,
    pub num_media_prompt: Option<i64>,
    pub num_input_audio_prompt: Option<i64>,
    pub num_media_completion: Option<i64>,
    pub num_search_results: Option<i64>,
    pub origin: String,
    pub usage: f64,
    pub is_byok: bool,
    pub external_user: Option<String>,
    pub api_type: String,
    pub router: Option<String>,
    pub provider_responses: Vec<ProviderResponse>,
    pub data_region: String,
    pub num_fetches: Option<i64>,
    pub preset_id: Option<String>,
    pub service_tier: Option<String>,
    pub web_search_engine: Option<String>,
    pub user_agent: Option<String>,
    pub requested_model: String,
    pub provider: Option<String>,
    pub status: i64,
    pub credential_id: Option<String>,
    pub api_key_hash: String,
    pub workspace_id: String,
    pub cost_micros: i64,
    pub fee_micros: i64,
    pub charged_micros: i64,
    pub ttft_ms: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    /// `[{provider, credential_id, status, error?, latency_ms}]`.
    pub attempts: Vec<Object>,
    pub http_referer: Option<String>,
    pub app_title: Option<String>,
}

#[derive(ToSchema)]
pub struct GenerationItem {
    pub data: Generation,
}

/// One aggregate row; the grouping fields present depend on `group_by`.
#[derive(ToSchema)]
pub struct ActivityRow {
    pub requests: i64,
    pub succeeded: i64,
    pub byok_requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub reasoning_tokens: i64,
    pub cached_tokens: i64,
    /// USD.
    pub usage: f64,
    /// USD.
    pub byok_usage_inference: f64,
    pub cost_micros: i64,
    pub fee_micros: i64,
    pub charged_micros: i64,
    pub date: Option<String>,
    pub model: Option<String>,
    pub model_permaslug: Option<String>,
    pub endpoint_id: Option<String>,
    pub provider_name: Option<String>,
    pub provider: Option<String>,
    pub api_key_hash: Option<String>,
    pub credential_id: Option<String>,
    pub http_referer: Option<String>,
    pub app_title: Option<String>,
    pub app: Option<String>,
}

#[derive(ToSchema)]
pub struct ActivityList {
    pub data: Vec<ActivityRow>,
}

// ---- catalog ----

#[derive(ToSchema)]
pub struct ProviderInfo {
    pub slug: String,
    pub name: String,
    pub privacy_policy_url: Option<String>,
    pub terms_of_service_url: Option<String>,
    pub status_page_url: Option<String>,
}

#[derive(ToSchema)]
pub struct ProviderList {
    pub data: Vec<ProviderInfo>,
}

/// OpenRouter's model object (prices per token as decimal strings) plus Keyway's micros.
#[derive(ToSchema)]
pub struct Model {
    pub id: String,
    pub canonical_slug: String,
    pub name: String,
    pub object: String,
    pub created: i64,
    pub owned_by: String,
    pub description: String,
    pub context_length: Option<i64>,
    pub hugging_face_id: Option<String>,
    pub architecture: Object,
    pub pricing: Object,
    pub top_provider: Object,
    pub per_request_limits: Option<Object>,
    pub supported_parameters: Vec<String>,
    pub default_parameters: Option<Object>,
    pub supported_voices: Option<Vec<String>>,
    pub links: Object,
    pub providers: Vec<Object>,
}

#[derive(ToSchema)]
pub struct ModelListLinks {
    pub next: Option<String>,
}

#[derive(ToSchema)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<Model>,
    pub total_count: i64,
    pub links: ModelListLinks,
}
