//! Keyway's persistence.
//!
//! One [`Store`] serves both engines through sqlx's `Any` driver: SQLite (the embedded default,
//! a file in the data dir) and PostgreSQL (when several gateway nodes share state). The schema in
//! `migrations/` is written once in the dialect both accept, and the same conformance tests run
//! against both, which is what a second implementation would have had to prove anyway.
//!
//! Secrets never reach the database in the clear: [`Store::create_byok`] seals them with the
//! [`Keyring`] bound to `(workspace_id, id)`, inside the same statement that writes the row.
//!
//! [`dump`] moves a whole store between engines as one file (`keyway store export` / `import`).

mod activity;
mod audit;
mod byok;
mod credits;
pub mod dump;
mod generations;
mod keyring;
mod keys;
mod records;
pub mod shared;
pub mod signal;
mod workspaces;

pub use activity::{ActivityGroup, ActivityRow};
pub use audit::{AuditActor, AuditEntry, AuditFilter, AuditRow};
pub use byok::{ByokListing, UnreadableByok};
pub use credits::{CreditEntry, CreditKind, CreditTotals};
pub use dump::{ColumnKind, DumpError, DumpReport, DumpTable, DUMP_TABLES};
pub use generations::{GenerationFilter, GenerationRow, RoutePlan};
pub use keyring::{KeyringKey, RotationFailure, RotationReport};
pub use workspaces::Bootstrapped;
pub use records::*;

