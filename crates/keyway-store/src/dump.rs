//! A whole store as one file, to move it between engines (SQLite to PostgreSQL and back):
//! `keyway store export` / `keyway store import`.
//!
//! The format is JSON Lines: a header, then for each table (in foreign-key order) a line naming
//! its columns followed by one JSON array per row (`null`, a string or an integer: every column
//! of the schema is TEXT or BIGINT), then an end line with each table's row count, so that a cut
//! file is refused instead of half imported:
//!
//! ```text
//! {"format":"keyway-store-dump","version":1,"schema_version":8,"source_engine":"sqlite","created_at":"…"}
//! {"table":"workspaces","columns":["id","name","slug","created_at"]}
//! ["6f1c…","Default","default",1733600000000]
//! …
//! {"end":true,"rows":{"workspaces":1,…}}
//! ```
//!
//! Values are copied as stored: secrets stay sealed (under the keyring, whose keys are sealed
//! under the root key), so the file is as sensitive as a database backup, no more. Import runs
//! in one transaction and, before committing, proves that the importing node's root key opens
//! every keyring key and every sealed credential: a wrong root key imports nothing.
//!
//! [`DUMP_TABLES`] is the schema as this build knows it. Export refuses a database whose tables
//! or columns differ from it, or whose schema version is not this build's newest, so a migration
//! that adds a column can't be silently left out of a dump (a test compares the list with a
//! freshly migrated database).

use crate::{Engine, Store, StoreError};
use futures::TryStreamExt;
use keyway_crypto::{Keyring, MasterKey};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::io::{BufRead, Write};

/// The first line's `format`.
pub const FORMAT: &str = "keyway-store-dump";
/// The dump format's version (not the schema's).
pub const FORMAT_VERSION: u32 = 1;

/// Bound parameters per INSERT: under SQLite's oldest default limit (999) and far under
/// PostgreSQL's (65535).
const PARAMS_PER_STATEMENT: usize = 900;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Int,
}

/// A table as the dump carries it. The first column is the primary key.
#[derive(Debug)]
pub struct DumpTable {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColumnKind)],
}

impl DumpTable {
    fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.0).collect()
    }

    fn position(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.0 == column)
    }
}

use ColumnKind::{Int, Text};

