//! Money arithmetic: what a generation costs at an endpoint's prices, the BYOK fee and its
//! monthly waiver, and price overrides from `keyway.toml`.
//!
//! All amounts are integer micro-units of the account currency (1 USD = 1,000,000 micros);
//! prices are micros per million tokens. Nothing here is a float.
//!
//! **Rounding.** A generation's token charges are summed exactly (in 10⁻¹² units, `u128`) and
//! rounded **once**, half up, to the micro; the per-request price is added after. Rounding each
//! component separately would let many small requests drift from the sum of their tokens.
//! The BYOK fee is `byok_fee_percent` of that rounded cost, again rounded half up.
//!
//! **Who pays what.** A generation served by a system credential (the operator's key, including
//! a fallback from a failed BYOK attempt to a system key) is charged the full catalog cost. One
//! served by a BYOK credential is charged only the fee, and nothing for the workspace's first
//! `byok_free_requests_per_month` BYOK requests of each calendar month (UTC).

use crate::catalog::{Catalog, CatalogError, Endpoint, Model};
use crate::provider::ProviderSlug;
use crate::usage::Usage;
use serde::{Deserialize, Serialize};

/// An endpoint's prices, copied out of the catalog (so a stream can carry them to its end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prices {
    pub input_per_mtok_micros: u64,
    pub output_per_mtok_micros: u64,
    /// Price of prompt tokens read from the provider's cache; the input price when absent.
    pub cached_input_per_mtok_micros: Option<u64>,
    pub per_request_micros: u64,
}

impl From<&Endpoint> for Prices {
    fn from(e: &Endpoint) -> Self {
        Self {
            input_per_mtok_micros: e.input_per_mtok_micros,
            output_per_mtok_micros: e.output_per_mtok_micros,
            cached_input_per_mtok_micros: e.cached_input_per_mtok_micros,
            per_request_micros: e.per_request_micros,
        }
    }
}

const PER_MTOK: u128 = 1_000_000;

/// `num / den` rounded half up (`den > 0`).
fn div_round_half_up(num: u128, den: u128) -> u128 {
    num / den + u128::from(num % den >= den - den / 2)
}

fn clamp_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The catalog cost of `usage` at `prices`, in micros (see the module doc for rounding).
///
/// `cached_tokens` are part of `prompt_tokens` and billed at the cached price; cache writes are
/// billed at the input price (the catalog carries no separate write price).
pub fn cost_micros(usage: &Usage, prices: &Prices) -> u64 {
    let cached = usage.cached_tokens.min(usage.prompt_tokens);
    let uncached = usage.prompt_tokens - cached;
    let cached_price = prices.cached_input_per_mtok_micros.unwrap_or(prices.input_per_mtok_micros);
    // Each product fits in u128; only absurd inputs could overflow the sum, so saturate.
    let scaled = (u128::from(uncached) * u128::from(prices.input_per_mtok_micros))
        .saturating_add(u128::from(cached) * u128::from(cached_price))
        .saturating_add(u128::from(usage.completion_tokens) * u128::from(prices.output_per_mtok_micros));
    clamp_u64(div_round_half_up(scaled, PER_MTOK).saturating_add(u128::from(prices.per_request_micros)))
}

/// What a request could cost before it runs: `prompt_tokens` (an estimate) in, at most
/// `max_output_tokens` out, no cache hits.
pub fn estimate_micros(prices: &Prices, prompt_tokens: u64, max_output_tokens: u64) -> u64 {
    cost_micros(&Usage { prompt_tokens, completion_tokens: max_output_tokens, ..Usage::default() }, prices)
}

/// `percent`% of `amount`, rounded half up to the micro.
pub fn percent_of(amount: u64, percent: u64) -> u64 {
    clamp_u64(div_round_half_up(u128::from(amount) * u128::from(percent), 100))
}

/// The operator's charging rules (`[billing]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeRules {
    pub byok_fee_percent: u64,
    pub byok_free_requests_per_month: u64,
}

