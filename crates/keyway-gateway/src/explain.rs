//! The route plan as JSON: what `POST /api/v1/route` answers and what each generation keeps
//! (`route_plan` in `GET /api/v1/generation`). One shape for both, written straight from the
//! planner's borrowed answer with `serde` (no intermediate `Value`), so recording it on every
//! request costs one buffer.

use keyway_core::route::{Attempt, CredentialSource, Exclusion, ExclusionReason, Precedence, RouteError, RoutePlan, Section};
use serde::Serialize;

/// A credential's display name (a stored key's `name`), by its place in the plan's input.
pub trait Names {
    fn name(&self, c: &CredentialSource<'_>) -> Option<&str>;
}

/// No names (request-scoped keys, tests).
pub struct NoNames;

impl Names for NoNames {
    fn name(&self, _: &CredentialSource<'_>) -> Option<&str> {
        None
    }
}

impl Names for crate::cache::WorkspaceCredentials {
    fn name(&self, c: &CredentialSource<'_>) -> Option<&str> {
        match c {
            CredentialSource::Byok { index, .. } => self.entries.get(*index).map(|(r, _)| r.name.as_str()),
            _ => None,
        }
    }
}

#[derive(Serialize, Hash)]
pub struct PlanView<'p> {
    pub model: &'p str,
    pub precedence: &'static str,
    pub candidates: Vec<CandidateView<'p>>,
    pub excluded: Vec<ExcludedView<'p>>,
    /// Fallback models (`models`) that got no candidate at all, and why.
    pub skipped_models: Vec<ErrorView>,
    /// Why no attempt can be made at all (the answer a request would get); `null` when there is a plan.
    pub error: Option<ErrorView>,
    /// Routing options Keyway does not know (as `x-keyway-ignored`).
    pub ignored: &'p [String],
}

#[derive(Serialize, Hash)]
pub struct CandidateView<'p> {
    pub position: usize,
    pub model: &'p str,
    pub provider: &'static str,
    /// The stored key's id, `system`, or `request`.
    pub credential_id: &'p str,
    pub credential_name: Option<&'p str>,
    /// For a system credential: its place in `[[system_credentials]]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_index: Option<usize>,
    /// `pinned`, `prioritized`, `system` or `fallback`.
    pub section: &'static str,
    /// The model id sent upstream (a mapping or Azure deployment when the key has one).
    pub endpoint_model: &'p str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'p str>,
    /// Cooling down or unhealthy when planned: kept, but last in its section.
    pub degraded: bool,
    pub pricing: Option<PriceView>,
}

#[derive(Serialize, Hash)]
pub struct PriceView {
    pub prompt_per_mtok_micros: u64,
    pub completion_per_mtok_micros: u64,
    pub request_micros: u64,
}

#[derive(Serialize, Hash)]
pub struct ExcludedView<'p> {
    pub model: &'p str,
    pub provider: &'static str,
    /// `null` when the rule left out the whole provider.
    pub credential_id: Option<&'p str>,
    pub credential_name: Option<&'p str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_index: Option<usize>,
    /// Stable: `disabled`, `quota_exhausted`, `not_assigned_to_key`, ... (docs/routing.md).
    pub code: &'static str,
    pub reason: String,
    /// When a parked key is tried again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

#[derive(Serialize, Hash)]
pub struct ErrorView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl ErrorView {
    fn of(model: Option<&str>, e: &RouteError) -> Self {
        Self { model: model.map(str::to_owned), code: e.code(), status: e.http_status(), message: e.to_string() }
    }
}