/// Every table of the schema with every column, in foreign-key order (a table comes after the
/// ones it references). Adding a migration means updating this list; a test fails until it is.
pub const DUMP_TABLES: &[DumpTable] = &[
    DumpTable { name: "workspaces", columns: &[("id", Text), ("name", Text), ("slug", Text), ("created_at", Int)] },
    DumpTable { name: "keyring_keys", columns: &[("id", Text), ("sealed", Text), ("state", Text), ("created_at", Int), ("retired_at", Int)] },
    DumpTable {
        name: "api_keys",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("hash", Text),
            ("name", Text),
            ("label", Text),
            ("kind", Text),
            ("admin", Int),
            ("disabled", Int),
            ("limits", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("role", Text),
        ],
    },
    DumpTable {
        name: "byok_credentials",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("provider", Text),
            ("name", Text),
            ("label", Text),
            ("sealed", Text),
            ("disabled", Int),
            ("is_fallback", Int),
            ("always_use", Int),
            ("is_byok_only", Int),
            ("sort_order", Int),
            ("allowed_models", Text),
            ("allowed_api_key_hashes", Text),
            ("allowed_user_ids", Text),
            ("model_mappings", Text),
            ("declared_region", Text),
            ("declared_zdr", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    DumpTable { name: "meta", columns: &[("key", Text), ("value", Text)] },
    DumpTable {
        name: "credit_entries",
        columns: &[("id", Text), ("workspace_id", Text), ("kind", Text), ("amount_micros", Int), ("note", Text), ("created_by", Text), ("created_at", Int)],
    },
    DumpTable { name: "route_plans", columns: &[("id", Text), ("plan", Text), ("created_at", Int)] },
    DumpTable {
        name: "generations",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("api_key_hash", Text),
            ("user_id", Text),
            ("requested_model", Text),
            ("model", Text),
            ("provider", Text),
            ("credential_id", Text),
            ("is_byok", Int),
            ("streamed", Int),
            ("status", Int),
            ("prompt_tokens", Int),
            ("completion_tokens", Int),
            ("cached_tokens", Int),
            ("cache_write_tokens", Int),
            ("has_usage", Int),
            ("latency_ms", Int),
            ("ttft_ms", Int),
            ("attempts", Text),
            ("finish_reason", Text),
            ("app_referer", Text),
            ("app_title", Text),
            ("cost_micros", Int),
            ("fee_micros", Int),
            ("created_at", Int),
            ("route_plan", Text),
            ("route_plan_id", Text),
        ],
    },
    DumpTable {
        name: "usage_days",
        columns: &[
            ("workspace_id", Text),
            ("api_key_hash", Text),
            ("day", Int),
            ("charged_micros", Int),
            ("spend_micros", Int),
            ("byok_requests", Int),
        ],
    },
    DumpTable {
        name: "audit_log",
        columns: &[
            ("id", Text),
            ("at", Int),
            ("workspace_id", Text),
            ("actor_key", Text),
            ("actor_name", Text),
            ("source", Text),
            ("action", Text),
            ("target_type", Text),
            ("target_id", Text),
            ("changes", Text),
            ("outcome", Text),
        ],
    },
];

/// Why an export or import stopped. Messages name tables, columns, line numbers and key ids,
/// never a stored value (a sealed secret is still a secret's ciphertext).
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot write the dump: {0}")]
    Write(std::io::Error),
    #[error("cannot read the dump at line {line}: {error}")]
    Read { line: u64, error: std::io::Error },
    #[error("the database has no migration table: it is not a Keyway store, or was never migrated")]
    NotMigrated,
    #[error("the database's schema is at version {found}, older than this build's {known}: run `keyway migrate` with this build first, then export")]
    SchemaBehind { found: i64, known: i64 },
    #[error("the database's schema is at version {found}, newer than this build knows (up to {known}): export with the Keyway release that migrated it")]
    SchemaAhead { found: i64, known: i64 },
    #[error("table `{table}` does not have the columns this build exports (missing: [{missing}], unexpected: [{unexpected}]); nothing was exported")]
    Columns { table: String, missing: String, unexpected: String },
    #[error("the database has tables this build does not export ({0}); nothing was exported")]
    UnknownTables(String),
    #[error("dump line {line}: {message}")]
    Format { line: u64, message: String },
    #[error("the dump ends at line {line} without its end line: the export was cut short or the file truncated")]
    Truncated { line: u64 },
    #[error("the dump was made at schema version {dump}, this build of Keyway is at {this}: {advice}")]
    SchemaVersion { dump: i64, this: i64, advice: &'static str },
    #[error("the target already holds data (table `{table}` has rows): import into a fresh database (`keyway migrate` only creates the schema)")]
    NotEmpty { table: &'static str },
    #[error("dump line {line}: {table} row `{id}` does not open with the configured master key: {reason}")]
    Custody { line: u64, table: &'static str, id: String, reason: String },
}

/// What an export wrote or an import inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpReport {
    pub schema_version: i64,
    /// Rows per table, in [`DUMP_TABLES`] order.
    pub rows: Vec<(&'static str, u64)>,
    /// The root key id the store records (`meta.master_key_id`): the key the secrets need.
    pub master_key_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    schema_version: i64,
    source_engine: String,
    created_at: String,
}

#[derive(Debug, Serialize)]
struct TableStart<'a> {
    table: &'a str,
    columns: Vec<&'a str>,
}

/// `{"end":true,"rows":{…}}` with the tables in dump order (a derived map would sort them).
struct End<'a>(&'a [(&'static str, u64)]);

impl Serialize for End<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Rows<'a>(&'a [(&'static str, u64)]);
        impl Serialize for Rows<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (t, n) in self.0 {
                    m.serialize_entry(t, n)?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("end", &true)?;
        m.serialize_entry("rows", &Rows(self.0))?;
        m.end()
    }
}

fn engine_name(e: Engine) -> &'static str {
    match e {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    }
}

fn write_line<W: Write>(out: &mut W, v: &impl Serialize) -> Result<(), DumpError> {
    serde_json::to_writer(&mut *out, v).map_err(|e| DumpError::Write(e.into()))?;
    out.write_all(b"\n").map_err(DumpError::Write)
}

/// One value of a row, as the dump and the database both hold it.
#[derive(Debug)]
enum Cell {
    Null,
    Text(String),
    Int(i64),
}

impl Store {
    /// The schema version the database is at (`MAX(version)` of the migration table).
    async fn schema_version(&self) -> Result<i64, DumpError> {
        let found: (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&self.pool).await.map_err(|_| DumpError::NotMigrated)?;
        found.0.ok_or(DumpError::NotMigrated)
    }

    /// The database's own tables (not the migration table or the engine's internal ones).
    pub async fn schema_tables(&self) -> Result<Vec<String>, DumpError> {
        let sql = match self.engine {
            Engine::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
            Engine::Postgres => {
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations' ORDER BY table_name"
            }
        };
        let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// A table's columns as the database has them, with their kind (`None`: a type the dump
    /// can't carry).
    pub async fn schema_columns(&self, table: &str) -> Result<Vec<(String, Option<ColumnKind>)>, DumpError> {
        let rows: Vec<(String, String)> = match self.engine {
            Engine::Sqlite => sqlx::query_as("SELECT name, type FROM pragma_table_info(?) ORDER BY cid").bind(table).fetch_all(&self.pool).await?,
            Engine::Postgres => {
                sqlx::query_as(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(table)
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(name, ty)| {
                let kind = match ty.to_ascii_lowercase().as_str() {
                    "text" => Some(Text),
                    "bigint" => Some(Int),
                    _ => None,
                };
                (name, kind)
            })
            .collect())
    }

    /// Checks that the database's tables and columns are exactly [`DUMP_TABLES`] and that its
    /// schema is this build's newest; returns the schema version.
    pub async fn check_dump_schema(&self) -> Result<i64, DumpError> {
        let known = Store::known_schema_version();
        let found = self.schema_version().await?;
        if found < known {
            return Err(DumpError::SchemaBehind { found, known });
        }
        if found > known {
            return Err(DumpError::SchemaAhead { found, known });
        }
        let unknown: Vec<String> = self.schema_tables().await?.into_iter().filter(|t| !DUMP_TABLES.iter().any(|d| d.name == t)).collect();
        if !unknown.is_empty() {
            return Err(DumpError::UnknownTables(unknown.join(", ")));
        }
        for t in DUMP_TABLES {
            let actual = self.schema_columns(t.name).await?;
            let missing: Vec<&str> = t.columns.iter().filter(|(c, k)| !actual.iter().any(|(a, ak)| a == c && *ak == Some(*k))).map(|c| c.0).collect();
            let unexpected: Vec<&str> = actual.iter().filter(|(a, ak)| !t.columns.iter().any(|(c, k)| a == c && *ak == Some(*k))).map(|a| a.0.as_str()).collect();
            if !missing.is_empty() || !unexpected.is_empty() {
                return Err(DumpError::Columns { table: t.name.to_owned(), missing: missing.join(", "), unexpected: unexpected.join(", ") });
            }
        }
        Ok(found)
    }

    /// Writes the whole store to `out` as a dump, streaming each table (never one in memory),
    /// from one read transaction so that the tables agree with each other. The database is
    /// only read. `out` should be buffered.
    pub async fn export_dump<W: Write>(&self, mut out: W) -> Result<DumpReport, DumpError> {
        let schema_version = self.check_dump_schema().await?;
        let mut tx = self.pool.begin().await?;
        if self.engine == Engine::Postgres {
            // One snapshot for every table (SQLite's read transaction is one already).
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        }
        let header = Header {
            format: FORMAT.to_owned(),
            version: FORMAT_VERSION,
            schema_version,
            source_engine: engine_name(self.engine).to_owned(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        write_line(&mut out, &header)?;
        let mut counts = Vec::with_capacity(DUMP_TABLES.len());
        let mut master_key_id = None;
        for t in DUMP_TABLES {
            let names = t.column_names();
            write_line(&mut out, &TableStart { table: t.name, columns: names.clone() })?;
            let sql = format!("SELECT {} FROM {} ORDER BY {}", names.join(", "), t.name, names[0]);
            let mut rows = sqlx::query(&sql).fetch(&mut *tx);
            let mut n = 0u64;
            let mut line = Vec::with_capacity(t.columns.len());
            while let Some(row) = rows.try_next().await? {
                line.clear();
                for (i, (_, kind)) in t.columns.iter().enumerate() {
                    let v = match kind {
                        Text => row.try_get::<Option<String>, _>(i)?.map(serde_json::Value::String),
                        Int => row.try_get::<Option<i64>, _>(i)?.map(serde_json::Value::from),
                    };
                    line.push(v.unwrap_or(serde_json::Value::Null));
                }
                if t.name == "meta" && line.first().and_then(|v| v.as_str()) == Some("master_key_id") {
                    master_key_id = line.get(1).and_then(|v| v.as_str()).map(str::to_owned);
                }
                write_line(&mut out, &line)?;
                n += 1;
            }
            drop(rows);
            counts.push((t.name, n));
        }
        tx.rollback().await?;
        write_line(&mut out, &End(&counts))?;
        out.flush().map_err(DumpError::Write)?;
        Ok(DumpReport { schema_version, rows: counts, master_key_id })
    }

    /// Imports a dump into this (empty) store, all of it in one transaction: rows are inserted
    /// in batches, and before the commit every keyring key must open under this handle's root
    /// key(s) and every sealed credential with those keys, else nothing is written. This
    /// handle's keyring must be the importing node's root key(s) as configured (not yet
    /// opened with [`Store::open_keyring`]).
    pub async fn import_dump<R: BufRead>(&self, input: R) -> Result<DumpReport, DumpError> {
        let mut tx = self.pool.begin().await?;
        match self.import_in(&mut tx, input).await {
            Ok(report) => {
                tx.commit().await?;
                Ok(report)
            }
            Err(e) => {
                // Said outright rather than left to the drop: nothing of the dump stays behind.
                tx.rollback().await?;
                Err(e)
            }
        }
    }

    async fn import_in<R: BufRead>(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, input: R) -> Result<DumpReport, DumpError> {
        let this = Store::known_schema_version();
        for t in DUMP_TABLES {
            let any: Option<(i64,)> = sqlx::query_as(&format!("SELECT 1 FROM {} LIMIT 1", t.name)).fetch_optional(&mut **tx).await?;
            if any.is_some() {
                return Err(DumpError::NotEmpty { table: t.name });
            }
        }
        let mut reader = Reader { lines: input.lines(), line: 0 };
        let mut custody = Custody::new(self.keyring());

        let header: Header = reader.object("the header")?;
        if header.format != FORMAT {
            return Err(DumpError::Format { line: 1, message: format!("not a Keyway store dump (format `{}`)", header.format) });
        }
        if header.version != FORMAT_VERSION {
            return Err(DumpError::Format { line: 1, message: format!("dump format version {} is not one this build reads ({FORMAT_VERSION})", header.version) });
        }
        if header.schema_version != this {
            let advice = if header.schema_version < this {
                "import with the Keyway release that made the dump (then upgrade: its migrations run on start), or upgrade the source with this build (`keyway migrate`) and export again"
            } else {
                "import with the Keyway release that made the dump, or a newer one"
            };
            return Err(DumpError::SchemaVersion { dump: header.schema_version, this, advice });
        }

        let mut counts = Vec::with_capacity(DUMP_TABLES.len());
        let mut master_key_id = None;
        let mut next = reader.next_value()?;
        for t in DUMP_TABLES {
            let (line, v) = next.ok_or(DumpError::Truncated { line: reader.line })?;
            let start = v.as_object().ok_or_else(|| DumpError::Format { line, message: format!("expected the start of table `{}`", t.name) })?;
            if start.get("table").and_then(|n| n.as_str()) != Some(t.name) {
                return Err(DumpError::Format { line, message: format!("expected the start of table `{}` (tables come in a fixed order)", t.name) });
            }
            let columns: Vec<&str> = start.get("columns").and_then(|c| c.as_array()).map(|a| a.iter().filter_map(|c| c.as_str()).collect()).unwrap_or_default();
            if columns != t.column_names() {
                return Err(DumpError::Format {
                    line,
                    message: format!("table `{}` has columns [{}], this build expects [{}]", t.name, columns.join(", "), t.column_names().join(", ")),
                });
            }
            let per_statement = (PARAMS_PER_STATEMENT / t.columns.len()).max(1);
            let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(per_statement);
            let mut n = 0u64;
            loop {
                // Rows until the line that ends the table (the next table's start, or the end).
                let (line, values) = match reader.next_value()? {
                    Some((line, serde_json::Value::Array(values))) => (line, values),
                    other => {
                        next = other;
                        break;
                    }
                };
                let row = to_row(t, line, values)?;
                custody.check(t, line, &row)?;
                if t.name == "meta" {
                    if let (Some(Cell::Text(k)), Some(Cell::Text(v))) = (row.first(), row.get(1)) {
                        if k == "master_key_id" {
                            custody.check_root_id(line, v)?;
                            master_key_id = Some(v.clone());
                        }
                    }
                }
                batch.push(row);
                n += 1;
                if batch.len() == per_statement {
                    self.insert_batch(tx, t, &mut batch).await?;
                }
            }
            self.insert_batch(tx, t, &mut batch).await?;
            counts.push((t.name, n));
        }

        let (line, end) = next.ok_or(DumpError::Truncated { line: reader.line })?;
        if end.get("end").and_then(|e| e.as_bool()) != Some(true) {
            return Err(DumpError::Format { line, message: "expected the end line after the last table".into() });
        }
        let declared = end.get("rows").and_then(|r| r.as_object()).ok_or_else(|| DumpError::Format { line, message: "the end line has no row counts".into() })?;
        for (table, n) in &counts {
            let want = declared.get(*table).and_then(|v| v.as_u64());
            if want != Some(*n) {
                return Err(DumpError::Format { line, message: format!("the end line counts {} rows in `{table}`, the dump holds {n}", want.map_or("no".to_owned(), |w| w.to_string())) });
            }
        }
        if let Some((line, _)) = reader.next_value()? {
            return Err(DumpError::Format { line, message: "content after the end line".into() });
        }
        Ok(DumpReport { schema_version: this, rows: counts, master_key_id })
    }

    /// Inserts `batch` (emptied) as one multi-row INSERT.
    async fn insert_batch(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, t: &DumpTable, batch: &mut Vec<Vec<Cell>>) -> Result<(), DumpError> {
        if batch.is_empty() {
            return Ok(());
        }
        let width = t.columns.len();
        let mut sql = format!("INSERT INTO {} ({}) VALUES ", t.name, t.column_names().join(", "));
        for r in 0..batch.len() {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..width {
                if c > 0 {
                    sql.push_str(", ");
                }
                match self.engine {
                    Engine::Sqlite => sql.push('?'),
                    Engine::Postgres => {
                        sql.push('$');
                        sql.push_str(&(r * width + c + 1).to_string());
                    }
                }
            }
            sql.push(')');
        }
        let mut q = sqlx::query(&sql);
        for row in batch.drain(..) {
            for (cell, (_, kind)) in row.into_iter().zip(t.columns) {
                q = match (cell, kind) {
                    (Cell::Null, Text) => q.bind(None::<String>),
                    (Cell::Null, Int) => q.bind(None::<i64>),
                    (Cell::Text(s), _) => q.bind(s),
                    (Cell::Int(i), _) => q.bind(i),
                };
            }
        }
        q.execute(&mut **tx).await?;
        Ok(())
    }
}

/// A row's values checked against its table's column kinds (never echoing a value).
fn to_row(t: &DumpTable, line: u64, values: Vec<serde_json::Value>) -> Result<Vec<Cell>, DumpError> {
    if values.len() != t.columns.len() {
        return Err(DumpError::Format { line, message: format!("a `{}` row has {} values, the table has {} columns", t.name, values.len(), t.columns.len()) });
    }
    values
        .into_iter()
        .zip(t.columns)
        .map(|(v, (col, kind))| match (v, kind) {
            (serde_json::Value::Null, _) => Ok(Cell::Null),
            (serde_json::Value::String(s), Text) => Ok(Cell::Text(s)),
            (serde_json::Value::Number(n), Int) => n.as_i64().map(Cell::Int).ok_or_else(|| bad_value(t, line, col, *kind)),
            _ => Err(bad_value(t, line, col, *kind)),
        })
        .collect()
}

fn bad_value(t: &DumpTable, line: u64, col: &str, kind: ColumnKind) -> DumpError {
    let want = match kind {
        Text => "a string or null",
        Int => "an integer or null",
    };
    DumpError::Format { line, message: format!("`{}.{col}` must be {want}", t.name) }
}

/// The dump's lines as JSON values with their line numbers.
struct Reader<R> {
    lines: std::io::Lines<R>,
    line: u64,
}

impl<R: BufRead> Reader<R> {
    /// The next non-empty line parsed, or `None` at the end of the file.
    fn next_value(&mut self) -> Result<Option<(u64, serde_json::Value)>, DumpError> {
        loop {
            let Some(text) = self.lines.next() else { return Ok(None) };
            self.line += 1;
            let line = self.line;
            let text = text.map_err(|error| DumpError::Read { line, error })?;
            if text.trim().is_empty() {
                continue;
            }
            // serde_json's message names a position, never the text around it.
            let v = serde_json::from_str(&text).map_err(|e| DumpError::Format { line, message: format!("not JSON ({e})") })?;
            return Ok(Some((line, v)));
        }
    }

    fn object<T: serde::de::DeserializeOwned>(&mut self, what: &str) -> Result<T, DumpError> {
        let (line, v) = self.next_value()?.ok_or(DumpError::Truncated { line: self.line })?;
        serde_json::from_value(v).map_err(|e| DumpError::Format { line, message: format!("{what} is not valid ({e})") })
    }
}

/// Proves the importing node can open what the dump holds: keyring keys under its root key(s),
/// sealed credentials under those keys (or a root, for records older than the keyring).
struct Custody {
    /// The root keys, the configured one first.
    roots: Vec<MasterKey>,
    /// The roots and the keyring keys opened so far.
    ring: Keyring,
}

impl Custody {
    fn new(root_ring: &Keyring) -> Self {
        let current = root_ring.current_id();
        let mut ids = root_ring.key_ids();
        ids.retain(|id| *id != current);
        ids.insert(0, current);
        let roots: Vec<MasterKey> = ids.iter().filter_map(|id| root_ring.key(id)).collect();
        let ring = match roots.first() {
            Some(first) => {
                let ring = Keyring::new(first.clone());
                for r in &roots[1..] {
                    ring.add(r.clone());
                }
                ring
            }
            // A keyring always holds its current key; an empty one opens nothing.
            None => Keyring::new(MasterKey::generate()),
        };
        Self { roots, ring }
    }

    fn root_ids(&self) -> String {
        self.roots.iter().map(|r| format!("`{}`", r.id())).collect::<Vec<_>>().join(", ")
    }

    fn check(&mut self, t: &DumpTable, line: u64, row: &[Cell]) -> Result<(), DumpError> {
        let text = |col: &str| t.position(col).and_then(|i| row.get(i)).and_then(|c| if let Cell::Text(s) = c { Some(s.as_str()) } else { None });
        let id = text("id").unwrap_or_default().to_owned();
        match t.name {
            "keyring_keys" => {
                let sealed = text("sealed").unwrap_or_default();
                let opened = self.roots.iter().find_map(|root| MasterKey::open_under(root, &id, sealed).ok());
                match opened {
                    Some(key) => {
                        self.ring.add(key);
                        Ok(())
                    }
                    None => Err(DumpError::Custody {
                        line,
                        table: "keyring_keys",
                        id,
                        reason: format!(
                            "it is sealed under another root key than the configured {} (import with the source's master key: its data_dir/master.key, or KEYWAY_MASTER_KEY)",
                            self.root_ids()
                        ),
                    }),
                }
            }
            "byok_credentials" => {
                let sealed = text("sealed").unwrap_or_default();
                let aad = crate::byok::aad(text("workspace_id"), &id);
                match self.ring.open(sealed, &aad) {
                    Ok(_plain) => Ok(()),
                    Err(e) => Err(DumpError::Custody { line, table: "byok_credentials", id, reason: e.to_string() }),
                }
            }
            _ => Ok(()),
        }
    }

    /// `meta.master_key_id`: the root key the source store was sealed with must be one we hold
    /// (else the first `keyway serve` on the target would refuse to start).
    fn check_root_id(&self, line: u64, id: &str) -> Result<(), DumpError> {
        if self.roots.iter().any(|r| r.id() == id) {
            return Ok(());
        }
        Err(DumpError::Custody {
            line,
            table: "meta",
            id: "master_key_id".into(),
            reason: format!("the source was sealed with root key `{id}`, the configured key is {} (import with the source's master key)", self.root_ids()),
        })
    }
}
