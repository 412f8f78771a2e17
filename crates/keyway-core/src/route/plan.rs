//! The planner: (request options, catalog, credentials, health) -> an ordered list of attempts.
//!
//! Per model: catalog endpoints -> narrowed (`only`, `ignore`, `require_parameters`,
//! `max_price`) -> ordered (`sort`, then `order`) -> per provider, three credential sections:
//! primary (prioritized BYOK keys or request-scoped keys), system, fallback BYOK keys. The plan is
//! every provider's primary section, then every system section, then every fallback section.
//! With `models: [...]`, the per-model plans are concatenated.

use super::error::{join_providers, RouteError};
use super::health::HealthKey;
use super::input::{CredentialId, CredentialMeta, PlanInput};
use super::options::{DataCollection, SortBy};
use crate::catalog::Endpoint;
use crate::credential::{BedrockCredential, BedrockScope, ModelMapping};
use crate::provider::ProviderSlug;
use std::cmp::Ordering;
use std::fmt;

/// Where a Bedrock call goes when nothing else names a region.
pub const DEFAULT_BEDROCK_REGION: &str = "us-east-1";

/// Which part of a plan an attempt belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Prioritized BYOK keys (or request-scoped keys), before any system credential.
    Primary,
    System,
    /// BYOK keys marked `is_fallback`, after the system credentials.
    Fallback,
}

/// The credential an attempt uses. Indexes point into the slices of [`PlanInput`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource<'a> {
    Byok { id: &'a CredentialId, index: usize },
    RequestScoped { provider: ProviderSlug, index: usize },
    System { index: usize },
}

impl<'a> CredentialSource<'a> {
    /// For `x-keyway-credential`: the stored id, `request` or `system`.
    pub fn header_value(&self) -> &'a str {
        match self {
            CredentialSource::Byok { id, .. } => id.as_str(),
            CredentialSource::RequestScoped { .. } => "request",
            CredentialSource::System { .. } => "system",
        }
    }

    /// The caller's own key (stored or request-scoped): billed as BYOK, `x-keyway-byok: true`.
    pub fn is_byok(&self) -> bool {
        !matches!(self, CredentialSource::System { .. })
    }

    /// Where to record the attempt's outcome; request-scoped keys have no lasting health.
    pub fn health_key(&self) -> Option<HealthKey<'a>> {
        match self {
            CredentialSource::Byok { id, .. } => Some(HealthKey::Byok(id.as_str())),
            CredentialSource::RequestScoped { .. } => None,
            CredentialSource::System { index } => Some(HealthKey::System(*index)),
        }
    }
}

impl fmt::Display for CredentialSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Byok { id, .. } => write!(f, "byok:{id}"),
            CredentialSource::RequestScoped { provider, index } => write!(f, "request:{provider}#{index}"),
            CredentialSource::System { index } => write!(f, "system#{index}"),
        }
    }
}

/// One try: this model on this provider with this credential.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The gateway slug this attempt serves (differs from the body's `model` for `models` fallbacks).
    pub model: &'a str,
    pub provider: ProviderSlug,
    /// The id sent upstream: the catalog's, or the credential's mapping / Azure deployment.
    pub upstream_model: &'a str,
    /// The catalog endpoint (prices); `None` for a `provider/model-id` slug the catalog doesn't list.
    /// For an Azure deployment of a model the catalog lists only elsewhere: the model's first endpoint.
    pub endpoint: Option<&'a Endpoint>,
    pub credential: CredentialSource<'a>,
    /// Bedrock: the region this credential serves the call in (the request's
    /// `providerOptions.bedrock.region`, else the credential's own, else the endpoint's default).
    pub region: Option<&'a str>,
    pub section: Section,
    /// The provider is pinned (an always-use or byok-only key): no system credential serves it,
    /// so when its keys fail the upstream's error is the answer for this provider.
    pub pinned: bool,
    /// The credential was cooling down or unhealthy when the plan was made (so it was put last
    /// in its section).
    pub degraded: bool,
}

impl fmt::Display for Attempt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} ({}) with {}", self.model, self.provider, self.upstream_model, self.credential)?;
        if let Some(r) = self.region {
            write!(f, " in {r}")?;
        }
        let section = match self.section {
            Section::Primary => "primary",
            Section::System => "system",
            Section::Fallback => "fallback",
        };
        write!(f, " [{section}")?;
        if self.pinned {
            f.write_str(", pinned")?;
        }
        if self.degraded {
            f.write_str(", degraded")?;
        }
        f.write_str("]")
    }
}