fn section(a: &Attempt<'_>) -> &'static str {
    match a.section {
        Section::Primary if a.pinned => "pinned",
        Section::Primary => "prioritized",
        Section::System => "system",
        Section::Fallback => "fallback",
    }
}

fn system_index(c: &CredentialSource<'_>) -> Option<usize> {
    match c {
        CredentialSource::System { index } => Some(*index),
        _ => None,
    }
}

fn rfc3339(t: std::time::SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The view of one planning: `model` is the body's, `plan` what the planner answered.
pub fn view<'p>(
    model: &'p str,
    precedence: Precedence,
    plan: &'p Result<RoutePlan<'p>, RouteError>,
    excluded: &'p [Exclusion<'p>],
    ignored: &'p [String],
    names: &'p dyn Names,
) -> PlanView<'p> {
    let candidates = match plan {
        Ok(p) => p
            .attempts
            .iter()
            .enumerate()
            .map(|(i, a)| CandidateView {
                position: i + 1,
                model: a.model,
                provider: a.provider.as_str(),
                credential_id: a.credential.header_value(),
                credential_name: names.name(&a.credential),
                system_index: system_index(&a.credential),
                section: section(a),
                endpoint_model: a.upstream_model,
                region: a.region,
                degraded: a.degraded,
                pricing: a.endpoint.map(|e| PriceView {
                    prompt_per_mtok_micros: e.input_per_mtok_micros,
                    completion_per_mtok_micros: e.output_per_mtok_micros,
                    request_micros: e.per_request_micros,
                }),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let excluded = excluded
        .iter()
        .map(|x| ExcludedView {
            model: x.model,
            provider: x.provider.as_str(),
            credential_id: x.credential.as_ref().map(CredentialSource::header_value),
            credential_name: x.credential.as_ref().and_then(|c| names.name(c)),
            system_index: x.credential.as_ref().and_then(system_index),
            code: x.reason.code(),
            reason: x.reason.message(),
            until: match x.reason {
                ExclusionReason::QuotaExhausted { until } => Some(rfc3339(until)),
                _ => None,
            },
        })
        .collect();
    let (skipped_models, error) = match plan {
        Ok(p) => (p.skipped.iter().map(|s| ErrorView::of(Some(s.model), &s.error)).collect(), None),
        Err(e) => (Vec::new(), Some(ErrorView::of(None, e))),
    };
    PlanView { model, precedence: precedence.as_str(), candidates, excluded, skipped_models, error, ignored }
}

/// The route plans' JSON texts recently written, by the view's fingerprint: a key's requests
/// get the same plan over and over, and writing it was ~15k instructions per request (most of
/// what #26 added to the request path; bench/README.md). Hashing the view is a tenth of that.
/// Two independent 64-bit hashes make a false match (another plan's text on a row) a 2^-128 event.
#[derive(Default)]
pub struct PlanTexts {
    texts: std::sync::Mutex<foldhash::HashMap<(u64, u64), std::sync::Arc<keyway_store::RoutePlan>>>,
}

/// Distinct plans kept; past it the memo starts over (a plan's text is a few hundred bytes).
const PLAN_TEXTS: usize = 1024;

impl PlanTexts {
    /// The view as JSON text with its stored id, made once per distinct plan.
    pub fn text(&self, v: &PlanView<'_>) -> Option<std::sync::Arc<keyway_store::RoutePlan>> {
        use std::hash::BuildHasher as _;
        let key = (foldhash::fast::FixedState::with_seed(0x6b65_7977_6179_0001).hash_one(v), foldhash::fast::FixedState::with_seed(0x6b65_7977_6179_0002).hash_one(v));
        if let Some(t) = self.texts().get(&key) {
            return Some(t.clone());
        }
        let text = std::sync::Arc::new(keyway_store::RoutePlan::new(to_json_text(v)?));
        let mut texts = self.texts();
        if texts.len() >= PLAN_TEXTS {
            texts.clear();
        }
        texts.insert(key, text.clone());
        Some(text)
    }

    fn texts(&self) -> std::sync::MutexGuard<'_, foldhash::HashMap<(u64, u64), std::sync::Arc<keyway_store::RoutePlan>>> {
        self.texts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The view as JSON text, for the generation row.
pub fn to_json_text(v: &PlanView<'_>) -> Option<String> {
    let mut out = Vec::with_capacity(256 + 320 * v.candidates.len() + 256 * v.excluded.len());
    serde_json::to_writer(&mut out, v).ok()?;
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn plan<'p>(credential_id: &'p str, degraded: bool, ignored: &'p [String]) -> PlanView<'p> {
        PlanView {
            model: "openai/gpt-4o-mini",
            precedence: "byok_first",
            candidates: vec![CandidateView {
                position: 1,
                model: "openai/gpt-4o-mini",
                provider: "openai",
                credential_id,
                credential_name: Some("team key"),
                system_index: None,
                section: "prioritized",
                endpoint_model: "gpt-4o-mini",
                region: None,
                degraded,
                pricing: Some(PriceView { prompt_per_mtok_micros: 150_000, completion_per_mtok_micros: 600_000, request_micros: 0 }),
            }],
            excluded: vec![ExcludedView {
                model: "openai/gpt-4o-mini",
                provider: "azure",
                credential_id: None,
                credential_name: None,
                system_index: None,
                code: "no_credential",
                reason: "no key".into(),
                until: None,
            }],
            skipped_models: Vec::new(),
            error: None,
            ignored,
        }
    }

    #[test]
    fn a_plan_text_is_written_once_and_is_the_plan_s_own() {
        let texts = PlanTexts::default();
        let ignored = vec!["foo".to_owned()];
        let a = texts.text(&plan("k1", false, &ignored)).unwrap();
        let again = texts.text(&plan("k1", false, &ignored)).unwrap();
        assert!(std::sync::Arc::ptr_eq(&a, &again), "the same plan reuses its text");
        assert_eq!(a.text, to_json_text(&plan("k1", false, &ignored)).unwrap());
        // Any field that differs is another plan, with its own text.
        for other in [plan("k2", false, &ignored), plan("k1", true, &ignored), plan("k1", false, &[])] {
            let t = texts.text(&other).unwrap();
            assert_ne!(t.text, a.text);
            assert_ne!(t.id, a.id, "another plan, another id");
            assert_eq!(t.text, to_json_text(&other).unwrap());
        }
    }

    #[test]
    fn the_plan_texts_start_over_when_full() {
        let texts = PlanTexts::default();
        let ids: Vec<String> = (0..PLAN_TEXTS + 5).map(|i| format!("key-{i}")).collect();
        for id in &ids {
            let t = texts.text(&plan(id, false, &[])).unwrap();
            assert!(t.text.contains(id.as_str()));
        }
        assert!(texts.texts().len() <= PLAN_TEXTS);
    }
}
