use crate::{Engine, Result, Store, StoreError};
use sqlx::Row;
use std::sync::Arc;

/// A route plan's JSON text and the id it is stored under: the first 128 bits of the text's
/// SHA-256 in hex, so that every node names the same plan alike and a generation row keeps 32
/// bytes instead of the ~700-byte text. Made once per distinct plan (the gateway keeps them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    /// `None` for a plan read from a row recorded before plans had their own table.
    pub id: Option<String>,
    pub text: String,
}

impl RoutePlan {
    pub fn new(text: String) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(text.as_bytes());
        Self { id: Some(hex::encode(&digest[..16])), text }
    }
}

/// One request as recorded (see the gateway's usage module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationRow {
    pub id: String,
    pub workspace_id: String,
    pub api_key_hash: String,
    pub user_id: Option<String>,
    pub requested_model: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub credential_id: Option<String>,
    pub is_byok: bool,
    pub streamed: bool,
    pub status: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cache_write_tokens: i64,
    pub has_usage: bool,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    /// JSON list of attempts.
    pub attempts: String,
    pub finish_reason: Option<String>,
    pub app_referer: Option<String>,
    pub app_title: Option<String>,
    pub cost_micros: i64,
    pub fee_micros: i64,
    pub created_at: i64,
    /// The route plan (candidates and exclusions); `None` for rows older than it. Written to
    /// `route_plans` once (when it has an id) and named by the row.
    pub route_plan: Option<Arc<RoutePlan>>,
}

/// What the dashboard's request list narrows by; `None` (or empty) = any.
#[derive(Debug, Clone, Default)]
pub struct GenerationFilter {
    pub model: Option<String>,
    pub provider: Option<String>,
    pub api_key_hash: Option<String>,
    pub credential_id: Option<String>,
    /// `Some(true)`: answered (status 200); `Some(false)`: failed.
    pub succeeded: Option<bool>,
    /// Only requests that tried more than one attempt.
    pub fell_back: bool,
}

/// The columns every generation row has, in the order the writers bind them.
macro_rules! row_columns {
    () => {
        "id, workspace_id, api_key_hash, user_id, requested_model, model, provider, credential_id, is_byok, streamed, \
         status, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, has_usage, latency_ms, ttft_ms, attempts, \
         finish_reason, app_referer, app_title, cost_micros, fee_micros, created_at"
    };
}
const COLUMNS: &str = concat!(row_columns!(), ", route_plan, route_plan_id");
const NCOLS: usize = 27;
/// What reads select: the plan's text from its table, or from the row for older rows.
const SELECT_COLUMNS: &str = concat!(
    row_columns!(),
    ", route_plan_id, COALESCE((SELECT plan FROM route_plans WHERE route_plans.id = generations.route_plan_id), route_plan) AS route_plan"
);
const PLAN_INSERT: &str = "INSERT INTO route_plans (id, plan, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING";

/// The row's inline text and its plan's id, as the two columns take them: a plan with an id
/// is named, one without (read from an old row and written back, e.g. by a test) stays inline.
fn plan_columns(g: &GenerationRow) -> (Option<&str>, Option<&str>) {
    match g.route_plan.as_deref() {
        Some(RoutePlan { id: Some(id), .. }) => (None, Some(id)),
        Some(RoutePlan { id: None, text }) => (Some(text), None),
        None => (None, None),
    }
}

/// The batch's plans the store has not been seen to hold yet, each once.
fn new_plans<'a>(rows: &'a [GenerationRow], written: &PlansWritten) -> Vec<&'a RoutePlan> {
    let known = written.lock();
    let mut out: Vec<&RoutePlan> = Vec::new();
    for p in rows.iter().filter_map(|g| g.route_plan.as_deref()) {
        if let Some(id) = &p.id {
            if !known.contains(id.as_str()) && !out.iter().any(|o| o.id.as_deref() == Some(id)) {
                out.push(p);
            }
        }
    }
    out
}

/// One (workspace, key, UTC day)'s part of a batch, added to `usage_days` in the batch's
/// transaction.
#[derive(Debug, Default, Clone, Copy)]
struct DayTotal {
    charged: i64,
    spend: i64,
    byok: i64,
}

const DAY_UPSERT: &str = "INSERT INTO usage_days (workspace_id, api_key_hash, day, charged_micros, spend_micros, byok_requests) \
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace_id, api_key_hash, day) DO UPDATE SET \
    charged_micros = usage_days.charged_micros + excluded.charged_micros, \
    spend_micros = usage_days.spend_micros + excluded.spend_micros, \
    byok_requests = usage_days.byok_requests + excluded.byok_requests";