/// A model of the `models` list that got no attempts, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedModel<'a> {
    pub model: &'a str,
    pub error: RouteError,
}

#[derive(Debug, Clone)]
pub struct RoutePlan<'a> {
    /// Never empty: [`plan`] returns an error instead.
    pub attempts: Vec<Attempt<'a>>,
    /// Unknown routing options, for `x-keyway-ignored`.
    pub ignored: &'a [String],
    /// Fallback models that could not be planned (the plan went on without them).
    pub skipped: Vec<SkippedModel<'a>>,
}

impl RoutePlan<'_> {
    /// One numbered line per attempt, for debug logs and `keyway demo`.
    pub fn explain(&self) -> String {
        let mut lines: Vec<String> =
            self.attempts.iter().enumerate().map(|(i, a)| format!("{}. {a}", i + 1)).collect();
        for s in &self.skipped {
            lines.push(format!("skipped {}: {}", s.model, s.error));
        }
        lines.join("\n")
    }

    /// `provider:credential` per attempt (`openai:byok:cred-1`, `azure:system#0`).
    pub fn explain_compact(&self) -> Vec<String> {
        self.attempts.iter().map(|a| format!("{}:{}", a.provider, a.credential)).collect()
    }
}

/// Builds the plan for a request. Errors only when no model of the request has any attempt;
/// the error is the first model's.
pub fn plan<'a>(input: &PlanInput<'a, '_>) -> Result<RoutePlan<'a>, RouteError> {
    let primary = input.model;
    let fallbacks = input.options.models.iter().map(String::as_str).filter(|m| *m != primary);
    let mut attempts = Vec::new();
    let mut skipped = Vec::new();
    for model in std::iter::once(primary).chain(fallbacks) {
        match plan_model(input, model) {
            Ok(mut a) => attempts.append(&mut a),
            Err(error) => skipped.push(SkippedModel { model, error }),
        }
    }
    if attempts.is_empty() {
        let first = skipped.into_iter().next().map(|s| s.error);
        return Err(first.unwrap_or_else(|| RouteError::UnknownModel { model: primary.to_owned() }));
    }
    Ok(RoutePlan { attempts, ignored: &input.options.ignored, skipped })
}

/// A provider endpoint of the model, before credentials.
#[derive(Debug, Clone, Copy)]
struct Candidate<'a> {
    provider: ProviderSlug,
    upstream: &'a str,
    endpoint: Option<&'a Endpoint>,
}

impl Candidate<'_> {
    fn prompt(&self) -> u64 {
        self.endpoint.map_or(0, |e| e.input_per_mtok_micros)
    }
    fn completion(&self) -> u64 {
        self.endpoint.map_or(0, |e| e.output_per_mtok_micros)
    }
    fn request(&self) -> u64 {
        self.endpoint.map_or(0, |e| e.per_request_micros)
    }
    fn price(&self) -> u64 {
        self.prompt().saturating_add(self.completion())
    }
}

fn plan_model<'a>(input: &PlanInput<'a, '_>, slug: &'a str) -> Result<Vec<Attempt<'a>>, RouteError> {
    let (all, supported) = resolve(input, slug)?;
    let mut cands = narrow(input, slug, all, supported)?;
    order(input, slug, &mut cands);

    let mut ex = Excluded::default();
    let mut sections: Vec<Sections<'a>> = cands.iter().map(|c| credentials_for(input, slug, c, &mut ex)).collect();
    let opts = input.options;
    if !opts.allow_fallbacks {
        // As OpenRouter: only the providers named in `order`, else only the first provider that
        // has a usable credential. A provider's keys still back each other up.
        sections = if opts.order.is_empty() {
            sections.into_iter().filter(|s| !s.is_empty()).take(1).collect()
        } else {
            sections.into_iter().filter(|s| opts.order.contains(&s.provider)).collect()
        };
    }
    let mut out = Vec::new();
    out.extend(sections.iter_mut().flat_map(|s| s.primary.drain(..)));
    out.extend(sections.iter_mut().flat_map(|s| s.system.drain(..)));
    out.extend(sections.iter_mut().flat_map(|s| s.fallback.drain(..)));
    if out.is_empty() {
        return Err(RouteError::NoCredentials {
            model: slug.to_owned(),
            providers: cands.iter().map(|c| c.provider).collect(),
            detail: ex.explain(input),
        });
    }
    Ok(out)
}

