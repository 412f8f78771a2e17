//! The one typed configuration: `keyway.toml` (optional), then `KEYWAY_*` environment variables
//! (`__` nests: `KEYWAY_PROVIDERS__OPENAI__BASE_URL`), then command-line flags.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use keyway_core::ProviderSlug;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The catalog `keyway catalog update` installs in `data_dir`.
pub const CATALOG_FILE: &str = "catalog.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Holds the SQLite file (`keyway.db`) and `master.key`.
    pub data_dir: PathBuf,
    /// PostgreSQL URL; SQLite in `data_dir` when absent.
    pub database_url: Option<String>,
    /// Redis URL (`redis://host:6379/0`): when set, rate limits, concurrency caps, credit balances, budgets and credential cooldowns are shared with every node using the same Redis and `[cluster] key_prefix` (see docs/deploy.md). Per node when absent.
    pub redis_url: Option<String>,
    /// Base64 of a 32-byte master key; else `data_dir/master.key` (created on first start).
    #[serde(skip_serializing)]
    pub master_key: Option<SecretString>,
    /// Retired master keys (base64), still able to open records sealed before a rotation.
    #[serde(skip_serializing)]
    pub retired_master_keys: Vec<SecretString>,
    /// A management key to register on first start instead of generating one (automation).
    #[serde(skip_serializing)]
    pub bootstrap_management_key: Option<SecretString>,
    /// Per-provider settings, by slug.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// A PEM file of root certificates trusted for upstream HTTPS beside the Mozilla roots: a private CA in front of a self-hosted or proxied upstream (`base_url`). Upstream connections are HTTP/1.1 (see docs/providers.md).
    pub upstream_ca_file: Option<PathBuf>,
    /// The operator's own credentials, used after BYOK keys.
    pub system_credentials: Vec<SystemCredentialConfig>,
    pub billing: Billing,
    /// Per-workspace limits (per-key limits are set on each key over the management API).
    pub limits: LimitsConfig,
    /// Generation records (the usage writer).
    pub usage: UsageConfig,
    /// A model catalog JSON file to use instead of the built-in one (same shape as `crates/keyway-core/data/catalog.json`). Without it, `data_dir/catalog.json` is used when present (`keyway catalog update --file PATH` puts it there), else the built-in catalog. `[[pricing]]` applies on top either way.
    pub catalog_file: Option<PathBuf>,
    /// Catalog price overrides (`[[pricing]]`, see `keyway_core::pricing::PriceOverride`).
    pub pricing: Vec<keyway_core::pricing::PriceOverride>,
    pub security: Security,
    /// Route planning: which keys come first, and how long a key whose account ran out of quota is left out (see docs/routing.md).
    pub routing: RoutingConfig,
    pub timeouts: TimeoutsConfig,
    /// Size caps on upstream answers.
    pub upstream: UpstreamConfig,
    /// Incoming connections: timeouts for slow or silent clients and a cap on open connections.
    pub server: ServerConfig,
    /// On SIGTERM or Ctrl-C: how long in-flight requests and streams may run on after the listener closes, in seconds; then the usage writer is flushed and the process exits.
    pub shutdown_grace_secs: u64,
    /// Largest request body accepted, in bytes (413 above). Request heads (request line and headers) are limited to 8 KiB (431 above).
    pub max_body_bytes: usize,
    /// `text` or `json`.
    pub log_format: String,
    pub telemetry: TelemetryConfig,
    pub dashboard: DashboardConfig,
    /// `GET /metrics` (Prometheus).
    pub metrics: MetricsConfig,
    /// Several nodes acting as one gateway (`redis_url`, a shared PostgreSQL `database_url`).
    pub cluster: ClusterConfig,
}

/// Several nodes behind one load balancer (`[cluster]`); see docs/deploy.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// While Redis is unreachable, refuse requests that have a shared limit, balance or budget (503) instead of admitting them on this node's own counters (the default: fail open, with the `keyway_shared_unavailable_total` metric and a log line).
    pub fail_closed: bool,
    /// Prefix of every Redis key and channel Keyway uses: nodes of one gateway share it; two gateways on one Redis must not.
    pub key_prefix: String,
    /// How long a concurrency slot outlives its node, in seconds: a live node renews its slots, a dead node's come back after this.
    pub slot_lease_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { fail_closed: false, key_prefix: "keyway".into(), slot_lease_secs: 30 }
    }
}