/// The batch summed per (workspace, key, day), in key order: nodes writing the same days take
/// the rows' locks in the same order (PostgreSQL would otherwise deadlock two batches).
fn day_totals(rows: &[GenerationRow]) -> std::collections::BTreeMap<(&str, &str, i64), DayTotal> {
    let mut out: std::collections::BTreeMap<(&str, &str, i64), DayTotal> = std::collections::BTreeMap::new();
    for g in rows {
        let t = out.entry((g.workspace_id.as_str(), g.api_key_hash.as_str(), keyway_core::pricing::day_of(g.created_at))).or_default();
        t.charged = t.charged.saturating_add(if g.is_byok { g.fee_micros } else { g.cost_micros });
        t.spend = t.spend.saturating_add(g.cost_micros.saturating_add(g.fee_micros));
        t.byok += i64::from(g.is_byok && g.provider.is_some());
    }
    out
}

/// Ids of plans this process wrote (or found written), so that a batch only inserts new ones.
/// Bounded: past [`PLANS_REMEMBERED`] it starts over (an insert of a known plan changes nothing).
#[derive(Default)]
pub(crate) struct PlansWritten(std::sync::Mutex<std::collections::HashSet<String>>);

const PLANS_REMEMBERED: usize = 4096;

impl PlansWritten {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// After the batch's transaction committed.
    fn remember(&self, plans: &[&RoutePlan]) {
        let mut known = self.lock();
        if known.len() + plans.len() > PLANS_REMEMBERED {
            known.clear();
        }
        known.extend(plans.iter().filter_map(|p| p.id.clone()));
    }
}

fn row_to_gen(r: &sqlx::any::AnyRow) -> Result<GenerationRow> {
    let flag = |c: &str| -> Result<bool> { Ok(r.try_get::<i64, _>(c)? != 0) };
    Ok(GenerationRow {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        api_key_hash: r.try_get("api_key_hash")?,
        user_id: r.try_get("user_id")?,
        requested_model: r.try_get("requested_model")?,
        model: r.try_get("model")?,
        provider: r.try_get("provider")?,
        credential_id: r.try_get("credential_id")?,
        is_byok: flag("is_byok")?,
        streamed: flag("streamed")?,
        status: r.try_get("status")?,
        prompt_tokens: r.try_get("prompt_tokens")?,
        completion_tokens: r.try_get("completion_tokens")?,
        cached_tokens: r.try_get("cached_tokens")?,
        cache_write_tokens: r.try_get("cache_write_tokens")?,
        has_usage: flag("has_usage")?,
        latency_ms: r.try_get("latency_ms")?,
        ttft_ms: r.try_get("ttft_ms")?,
        attempts: r.try_get("attempts")?,
        finish_reason: r.try_get("finish_reason")?,
        app_referer: r.try_get("app_referer")?,
        app_title: r.try_get("app_title")?,
        cost_micros: r.try_get("cost_micros")?,
        fee_micros: r.try_get("fee_micros")?,
        created_at: r.try_get("created_at")?,
        route_plan: match r.try_get::<Option<String>, _>("route_plan")? {
            Some(text) => Some(Arc::new(RoutePlan { id: r.try_get("route_plan_id")?, text })),
            None => None,
        },
    })
}

/// The usage writer's path on an SQLite file: a rusqlite connection of its own with the INSERT
/// prepared once, one `BEGIN IMMEDIATE` transaction per batch, on a blocking thread. Through
/// sqlx every row was a message to its worker thread plus argument boxing, ~21k instructions a
/// row, which made recording cost 16% of the gateway's throughput (bench/README.md).
pub(crate) struct SqliteWriter {
    path: std::path::PathBuf,
    conn: std::sync::Mutex<Option<rusqlite::Connection>>,
}

impl SqliteWriter {
    /// The file behind a SQLite URL, when it is a file that exists (in-memory databases are
    /// private to one connection and stay on the sqlx path).
    pub(crate) fn for_url(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
            return None;
        }
        let path = std::path::PathBuf::from(path);
        path.is_file().then(|| Self { path, conn: std::sync::Mutex::new(None) })
    }

    fn insert(&self, rows: &[GenerationRow], plans: &[&RoutePlan]) -> rusqlite::Result<()> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let conn = rusqlite::Connection::open_with_flags(
                &self.path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            // As the pool's connections: wait for other writers instead of failing with SQLITE_BUSY.
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Appends touch the right edge of the table and its indexes: 512 KiB of cache holds
            // them (the default 2 MiB stayed allocated after a burst).
            conn.pragma_update(None, "cache_size", -512)?;
            *guard = Some(conn);
        }
        let Some(conn) = guard.as_mut() else { return Ok(()) };
        let result = write_batch(conn, rows, plans);
        if result.is_err() {
            // Reopened on the next batch: a connection left in a bad state must not stick.
            *guard = None;
        }
        result
    }
}

