//! A small builder for planner inputs: `fx().key("k1", OpenAi).system(Azure).plan("openai/gpt-4o")`.

use crate::catalog::Catalog;
use crate::credential::ModelMapping;
use crate::route::{
    explain, plan, CredentialMeta, EndpointStats, Explanation, HealthKey, HealthTable, Outcome, PlanInput,
    Precedence, RequestScopedCredential, RouteError, RoutePlan, RoutingOptions, StatsTable, SystemCredential,
};
use crate::{Credential, ProviderSlug};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::provider::ProviderSlug::{
    AmazonBedrock, Anthropic, Azure, DeepInfra, Fireworks, GoogleVertex, Groq, OpenAi, Together,
};

/// A catalog of its own, so that changes to the shipped one don't move these tests.
const CATALOG: &str = r#"{"models": [
  {"id": "openai/gpt-4o", "name": "GPT-4o", "context_length": 128000, "created": 0,
   "supported_parameters": ["tools", "response_format", "temperature"],
   "endpoints": [
     {"provider": "openai", "model_id": "gpt-4o", "input": 2500000, "output": 10000000},
     {"provider": "azure", "model_id": "gpt-4o", "input": 2500000, "output": 10000000}]},
  {"id": "openai/gpt-4o-mini", "name": "GPT-4o mini", "context_length": 128000, "created": 0,
   "supported_parameters": ["tools", "response_format", "temperature"],
   "endpoints": [
     {"provider": "openai", "model_id": "gpt-4o-mini", "input": 150000, "output": 600000},
     {"provider": "azure", "model_id": "gpt-4o-mini", "input": 150000, "output": 600000}]},
  {"id": "anthropic/claude-sonnet-4.5", "name": "Claude Sonnet 4.5", "context_length": 200000, "created": 0,
   "supported_parameters": ["tools", "temperature"],
   "endpoints": [
     {"provider": "anthropic", "model_id": "claude-sonnet-4-5", "input": 3000000, "output": 15000000},
     {"provider": "amazon-bedrock", "model_id": "anthropic.claude-sonnet-4-5-v1:0", "input": 3000000, "output": 15000000, "default_region": "us-east-1"},
     {"provider": "google-vertex", "model_id": "claude-sonnet-4-5@20250929", "input": 3000000, "output": 15000000}]},
  {"id": "meta-llama/llama-3.3-70b-instruct", "name": "Llama 3.3 70B", "context_length": 131072, "created": 0,
   "supported_parameters": ["tools", "temperature"],
   "endpoints": [
     {"provider": "groq", "model_id": "llama-3.3-70b-versatile", "input": 590000, "output": 790000},
     {"provider": "deepinfra", "model_id": "meta-llama/Llama-3.3-70B-Instruct", "input": 230000, "output": 400000},
     {"provider": "together", "model_id": "meta-llama/Llama-3.3-70B-Instruct-Turbo", "input": 880000, "output": 880000},
     {"provider": "fireworks", "model_id": "accounts/fireworks/models/llama-v3p3-70b-instruct", "input": 900000, "output": 900000}]},
  {"id": "amazon/nova-pro-v1", "name": "Nova Pro", "context_length": 300000, "created": 0,
   "endpoints": [
     {"provider": "amazon-bedrock", "model_id": "amazon.nova-pro-v1:0", "input": 800000, "output": 3200000, "default_region": "us-east-1", "regions": ["us-east-1", "us-west-2"]}]},
  {"id": "empty/model", "name": "No endpoints", "context_length": 1, "created": 0, "endpoints": []}
]}"#;

pub const GPT4O: &str = "openai/gpt-4o";
pub const MINI: &str = "openai/gpt-4o-mini";
pub const SONNET: &str = "anthropic/claude-sonnet-4.5";
pub const LLAMA: &str = "meta-llama/llama-3.3-70b-instruct";
/// On Bedrock in us-east-1 and us-west-2 only.
pub const NOVA: &str = "amazon/nova-pro-v1";

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub struct Fx {
    catalog: Catalog,
    stored: Vec<CredentialMeta>,
    system: Vec<SystemCredential>,
    scoped: Vec<(ProviderSlug, Credential)>,
    system_after_scoped: bool,
    body: Value,
    api_key: Option<String>,
    user: Option<String>,
    params: Vec<&'static str>,
    health: HealthTable,
    stats: StatsTable,
    precedence: Precedence,
}