/// Who may read `/metrics` (`[metrics]`): open on the main address by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Require `Authorization: Bearer <token>` on `/metrics`: a reference (`env:NAME`, `file:/path`); 401 without it.
    #[serde(skip_serializing)]
    pub bearer_token: Option<String>,
    /// Serve `/metrics` on this address only (e.g. `127.0.0.1:9090`), not on `listen`.
    pub listen: Option<SocketAddr>,
}

/// The web dashboard served at `/` (`[dashboard]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DashboardConfig {
    /// How long a dashboard sign-in lasts, in seconds, before the management key must be entered again. Sessions live in this node's memory: a restart signs everyone out.
    pub session_ttl_secs: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self { session_ttl_secs: 8 * 3600 }
    }
}

/// OpenTelemetry trace export (`[telemetry]`): off unless `otlp_endpoint` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP (protobuf) collector base URL, e.g. `http://127.0.0.1:4318`; spans go to `/v1/traces` under it. No export when absent.
    pub otlp_endpoint: Option<String>,
    /// `service.name` on every exported span.
    pub service_name: String,
    /// Per-export timeout, in milliseconds.
    pub export_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { otlp_endpoint: None, service_name: "keyway".into(), export_timeout_ms: 10_000 }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderSettings {
    /// Overrides the provider's public base URL (`{region}`, `{location}`, `{resource}` are filled per request).
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemCredentialConfig {
    /// Provider slug (`openai`, `anthropic`, `amazon-bedrock`, ...).
    pub provider: String,
    /// A reference: `env:NAME` or `file:/path` (a literal works too, but keep secrets out of files).
    pub key: String,
    /// Shown in logs and metrics instead of the secret (default `system-<provider>`).
    #[serde(default)]
    pub name: Option<String>,
    /// The operator declares this credential zero-data-retention (for `provider.zdr`).
    #[serde(default)]
    pub zdr: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Billing {
    /// Refuse requests (402) a workspace's credits can't cover. Off by default: a single-team
    /// install pays its providers directly and needs no ledger.
    pub credits_enabled: bool,
    /// Percent of the catalog price charged on BYOK traffic (default 0: a self-hosted gateway
    /// charges nothing for keys its users bring; OpenRouter's terms are 5 after 1,000,000).
    pub byok_fee_percent: u64,
    /// BYOK requests per workspace and calendar month (UTC) without the fee.
    pub byok_free_requests_per_month: u64,
    /// How often the in-memory balances are re-read from the store (other nodes' charges, top-ups).
    pub reconcile_interval_secs: u64,
}

impl Default for Billing {
    fn default() -> Self {
        Self { credits_enabled: false, byok_fee_percent: 0, byok_free_requests_per_month: 1_000_000, reconcile_interval_secs: 60 }
    }
}

/// Limits on a whole workspace, checked in addition to each key's own (see docs/billing.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Limits for every workspace not named in `workspaces` (`requests_per_minute`, `tokens_per_minute`, `max_concurrent`, `budget_daily_micros`, `budget_monthly_micros`).
    pub workspace_default: Option<keyway_store::Limits>,
    /// Limits for one workspace, by id or slug (`[limits.workspaces.team-a]`); replaces `workspace_default` for it.
    pub workspaces: BTreeMap<String, keyway_store::Limits>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageConfig {
    /// Write a generation record for every request. A benchmarking and diagnostic switch: with it off there is no usage history, activity or BYOK waiver count in the store. Keep it on.
    pub record: bool,
    /// Records waiting for the writer; past it new records are dropped and counted (`keyway_usage_dropped_total`), never waited for.
    pub queue_capacity: usize,
    /// How long the writer waits for more records before writing a batch that isn't full (up to 512 rows): one transaction per wait instead of one per handful of records.
    pub batch_linger_ms: u64,
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self { record: true, queue_capacity: 65_536, batch_linger_ms: 50 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Security {
    /// Hosts a caller-supplied URL (Azure `endpoint_url`, Vertex `token_uri`) may point at:
    /// `host`, `host:port`, or `*.domain` for subdomains.
    pub allowed_upstream_hosts: Vec<String>,
    /// Whether system credentials may follow request-scoped BYOK keys.
    pub system_after_request_keys: bool,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            allowed_upstream_hosts: vec![
                "*.openai.azure.com".into(),
                "*.services.ai.azure.com".into(),
                "*.cognitiveservices.azure.com".into(),
                "oauth2.googleapis.com".into(),
            ],
            system_after_request_keys: true,
        }
    }
}

/// `[routing]`: the rules of the route plan a deployment may choose.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RoutingConfig {
    /// `byok_first` (every provider's BYOK keys before any system key) or `provider_order` (provider by provider in `provider.order`; within each, the team's keys before the system key). A request overrides it with `provider.byok_first`.
    pub precedence: PrecedenceConfig,
    /// A key whose account answered "out of quota or credit" is left out of every plan for this many seconds, then one request tries it again (an owner re-enabling the key clears it at once).
    pub quota_recheck_secs: u64,
    /// Per workspace, by id or slug (`[routing.workspaces]` then `team-a = "provider_order"`); replaces `precedence` for it.
    pub workspaces: BTreeMap<String, PrecedenceConfig>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self { precedence: PrecedenceConfig::ByokFirst, quota_recheck_secs: 3600, workspaces: BTreeMap::new() }
    }
}

