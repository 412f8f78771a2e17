use crate::{new_id, now_ms, ApiKeyRecord, KeyKind, KeyPatch, Limits, Page, Result, Role, Store, StoreError};
use keyway_crypto::{generate_api_key, hash_api_key};
use sqlx::Row;
use zeroize::Zeroizing;

const COLUMNS: &str = "id, workspace_id, hash, name, label, kind, admin, role, disabled, limits, created_at, updated_at";

fn row_to_key(r: &sqlx::any::AnyRow) -> Result<ApiKeyRecord> {
    let kind: String = r.try_get("kind")?;
    let limits: String = r.try_get("limits")?;
    let admin = r.try_get::<i64, _>("admin")? != 0;
    let role: Option<String> = r.try_get("role")?;
    let role = match role.as_deref() {
        Some(s) => Role::parse(s).ok_or_else(|| StoreError::Corrupt(format!("key role `{s}`")))?,
        None if kind == "inference" => Role::Inference,
        None if admin => Role::Admin,
        None => Role::Owner,
    };
    Ok(ApiKeyRecord {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        hash: r.try_get("hash")?,
        name: r.try_get("name")?,
        label: r.try_get("label")?,
        kind: match kind.as_str() {
            "management" => KeyKind::Management,
            "inference" => KeyKind::Inference,
            other => return Err(StoreError::Corrupt(format!("key kind `{other}`"))),
        },
        admin: role == Role::Admin,
        role,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        limits: serde_json::from_str(&limits).map_err(|e| StoreError::Corrupt(format!("key limits: {e}")))?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// `kw-...abcd` / `kw-mgmt-...abcd`
fn key_label(raw: &str) -> String {
    let prefix = if raw.starts_with(keyway_crypto::MANAGEMENT_PREFIX) { keyway_crypto::MANAGEMENT_PREFIX } else { "kw-" };
    let tail: String = raw.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{prefix}...{tail}")
}

/// A new, enabled key record for `raw` (which is hashed, never kept).
pub(crate) fn new_key_record(workspace_id: &str, name: &str, kind: KeyKind, admin: bool, limits: &Limits, raw: &str) -> ApiKeyRecord {
    let role = match (kind, admin) {
        (KeyKind::Inference, _) => Role::Inference,
        (KeyKind::Management, true) => Role::Admin,
        (KeyKind::Management, false) => Role::Owner,
    };
    new_key_record_with_role(workspace_id, name, role, limits, raw)
}

pub(crate) fn new_key_record_with_role(workspace_id: &str, name: &str, role: Role, limits: &Limits, raw: &str) -> ApiKeyRecord {
    let (kind, admin) = (role.kind(), role == Role::Admin);
    let now = now_ms();
    ApiKeyRecord {
        id: new_id(),
        workspace_id: workspace_id.to_owned(),
        hash: hash_api_key(raw),
        name: name.to_owned(),
        label: key_label(raw),
        kind,
        admin,
        role,
        disabled: false,
        limits: limits.clone(),
        created_at: now,
        updated_at: now,
    }
}

impl Store {
    /// Creates a key and returns it with its raw value (shown once, never stored).
    pub async fn create_key(
        &self,
        workspace_id: &str,
        name: &str,
        kind: KeyKind,
        admin: bool,
        limits: &Limits,
    ) -> Result<(ApiKeyRecord, Zeroizing<String>)> {
        let raw = generate_api_key(kind == KeyKind::Management);
        let rec = self.insert_key(workspace_id, name, kind, admin, limits, &raw).await?;
        Ok((rec, raw))
    }

    /// Creates a key of `role` and returns it with its raw value (shown once, never stored).
    pub async fn create_key_with_role(&self, workspace_id: &str, name: &str, role: Role, limits: &Limits) -> Result<(ApiKeyRecord, Zeroizing<String>)> {
        let raw = generate_api_key(role.is_management());
        let rec = new_key_record_with_role(workspace_id, name, role, limits, &raw);
        let mut tx = self.pool.begin().await?;
        self.insert_key_row(&mut tx, &rec).await?;
        self.audit_in(&mut tx, "api_key", &rec.hash, Some(&rec.workspace_id)).await?;
        tx.commit().await?;
        Ok((rec, raw))
    }

    /// Registers a key whose raw value the operator chose (`KEYWAY_BOOTSTRAP_MANAGEMENT_KEY`).
    pub async fn insert_key(
        &self,
        workspace_id: &str,
        name: &str,
        kind: KeyKind,
        admin: bool,
        limits: &Limits,
        raw: &str,
    ) -> Result<ApiKeyRecord> {
        let rec = new_key_record(workspace_id, name, kind, admin, limits, raw);
        let mut conn = self.pool.acquire().await?;
        self.insert_key_row(&mut conn, &rec).await?;
        Ok(rec)
    }

    /// Writes `rec` on `conn`, so that [`Store::bootstrap`] can do it inside its transaction.
    pub(crate) async fn insert_key_row(&self, conn: &mut sqlx::AnyConnection, rec: &ApiKeyRecord) -> Result<()> {
        self.count();
        let limits_json = serde_json::to_string(&rec.limits).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO api_keys (id, workspace_id, hash, name, label, kind, admin, role, disabled, limits, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&rec.id)
        .bind(&rec.workspace_id)
        .bind(&rec.hash)
        .bind(&rec.name)
        .bind(&rec.label)
        .bind(rec.kind.as_str())
        .bind(i64::from(rec.admin))
        .bind(rec.role.as_str())
        .bind(i64::from(rec.disabled))
        .bind(limits_json)
        .bind(rec.created_at)
        .bind(rec.updated_at)
        .execute(&mut *conn)
        .await
        .map_err(|e| if crate::is_unique_violation(&e) { StoreError::Conflict("that key already exists".into()) } else { e.into() })?;
        Ok(())
    }

    /// The key with this hash, read on `conn` (inside a transaction).
    pub(crate) async fn find_key_by_hash_on(&self, conn: &mut sqlx::AnyConnection, hash: &str) -> Result<Option<ApiKeyRecord>> {
        self.count();
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE hash = $1")).bind(hash).fetch_optional(&mut *conn).await?;
        row.as_ref().map(row_to_key).transpose()
    }

    pub async fn find_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        self.count();
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE hash = $1")).bind(hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(row_to_key).transpose()
    }

    /// Keys of a workspace (or of all workspaces when `None`), newest first, with the total count.
    pub async fn list_keys(&self, workspace_id: Option<&str>, page: Page) -> Result<(Vec<ApiKeyRecord>, i64)> {
        self.count();
        let (rows, total) = match workspace_id {
            Some(ws) => {
                let rows = sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM api_keys WHERE workspace_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
                ))
                .bind(ws)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(&self.pool)
                .await?;
                let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE workspace_id = $1")
                    .bind(ws)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?;
                (rows, total)
            }
            None => {
                let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"))
                    .bind(page.limit)
                    .bind(page.offset)
                    .fetch_all(&self.pool)
                    .await?;
                let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_keys").fetch_one(&self.pool).await?.try_get("n")?;
                (rows, total)
            }
        };
        Ok((rows.iter().map(row_to_key).collect::<Result<_>>()?, total))
    }

    /// By id or hash, within `workspace_id` when given.
    pub async fn get_key(&self, workspace_id: Option<&str>, id_or_hash: &str) -> Result<ApiKeyRecord> {
        self.count();
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1 OR hash = $1"))
            .bind(id_or_hash)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let rec = row_to_key(&row)?;
        match workspace_id {
            Some(ws) if ws != rec.workspace_id => Err(StoreError::NotFound),
            _ => Ok(rec),
        }
    }

    pub async fn update_key(&self, workspace_id: Option<&str>, id_or_hash: &str, patch: &KeyPatch) -> Result<ApiKeyRecord> {
        let mut tx = self.pool.begin().await?;
        if patch.disabled == Some(true) {
            lock_admins(self, &mut tx).await?;
        }
        self.count();
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1 OR hash = $1"))
            .bind(id_or_hash)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut rec = row_to_key(&row)?;
        if workspace_id.is_some_and(|ws| ws != rec.workspace_id) {
            return Err(StoreError::NotFound);
        }
        if let Some(n) = &patch.name {
            rec.name = n.clone();
        }
        if let Some(d) = patch.disabled {
            rec.disabled = d;
        }
        if let Some(l) = &patch.limits {
            rec.limits = l.clone();
        }
        rec.updated_at = now_ms();
        let limits_json = serde_json::to_string(&rec.limits).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.count();
        sqlx::query("UPDATE api_keys SET name = $1, disabled = $2, limits = $3, updated_at = $4 WHERE id = $5")
            .bind(&rec.name)
            .bind(i64::from(rec.disabled))
            .bind(limits_json)
            .bind(rec.updated_at)
            .bind(&rec.id)
            .execute(&mut *tx)
            .await?;
        if rec.role == Role::Admin && rec.disabled {
            ensure_an_admin_remains(self, &mut tx).await?;
        }
        self.audit_in(&mut tx, "api_key", &rec.hash, Some(&rec.workspace_id)).await?;
        tx.commit().await?;
        Ok(rec)
    }

    pub async fn delete_key(&self, workspace_id: Option<&str>, id_or_hash: &str) -> Result<ApiKeyRecord> {
        let rec = self.get_key(workspace_id, id_or_hash).await?;
        let mut tx = self.pool.begin().await?;
        if rec.role == Role::Admin {
            lock_admins(self, &mut tx).await?;
        }
        self.count();
        sqlx::query("DELETE FROM api_keys WHERE id = $1").bind(&rec.id).execute(&mut *tx).await?;
        if rec.role == Role::Admin {
            ensure_an_admin_remains(self, &mut tx).await?;
        }
        self.audit_in(&mut tx, "api_key", &rec.hash, Some(&rec.workspace_id)).await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// Enabled admin keys (the instance is locked out of its own administration at 0).
    pub async fn count_enabled_admins(&self) -> Result<i64> {
        self.count();
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE role = 'admin' AND disabled = 0").fetch_one(&self.pool).await?.try_get("n")?)
    }

    pub async fn count_keys(&self) -> Result<i64> {
        self.count();
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM api_keys").fetch_one(&self.pool).await?.try_get("n")?)
    }
}

/// Serialises changes that could remove the last admin: a write to one fixed row first, so two
/// concurrent transactions (each disabling a different admin) can't both see the other still
/// enabled. SQLite serialises writers anyway; on PostgreSQL this is the row lock that does it.
async fn lock_admins(store: &Store, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    store.count();
    sqlx::query("INSERT INTO meta (key, value) VALUES ('admin_guard', '0') ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Fails (and so rolls back the caller's transaction) when no enabled admin key would remain.
async fn ensure_an_admin_remains(store: &Store, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    store.count();
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE role = 'admin' AND disabled = 0").fetch_one(&mut **tx).await?.try_get("n")?;
    if n == 0 {
        return Err(StoreError::Conflict(
            "this is the last enabled admin key: it can't be disabled or deleted (create another admin key first; \
             an instance with none is recovered with `keyway admin-key create`)"
                .into(),
        ));
    }
    Ok(())
}