pub fn fx() -> Fx {
    Fx {
        catalog: Catalog::from_json(CATALOG).expect("test catalog"),
        stored: Vec::new(),
        system: Vec::new(),
        scoped: Vec::new(),
        system_after_scoped: true,
        body: json!({}),
        api_key: None,
        user: None,
        params: Vec::new(),
        health: HealthTable::default(),
        stats: StatsTable::default(),
        precedence: Precedence::ByokFirst,
    }
}

pub fn mapping(slug: &str, id: &str) -> ModelMapping {
    ModelMapping { gateway_model_slug: slug.to_owned(), custom_model_id: id.to_owned() }
}

pub fn api_key() -> Credential {
    Credential::ApiKey("sk-test-0000000000000000".to_owned().into())
}

impl Fx {
    /// A prioritized stored key.
    pub fn key(self, id: &str, p: ProviderSlug) -> Self {
        self.key_with(id, p, |_| {})
    }

    pub fn key_with(mut self, id: &str, p: ProviderSlug, f: impl FnOnce(&mut CredentialMeta)) -> Self {
        let mut m = CredentialMeta::new(id, p);
        f(&mut m);
        self.stored.push(m);
        self
    }

    pub fn fallback(self, id: &str, p: ProviderSlug) -> Self {
        self.key_with(id, p, |m| m.is_fallback = true)
    }

    pub fn always_use(self, id: &str, p: ProviderSlug) -> Self {
        self.key_with(id, p, |m| m.always_use = true)
    }

    pub fn system(mut self, p: ProviderSlug) -> Self {
        self.system.push(SystemCredential::new(p));
        self
    }

    pub fn system_with(mut self, p: ProviderSlug, f: impl FnOnce(&mut SystemCredential)) -> Self {
        let mut s = SystemCredential::new(p);
        f(&mut s);
        self.system.push(s);
        self
    }

    pub fn scoped(self, p: ProviderSlug) -> Self {
        self.scoped_cred(p, api_key())
    }

    pub fn scoped_cred(mut self, p: ProviderSlug, c: Credential) -> Self {
        self.scoped.push((p, c));
        self
    }

    pub fn no_system_after_scoped(mut self) -> Self {
        self.system_after_scoped = false;
        self
    }

    /// Routing fields of the request body, as a client sends them.
    pub fn opts(mut self, v: Value) -> Self {
        if let (Some(body), Value::Object(extra)) = (self.body.as_object_mut(), v) {
            body.extend(extra);
        }
        self
    }

    pub fn api_key(mut self, hash: &str) -> Self {
        self.api_key = Some(hash.to_owned());
        self
    }

    pub fn user(mut self, u: &str) -> Self {
        self.user = Some(u.to_owned());
        self
    }