/// `routing.precedence` as written in config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrecedenceConfig {
    #[default]
    ByokFirst,
    ProviderOrder,
}

impl From<PrecedenceConfig> for keyway_core::route::Precedence {
    fn from(p: PrecedenceConfig) -> Self {
        match p {
            PrecedenceConfig::ByokFirst => keyway_core::route::Precedence::ByokFirst,
            PrecedenceConfig::ProviderOrder => keyway_core::route::Precedence::ProviderOrder,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeoutsConfig {
    /// Connecting to an upstream (TCP + TLS), in milliseconds; past it the next attempt runs.
    pub connect_ms: u64,
    /// Waiting for an upstream's response head or first stream event, in milliseconds.
    pub first_byte_ms: u64,
    /// Longest silence between two stream events before the stream counts as failed, in milliseconds.
    pub idle_ms: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self { connect_ms: 10_000, first_byte_ms: 120_000, idle_ms: 120_000 }
    }
}

/// What an upstream may send (`[upstream]`): past a cap the attempt fails with a 502 (the next attempt runs), so memory stays bounded whatever an upstream answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamConfig {
    /// Largest whole (non-streamed) answer read from an upstream, in bytes.
    pub max_answer_bytes: usize,
    /// Largest single line or event of an upstream's stream, in bytes.
    pub max_event_bytes: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self { max_answer_bytes: 64 * 1024 * 1024, max_event_bytes: 16 * 1024 * 1024 }
    }
}

/// Incoming connections (`[server]`): what a slow or silent client may hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// A request head (request line and headers) must arrive whole within this many milliseconds of its first byte; else the connection is closed.
    pub header_read_timeout_ms: u64,
    /// A request body must arrive whole within this many milliseconds of its head; else the request is answered 408.
    pub body_read_timeout_ms: u64,
    /// A connection with no request in flight (a new one that sends nothing, or a keep-alive one between requests) is closed after this many milliseconds.
    pub idle_timeout_ms: u64,
    /// Open client connections served at once. Past it a new connection is answered 503 (`/health` still 200) and closed. Lowered at start to fit the open-files limit (`ulimit -n`): half of it, less 64.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { header_read_timeout_ms: 30_000, body_read_timeout_ms: 60_000, idle_timeout_ms: 60_000, max_connections: 10_000 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./keyway-data"),
            database_url: None,
            redis_url: None,
            master_key: None,
            retired_master_keys: Vec::new(),
            bootstrap_management_key: None,
            providers: BTreeMap::new(),
            upstream_ca_file: None,
            system_credentials: Vec::new(),
            billing: Billing::default(),
            limits: LimitsConfig::default(),
            usage: UsageConfig::default(),
            catalog_file: None,
            pricing: Vec::new(),
            security: Security::default(),
            routing: RoutingConfig::default(),
            timeouts: TimeoutsConfig::default(),
            upstream: UpstreamConfig::default(),
            server: ServerConfig::default(),
            shutdown_grace_secs: 30,
            max_body_bytes: 4 * 1024 * 1024,
            log_format: "text".into(),
            telemetry: TelemetryConfig::default(),
            dashboard: DashboardConfig::default(),
            metrics: MetricsConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("configuration: unknown provider `{0}` in [providers]")]
    UnknownProvider(String),
    #[error("configuration: [metrics] bearer_token: {0}")]
    MetricsToken(String),
    #[error("configuration: system credential {index}: {message}")]
    SystemCredential { index: usize, message: String },
    #[error("configuration: {file}: unknown key `{key}` in {table}{hint}")]
    UnknownKey { file: String, key: String, table: String, hint: String },
}