/// Rows per INSERT statement on the writer's connection: each execution of a statement has a
/// fixed cost (cursors opened on the table and both indexes, the halt), ~5k instructions, which
/// a 16-row statement pays once for 16 rows.
const SQLITE_ROWS_PER_STATEMENT: usize = 16;

fn write_batch(conn: &mut rusqlite::Connection, rows: &[GenerationRow], plans: &[&RoutePlan]) -> rusqlite::Result<()> {
    // Two statement texts only (full chunks, and single rows for the rest), so that each is
    // prepared once and then found in the connection's statement cache.
    static MANY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static ONE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if !plans.is_empty() {
        let now = rows.first().map_or(0, |g| g.created_at);
        let mut st = tx.prepare_cached(PLAN_INSERT)?;
        for p in plans {
            st.execute(rusqlite::params![p.id, p.text, now])?;
        }
    }
    {
        let mut many = tx.prepare_cached(MANY.get_or_init(|| sqlite_insert(SQLITE_ROWS_PER_STATEMENT)))?;
        let mut one = tx.prepare_cached(ONE.get_or_init(|| sqlite_insert(1)))?;
        for chunk in rows.chunks(SQLITE_ROWS_PER_STATEMENT) {
            if chunk.len() == SQLITE_ROWS_PER_STATEMENT {
                bind_and_run(&mut many, chunk)?;
            } else {
                for row in chunk {
                    bind_and_run(&mut one, std::slice::from_ref(row))?;
                }
            }
        }
        let mut days = tx.prepare_cached(DAY_UPSERT)?;
        for ((ws, key, day), t) in day_totals(rows) {
            days.execute(rusqlite::params![ws, key, day, t.charged, t.spend, t.byok])?;
        }
    }
    tx.commit()
}

fn bind_and_run(st: &mut rusqlite::Statement<'_>, rows: &[GenerationRow]) -> rusqlite::Result<()> {
    let mut i = 0;
    let mut bind = |v: &dyn rusqlite::ToSql| -> rusqlite::Result<()> {
        i += 1;
        st.raw_bind_parameter(i, v)
    };
    for g in rows {
        bind(&g.id)?;
        bind(&g.workspace_id)?;
        bind(&g.api_key_hash)?;
        bind(&g.user_id)?;
        bind(&g.requested_model)?;
        bind(&g.model)?;
        bind(&g.provider)?;
        bind(&g.credential_id)?;
        bind(&i64::from(g.is_byok))?;
        bind(&i64::from(g.streamed))?;
        bind(&g.status)?;
        bind(&g.prompt_tokens)?;
        bind(&g.completion_tokens)?;
        bind(&g.cached_tokens)?;
        bind(&g.cache_write_tokens)?;
        bind(&i64::from(g.has_usage))?;
        bind(&g.latency_ms)?;
        bind(&g.ttft_ms)?;
        bind(&g.attempts)?;
        bind(&g.finish_reason)?;
        bind(&g.app_referer)?;
        bind(&g.app_title)?;
        bind(&g.cost_micros)?;
        bind(&g.fee_micros)?;
        bind(&g.created_at)?;
        let (inline, id) = plan_columns(g);
        bind(&inline)?;
        bind(&id)?;
    }
    st.raw_execute()?;
    Ok(())
}

fn sqlite_insert(rows: usize) -> String {
    let row = format!("({})", vec!["?"; NCOLS].join(", "));
    format!("INSERT INTO generations ({COLUMNS}) VALUES {}", vec![row; rows].join(", "))
}

