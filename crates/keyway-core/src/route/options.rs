//! Routing options read from a request body: OpenRouter's `provider: {...}` and `models: [...]`,
//! Vercel's `providerOptions.gateway: {...}` and `providerOptions.bedrock.region`.
//!
//! [`RoutingOptions::extract`] removes these fields from the body, because upstreams reject (or
//! worse, log) fields they don't know. Unknown keys *inside* the routing objects are not an error
//! (OpenRouter adds options over time); they are named in [`RoutingOptions::ignored`] so that the
//! gateway can report them in `x-keyway-ignored`. A known key with a wrong type is an error.

use super::error::RouteError;
use super::price::MaxPrice;
use crate::provider::ProviderSlug;
use serde_json::{Map, Value};
use std::fmt;

/// How to order a model's providers (`provider.sort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Catalog price, input + output per million tokens, cheapest first.
    Price,
    /// Observed time to first token, lowest first; providers without observations last.
    Latency,
    /// Observed output tokens per second, highest first; providers without observations last.
    Throughput,
}

/// `provider.data_collection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataCollection {
    #[default]
    Allow,
    /// Only credentials whose owner vouches for the data policy: BYOK keys (the caller's own
    /// contract with the provider) and system credentials the operator marked `zdr`.
    Deny,
}

/// Request-scoped credentials (`providerOptions.gateway.byok`), still as JSON: the gateway
/// validates each with [`crate::Credential::parse`]. `Debug` never shows the values.
#[derive(Clone, Default, PartialEq)]
pub struct RequestByok {
    entries: Vec<(ProviderSlug, Value)>,
}

impl RequestByok {
    /// Parses `{anthropic: [{apiKey}], bedrock: [{...}], ...}` (Vercel's shape). Also what the
    /// gateway calls on the decoded `x-keyway-byok` header.
    pub fn from_json(v: &Value) -> Result<Self, RouteError> {
        const PATH: &str = "providerOptions.gateway.byok";
        let Value::Object(m) = v else {
            return Err(RouteError::invalid(PATH, "must be an object of provider name -> list of credentials"));
        };
        let mut entries = Vec::new();
        for (name, list) in m {
            let Some(provider) = parse_provider_name(name) else {
                return Err(RouteError::invalid(format!("{PATH}.{name}"), "unknown provider"));
            };
            let Value::Array(items) = list else {
                return Err(RouteError::invalid(format!("{PATH}.{name}"), "must be a list of credentials"));
            };
            for item in items {
                entries.push((provider, item.clone()));
            }
        }
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Each credential with its provider, in request order (per provider).
    pub fn iter(&self) -> impl Iterator<Item = (ProviderSlug, &Value)> {
        self.entries.iter().map(|(p, v)| (*p, v))
    }
}

impl fmt::Debug for RequestByok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let providers: Vec<&str> = self.entries.iter().map(|(p, _)| p.as_str()).collect();
        f.debug_struct("RequestByok").field("providers", &providers).finish_non_exhaustive()
    }
}

/// Routing options of one request. `Default` is "no options".
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingOptions {
    /// Fallback models (`models`, also `providerOptions.gateway.models`), in order.
    pub models: Vec<String>,
    /// Providers to try first, in this order (`provider.order`, then `providerOptions.gateway.order`).
    pub order: Vec<ProviderSlug>,
    /// Allow-list (`provider.only`, `providerOptions.gateway.only`; both given -> their intersection).
    pub only: Option<Vec<ProviderSlug>>,
    pub ignore: Vec<ProviderSlug>,
    /// `false`: only the first eligible provider is tried (its keys may still fall back to each other).
    pub allow_fallbacks: bool,
    pub sort: Option<SortBy>,
    pub max_price: Option<MaxPrice>,
    pub zdr: bool,
    pub data_collection: DataCollection,
    pub require_parameters: bool,
    /// `providerOptions.bedrock.region`.
    pub bedrock_region: Option<String>,
    pub byok: RequestByok,
    /// Unknown options, as paths (`provider.quantizations`) or `path:value` for unknown provider
    /// names (`provider.order:cerebras`). For the `x-keyway-ignored` header.
    pub ignored: Vec<String>,
}

impl Default for RoutingOptions {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            order: Vec::new(),
            only: None,
            ignore: Vec::new(),
            allow_fallbacks: true,
            sort: None,
            max_price: None,
            zdr: false,
            data_collection: DataCollection::Allow,
            require_parameters: false,
            bedrock_region: None,
            byok: RequestByok::default(),
            ignored: Vec::new(),
        }
    }
}

/// More fallback models than this is a mistake, and each one lengthens the plan.
const MAX_MODELS: usize = 16;