impl Config {
    /// Defaults, then the TOML file (if given or `./keyway.toml` exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        check_unknown_keys(file.unwrap_or(Path::new("keyway.toml")))?;
        match file {
            Some(f) => fig = fig.merge(Toml::file_exact(f)),
            None => fig = fig.merge(Toml::file("keyway.toml")),
        }
        Self::from_figment(fig.merge(Env::prefixed("KEYWAY_").split("__")))
    }

    pub fn from_figment(fig: Figment) -> Result<Self, ConfigError> {
        let cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for name in self.providers.keys() {
            provider_from_key(name).ok_or_else(|| ConfigError::UnknownProvider(name.clone()))?;
        }
        Ok(())
    }

    /// Base-URL overrides by provider.
    pub fn base_urls(&self) -> std::collections::HashMap<ProviderSlug, String> {
        self.providers
            .iter()
            .filter_map(|(k, v)| Some((provider_from_key(k)?, v.base_url.clone()?)))
            .collect()
    }

    /// Where the catalog comes from: `catalog_file`, else `data_dir/catalog.json` when it exists
    /// (`None`: the built-in one).
    pub fn catalog_path(&self) -> Option<PathBuf> {
        match &self.catalog_file {
            Some(p) => Some(p.clone()),
            None => Some(self.data_dir.join(CATALOG_FILE)).filter(|p| p.is_file()),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| keyway_store::Store::sqlite_url(&self.data_dir))
    }
}

/// A key the configuration doesn't know is an error, not silently ignored (`byok_fee_pecrent`
/// would otherwise leave the fee at its default). Read and syntax errors are left to figment,
/// which reports them with their place.
fn check_unknown_keys(path: &Path) -> Result<(), ConfigError> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let Ok(value) = toml::from_str::<toml::Value>(&text) else { return Ok(()) };
    let mut unknown = Vec::new();
    let _: Result<Config, _> = serde_ignored::deserialize(value, |p| unknown.push(p.to_string()));
    let Some(full) = unknown.into_iter().next() else { return Ok(()) };
    let (table, key) = match full.rsplit_once('.') {
        Some((t, k)) => (t.to_owned(), k.to_owned()),
        None => (String::new(), full.clone()),
    };
    let hint = suggestion(&table, &key).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
    let table = if table.is_empty() { "the top level".to_owned() } else { format!("[{}]", table.split('.').filter(|s| s.parse::<usize>().is_err() && *s != "?").collect::<Vec<_>>().join(".")) };
    Err(ConfigError::UnknownKey { file: path.display().to_string(), key, table, hint })
}

/// The closest known key of `table` to `key`, when it is close enough to be a typo.
fn suggestion(table: &str, key: &str) -> Option<String> {
    let mut known: Vec<String> = vec!["master_key".into(), "retired_master_keys".into(), "bootstrap_management_key".into()];
    let mut node = serde_json::to_value(Config::default()).ok()?;
    for seg in table.split('.').filter(|s| !s.is_empty()) {
        node = match node {
            serde_json::Value::Object(mut m) => m.remove(seg).unwrap_or(serde_json::Value::Null),
            // A list or a map of tables: any element shows the element's keys.
            serde_json::Value::Array(a) => a.into_iter().next().unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::Null,
        };
    }
    if !table.is_empty() {
        known.clear();
    }
    if let serde_json::Value::Object(m) = &node {
        known.extend(m.keys().cloned());
    }
    match table.split('.').next() {
        Some("providers") => known.push("base_url".into()),
        Some("system_credentials") => known.extend(["provider", "key", "name", "zdr"].map(String::from)),
        _ => {}
    }
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(&k, key), k))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Environment variables can't hold `-`: `amazon_bedrock` names `amazon-bedrock`. Display names
/// and aliases (`AWS Bedrock`, `xAI`) work too, as on the management API.
pub fn provider_from_key(k: &str) -> Option<ProviderSlug> {
    ProviderSlug::parse_alias(&k.to_ascii_lowercase().replace('_', "-")).or_else(|| ProviderSlug::parse_name(k))
}

/// Resolves `env:NAME` / `file:/path` references (operator config only: never caller input).
pub fn resolve_secret(reference: &str) -> Result<SecretString, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name).map(SecretString::from).map_err(|_| format!("environment variable `{name}` is not set"));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|s| SecretString::from(s.trim().to_owned()))
            .map_err(|e| format!("cannot read `{path}`: {e}"));
    }
    Ok(SecretString::from(reference.to_owned()))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
mod tests {
    use super::*;

