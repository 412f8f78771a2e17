//! Everything a request handler needs, built once at start-up.

use crate::cache::{CredentialCache, KeyCache};
use crate::config::{provider_from_key, resolve_secret, Config, ConfigError};
use crate::health::HealthBoard;
use keyway_core::catalog::Catalog;
use keyway_core::{Credential, ProviderSlug};
use keyway_crypto::{Keyring, MasterKey};
use keyway_providers::{Providers, ProvidersConfig, Timeouts};
use keyway_store::Store;
use secrecy::ExposeSecret;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// An operator credential from `[[system_credentials]]`.
#[derive(Debug)]
pub struct SystemCredential {
    pub provider: ProviderSlug,
    pub name: String,
    pub credential: Arc<Credential>,
    pub zdr: bool,
}

pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub providers: Arc<Providers>,
    pub catalog: Catalog,
    pub keys: KeyCache,
    pub credentials: CredentialCache,
    pub system: Vec<SystemCredential>,
    /// The planner's view of `system` (same order).
    pub system_metas: Vec<keyway_core::route::SystemCredential>,
    pub health: HealthBoard,
    /// `[routing]`: each workspace's precedence.
    pub routing: crate::routing::RoutingPolicy,
    /// Observed latency and throughput per endpoint, for `provider.sort` (`stats.rs`).
    pub stats: crate::stats::StatsBoard,
    /// The route plans' JSON texts for generation rows, written once per distinct plan.
    pub plan_texts: crate::explain::PlanTexts,
    pub usage: crate::usage::UsageRecorder,
    /// Credits, BYOK waiver counts and key spend, in memory (`billing.rs`).
    pub billing: Arc<crate::billing::Ledger>,
    /// Per-key rate and concurrency limits (`limits.rs`).
    pub limiter: crate::limits::Limiter,
    /// `/metrics` (Prometheus); fed by `usage` as each request finishes.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Dashboard sign-ins (`dashboard/session.rs`).
    pub sessions: crate::sessions::Sessions,
    /// Counters, cooldowns and change signals shared with other nodes (`cluster.rs`).
    pub cluster: crate::cluster::Cluster,
}