/// The model's endpoints in catalog order, and its supported parameters (unknown for a slug the
/// catalog doesn't list).
fn resolve<'a>(input: &PlanInput<'a, '_>, slug: &'a str) -> Result<(Vec<Candidate<'a>>, Option<&'a [String]>), RouteError> {
    if let Some(m) = input.catalog.get(slug) {
        let mut cands: Vec<Candidate<'a>> = m
            .endpoints
            .iter()
            .map(|e| Candidate { provider: e.provider, upstream: &e.model_id, endpoint: Some(e) })
            .collect();
        // An Azure deployment of a model the catalog lists at other providers: priced as the
        // model's first endpoint (the catalog's price for the model).
        if !cands.iter().any(|c| c.provider == ProviderSlug::Azure) && azure_deploys(input, slug) {
            cands.push(Candidate { provider: ProviderSlug::Azure, upstream: model_tail(slug), endpoint: m.endpoints.first() });
        }
        return Ok((cands, Some(&m.supported_parameters)));
    }
    // Same rule as `Catalog::resolve`, but borrowing the upstream id from the slug.
    let unknown = || RouteError::UnknownModel { model: slug.to_owned() };
    let (prefix, rest) = slug.split_once('/').ok_or_else(unknown)?;
    if rest.is_empty() {
        return Err(unknown());
    }
    let mut cands = Vec::new();
    if let Some(provider) = ProviderSlug::parse_alias(prefix) {
        cands.push(Candidate { provider, upstream: rest, endpoint: None });
    }
    // Any `provider/model` slug an Azure deployment names is routable to Azure (priced 0 unless
    // `[[pricing]]` lists it, which puts it in the catalog).
    if !cands.iter().any(|c| c.provider == ProviderSlug::Azure) && azure_deploys(input, slug) {
        cands.push(Candidate { provider: ProviderSlug::Azure, upstream: rest, endpoint: None });
    }
    if cands.is_empty() {
        return Err(unknown());
    }
    Ok((cands, None))
}

fn model_tail(slug: &str) -> &str {
    slug.split_once('/').map_or(slug, |(_, rest)| rest)
}

/// Whether a usable Azure credential of the request names `slug` in a deployment (or mapping).
fn azure_deploys(input: &PlanInput<'_, '_>, slug: &str) -> bool {
    let names = |ms: &[ModelMapping]| ms.iter().any(|m| m.gateway_model_slug == slug);
    if !input.request_scoped.is_empty() {
        return input.request_scoped.iter().filter(|r| r.provider == ProviderSlug::Azure).any(|r| {
            r.azure_deployments.is_some_and(|ds| ds.iter().any(|d| d.model_slug == slug)) || names(r.model_mappings)
        });
    }
    input.stored.iter().filter(|m| m.provider == ProviderSlug::Azure && !m.disabled).any(|m| {
        m.azure_deployments.as_deref().is_some_and(names) || names(&m.model_mappings)
    }) || input.system.iter().any(|s| s.provider == ProviderSlug::Azure && names(&s.model_mappings))
}