/// One generation's money: its catalog cost, the BYOK fee, and what the workspace's credits pay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Charge {
    /// The catalog price of what was generated (paid to the provider by whoever owns the key).
    pub cost_micros: u64,
    /// Keyway's fee on BYOK traffic (0 for system traffic and within the monthly waiver).
    pub fee_micros: u64,
    /// Taken from the workspace's credits: the cost for system traffic, the fee for BYOK.
    pub charged_micros: u64,
}

impl Charge {
    /// What a stored generation charged, from its cost, fee and BYOK flag.
    pub fn charged(cost_micros: u64, fee_micros: u64, is_byok: bool) -> u64 {
        if is_byok {
            fee_micros
        } else {
            cost_micros
        }
    }
}

/// Charges a generation of catalog cost `cost_micros`. `byok_ordinal` is this request's
/// 1-based position among the workspace's BYOK requests this month (ignored for system traffic).
pub fn charge(cost_micros: u64, is_byok: bool, byok_ordinal: u64, rules: &FeeRules) -> Charge {
    if !is_byok {
        return Charge { cost_micros, fee_micros: 0, charged_micros: cost_micros };
    }
    let fee_micros = if byok_ordinal <= rules.byok_free_requests_per_month { 0 } else { percent_of(cost_micros, rules.byok_fee_percent) };
    Charge { cost_micros, fee_micros, charged_micros: fee_micros }
}

// ---- calendar (UTC), without a date library: core does no I/O and carries no clock ----

const MS_PER_DAY: i64 = 86_400_000;

/// A calendar month, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Month {
    pub year: i32,
    /// 1..=12
    pub month: u32,
}

/// Days since 1970-01-01 for a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil (year, month) of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32)
}

/// The UTC day number (days since the Unix epoch) of a Unix-millisecond instant.
pub fn day_of(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(MS_PER_DAY)
}

/// Unix milliseconds at the start of a UTC day number.
pub fn day_start_ms(day: i64) -> i64 {
    day.saturating_mul(MS_PER_DAY)
}

impl Month {
    pub fn of(unix_ms: i64) -> Self {
        let (y, m) = civil_from_days(day_of(unix_ms));
        Self { year: i32::try_from(y).unwrap_or(i32::MAX), month: m }
    }

    /// Unix milliseconds at 00:00 UTC on the 1st.
    pub fn start_ms(self) -> i64 {
        day_start_ms(days_from_civil(i64::from(self.year), self.month, 1))
    }

    pub fn next(self) -> Self {
        if self.month >= 12 {
            Self { year: self.year + 1, month: 1 }
        } else {
            Self { year: self.year, month: self.month + 1 }
        }
    }
}

/// Counts events within the current month; the count restarts at a new month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonthlyCounter {
    pub month: Month,
    pub count: u64,
}

impl MonthlyCounter {
    /// Counts one event at `unix_ms` and returns its 1-based ordinal within its month.
    pub fn next(&mut self, unix_ms: i64) -> u64 {
        self.roll(unix_ms);
        self.count += 1;
        self.count
    }

    /// The count so far in the month of `unix_ms` (0 after a rollover).
    pub fn current(&self, unix_ms: i64) -> u64 {
        if Month::of(unix_ms) == self.month {
            self.count
        } else {
            0
        }
    }

    fn roll(&mut self, unix_ms: i64) {
        let m = Month::of(unix_ms);
        if m != self.month {
            *self = Self { month: m, count: 0 };
        }
    }
}

// ---- overrides from keyway.toml ----