pub type SharedState = Arc<AppState>;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("data dir `{path}`: {error}")]
    DataDir { path: String, error: std::io::Error },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("bootstrap_management_key (KEYWAY_BOOTSTRAP_MANAGEMENT_KEY): {0}")]
    BootstrapKey(String),
    #[error(transparent)]
    Store(#[from] keyway_store::StoreError),
    #[error("catalog: {0}")]
    Catalog(#[from] keyway_core::catalog::CatalogError),
    #[error("pricing: {0}")]
    Pricing(#[from] keyway_core::pricing::PricingError),
    #[error("providers: {0}")]
    Providers(#[from] keyway_providers::registry::BuildError),
    #[error("upstream_ca_file `{path}`: {error}")]
    UpstreamCaFile { path: String, error: std::io::Error },
    #[error("catalog file `{path}`: {error}")]
    CatalogFile { path: String, error: String },
    #[error(transparent)]
    Shared(#[from] keyway_store::shared::SharedError),
}

/// The operator's catalog (`catalog_file`, or the one `keyway catalog update` installed), else
/// the built-in one. A file that doesn't parse stops start-up rather than routing on a guess.
pub fn load_catalog(config: &Config) -> Result<Catalog, StartError> {
    let Some(path) = config.catalog_path() else {
        return Ok(Catalog::builtin()?);
    };
    let err = |error: String| StartError::CatalogFile { path: path.display().to_string(), error };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    let catalog = Catalog::from_json(&text).map_err(|e| err(e.to_string()))?;
    tracing::info!(path = %path.display(), models = catalog.models().len(), "model catalog loaded from file");
    Ok(catalog)
}

/// What the first start created; the raw management key is shown once and never again.
pub struct Bootstrap {
    pub workspace_id: String,
    pub management_key: Option<Zeroizing<String>>,
}

impl AppState {
    pub async fn build(config: Config) -> Result<(SharedState, Bootstrap), StartError> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .map_err(|error| StartError::DataDir { path: data_dir.display().to_string(), error })?;
        let keyring = Arc::new(load_keyring_from(&config, &data_dir, true)?);
        let root_id = keyring.current_id();
        let store = Store::connect(&config.database_url(), keyring).await?;
        check_permissions(&data_dir, config.database_url.is_none());
        let bootstrap = bootstrap(&store, &config, &root_id).await?;
        // After the root-key check: the keyring's own keys are sealed under the root.
        store.open_keyring().await?;

        let mut system = Vec::new();
        for (index, sc) in config.system_credentials.iter().enumerate() {
            let err = |message: String| ConfigError::SystemCredential { index, message };
            let provider = provider_from_key(&sc.provider).ok_or_else(|| err(format!("unknown provider `{}`", sc.provider)))?;
            let secret = resolve_secret(&sc.key).map_err(err)?;
            // Structured credentials (Bedrock, Vertex, Azure) are JSON inside the referenced value.
            let value = serde_json::Value::String(secrecy::ExposeSecret::expose_secret(&secret).to_owned());
            let credential = Credential::parse(provider, &value).map_err(|e| err(e.to_string()))?;
            system.push(SystemCredential {
                provider,
                name: sc.name.clone().unwrap_or_else(|| format!("system-{}", provider.as_str())),
                credential: Arc::new(credential),
                zdr: sc.zdr,
            });
        }

        let extra_roots = match &config.upstream_ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|error| StartError::UpstreamCaFile { path: path.display().to_string(), error })?;
                keyway_providers::client::read_pem_roots(&pem)?
            }
            None => Vec::new(),
        };
        let t = &config.timeouts;
        let providers = Providers::new(ProvidersConfig {
            base_urls: config.base_urls(),
            timeouts: Timeouts {
                connect: Duration::from_millis(t.connect_ms),
                first_byte: Duration::from_millis(t.first_byte_ms),
                idle: Duration::from_millis(t.idle_ms),
                max_answer_bytes: config.upstream.max_answer_bytes.max(1),
                max_event_bytes: config.upstream.max_event_bytes.max(1),
            },
            transport: None,
            extra_roots,
        })?;
        let system_metas = system
            .iter()
            .map(|s| keyway_core::route::SystemCredential {
                zdr: s.zdr,
                bedrock: match s.credential.as_ref() {
                    Credential::Bedrock(b) => Some(keyway_core::credential::BedrockScope::of(b)),
                    _ => None,
                },
                ..keyway_core::route::SystemCredential::new(s.provider)
            })
            .collect();
        let metrics_token = match &config.metrics.bearer_token {
            Some(reference) => Some(resolve_secret(reference).map_err(ConfigError::MetricsToken)?),
            None => None,
        };
        let metrics = Arc::new(crate::metrics::Metrics::new().with_token(metrics_token));
        metrics.spawn_upkeep(Duration::from_secs(5));
        // Balances are loaded before the first request and then kept in memory.
        let billing = Arc::new(crate::billing::Ledger::new(&config.billing));
        billing.reconcile(&store).await?;
        // Its own query counter: periodic reconciling is not request-path traffic.
        billing.spawn_reconciler(store.clone().with_separate_count(), Duration::from_secs(config.billing.reconcile_interval_secs.max(1)));
        // `[usage] record = false` is for benchmarks only: requests run as usual, nothing is stored.
        let usage = if config.usage.record { crate::usage::UsageRecorder::start(store.clone(), config.usage.queue_capacity.max(1), Duration::from_millis(config.usage.batch_linger_ms)) } else { crate::usage::UsageRecorder::disabled() };
        let usage = usage.with_metrics(metrics.clone()).with_hook(billing.clone());
        let limiter = crate::limits::Limiter::from_config(&config.limits, &store).await?;
        let routing = crate::routing::RoutingPolicy::from_config(&config.routing, &store).await?;
        let catalog = keyway_core::pricing::apply_overrides(&load_catalog(&config)?, &config.pricing)?;
        metrics.known_models.add(catalog.models().iter().map(|m| m.id.as_str()).chain(config.pricing.iter().map(|p| p.model.as_str())));
        let credentials = CredentialCache::new(Duration::from_secs(30)).with_known_models(metrics.known_models.clone());
        let cluster = crate::cluster::Cluster::new(&config).await?;
        let state = AppState {
            cluster,
            system_metas,
            usage,
            metrics,
            catalog,
            billing,
            limiter,
            keys: KeyCache::new(Duration::from_secs(30)),
            credentials,
            health: HealthBoard::new(keyway_core::route::HealthPolicy {
                quota_recheck: Duration::from_secs(config.routing.quota_recheck_secs),
                ..keyway_core::route::HealthPolicy::default()
            }),
            routing,
            stats: crate::stats::StatsBoard::default(),
            plan_texts: crate::explain::PlanTexts::default(),
            sessions: crate::sessions::Sessions::new(Duration::from_secs(config.dashboard.session_ttl_secs.max(1))),
            providers: Arc::new(providers),
            system,
            store,
            config: Arc::new(config),
        };
        let state = Arc::new(state);
        crate::cluster::start(&state);
        Ok((state, bootstrap))
    }
}

