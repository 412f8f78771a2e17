//! `GET /api/v1/activity?from=&to=&group_by=model|provider|key|credential|day|app[&format=csv]`:
//! aggregates over generations (`app`: by the attribution headers `HTTP-Referer` and `X-Title`). Without `group_by` the rows are OpenRouter's activity items
//! (one per day, model and provider). `from`/`to` are dates (`2025-06-01`) or RFC 3339 instants;
//! `to` is exclusive and defaults to now, `from` to 30 days before `to`. Management keys only.

use crate::auth::Manager;
use crate::billing::usd;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::extract::Query;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyway_core::pricing::day_start_ms;
use keyway_store::{ActivityGroup, ActivityRow};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize, Default)]
pub struct ActivityQuery {
    from: Option<String>,
    to: Option<String>,
    /// OpenRouter's single-day filter.
    date: Option<String>,
    group_by: Option<String>,
    format: Option<String>,
    workspace_id: Option<String>,
}

const DAY_MS: i64 = 86_400_000;

fn parse_instant(s: &str, name: &str) -> Result<i64, ApiError> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or(0));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::BadRequest(format!("`{name}` must be a date (YYYY-MM-DD) or an RFC 3339 time")))
}

fn date(day: i64) -> String {
    chrono::DateTime::from_timestamp_millis(day_start_ms(day)).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

fn row_json(r: &ActivityRow, group: ActivityGroup) -> Value {
    let mut v = json!({
        "requests": r.requests,
        "succeeded": r.succeeded,
        "byok_requests": r.byok_requests,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "reasoning_tokens": 0,
        "cached_tokens": r.cached_tokens,
        "usage": usd(r.charged_micros),
        "byok_usage_inference": usd(r.byok_cost_micros),
        "cost_micros": r.cost_micros,
        "fee_micros": r.fee_micros,
        "charged_micros": r.charged_micros,
    });
    let fields: &[(&str, Value)] = &match group {
        ActivityGroup::Model => [("model", json!(r.model))].to_vec(),
        ActivityGroup::Provider => [("provider", json!(r.provider))].to_vec(),
        ActivityGroup::Key => [("api_key_hash", json!(r.api_key_hash))].to_vec(),
        ActivityGroup::Credential => [("credential_id", json!(r.credential_id))].to_vec(),
        ActivityGroup::Day => [("date", json!(date(r.day)))].to_vec(),
        // OpenRouter's names on the generation object; `null` when the requests sent none.
        // `app`: one label for tables (`keyway usage --group-by app`): the title, else the referer.
        ActivityGroup::App => [
            ("http_referer", opt(&r.app_referer)),
            ("app_title", opt(&r.app_title)),
            ("app", opt(if r.app_title.is_empty() { &r.app_referer } else { &r.app_title })),
        ]
        .to_vec(),
        ActivityGroup::DayModelProvider => [
            ("date", json!(date(r.day))),
            ("model", json!(r.model)),
            ("model_permaslug", json!(r.model)),
            ("endpoint_id", json!(format!("{}:{}", r.provider, r.model))),
            ("provider_name", json!(keyway_core::ProviderSlug::parse_alias(&r.provider).map(|p| p.display_name()).unwrap_or(""))),
            ("provider", json!(r.provider)),
        ]
        .to_vec(),
    };
    if let Some(o) = v.as_object_mut() {
        for (k, val) in fields {
            o.insert((*k).to_owned(), val.clone());
        }
    }
    v
}

fn opt(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { json!(s) }
}

/// One CSV cell. A text cell a spreadsheet would read as a formula (starting with `=`, `+`,
/// `-`, `@`, tab or CR: OWASP's list) gets a leading `'`, so that an app title sent by an
/// inference key can't run in the admin's spreadsheet; then quoted where CSV needs it.
fn csv_field(s: &str) -> String {
    let neutral;
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        neutral = format!("'{s}");
        neutral.as_str()
    } else {
        s
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn to_csv(rows: &[ActivityRow]) -> String {
    // The app columns come last: columns only ever get appended, so older readers keep working.
    let mut out = String::from("date,model,provider,api_key_hash,credential_id,requests,succeeded,byok_requests,prompt_tokens,completion_tokens,cached_tokens,cost_micros,fee_micros,charged_micros,http_referer,app_title\n");
    for r in rows {
        let day = if r.day == 0 { String::new() } else { date(r.day) };
        let cols = [day, csv_field(&r.model), csv_field(&r.provider), csv_field(&r.api_key_hash), csv_field(&r.credential_id)];
        out.push_str(&cols.join(","));
        for n in [r.requests, r.succeeded, r.byok_requests, r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.cost_micros, r.fee_micros, r.charged_micros] {
            out.push(',');
            out.push_str(&n.to_string());
        }
        for s in [&r.app_referer, &r.app_title] {
            out.push(',');
            out.push_str(&csv_field(s));
        }
        out.push('\n');
    }
    out
}

#[utoipa::path(get, operation_id = "activity_get", path = "/api/v1/activity", tag = "usage",
    params(
        ("from" = Option<String>, Query, description = "Date (YYYY-MM-DD) or RFC 3339; default 30 days before `to`"),
        ("to" = Option<String>, Query, description = "Exclusive; default now"),
        ("date" = Option<String>, Query, description = "One day (YYYY-MM-DD)"),
        ("group_by" = Option<String>, Query, pattern = "^(model|provider|key|credential|day|app)?$", description = "model, provider, key, credential, day or app"),
        ("format" = Option<String>, Query, description = "`csv` for a CSV download"),
        ("workspace_id" = Option<String>, Query, description = "A workspace (admin keys: any)"),
    ),
    responses((status = 200, description = "Aggregates over generations",
        content((crate::api_schema::ActivityList = "application/json"), (String = "text/csv"))), crate::api_schema::Errors))]