    #[test]
    fn env_nesting_and_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KEYWAY_LISTEN", "127.0.0.1:9999");
            jail.set_env("KEYWAY_PROVIDERS__OPENAI__BASE_URL", "http://127.0.0.1:1/v1");
            jail.set_env("KEYWAY_PROVIDERS__AMAZON_BEDROCK__BASE_URL", "http://127.0.0.1:2");
            jail.create_file("keyway.toml", "[billing]\nbyok_fee_percent = 7\n")?;
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 9999);
            assert_eq!(c.billing.byok_fee_percent, 7);
            assert!(!c.billing.credits_enabled);
            let urls = c.base_urls();
            assert_eq!(urls.get(&ProviderSlug::OpenAi).map(String::as_str), Some("http://127.0.0.1:1/v1"));
            assert_eq!(urls.get(&ProviderSlug::AmazonBedrock).map(String::as_str), Some("http://127.0.0.1:2"));
            Ok(())
        });
    }

    #[test]
    fn secrets_load_from_env_and_file_but_never_debug_print() {
        use secrecy::ExposeSecret;
        figment::Jail::expect_with(|jail| {
            jail.set_env("KEYWAY_MASTER_KEY", "TUFTVEVSLUtFWS1TRUNSRVQ=");
            jail.set_env("KEYWAY_BOOTSTRAP_MANAGEMENT_KEY", "kw-mgmt-BOOTSTRAP-SECRET-000000");
            jail.create_file("keyway.toml", "retired_master_keys = [\"UkVUSVJFRC1TRUNSRVQ=\"]\n")?;
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.master_key.as_ref().map(|k| k.expose_secret()), Some("TUFTVEVSLUtFWS1TRUNSRVQ="));
            assert_eq!(c.bootstrap_management_key.as_ref().map(|k| k.expose_secret()), Some("kw-mgmt-BOOTSTRAP-SECRET-000000"));
            assert_eq!(c.retired_master_keys.iter().map(|k| k.expose_secret()).collect::<Vec<_>>(), ["UkVUSVJFRC1TRUNSRVQ="]);
            let shown = format!("{c:?} {:?}", c.clone());
            for secret in ["TUFTVEVS", "BOOTSTRAP-SECRET", "UkVUSVJF"] {
                assert!(!shown.contains(secret), "{secret} in Debug output: {shown}");
            }
            // Never written back either (`skip_serializing`).
            let written = serde_json::to_string(&c).map_err(|e| e.to_string())?;
            assert!(!written.contains("TUFTVEVS") && !written.contains("BOOTSTRAP") && !written.contains("UkVUSVJF"), "{written}");
            Ok(())
        });
    }

    #[test]
    fn unknown_provider_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("k.toml", "[providers.nope]\nbase_url = \"http://x\"\n")?;
            assert!(matches!(Config::load(Some(Path::new("k.toml"))), Err(ConfigError::UnknownProvider(_))));
            Ok(())
        });
    }

    #[test]
    fn secret_references() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KW_TEST_SECRET", "s3cret");
            use secrecy::ExposeSecret;
            assert_eq!(resolve_secret("env:KW_TEST_SECRET").map(|s| s.expose_secret().to_owned()), Ok("s3cret".into()));
            assert!(resolve_secret("env:KW_MISSING_VAR").is_err());
            Ok(())
        });
    }
}

#[cfg(test)]
mod unknown_key_tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("keyway.toml");
        std::fs::write(&f, toml).unwrap();
        Config::load(Some(&f))
    }

    #[test]
    fn a_misspelt_key_is_an_error_naming_it_its_table_and_the_likely_key() {
        let e = load("[billing]\nbyok_fee_pecrent = 5\n").unwrap_err().to_string();
        assert!(e.contains("`byok_fee_pecrent`") && e.contains("[billing]") && e.contains("did you mean `byok_fee_percent`"), "{e}");
        let e = load("listn = \"127.0.0.1:1\"\n").unwrap_err().to_string();
        assert!(e.contains("`listn`") && e.contains("the top level") && e.contains("`listen`"), "{e}");
        let e = load("[providers.openai]\nbase_ulr = \"http://x\"\n").unwrap_err().to_string();
        assert!(e.contains("[providers.openai]") && e.contains("`base_url`"), "{e}");
        let e = load("[[system_credentials]]\nprovider = \"openai\"\nkey = \"env:X\"\nzdrr = true\n").unwrap_err().to_string();
        assert!(e.contains("[system_credentials]") && e.contains("`zdr`"), "{e}");
        // Far from every key: no guess, still an error.
        let e = load("[security]\ncompletely_unrelated = 1\n").unwrap_err().to_string();
        assert!(e.contains("completely_unrelated") && !e.contains("did you mean"), "{e}");
        // The example file and a correct file load.
        assert!(load("[billing]\nbyok_fee_percent = 5\n").is_ok());
    }
}