impl Store {
    /// Inserts a batch in one transaction (all or nothing).
    pub async fn insert_generations(&self, rows: std::sync::Arc<[GenerationRow]>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(w) = &self.generation_writer {
            let w = w.clone();
            let written = self.plans_written.clone();
            self.queries.fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
            return tokio::task::spawn_blocking(move || {
                let plans = new_plans(&rows, &written);
                w.insert(&rows, &plans)?;
                written.remember(&plans);
                Ok::<_, rusqlite::Error>(())
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(StoreError::from);
        }
        let plans = new_plans(&rows, &self.plans_written);
        let mut tx = self.pool.begin().await?;
        for p in &plans {
            self.count();
            sqlx::query(PLAN_INSERT).bind(p.id.clone()).bind(p.text.clone()).bind(rows[0].created_at).execute(&mut *tx).await?;
        }
        // PostgreSQL: multi-row VALUES keeps a batch to a few round trips (25 columns x 32 rows).
        // (In-memory SQLite, tests only, binds one row per statement.)
        let rows_per_statement = match self.engine {
            Engine::Sqlite => 1,
            Engine::Postgres => 32,
        };
        for chunk in rows.chunks(rows_per_statement) {
            let mut sql = format!("INSERT INTO generations ({COLUMNS}) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for c in 0..NCOLS {
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    // SQLite looks a numbered parameter's name up by a linear scan per parameter
                    // (quadratic over a multi-row statement); anonymous `?` binds in order.
                    match self.engine {
                        Engine::Sqlite => sql.push('?'),
                        Engine::Postgres => sql.push_str(&format!("${}", i * NCOLS + c + 1)),
                    }
                }
                sql.push(')');
            }
            let mut q = sqlx::query(&sql);
            for g in chunk {
                q = q
                    .bind(g.id.clone())
                    .bind(g.workspace_id.clone())
                    .bind(g.api_key_hash.clone())
                    .bind(g.user_id.clone())
                    .bind(g.requested_model.clone())
                    .bind(g.model.clone())
                    .bind(g.provider.clone())
                    .bind(g.credential_id.clone())
                    .bind(i64::from(g.is_byok))
                    .bind(i64::from(g.streamed))
                    .bind(g.status)
                    .bind(g.prompt_tokens)
                    .bind(g.completion_tokens)
                    .bind(g.cached_tokens)
                    .bind(g.cache_write_tokens)
                    .bind(i64::from(g.has_usage))
                    .bind(g.latency_ms)
                    .bind(g.ttft_ms)
                    .bind(g.attempts.clone())
                    .bind(g.finish_reason.clone())
                    .bind(g.app_referer.clone())
                    .bind(g.app_title.clone())
                    .bind(g.cost_micros)
                    .bind(g.fee_micros)
                    .bind(g.created_at);
                let (inline, id) = plan_columns(g);
                q = q.bind(inline.map(str::to_owned)).bind(id.map(str::to_owned));
            }
            self.count();
            q.execute(&mut *tx).await?;
        }
        for ((ws, key, day), t) in day_totals(&rows) {
            self.count();
            sqlx::query(DAY_UPSERT).bind(ws).bind(key).bind(day).bind(t.charged).bind(t.spend).bind(t.byok).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.plans_written.remember(&plans);
        Ok(())
    }

    /// One generation, within `workspace_id` when given.
    pub async fn get_generation(&self, workspace_id: Option<&str>, id: &str) -> Result<GenerationRow> {
        self.count();
        let row = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM generations WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let g = row_to_gen(&row)?;
        if workspace_id.is_some_and(|ws| ws != g.workspace_id) {
            return Err(StoreError::NotFound);
        }
        Ok(g)
    }

    pub async fn count_generations(&self, workspace_id: &str) -> Result<i64> {
        self.count();
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM generations WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// The newest generations (up to `limit`), in `workspace_id` when given, narrowed by `filter`.
    pub async fn recent_generations(&self, workspace_id: Option<&str>, filter: &GenerationFilter, limit: i64) -> Result<Vec<GenerationRow>> {
        let mut sql = format!("SELECT {SELECT_COLUMNS} FROM generations WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let mut eq = |col: &str, v: Option<&str>, sql: &mut String| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                args.push(v.to_owned());
                sql.push_str(&format!(" AND {col} = ${}", args.len()));
            }
        };
        eq("workspace_id", workspace_id, &mut sql);
        eq("COALESCE(model, requested_model)", filter.model.as_deref(), &mut sql);
        eq("provider", filter.provider.as_deref(), &mut sql);
        eq("api_key_hash", filter.api_key_hash.as_deref(), &mut sql);
        eq("credential_id", filter.credential_id.as_deref(), &mut sql);
        match filter.succeeded {
            Some(true) => sql.push_str(" AND status = 200"),
            Some(false) => sql.push_str(" AND status <> 200"),
            None => {}
        }
        // A fallback left more than one attempt in the JSON list.
        if filter.fell_back {
            sql.push_str(" AND attempts LIKE '%},{%'");
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ${}", args.len() + 1));
        let mut q = sqlx::query(&sql);
        for a in &args {
            q = q.bind(a.clone());
        }
        self.count();
        let rows = q.bind(limit.clamp(1, 1000)).fetch_all(&self.pool).await?;
        rows.iter().map(row_to_gen).collect()
    }

    /// Every generation of a workspace, oldest first (exports and tests; not for the request path).
    pub async fn list_generations(&self, workspace_id: &str) -> Result<Vec<GenerationRow>> {
        self.count();
        let rows = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM generations WHERE workspace_id = $1 ORDER BY created_at, id"))
            .bind(workspace_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_to_gen).collect()
    }
}