pub async fn get(State(state): State<SharedState>, m: Manager, Query(q): Query<ActivityQuery>) -> Result<Response, ApiError> {
    let group = match q.group_by.as_deref() {
        None | Some("") => ActivityGroup::DayModelProvider,
        Some(g) => ActivityGroup::parse(g).ok_or_else(|| ApiError::BadRequest("`group_by` must be one of model, provider, key, credential, day, app".into()))?,
    };
    let (from, to) = match q.date.as_deref() {
        Some(d) => {
            let from = parse_instant(d, "date")?;
            (from, from + DAY_MS)
        }
        None => {
            let to = match q.to.as_deref() {
                Some(t) => parse_instant(t, "to")?,
                None => chrono::Utc::now().timestamp_millis() + 1,
            };
            let from = match q.from.as_deref() {
                Some(f) => parse_instant(f, "from")?,
                None => to - 30 * DAY_MS,
            };
            (from, to)
        }
    };
    if from >= to {
        return Err(ApiError::BadRequest("`from` must be before `to`".into()));
    }
    let ws = match q.workspace_id.as_deref() {
        Some(asked) => Some(m.target_workspace(Some(asked))?),
        None => m.scope(),
    };
    let rows = state.store.activity(ws, from, to, group).await?;
    if q.format.as_deref() == Some("csv") {
        let mut resp = to_csv(&rows).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"keyway-activity.csv\""));
        return Ok(resp);
    }
    let data: Vec<Value> = rows.iter().map(|r| row_json(r, group)).collect();
    Ok(Json(json!({"data": data})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a-b"), "a-b");
    }

    #[test]
    fn csv_cells_that_would_be_formulas_are_neutralised() {
        assert_eq!(csv_field("=HYPERLINK(\"http://x\",\"y\")"), "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
        for (cell, want) in [("+1", "'+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "\"'\rx\"")] {
            assert_eq!(csv_field(cell), want, "{cell:?}");
        }
        let rows = [ActivityRow { day: 20_000, model: "m".into(), app_title: "=1+1".into(), app_referer: "@evil".into(), ..Default::default() }];
        let csv = to_csv(&rows);
        assert!(csv.lines().nth(1).is_some_and(|l| l.ends_with(",'@evil,'=1+1")), "{csv}");
        let rows = [ActivityRow { day: 20_000, model: "m".into(), requests: 2, charged_micros: 5, ..Default::default() }];
        let csv = to_csv(&rows);
        assert!(csv.lines().nth(1).is_some_and(|l| l.starts_with("2024-10-04,m,,,,2,")), "{csv}");
    }

    #[test]
    fn instants() {
        assert_eq!(parse_instant("1970-01-02", "from").ok(), Some(DAY_MS));
        assert_eq!(parse_instant("1970-01-01T00:00:01Z", "from").ok(), Some(1000));
        assert!(parse_instant("yesterday", "from").is_err());
    }
}