/// One `[[pricing]]` entry: replaces the given prices of one model's endpoint at one provider.
///
/// ```toml
/// [[pricing]]
/// model = "openai/gpt-4o-mini"
/// provider = "openai"
/// input_per_mtok_micros = 150000
/// output_per_mtok_micros = 600000
/// cached_input_per_mtok_micros = 75000   # optional
/// per_request_micros = 0                 # optional
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceOverride {
    pub model: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_per_mtok_micros: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_per_mtok_micros: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_mtok_micros: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request_micros: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PricingError {
    #[error("[[pricing]] {index}: the catalog has no model `{model}`")]
    UnknownModel { index: usize, model: String },
    #[error("[[pricing]] {index}: `{model}` is not served by provider `{provider}` in the catalog")]
    UnknownEndpoint { index: usize, model: String, provider: String },
    #[error("{0}")]
    Catalog(String),
}

impl From<CatalogError> for PricingError {
    fn from(e: CatalogError) -> Self {
        PricingError::Catalog(e.to_string())
    }
}

/// The catalog with `overrides` applied. A typo'd model or provider is an error, not a silent no-op.
pub fn apply_overrides(catalog: &Catalog, overrides: &[PriceOverride]) -> Result<Catalog, PricingError> {
    if overrides.is_empty() {
        return Ok(catalog.clone());
    }
    let mut models: Vec<Model> = catalog.models().to_vec();
    for (index, o) in overrides.iter().enumerate() {
        let provider = ProviderSlug::parse_name(&o.provider);
        // Azure serves whatever its deployments name: pricing one adds the model (or its Azure
        // endpoint) to the catalog, starting from the catalog's price for the model, else 0.
        if provider == Some(ProviderSlug::Azure) {
            add_azure_endpoint(&mut models, &o.model).map_err(|()| PricingError::UnknownModel { index, model: o.model.clone() })?;
        }
        let model = models.iter_mut().find(|m| m.id == o.model).ok_or_else(|| PricingError::UnknownModel { index, model: o.model.clone() })?;
        let endpoint = model
            .endpoints
            .iter_mut()
            .find(|e| Some(e.provider) == provider)
            .ok_or_else(|| PricingError::UnknownEndpoint { index, model: o.model.clone(), provider: o.provider.clone() })?;
        if let Some(v) = o.input_per_mtok_micros {
            endpoint.input_per_mtok_micros = v;
        }
        if let Some(v) = o.output_per_mtok_micros {
            endpoint.output_per_mtok_micros = v;
        }
        if let Some(v) = o.cached_input_per_mtok_micros {
            endpoint.cached_input_per_mtok_micros = Some(v);
        }
        if let Some(v) = o.per_request_micros {
            endpoint.per_request_micros = v;
        }
    }
    Ok(Catalog::from_models(models)?)
}

/// Ensures `slug` has an Azure endpoint (`Err` for a slug that isn't `author/model`).
fn add_azure_endpoint(models: &mut Vec<Model>, slug: &str) -> Result<(), ()> {
    let Some((_, tail)) = slug.split_once('/').filter(|(a, t)| !a.is_empty() && !t.is_empty()) else {
        return Err(());
    };
    let azure = |like: Option<&Endpoint>| Endpoint {
        provider: ProviderSlug::Azure,
        model_id: tail.to_owned(),
        input_per_mtok_micros: like.map_or(0, |e| e.input_per_mtok_micros),
        output_per_mtok_micros: like.map_or(0, |e| e.output_per_mtok_micros),
        cached_input_per_mtok_micros: like.and_then(|e| e.cached_input_per_mtok_micros),
        per_request_micros: like.map_or(0, |e| e.per_request_micros),
        default_region: None,
        regions: None,
    };
    match models.iter_mut().find(|m| m.id == slug) {
        Some(m) if m.endpoint(ProviderSlug::Azure).is_some() => {}
        Some(m) => {
            let e = azure(m.endpoints.first());
            m.endpoints.push(e);
        }
        None => models.push(Model {
            id: slug.to_owned(),
            name: slug.to_owned(),
            context_length: 0,
            created: 0,
            input_modalities: vec!["text".to_owned()],
            output_modalities: vec!["text".to_owned()],
            supported_parameters: Vec::new(),
            endpoints: vec![azure(None)],
        }),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices(input: u64, output: u64, cached: Option<u64>, per_request: u64) -> Prices {
        Prices { input_per_mtok_micros: input, output_per_mtok_micros: output, cached_input_per_mtok_micros: cached, per_request_micros: per_request }
    }

    fn usage(p: u64, c: u64, cached: u64) -> Usage {
        Usage { prompt_tokens: p, completion_tokens: c, cached_tokens: cached, cache_write_tokens: 0 }
    }

    const RULES: FeeRules = FeeRules { byok_fee_percent: 5, byok_free_requests_per_month: 1_000_000 };

    // gpt-4o-mini: $0.15 / $0.60 per Mtok, cached $0.075.
    const MINI: Prices = Prices { input_per_mtok_micros: 150_000, output_per_mtok_micros: 600_000, cached_input_per_mtok_micros: Some(75_000), per_request_micros: 0 };

    #[test]
    fn exact_costs() {
        // 1M in + 1M out = 0.75 USD exactly.
        assert_eq!(cost_micros(&usage(1_000_000, 1_000_000, 0), &MINI), 750_000);
        // 1000 in, 500 out: 150 + 300 = 450 micros.
        assert_eq!(cost_micros(&usage(1000, 500, 0), &MINI), 450);
        // gpt-4o: $2.50 / $10 per Mtok; 12,345 in + 6,789 out = 30,862.5 + 67,890 = 98,752.5 -> 98,753 micros.
        let gpt4o = prices(2_500_000, 10_000_000, Some(1_250_000), 0);
        assert_eq!(cost_micros(&usage(12_345, 6_789, 0), &gpt4o), 98_753);
        // 1 token at $2.50/Mtok = 2.5 micros -> 3; at $0.15/Mtok = 0.15 -> 0.
        assert_eq!(cost_micros(&usage(1, 0, 0), &gpt4o), 3);
        assert_eq!(cost_micros(&usage(1, 0, 0), &MINI), 0);
        assert_eq!(cost_micros(&Usage::default(), &MINI), 0);
    }

    #[test]
    fn cached_tokens_use_the_cached_price_or_the_input_price() {
        // 1000 prompt of which 400 cached: 600*0.15 + 400*0.075 = 90 + 30 = 120 micros.
        assert_eq!(cost_micros(&usage(1000, 0, 400), &MINI), 120);
        let no_cached = prices(150_000, 600_000, None, 0);
        assert_eq!(cost_micros(&usage(1000, 0, 400), &no_cached), 150);
        // A provider reporting more cached than prompt tokens is clamped, never underflows.
        assert_eq!(cost_micros(&usage(10, 0, 50), &prices(1_000_000, 0, Some(0), 0)), 0);
    }

    #[test]
    fn rounding_is_half_up_once_over_the_sum() {
        let p = prices(1, 1, None, 0); // 1 micro per Mtok: one token is 1e-6 micro
        assert_eq!(cost_micros(&usage(499_999, 0, 0), &p), 0);
        assert_eq!(cost_micros(&usage(500_000, 0, 0), &p), 1, "exactly half rounds up");
        assert_eq!(cost_micros(&usage(1_499_999, 0, 0), &p), 1);
        // Two halves add up before rounding: 250k in + 250k out = 0.5 -> 1, not 0 + 0.
        assert_eq!(cost_micros(&usage(250_000, 250_000, 0), &p), 1);
    }

    #[test]
    fn per_request_price_is_added_after_rounding() {
        let p = prices(150_000, 600_000, None, 2_000);
        assert_eq!(cost_micros(&usage(1000, 500, 0), &p), 2_450);
        assert_eq!(cost_micros(&Usage::default(), &p), 2_000);
    }

    #[test]
    fn huge_numbers_saturate_instead_of_overflowing() {
        let p = prices(u64::MAX, u64::MAX, None, u64::MAX);
        assert_eq!(cost_micros(&usage(u64::MAX, u64::MAX, 0), &p), u64::MAX);
        assert_eq!(percent_of(u64::MAX, 100), u64::MAX);
    }

    #[test]
    fn estimates_assume_max_output_and_no_cache() {
        assert_eq!(estimate_micros(&MINI, 1000, 1000), 750);
        assert_eq!(estimate_micros(&MINI, 0, 0), 0);
    }

    #[test]
    fn fee_percent_rounding() {
        assert_eq!(percent_of(450, 5), 23, "22.5 rounds up");
        assert_eq!(percent_of(449, 5), 22, "22.45 rounds down");
        assert_eq!(percent_of(10, 5), 1, "0.5 rounds up");
        assert_eq!(percent_of(9, 5), 0);
        assert_eq!(percent_of(1_000_000, 0), 0);
        assert_eq!(percent_of(1_000_000, 100), 1_000_000);
    }

    #[test]
    fn system_traffic_pays_the_full_catalog_price() {
        let c = charge(450, false, 5, &RULES);
        assert_eq!(c, Charge { cost_micros: 450, fee_micros: 0, charged_micros: 450 });
        // The BYOK ordinal doesn't matter for system traffic (fallback to system pays full price too).
        assert_eq!(charge(450, false, 2_000_000, &RULES).charged_micros, 450);
    }

    #[test]
    fn byok_waiver_boundary_at_the_nth_request() {
        let rules = FeeRules { byok_fee_percent: 5, byok_free_requests_per_month: 3 };
        for n in 1..=3 {
            assert_eq!(charge(1000, true, n, &rules), Charge { cost_micros: 1000, fee_micros: 0, charged_micros: 0 }, "request {n} is free");
        }
        assert_eq!(charge(1000, true, 4, &rules), Charge { cost_micros: 1000, fee_micros: 50, charged_micros: 50 }, "request N+1 pays");
        assert_eq!(charge(1000, true, 1_000, &rules).fee_micros, 50);
        // No waiver at all.
        let none = FeeRules { byok_fee_percent: 5, byok_free_requests_per_month: 0 };
        assert_eq!(charge(1000, true, 1, &none).fee_micros, 50);
        // The default: a million free.
        assert_eq!(charge(1000, true, 1_000_000, &RULES).fee_micros, 0);
        assert_eq!(charge(1000, true, 1_000_001, &RULES).fee_micros, 50);
    }

    #[test]
    fn fallback_from_byok_to_system_is_charged_at_full_price() {
        // The serving attempt decides: a BYOK attempt failed, a system key served.
        let byok_served = charge(cost_micros(&usage(1000, 500, 0), &MINI), true, 2_000_000, &RULES);
        let system_served = charge(cost_micros(&usage(1000, 500, 0), &MINI), false, 2_000_000, &RULES);
        assert_eq!(byok_served.charged_micros, 23);
        assert_eq!(system_served.charged_micros, 450);
        assert_eq!(Charge::charged(450, 23, true), 23);
        assert_eq!(Charge::charged(450, 0, false), 450);
    }

    fn ms(y: i32, m: u32, d: u32, h: i64) -> i64 {
        day_start_ms(days_from_civil(i64::from(y), m, d)) + h * 3_600_000
    }

    #[test]
    fn calendar() {
        assert_eq!(ms(1970, 1, 1, 0), 0);
        assert_eq!(ms(2024, 3, 1, 0), 1_709_251_200_000);
        assert_eq!(Month::of(1_709_251_200_000), Month { year: 2024, month: 3 });
        assert_eq!(Month::of(1_709_251_200_000 - 1), Month { year: 2024, month: 2 }, "leap-year February");
        assert_eq!(Month { year: 2024, month: 12 }.next(), Month { year: 2025, month: 1 });
        assert_eq!(Month { year: 2025, month: 1 }.start_ms(), ms(2025, 1, 1, 0));
        assert_eq!(Month::of(-1), Month { year: 1969, month: 12 });
        assert_eq!(day_of(ms(2025, 6, 30, 23)) + 1, day_of(ms(2025, 7, 1, 0)));
        // Every month start maps back to its month, and one millisecond earlier to the previous.
        let mut m = Month { year: 1999, month: 1 };
        for _ in 0..400 {
            assert_eq!(Month::of(m.start_ms()), m);
            assert_eq!(Month::of(m.next().start_ms() - 1), m);
            m = m.next();
        }
    }

    #[test]
    fn monthly_counter_rolls_over_at_midnight_utc_on_the_first() {
        let rules = FeeRules { byok_fee_percent: 5, byok_free_requests_per_month: 2 };
        let mut c = MonthlyCounter::default();
        let jan31 = ms(2025, 1, 31, 23) + 3_599_999; // 23:59:59.999
        let feb1 = ms(2025, 2, 1, 0);
        let fees: Vec<u64> = [jan31, jan31, jan31].iter().map(|&t| charge(1000, true, c.next(t), &rules).fee_micros).collect();
        assert_eq!(fees, vec![0, 0, 50]);
        assert_eq!(c.current(jan31), 3);
        assert_eq!(c.current(feb1), 0, "a new month starts from zero");
        let fees: Vec<u64> = [feb1, feb1, feb1].iter().map(|&t| charge(1000, true, c.next(t), &rules).fee_micros).collect();
        assert_eq!(fees, vec![0, 0, 50], "the waiver is granted again in February");
        // December -> January crosses a year.
        let mut c = MonthlyCounter::default();
        c.next(ms(2024, 12, 31, 12));
        assert_eq!(c.next(ms(2025, 1, 1, 0)), 1);
    }

    #[test]
    fn overrides_replace_only_the_given_prices() {
        let cat = Catalog::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let o = PriceOverride {
            model: "openai/gpt-4o-mini".into(),
            provider: "openai".into(),
            input_per_mtok_micros: Some(1),
            output_per_mtok_micros: None,
            cached_input_per_mtok_micros: None,
            per_request_micros: Some(7),
        };
        let c = apply_overrides(&cat, std::slice::from_ref(&o)).unwrap();
        let e = c.get("openai/gpt-4o-mini").and_then(|m| m.endpoint(ProviderSlug::OpenAi)).unwrap();
        assert_eq!((e.input_per_mtok_micros, e.output_per_mtok_micros, e.per_request_micros), (1, 600_000, 7));
        // The other provider of the same model keeps its catalog price.
        let az = c.get("openai/gpt-4o-mini").and_then(|m| m.endpoint(ProviderSlug::Azure)).unwrap();
        assert_eq!(az.input_per_mtok_micros, 150_000);

        let bad = PriceOverride { model: "openai/nope".into(), ..o.clone() };
        assert!(matches!(apply_overrides(&cat, &[bad]), Err(PricingError::UnknownModel { .. })));
        let bad = PriceOverride { provider: "anthropic".into(), ..o };
        assert!(matches!(apply_overrides(&cat, &[bad]), Err(PricingError::UnknownEndpoint { .. })));
    }

    #[test]
    fn azure_overrides_price_any_deployed_model() {
        let cat = Catalog::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        let o = |model: &str, input: Option<u64>| PriceOverride {
            model: model.into(),
            provider: "Azure".into(),
            input_per_mtok_micros: input,
            output_per_mtok_micros: None,
            cached_input_per_mtok_micros: None,
            per_request_micros: None,
        };
        // Not in the catalog: added with an Azure endpoint at the configured price (0 elsewhere).
        let c = apply_overrides(&cat, &[o("openai/gpt-5.2-deployment-x", Some(1_750_000))]).unwrap();
        let e = c.get("openai/gpt-5.2-deployment-x").and_then(|m| m.endpoint(ProviderSlug::Azure)).unwrap();
        assert_eq!((e.input_per_mtok_micros, e.output_per_mtok_micros, e.model_id.as_str()), (1_750_000, 0, "gpt-5.2-deployment-x"));
        // In the catalog but not at Azure: starts from the catalog's price for the model.
        let llama = cat.get("meta-llama/llama-3.3-70b-instruct").unwrap();
        let first = llama.endpoints[0].output_per_mtok_micros;
        let c = apply_overrides(&cat, &[o("meta-llama/llama-3.3-70b-instruct", Some(42))]).unwrap();
        let e = c.get("meta-llama/llama-3.3-70b-instruct").and_then(|m| m.endpoint(ProviderSlug::Azure)).unwrap();
        assert_eq!((e.input_per_mtok_micros, e.output_per_mtok_micros), (42, first));
        assert!(matches!(apply_overrides(&cat, &[o("no-slash", Some(1))]), Err(PricingError::UnknownModel { .. })));
    }

    #[test]
    fn override_toml_shape() {
        let o: PriceOverride = serde_json::from_str(r#"{"model":"openai/gpt-4o","provider":"azure","output_per_mtok_micros":5}"#).unwrap();
        assert_eq!(o.output_per_mtok_micros, Some(5));
        assert!(serde_json::from_str::<PriceOverride>(r#"{"model":"a","provider":"b","input":5}"#).is_err(), "unknown fields are refused");
    }
}