impl RoutingOptions {
    /// Reads the routing options and removes them from `body`. Other fields stay untouched.
    /// The top-level body fields [`RoutingOptions::extract`] reads (and removes, or edits).
    pub const FIELDS: [&'static str; 4] = ["provider", "models", "route", "providerOptions"];

    pub fn extract(body: &mut Map<String, Value>) -> Result<Self, RouteError> {
        let mut o = RoutingOptions::default();
        if let Some(v) = body.remove("provider") {
            o.read_provider(v)?;
        }
        if let Some(v) = body.remove("models") {
            o.add_models("models", v)?;
        }
        // OpenRouter's legacy companion of `models`; "fallback" is what Keyway does anyway.
        match body.remove("route") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "fallback" => {}
            Some(_) => o.ignored.push("route".to_owned()),
        }
        let mut drop_provider_options = false;
        if let Some(Value::Object(po)) = body.get_mut("providerOptions") {
            if let Some(g) = po.remove("gateway") {
                o.read_gateway(g)?;
            }
            if let Some(Value::Object(b)) = po.get_mut("bedrock") {
                match b.remove("region") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(r)) if !r.trim().is_empty() => o.bedrock_region = Some(r.trim().to_owned()),
                    Some(_) => {
                        return Err(RouteError::invalid("providerOptions.bedrock.region", "must be a region name such as \"eu-west-1\""))
                    }
                }
                if b.is_empty() {
                    po.remove("bedrock");
                }
            }
            drop_provider_options = po.is_empty();
        }
        if drop_provider_options {
            body.remove("providerOptions");
        }
        Ok(o)
    }

    fn read_provider(&mut self, v: Value) -> Result<(), RouteError> {
        let m = match v {
            Value::Null => return Ok(()),
            Value::Object(m) => m,
            _ => return Err(RouteError::invalid("provider", "must be an object such as {\"order\": [\"openai\"]}")),
        };
        for (key, v) in m {
            let path = format!("provider.{key}");
            if v.is_null() {
                continue;
            }
            match key.as_str() {
                "order" => {
                    let list = provider_list(&path, &v, &mut self.ignored)?;
                    merge_order(&mut self.order, list);
                }
                "only" => {
                    let list = provider_list(&path, &v, &mut self.ignored)?;
                    self.narrow_only(list);
                }
                "ignore" => {
                    let list = provider_list(&path, &v, &mut self.ignored)?;
                    merge_order(&mut self.ignore, list);
                }
                "allow_fallbacks" => self.allow_fallbacks = boolean(&path, &v)?,
                "zdr" => self.zdr = boolean(&path, &v)?,
                "require_parameters" => self.require_parameters = boolean(&path, &v)?,
                "sort" => self.sort = Some(self.read_sort(&path, &v)?),
                "max_price" => self.max_price = Some(self.read_max_price(&path, &v)?),
                "data_collection" => {
                    self.data_collection = match v.as_str() {
                        Some("allow") => DataCollection::Allow,
                        Some("deny") => DataCollection::Deny,
                        _ => return Err(RouteError::invalid(path, "must be \"allow\" or \"deny\"")),
                    }
                }
                _ => self.ignored.push(path),
            }
        }
        Ok(())
    }

    fn read_gateway(&mut self, v: Value) -> Result<(), RouteError> {
        let m = match v {
            Value::Null => return Ok(()),
            Value::Object(m) => m,
            _ => return Err(RouteError::invalid("providerOptions.gateway", "must be an object")),
        };
        for (key, v) in m {
            let path = format!("providerOptions.gateway.{key}");
            if v.is_null() {
                continue;
            }
            match key.as_str() {
                "order" => {
                    let list = provider_list(&path, &v, &mut self.ignored)?;
                    merge_order(&mut self.order, list);
                }
                "only" => {
                    let list = provider_list(&path, &v, &mut self.ignored)?;
                    self.narrow_only(list);
                }
                "models" => self.add_models(&path, v)?,
                "byok" => self.byok = RequestByok::from_json(&v)?,
                _ => self.ignored.push(path),
            }
        }
        Ok(())
    }

    fn narrow_only(&mut self, list: Vec<ProviderSlug>) {
        self.only = Some(match self.only.take() {
            None => list,
            Some(prev) => prev.into_iter().filter(|p| list.contains(p)).collect(),
        });
    }

    fn add_models(&mut self, path: &str, v: Value) -> Result<(), RouteError> {
        let items = match v {
            Value::Null => return Ok(()),
            Value::Array(items) => items,
            _ => return Err(RouteError::invalid(path, "must be a list of model slugs")),
        };
        for item in items {
            match item {
                Value::String(s) if !s.trim().is_empty() => {
                    let s = s.trim().to_owned();
                    if !self.models.contains(&s) {
                        self.models.push(s);
                    }
                }
                _ => return Err(RouteError::invalid(path, "must be a list of non-empty model slugs")),
            }
        }
        if self.models.len() > MAX_MODELS {
            return Err(RouteError::invalid(path, format!("at most {MAX_MODELS} fallback models")));
        }
        Ok(())
    }

    fn read_sort(&mut self, path: &str, v: &Value) -> Result<SortBy, RouteError> {
        let by = match v {
            Value::String(s) => s.as_str(),
            Value::Object(m) => {
                for k in m.keys().filter(|k| k.as_str() != "by") {
                    self.ignored.push(format!("{path}.{k}"));
                }
                m.get("by").and_then(Value::as_str).unwrap_or_default()
            }
            _ => "",
        };
        match by {
            "price" => Ok(SortBy::Price),
            "latency" => Ok(SortBy::Latency),
            "throughput" => Ok(SortBy::Throughput),
            _ => Err(RouteError::invalid(path, "must be \"price\", \"latency\" or \"throughput\" (or {\"by\": ...})")),
        }
    }

    fn read_max_price(&mut self, path: &str, v: &Value) -> Result<MaxPrice, RouteError> {
        let Value::Object(m) = v else {
            return Err(RouteError::invalid(path, "must be an object such as {\"prompt\": 1, \"completion\": 2} (USD per million tokens)"));
        };
        let mut out = MaxPrice::default();
        for (k, v) in m {
            let slot = match k.as_str() {
                "prompt" => &mut out.prompt_micros,
                "completion" => &mut out.completion_micros,
                "request" => &mut out.request_micros,
                _ => {
                    self.ignored.push(format!("{path}.{k}"));
                    continue;
                }
            };
            if !v.is_null() {
                *slot = Some(usd_to_micros(&format!("{path}.{k}"), v)?);
            }
        }
        Ok(out)
    }
}