/// The root key (from `KEYWAY_MASTER_KEY` or `master.key`, which is created when `create` and
/// absent) plus `retired_master_keys`, as a keyring whose current key is the root.
pub fn load_keyring_from(config: &Config, data_dir: &Path, create: bool) -> Result<Keyring, StartError> {
    let bad = |e: keyway_crypto::CryptoError| StartError::MasterKey(e.to_string());
    let current = match &config.master_key {
        Some(b64) => MasterKey::from_base64(b64.expose_secret()).map_err(bad)?,
        None => {
            let path = data_dir.join("master.key");
            match std::fs::read_to_string(&path) {
                Ok(s) => MasterKey::from_base64(&s).map_err(bad)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                    let key = MasterKey::generate();
                    write_private(&path, key.to_base64().as_bytes())
                        .map_err(|e| StartError::MasterKey(format!("cannot write {}: {e}", path.display())))?;
                    key
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StartError::MasterKey(format!(
                        "no master key at {} (a data dir that `keyway serve` has never started, or KEYWAY_MASTER_KEY is not set)",
                        path.display()
                    )))
                }
                Err(e) => return Err(StartError::MasterKey(format!("cannot read {}: {e}", path.display()))),
            }
        }
    };
    let mut ring = Keyring::new(current);
    for old in &config.retired_master_keys {
        ring = ring.with_retired(MasterKey::from_base64(old.expose_secret()).map_err(bad)?);
    }
    Ok(ring)
}

/// The data dir is kept 0700 and what it holds 0600 (the database, its WAL, the master key):
/// anything looser is tightened at start (these are Keyway's own files) and said so in the log;
/// a mode that can't be changed is a warning.
fn check_permissions(data_dir: &Path, sqlite: bool) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut paths = vec![(data_dir.to_path_buf(), 0o700), (data_dir.join("master.key"), 0o600)];
        if sqlite {
            paths.extend(["keyway.db", "keyway.db-wal", "keyway.db-shm"].map(|f| (data_dir.join(f), 0o600)));
        }
        for (p, want) in paths {
            let Some(mode) = std::fs::metadata(&p).ok().map(|m| m.permissions().mode() & 0o777) else { continue };
            if mode & !want == 0 {
                continue;
            }
            match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(want)) {
                Ok(()) => tracing::info!(path = %p.display(), was = format!("{mode:o}"), now = format!("{want:o}"), "tightened permissions"),
                Err(e) => tracing::warn!(path = %p.display(), mode = format!("{mode:o}"), error = %e, "readable by others and can't be changed: fix its mode"),
            }
        }
    }
}

/// Creates `path` readable by its owner only (0600), failing if it exists.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Refuses a root key that can't open what the store holds (before anything is read or rotated).
pub async fn check_root_key(store: &Store, config: &Config) -> Result<(), StartError> {
    let key_id = store.keyring().current_id();
    match store.get_meta("master_key_id").await? {
        Some(sealed_with) => root_matches(&sealed_with, &key_id, config),
        None => Ok(()),
    }
}

fn root_matches(sealed_with: &str, key_id: &str, config: &Config) -> Result<(), StartError> {
    if sealed_with != key_id && !config.retired_master_keys.iter().any(|k| MasterKey::from_base64(k.expose_secret()).is_ok_and(|m| m.id() == sealed_with)) {
        return Err(StartError::MasterKey(format!(
            "this store was sealed with master key `{sealed_with}`, but the configured key is `{key_id}` \
             (set KEYWAY_MASTER_KEY to the original key, or list it in retired_master_keys after a rotation)"
        )));
    }
    Ok(())
}

async fn bootstrap(store: &Store, config: &Config, key_id: &str) -> Result<Bootstrap, StartError> {
    let given = config.bootstrap_management_key.as_ref().map(|k| k.expose_secret());
    if let Some(raw) = given {
        if !raw.starts_with(keyway_crypto::MANAGEMENT_PREFIX) || raw.len() < 24 {
            return Err(StartError::BootstrapKey("must start with `kw-mgmt-` and be at least 24 characters".into()));
        }
    }
    // One transaction: a crash part-way leaves nothing behind, and the next start redoes it.
    match store.bootstrap(key_id, given).await? {
        keyway_store::Bootstrapped::Created { workspace_id, raw_key, .. } => Ok(Bootstrap { workspace_id, management_key: raw_key }),
        keyway_store::Bootstrapped::Existing { workspace_id, master_key_id } => {
            // Refuse to start with a master key that can't open what the store holds.
            if let Some(sealed_with) = master_key_id {
                root_matches(&sealed_with, key_id, config)?;
            }
            Ok(Bootstrap { workspace_id, management_key: None })
        }
    }
}