    pub fn params(mut self, ps: &[&'static str]) -> Self {
        self.params = ps.to_vec();
        self
    }

    /// A 429 with `Retry-After: 60` a moment ago.
    pub fn cooled(mut self, id: &str) -> Self {
        let after = Outcome::RateLimited { retry_after: Some(Duration::from_secs(60)) };
        self.health.record(HealthKey::Byok(id), after, now() - Duration::from_secs(1));
        self
    }

    /// A 429 whose cooldown is over.
    pub fn cooled_long_ago(mut self, id: &str) -> Self {
        let after = Outcome::RateLimited { retry_after: Some(Duration::from_secs(60)) };
        self.health.record(HealthKey::Byok(id), after, now() - Duration::from_secs(600));
        self
    }

    pub fn cooled_system(mut self, index: usize) -> Self {
        let after = Outcome::RateLimited { retry_after: None };
        self.health.record(HealthKey::System(index), after, now());
        self
    }

    /// Three 401s an hour ago: the cooldowns are over, the key stays unhealthy.
    pub fn unhealthy(mut self, id: &str) -> Self {
        let then = now() - Duration::from_secs(3600);
        for _ in 0..3 {
            self.health.record(HealthKey::Byok(id), Outcome::AuthFailed, then);
        }
        self
    }

    /// Its account answered "out of quota" a moment ago (parked for the default hour).
    pub fn quota_exhausted(mut self, id: &str) -> Self {
        self.health.record(HealthKey::Byok(id), Outcome::QuotaExhausted, now() - Duration::from_secs(1));
        self
    }

    /// Out of quota two hours ago: the recheck time has passed.
    pub fn quota_exhausted_long_ago(mut self, id: &str) -> Self {
        self.health.record(HealthKey::Byok(id), Outcome::QuotaExhausted, now() - Duration::from_secs(7200));
        self
    }

    pub fn quota_exhausted_system(mut self, index: usize) -> Self {
        self.health.record(HealthKey::System(index), Outcome::QuotaExhausted, now());
        self
    }

    /// The workspace's `routing.precedence`.
    pub fn precedence(mut self, p: Precedence) -> Self {
        self.precedence = p;
        self
    }

    pub fn observed(mut self, model: &str, p: ProviderSlug, latency_ms: Option<f64>, tps: Option<f64>) -> Self {
        self.stats.insert(model, p, EndpointStats { latency_ms, throughput_tps: tps });
        self
    }

    /// Plans `model` and hands the result to `f` (the plan borrows the fixture).
    pub fn run<R>(&self, model: &str, f: impl FnOnce(Result<RoutePlan<'_>, RouteError>) -> R) -> R {
        self.run_explained(model, |e| f(e.plan), false)
    }

    /// `code provider credential` per exclusion (`credential` is `-` for a whole provider), and
    /// the plan as `provider:credential` (empty when it failed).
    pub fn exclusions(&self, model: &str) -> (Vec<String>, Vec<String>) {
        self.run_explained(
            model,
            |e| {
                let ex = e
                    .excluded
                    .iter()
                    .map(|x| {
                        let who = x.credential.map_or_else(|| "-".to_owned(), |c| c.to_string());
                        format!("{} {} {}", x.reason.code(), x.provider, who)
                    })
                    .collect();
                (ex, e.plan.map(|p| p.explain_compact()).unwrap_or_default())
            },
            true,
        )
    }

    fn run_explained<R>(&self, model: &str, f: impl FnOnce(Explanation<'_>) -> R, explained: bool) -> R {
        let mut body = self.body.clone();
        let map = body.as_object_mut().expect("body is an object");
        let options = RoutingOptions::extract(map).expect("routing options parse");
        let scoped: Vec<RequestScopedCredential<'_>> =
            self.scoped.iter().map(|(p, c)| RequestScopedCredential::new(*p, c)).collect();
        let input = PlanInput {
            stored: &self.stored,
            request_scoped: &scoped,
            system: &self.system,
            system_after_request_scoped: self.system_after_scoped,
            api_key_hash: self.api_key.as_deref(),
            user: self.user.as_deref(),
            requested_parameters: &self.params,
            health: &self.health,
            stats: &self.stats,
            precedence: self.precedence,
            ..PlanInput::new(model, &options, &self.catalog, now())
        };
        if explained {
            f(explain(&input))
        } else {
            f(Explanation { plan: plan(&input), excluded: Vec::new() })
        }
    }

    /// `provider:credential` per attempt; panics with the error if planning fails.
    pub fn plan(&self, model: &str) -> Vec<String> {
        self.run(model, |r| match r {
            Ok(p) => p.explain_compact(),
            Err(e) => panic!("expected a plan, got: {e}"),
        })
    }

    /// `model provider:credential upstream-id` per attempt.
    pub fn plan_detailed(&self, model: &str) -> Vec<String> {
        self.run(model, |r| match r {
            Ok(p) => p
                .attempts
                .iter()
                .map(|a| format!("{} {}:{} {}", a.model, a.provider, a.credential, a.upstream_model))
                .collect(),
            Err(e) => panic!("expected a plan, got: {e}"),
        })
    }

    pub fn err(&self, model: &str) -> RouteError {
        self.run(model, |r| match r {
            Ok(p) => panic!("expected an error, got plan:\n{}", p.explain()),
            Err(e) => e,
        })
    }
}