fn boolean(path: &str, v: &Value) -> Result<bool, RouteError> {
    v.as_bool().ok_or_else(|| RouteError::invalid(path, "must be true or false"))
}

/// A non-negative USD amount (number or numeric string, as OpenRouter's pricing strings) in micro-USD.
fn usd_to_micros(path: &str, v: &Value) -> Result<u64, RouteError> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(x) if x.is_finite() && x >= 0.0 => Ok((x * 1_000_000.0).round() as u64),
        _ => Err(RouteError::invalid(path, "must be a non-negative number (USD)")),
    }
}

fn merge_order(into: &mut Vec<ProviderSlug>, list: Vec<ProviderSlug>) {
    for p in list {
        if !into.contains(&p) {
            into.push(p);
        }
    }
}

/// A list of provider names; names Keyway doesn't know are reported, not fatal (a client moving
/// from OpenRouter may name providers Keyway can't reach).
fn provider_list(path: &str, v: &Value, ignored: &mut Vec<String>) -> Result<Vec<ProviderSlug>, RouteError> {
    let Value::Array(items) = v else {
        return Err(RouteError::invalid(path, "must be a list of provider names such as [\"openai\", \"azure\"]"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some(name) = item.as_str() else {
            return Err(RouteError::invalid(path, "must be a list of provider names (strings)"));
        };
        match parse_provider_name(name) {
            Some(p) if !out.contains(&p) => out.push(p),
            Some(_) => {}
            None => ignored.push(format!("{path}:{name}")),
        }
    }
    Ok(out)
}

/// A provider by OpenRouter slug (`amazon-bedrock`), display name in any case (`Amazon Bedrock`,
/// `OPENAI`, `Z.AI`) or alias (`bedrock`, `vertex`, `gemini`): [`ProviderSlug::parse_name`].
pub(crate) fn parse_provider_name(name: &str) -> Option<ProviderSlug> {
    ProviderSlug::parse_name(name)
}

/// Body fields that `require_parameters` checks, and the catalog's `supported_parameters` name
/// each stands for. Only names the catalog tracks: checking others would refuse requests that
/// the provider would in fact serve.
const PARAMETERS: &[(&str, &str)] = &[
    ("tools", "tools"),
    ("tool_choice", "tool_choice"),
    ("response_format", "response_format"),
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("top_k", "top_k"),
    ("max_tokens", "max_tokens"),
    ("max_completion_tokens", "max_tokens"),
    ("stop", "stop"),
    ("stop_sequences", "stop"),
    ("seed", "seed"),
    ("reasoning", "reasoning"),
    ("reasoning_effort", "reasoning"),
    ("include_reasoning", "reasoning"),
    ("thinking", "reasoning"),
];

/// The catalog parameter names a (routing-stripped) body uses, for `PlanInput::requested_parameters`.
pub fn requested_parameters(body: &Map<String, Value>) -> Vec<&'static str> {
    requested_parameters_of(body.iter().map(|(k, v)| (k.as_str(), !v.is_null())))
}

/// As [`requested_parameters`], from each top-level key and whether its value is not `null`
/// (for a body kept as raw JSON text).
pub fn requested_parameters_of<'a>(fields: impl IntoIterator<Item = (&'a str, bool)>) -> Vec<&'static str> {
    // One pass over the body's few keys (a length compare each, mostly) instead of a B-tree
    // lookup per table entry; the result keeps the table's order.
    let mut used = [false; PARAMETERS.len()];
    for (key, set) in fields {
        if let Some(i) = PARAMETERS.iter().position(|(field, _)| *field == key) {
            used[i] = set;
        }
    }
    let mut out: Vec<&'static str> = Vec::new();
    for ((_, param), used) in PARAMETERS.iter().zip(used) {
        if used && !out.contains(param) {
            out.push(param);
        }
    }
    out
}
