//! Aggregates over generations for `GET /api/v1/activity` (and its CSV export).

use crate::credits::{sum, CHARGED};
use crate::{Result, Store};
use serde::Serialize;
use sqlx::Row;

/// What activity rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityGroup {
    Model,
    Provider,
    Key,
    Credential,
    /// UTC day (`YYYY-MM-DD`).
    Day,
    /// The calling app, as its attribution headers named it: (`HTTP-Referer`, `X-Title`).
    App,
    /// OpenRouter's own shape: one row per (day, model, provider).
    DayModelProvider,
}

impl ActivityGroup {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "model" => Self::Model,
            "provider" => Self::Provider,
            "key" => Self::Key,
            "credential" => Self::Credential,
            "day" => Self::Day,
            "app" => Self::App,
            _ => return None,
        })
    }

    /// SQL for (day, model, provider, key, credential, referer, title) columns, each its group
    /// value or a constant.
    fn columns(self) -> [&'static str; 7] {
        const ZERO: &str = "CAST(0 AS BIGINT)";
        const DAY: &str = "created_at / 86400000";
        const MODEL: &str = "COALESCE(model, requested_model)";
        const PROVIDER: &str = "COALESCE(provider, '')";
        const CREDENTIAL: &str = "COALESCE(credential_id, '')";
        const E: &str = "''";
        match self {
            Self::Model => [ZERO, MODEL, E, E, E, E, E],
            Self::Provider => [ZERO, E, PROVIDER, E, E, E, E],
            Self::Key => [ZERO, E, E, "api_key_hash", E, E, E],
            Self::Credential => [ZERO, E, E, E, CREDENTIAL, E, E],
            Self::Day => [DAY, E, E, E, E, E, E],
            Self::DayModelProvider => [DAY, MODEL, PROVIDER, E, E, E, E],
            // Requests without attribution headers form one row with both empty.
            Self::App => [ZERO, E, E, E, E, "COALESCE(app_referer, '')", "COALESCE(app_title, '')"],
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActivityRow {
    /// UTC day number (days since the Unix epoch); 0 when not grouped by day.
    pub day: i64,
    pub model: String,
    pub provider: String,
    pub api_key_hash: String,
    pub credential_id: String,
    /// `HTTP-Referer` of the requests (grouped by app); empty otherwise or when none was sent.
    pub app_referer: String,
    /// `X-Title` / `X-OpenRouter-Title` of the requests (grouped by app).
    pub app_title: String,
    pub requests: i64,
    /// Requests that an upstream answered (status 200).
    pub succeeded: i64,
    pub byok_requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cost_micros: i64,
    pub fee_micros: i64,
    pub charged_micros: i64,
    /// Catalog cost of BYOK generations (paid to the provider by the key's owner).
    pub byok_cost_micros: i64,
}

impl Store {
    /// Generations with `from_ms <= created_at < to_ms`, in `workspace_id` when given, grouped.
    pub async fn activity(&self, workspace_id: Option<&str>, from_ms: i64, to_ms: i64, group: ActivityGroup) -> Result<Vec<ActivityRow>> {
        let [day, model, provider, key, cred, referer, title] = group.columns();
        let ws_filter = if workspace_id.is_some() { "AND workspace_id = $3" } else { "" };
        let sql = format!(
            "SELECT {day} AS g_day, {model} AS g_model, {provider} AS g_provider, {key} AS g_key, {cred} AS g_cred, \
             {referer} AS g_referer, {title} AS g_title, \
             COUNT(*) AS requests, {succeeded} AS succeeded, {byok} AS byok_requests, {p} AS prompt_tokens, {c} AS completion_tokens, \
             {cached} AS cached_tokens, {cost} AS cost_micros, {fee} AS fee_micros, {charged} AS charged_micros, {byok_cost} AS byok_cost_micros \
             FROM generations WHERE created_at >= $1 AND created_at < $2 {ws_filter} \
             GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7",
            succeeded = sum("CASE WHEN status = 200 THEN 1 ELSE 0 END"),
            byok = sum("CASE WHEN is_byok = 1 THEN 1 ELSE 0 END"),
            p = sum("prompt_tokens"),
            c = sum("completion_tokens"),
            cached = sum("cached_tokens"),
            cost = sum("cost_micros"),
            fee = sum("fee_micros"),
            charged = sum(CHARGED),
            byok_cost = sum("CASE WHEN is_byok = 1 THEN cost_micros ELSE 0 END"),
        );
        let mut q = sqlx::query(&sql).bind(from_ms).bind(to_ms);
        if let Some(ws) = workspace_id {
            q = q.bind(ws);
        }
        self.count();
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ActivityRow {
                    day: r.try_get("g_day")?,
                    model: r.try_get("g_model")?,
                    provider: r.try_get("g_provider")?,
                    api_key_hash: r.try_get("g_key")?,
                    credential_id: r.try_get("g_cred")?,
                    app_referer: r.try_get("g_referer")?,
                    app_title: r.try_get("g_title")?,
                    requests: r.try_get("requests")?,
                    succeeded: r.try_get("succeeded")?,
                    byok_requests: r.try_get("byok_requests")?,
                    prompt_tokens: r.try_get("prompt_tokens")?,
                    completion_tokens: r.try_get("completion_tokens")?,
                    cached_tokens: r.try_get("cached_tokens")?,
                    cost_micros: r.try_get("cost_micros")?,
                    fee_micros: r.try_get("fee_micros")?,
                    charged_micros: r.try_get("charged_micros")?,
                    byok_cost_micros: r.try_get("byok_cost_micros")?,
                })
            })
            .collect()
    }
}