fn narrow<'a>(
    input: &PlanInput<'a, '_>,
    slug: &str,
    mut cands: Vec<Candidate<'a>>,
    supported: Option<&[String]>,
) -> Result<Vec<Candidate<'a>>, RouteError> {
    let opts = input.options;
    let none_left = |reason: String| RouteError::NoEndpoints { model: slug.to_owned(), reason };
    // Kept only for the error message, and only when a filter could need it.
    let all: Vec<ProviderSlug> =
        if opts.only.is_some() || !opts.ignore.is_empty() { cands.iter().map(|c| c.provider).collect() } else { Vec::new() };
    let served_by = || join_providers(&all);
    if cands.is_empty() {
        return Err(none_left("the catalog lists no provider for it".to_owned()));
    }
    if let Some(only) = &opts.only {
        cands.retain(|c| only.contains(&c.provider));
        if cands.is_empty() {
            let named = if only.is_empty() { "no provider Keyway knows".to_owned() } else { join_providers(only) };
            return Err(none_left(format!("provider.only allows {named}, but it is served by {}", served_by())));
        }
    }
    cands.retain(|c| !opts.ignore.contains(&c.provider));
    if cands.is_empty() {
        return Err(none_left(format!("provider.ignore excludes every provider that serves it ({})", served_by())));
    }
    if let (true, Some(supported)) = (opts.require_parameters, supported) {
        let missing: Vec<&str> =
            input.requested_parameters.iter().copied().filter(|p| !supported.iter().any(|s| s == p)).collect();
        if !missing.is_empty() {
            return Err(none_left(format!(
                "it does not support {} (provider.require_parameters is on; drop the parameter or the option)",
                missing.join(", ")
            )));
        }
    }
    if let Some(max) = opts.max_price {
        let cheapest = cands.iter().copied().min_by_key(Candidate::price);
        let over = |c: &Candidate<'_>| {
            max.prompt_micros.is_some_and(|m| c.prompt() > m)
                || max.completion_micros.is_some_and(|m| c.completion() > m)
                || max.request_micros.is_some_and(|m| c.request() > m)
        };
        cands.retain(|c| !over(c));
        if let (true, Some(c)) = (cands.is_empty(), cheapest) {
            return Err(RouteError::MaxPriceExceeded {
                model: slug.to_owned(),
                provider: c.provider,
                prompt_micros: c.prompt(),
                completion_micros: c.completion(),
                request_micros: c.request(),
                max,
            });
        }
    }
    Ok(cands)
}

/// `sort` first, then `order` on top (a stable sort keeps the sorted order among the rest).
fn order(input: &PlanInput<'_, '_>, slug: &str, cands: &mut [Candidate<'_>]) {
    let opts = input.options;
    let stat = |c: &Candidate<'_>| input.stats.stats(slug, c.provider).unwrap_or_default();
    match opts.sort {
        Some(SortBy::Price) => cands.sort_by_key(Candidate::price),
        Some(SortBy::Latency) => cands.sort_by(|a, b| known_first(stat(a).latency_ms, stat(b).latency_ms, false)),
        Some(SortBy::Throughput) => {
            cands.sort_by(|a, b| known_first(stat(a).throughput_tps, stat(b).throughput_tps, true))
        }
        None => {}
    }
    if !opts.order.is_empty() {
        cands.sort_by_key(|c| opts.order.iter().position(|p| *p == c.provider).unwrap_or(usize::MAX));
    }
}

/// Observed values before unknown ones; among observed, ascending (or descending).
fn known_first(a: Option<f64>, b: Option<f64>, descending: bool) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) if descending => y.total_cmp(&x),
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// One provider's attempts, by section.
struct Sections<'a> {
    provider: ProviderSlug,
    primary: Vec<Attempt<'a>>,
    system: Vec<Attempt<'a>>,
    fallback: Vec<Attempt<'a>>,
}

impl Sections<'_> {
    fn is_empty(&self) -> bool {
        self.primary.is_empty() && self.system.is_empty() && self.fallback.is_empty()
    }
}