use keyway_crypto::Keyring;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// From the usage writer's own SQLite connection (see `generations.rs`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A blocking database task did not finish (the runtime is shutting down).
    #[error("database task failed: {0}")]
    Task(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database was migrated by a newer Keyway than this one.
    #[error("the database schema is at version {found}, newer than this build of Keyway knows (up to {known}): upgrade this node to the release that migrated it (running an older node on a newer schema could write rows the newer one misreads)")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("stored secret could not be opened: {0}")]
    Crypto(#[from] keyway_crypto::CryptoError),
    #[error("stored credential is invalid: {0}")]
    Credential(#[from] keyway_core::CredentialError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The database handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    keyring: Arc<Keyring>,
    /// Root key ids once [`Store::open_keyring`] ran, the current one first: they seal the
    /// keyring's own keys.
    roots: Arc<std::sync::Mutex<Vec<String>>>,
    /// Set on a handle from [`Store::audited`]: its mutations also write this audit entry.
    audit: Option<Arc<AuditEntry>>,
    engine: Engine,
    queries: Arc<AtomicU64>,
    /// Errors reported with [`Store::note_error`] (shared by clones).
    errors: Arc<AtomicU64>,
    /// Credential rows skipped because they could not be read (shared by clones).
    unreadable: Arc<AtomicU64>,
    /// SQLite file stores: the generation writer's own connection (shared by clones).
    generation_writer: Option<Arc<generations::SqliteWriter>>,
    /// Route plans known to be in the store (shared by clones).
    plans_written: Arc<generations::PlansWritten>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("engine", &self.engine).finish_non_exhaustive()
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connects (creating a SQLite file if needed) and runs pending migrations.
    pub async fn connect(url: &str, keyring: Arc<Keyring>) -> Result<Self> {
        let (pool, engine) = open_pool(url, true).await?;
        refuse_newer_schema(&pool).await?;
        // On PostgreSQL sqlx holds an advisory lock while migrating: nodes starting at once
        // take turns, and the later ones find nothing left to do.
        MIGRATOR.run(&pool).await?;
        Ok(Self::with_pool(pool, engine, url, keyring))
    }

    /// Opens a store that must already exist, as it is: no SQLite file is created and no
    /// migration runs. For reading a store without changing it (`keyway store export`).
    pub async fn open_existing(url: &str, keyring: Arc<Keyring>) -> Result<Self> {
        let (pool, engine) = open_pool(url, false).await?;
        Ok(Self::with_pool(pool, engine, url, keyring))
    }

    fn with_pool(pool: AnyPool, engine: Engine, url: &str, keyring: Arc<Keyring>) -> Self {
        let generation_writer = match engine {
            Engine::Sqlite => generations::SqliteWriter::for_url(url).map(Arc::new),
            Engine::Postgres => None,
        };
        Self { pool, keyring, roots: Arc::default(), audit: None, engine, queries: Arc::new(AtomicU64::new(0)), errors: Arc::default(), unreadable: Arc::default(), generation_writer, plans_written: Arc::default() }
    }

    /// The newest schema version (migration) this build knows.
    pub fn known_schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// A SQLite URL for a file in `dir`.
    pub fn sqlite_url(dir: &std::path::Path) -> String {
        format!("sqlite://{}", dir.join("keyway.db").display())
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Number of queries issued so far through this handle and its clones (the hot path must
    /// not move it after warm-up).
    pub fn query_count(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// A handle on the same pool whose queries are counted apart: the background usage writer
    /// takes one, so that the request path's [`Store::query_count`] shows only what requests cost.
    pub fn with_separate_count(&self) -> Store {
        Self { queries: Arc::new(AtomicU64::new(0)), ..self.clone() }
    }

    /// Counts a failure of the database itself (not "not found" or a conflict, which are answers).
    /// Callers on the request path report theirs: the `keyway_db_errors_total{source="store"}` metric.
    pub fn note_error(&self, e: &StoreError) {
        if !matches!(e, StoreError::NotFound | StoreError::Conflict(_)) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Errors counted by [`Store::note_error`] so far.
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Credential rows skipped so far because they could not be read (`keyway_credentials_unreadable_total`).
    pub fn unreadable_count(&self) -> u64 {
        self.unreadable.load(Ordering::Relaxed)
    }

    /// Whether the store can serve: it answers a query, and every migration this build knows
    /// has been applied (none failed half-way). The reason when not.
    pub async fn readiness(&self) -> std::result::Result<(), String> {
        self.count();
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(|e| format!("store unreachable: {e}"))?;
        // `success` is BOOLEAN, which the Any driver can't map on SQLite: compare in SQL.
        let rows: Vec<(i64, i32)> = sqlx::query_as("SELECT version, CASE WHEN success THEN 1 ELSE 0 END FROM _sqlx_migrations")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| format!("cannot read the migration table: {e}"))?;
        for m in MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()) {
            match rows.iter().find(|(v, _)| *v == m.version) {
                Some((_, 1)) => {}
                Some(_) => return Err(format!("migration {} ({}) failed part-way", m.version, m.description)),
                None => return Err(format!("migration {} ({}) is not applied; run `keyway migrate`", m.version, m.description)),
            }
        }
        Ok(())
    }

    fn count(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }

    pub async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        self.count();
        let v: Option<(String,)> = sqlx::query_as("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(&self.pool).await?;
        Ok(v.map(|v| v.0))
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.count();
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A pool on `url`; `create` lets SQLite create a missing file (else opening one fails).
async fn open_pool(url: &str, create: bool) -> Result<(AnyPool, Engine)> {
    sqlx::any::install_default_drivers();
    let engine = if url.starts_with("postgres:") || url.starts_with("postgresql:") { Engine::Postgres } else { Engine::Sqlite };
    let pool = match engine {
        Engine::Sqlite => {
            let mode = if create { "rwc" } else { "rw" };
            let url = if url.contains('?') { url.to_owned() } else { format!("{url}?mode={mode}") };
            // WAL + a busy timeout: concurrent writers wait instead of failing with SQLITE_BUSY.
            // Each connection's page cache is capped at 256 KiB (SQLite's default is 2 MiB) and
            // a connection idle for 30 s is closed with it. The request path reads nothing from
            // here after warm-up; scans (the dashboard's, and the reconcile's before it read
            // `usage_days`) left every connection they went through holding its full cache:
            // ~11 MB idle (bench/README.md, 2026-12-08). The file's pages stay in the OS's cache.
            AnyPoolOptions::new()
                .max_connections(8)
                .min_connections(0)
                .idle_timeout(std::time::Duration::from_secs(30))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA cache_size = -256").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                        Ok(())
                    })
                })
                .connect(&url)
                .await?
        }
        // A short acquire timeout: with the database out of reach, a management call answers
        // 503 in seconds instead of hanging for sqlx's default 30.
        Engine::Postgres => AnyPoolOptions::new().max_connections(16).acquire_timeout(std::time::Duration::from_secs(3)).connect(url).await?,
    };
    Ok((pool, engine))
}

/// Refuses a schema some newer Keyway migrated (sqlx's own error would only say a migration
/// "is missing"): the operator is told to upgrade the node instead.
async fn refuse_newer_schema(pool: &AnyPool) -> Result<()> {
    let known = Store::known_schema_version();
    // No table yet: a fresh database.
    let found: Option<(i64,)> = match sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations").fetch_optional(pool).await {
        Ok(v) => v,
        Err(_) => return Ok(()),
    };
    match found {
        Some((found,)) if found > known => Err(StoreError::SchemaTooNew { found, known }),
        _ => Ok(()),
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A unique-constraint violation, whatever the engine calls it.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            matches!(d.code().as_deref(), Some("23505") | Some("2067") | Some("1555")) || d.message().contains("UNIQUE")
        }
        _ => false,
    }
}