fn credentials_for<'a>(input: &PlanInput<'a, '_>, slug: &'a str, c: &Candidate<'a>, ex: &mut Excluded) -> Sections<'a> {
    let opts = input.options;
    let wanted = opts.bedrock_region.as_deref();
    let catalog_region = c.endpoint.and_then(|e| e.default_region.as_deref());
    let default_region = catalog_region.unwrap_or(DEFAULT_BEDROCK_REGION);
    // Bedrock: each credential's region (see `BedrockScope::region_for`); `None` = it can't serve
    // the region asked for, or the model isn't offered there. Other providers have no region.
    let region_of = |scope: Option<&'a BedrockScope>, bedrock: Option<&'a BedrockCredential>| -> Option<Option<&'a str>> {
        if c.provider != ProviderSlug::AmazonBedrock {
            return Some(None);
        }
        let r = match (scope, bedrock) {
            (Some(s), _) => s.region_for(wanted, default_region)?,
            (None, Some(b)) => b.region_for(wanted, default_region)?,
            // Nothing known of the credential: the request's region, else the catalog's (else the adapter's).
            (None, None) => match wanted.or(catalog_region) {
                Some(r) => r,
                None => return Some(None),
            },
        };
        c.endpoint.is_none_or(|e| e.offered_in(r)).then_some(Some(r))
    };
    let attempt = |credential: CredentialSource<'a>, upstream_model: &'a str, section: Section, degraded: bool, region: Option<&'a str>| Attempt {
        model: slug,
        provider: c.provider,
        upstream_model,
        endpoint: c.endpoint,
        credential,
        region,
        section,
        pinned: false,
        degraded,
    };
    let mut out = Sections { provider: c.provider, primary: Vec::new(), system: Vec::new(), fallback: Vec::new() };
    let (mut prioritized, mut fallback, pinned) = keyed_attempts(input, slug, c, ex, &region_of, &attempt);
    prioritized.sort_by_key(|(d, o, _)| (*d, *o));
    fallback.sort_by_key(|(d, o, _)| (*d, *o));
    out.primary = prioritized.into_iter().map(|(_, _, a)| a).collect();
    out.fallback = fallback.into_iter().map(|(_, _, a)| a).collect();

    let system_barred = pinned || (!input.request_scoped.is_empty() && !input.system_after_request_scoped);
    let mut system: Vec<(bool, Attempt<'a>)> = Vec::new();
    for (index, s) in input.system.iter().enumerate().filter(|(_, s)| s.provider == c.provider) {
        if system_barred {
            ex.system_barred += 1;
            continue;
        }
        if (opts.zdr || opts.data_collection == DataCollection::Deny) && !s.zdr {
            ex.system_not_zdr += 1;
            continue;
        }
        let Some(region) = region_of(s.bedrock.as_ref(), None) else {
            ex.other_region += 1;
            continue;
        };
        let degraded = input.health.health(HealthKey::System(index)).is_some_and(|h| h.is_degraded(input.now));
        let upstream = mapped(&s.model_mappings, slug).unwrap_or(c.upstream);
        system.push((degraded, attempt(CredentialSource::System { index }, upstream, Section::System, degraded, region)));
    }
    system.sort_by_key(|(d, _)| *d);
    out.system = system.into_iter().map(|(_, a)| a).collect();

    if pinned {
        for a in out.primary.iter_mut().chain(out.fallback.iter_mut()) {
            a.pinned = true;
        }
    }
    out
}

/// (degraded, sort order, attempt) of a BYOK or request-scoped attempt.
type Ranked<'a> = (bool, i64, Attempt<'a>);

/// The attempts of the caller's own keys for one candidate: stored BYOK credentials (primary and
/// fallback), or the request-scoped ones when the request brings any; and whether a key pins the
/// provider (no system credential after it). Unsorted; the caller sorts (stably, so ties keep
/// input order).
fn keyed_attempts<'a>(
    input: &PlanInput<'a, '_>,
    slug: &'a str,
    c: &Candidate<'a>,
    ex: &mut Excluded,
    region_of: &impl Fn(Option<&'a BedrockScope>, Option<&'a BedrockCredential>) -> Option<Option<&'a str>>,
    attempt: &impl Fn(CredentialSource<'a>, &'a str, Section, bool, Option<&'a str>) -> Attempt<'a>,
) -> (Vec<Ranked<'a>>, Vec<Ranked<'a>>, bool) {
    let opts = input.options;
    let mut prioritized: Vec<Ranked<'a>> = Vec::new();
    let mut fallback: Vec<Ranked<'a>> = Vec::new();
    let mut pinned = false;

    if input.request_scoped.is_empty() {
        for (index, m) in input.stored.iter().enumerate().filter(|(_, m)| m.provider == c.provider) {
            if m.disabled {
                ex.disabled += 1;
                continue;
            }
            if !allows(&m.allowed_api_key_hashes, input.api_key_hash) || !allows(&m.allowed_user_ids, input.user) {
                ex.other_caller += 1;
                continue;
            }
            // byok-only bars system credentials for the provider whatever models the key covers.
            pinned |= m.is_byok_only;
            let upstream = match stored_upstream(m, slug) {
                Some(id) => id.unwrap_or(c.upstream),
                None => {
                    ex.other_model += 1;
                    continue;
                }
            };
            // An always-use key pins the models it applies to, even when it can't serve this
            // request (ZDR): its owner said "never the system key" for them.
            pinned |= m.always_use && !m.is_fallback;
            if opts.zdr && !m.declared_zdr {
                ex.not_zdr += 1;
                continue;
            }
            let Some(region) = region_of(m.bedrock.as_ref(), None) else {
                ex.other_region += 1;
                continue;
            };
            let degraded = input.health.health(HealthKey::Byok(m.id.as_str())).is_some_and(|h| h.is_degraded(input.now));
            let section = if m.is_fallback { Section::Fallback } else { Section::Primary };
            let a = attempt(CredentialSource::Byok { id: &m.id, index }, upstream, section, degraded, region);
            let list = if m.is_fallback { &mut fallback } else { &mut prioritized };
            list.push((degraded, m.sort_order, a));
        }
    } else {
        for (index, r) in input.request_scoped.iter().enumerate().filter(|(_, r)| r.provider == c.provider) {
            let upstream = match r.azure_deployments {
                Some(ds) => match ds.iter().find(|d| d.model_slug == slug) {
                    Some(d) => d.model_id.as_str(),
                    None => {
                        ex.other_model += 1;
                        continue;
                    }
                },
                None => mapped(r.model_mappings, slug).unwrap_or(c.upstream),
            };
            let Some(region) = region_of(None, r.bedrock) else {
                ex.other_region += 1;
                continue;
            };
            let source = CredentialSource::RequestScoped { provider: r.provider, index };
            prioritized.push((false, 0, attempt(source, upstream, Section::Primary, false, region)));
        }
    }
    (prioritized, fallback, pinned)
}

/// Empty allow-list: everyone. Otherwise the request's value must be listed.
fn allows(list: &[String], value: Option<&str>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
}

fn mapped<'a>(mappings: &'a [ModelMapping], slug: &str) -> Option<&'a str> {
    mappings.iter().find(|m| m.gateway_model_slug == slug).map(|m| m.custom_model_id.as_str())
}

/// `None`: the credential does not serve `slug`. `Some(None)`: the catalog's id. `Some(Some(id))`:
/// a mapped id (a deployment list's entry wins over a mapping).
fn stored_upstream<'a>(m: &'a CredentialMeta, slug: &str) -> Option<Option<&'a str>> {
    if !m.allowed_models.is_empty() && !m.allowed_models.iter().any(|s| s == slug) {
        return None;
    }
    match &m.azure_deployments {
        Some(ds) => mapped(ds, slug).map(Some),
        None => Some(mapped(&m.model_mappings, slug)),
    }
}

/// Why credentials were left out, to make `NoCredentials` actionable.
#[derive(Debug, Default)]
struct Excluded {
    disabled: usize,
    other_caller: usize,
    other_model: usize,
    not_zdr: usize,
    system_not_zdr: usize,
    system_barred: usize,
    /// Bedrock credentials without a key set for the request's region (or the model isn't offered there).
    other_region: usize,
}

impl Excluded {
    fn explain(&self, input: &PlanInput<'_, '_>) -> String {
        let mut parts = Vec::new();
        if !input.request_scoped.is_empty() {
            let mut ps: Vec<ProviderSlug> = input.request_scoped.iter().map(|r| r.provider).collect();
            ps.sort();
            ps.dedup();
            parts.push(format!(
                "the request-scoped credentials (providerOptions.gateway.byok) are for {} and replace stored keys",
                join_providers(&ps)
            ));
        }
        let stored: Vec<String> = [
            (self.disabled, "disabled"),
            (self.other_caller, "limited to other Keyway keys or users"),
            (self.other_model, "limited to other models"),
            (self.not_zdr, "not declared zero-data-retention (provider.zdr is on)"),
            (self.other_region, "without a key set for the region (or the model is not offered in it)"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, why)| format!("{n} {why}"))
        .collect();
        if !stored.is_empty() {
            parts.push(format!("keys skipped: {}", stored.join(", ")));
        }
        if self.system_not_zdr > 0 {
            parts.push(format!(
                "{} system credential(s) not marked zero-data-retention by the operator (provider.zdr / data_collection: deny)",
                self.system_not_zdr
            ));
        }
        if self.system_barred > 0 {
            let why = if input.request_scoped.is_empty() {
                "an always-use or byok-only key pins the provider"
            } else {
                "the operator does not add system credentials after request-scoped ones"
            };
            parts.push(format!("{} system credential(s) not used: {why}", self.system_barred));
        }
        parts.push("add a BYOK key for one of these providers (POST /api/v1/byok) or ask the operator for a system credential".to_owned());
        parts.join("; ")
    }
}
