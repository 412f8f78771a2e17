use crate::{new_id, now_ms, ByokFields, ByokPatch, ByokRecord, Page, Result, Store, StoreError};
use keyway_core::{Credential, ProviderSlug};
use sqlx::Row;
use zeroize::Zeroizing;

const COLUMNS: &str = "id, workspace_id, provider, name, label, disabled, is_fallback, always_use, is_byok_only, sort_order, \
     allowed_models, allowed_api_key_hashes, allowed_user_ids, model_mappings, declared_region, declared_zdr, created_at, updated_at";

/// The workspace position of a global credential's AAD. Workspace ids are UUIDs, never `*`.
const GLOBAL_MARKER: &str = "*";

/// What the sealed secret is bound to: moving it to another row or workspace (or between a
/// workspace and global) breaks it.
pub(crate) fn aad(workspace_id: Option<&str>, id: &str) -> Vec<u8> {
    format!("keyway:byok:{}:{id}", workspace_id.unwrap_or(GLOBAL_MARKER)).into_bytes()
}

/// Read access from `scope`: `None` (admin) sees every row; a workspace sees its own and global ones.
fn visible(scope: Option<&str>, rec: &ByokRecord) -> bool {
    scope.is_none_or(|ws| rec.usable_in(ws))
}

/// Write access from `scope`: a workspace changes only its own rows (globals are admin-only).
fn writable(scope: Option<&str>, rec: &ByokRecord) -> bool {
    scope.is_none_or(|ws| rec.workspace_id.as_deref() == Some(ws))
}

/// Routing order: provider, section, `sort_order`; at equal `sort_order` a workspace's own
/// credentials before global ones, then creation order.
const ORDER: &str = "ORDER BY provider, is_fallback, sort_order, CASE WHEN workspace_id IS NULL THEN 1 ELSE 0 END, created_at, id";

fn json_list<T: serde::de::DeserializeOwned>(r: &sqlx::any::AnyRow, col: &str) -> Result<T> {
    let s: String = r.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A credential row this build can't read: a provider slug it doesn't know (what a binary
/// downgrade leaves), or a metadata column that isn't the JSON it expects. Listed so the operator
/// sees (and can delete) it; routing skips it and keeps every other credential.
#[derive(Debug, Clone)]
pub struct UnreadableByok {
    pub id: String,
    pub workspace_id: Option<String>,
    /// The provider column as stored.
    pub provider: String,
    pub name: Option<String>,
    /// What could not be read (never a secret: the sealed column is not read here).
    pub reason: String,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// One row of a credential listing.
#[derive(Debug, Clone)]
pub enum ByokListing {
    Readable(ByokRecord),
    Unreadable(UnreadableByok),
}

/// The row as a record, or what is known of it when it can't be read whole. Only a row whose
/// `id` itself can't be read is an error.
fn row_to_listing(r: &sqlx::any::AnyRow) -> Result<ByokListing> {
    match row_to_byok(r) {
        Ok(rec) => Ok(ByokListing::Readable(rec)),
        Err(e) => Ok(ByokListing::Unreadable(UnreadableByok {
            id: r.try_get("id")?,
            workspace_id: r.try_get("workspace_id").ok().flatten(),
            provider: r.try_get("provider").unwrap_or_default(),
            name: r.try_get("name").ok(),
            reason: e.to_string(),
            created_at: r.try_get("created_at").ok(),
            updated_at: r.try_get("updated_at").ok(),
        })),
    }
}

fn row_to_byok(r: &sqlx::any::AnyRow) -> Result<ByokRecord> {
    let provider: String = r.try_get("provider")?;
    let flag = |c: &str| -> Result<bool> { Ok(r.try_get::<i64, _>(c)? != 0) };
    Ok(ByokRecord {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        provider: provider.parse::<ProviderSlug>().map_err(|e| StoreError::Corrupt(e.to_string()))?,
        name: r.try_get("name")?,
        label: r.try_get("label")?,
        disabled: flag("disabled")?,
        is_fallback: flag("is_fallback")?,
        always_use: flag("always_use")?,
        is_byok_only: flag("is_byok_only")?,
        sort_order: r.try_get("sort_order")?,
        allowed_models: json_list(r, "allowed_models")?,
        allowed_api_key_hashes: json_list(r, "allowed_api_key_hashes")?,
        allowed_user_ids: json_list(r, "allowed_user_ids")?,
        model_mappings: json_list(r, "model_mappings")?,
        declared_region: r.try_get("declared_region")?,
        declared_zdr: flag("declared_zdr")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    fn seal_credential(&self, workspace_id: Option<&str>, id: &str, cred: &Credential) -> Result<String> {
        let plain = Zeroizing::new(serde_json::to_vec(&cred.to_secret_json()).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        Ok(self.keyring.seal(&plain, &aad(workspace_id, id))?)
    }

    fn open_credential(&self, rec: &ByokRecord, sealed: &str) -> Result<Credential> {
        let plain = self.keyring.open(sealed, &aad(rec.workspace_id.as_deref(), &rec.id))?;
        let value: serde_json::Value =
            serde_json::from_slice(&plain).map_err(|_| StoreError::Corrupt("sealed credential is not JSON".into()))?;
        Ok(Credential::parse(rec.provider, &value)?)
    }

    /// Seals and inserts in one statement: a failure leaves no row behind.
    pub async fn create_byok(&self, workspace_id: &str, provider: ProviderSlug, f: &ByokFields, cred: &Credential) -> Result<ByokRecord> {
        self.create_byok_in(Some(workspace_id), provider, f, cred).await
    }

    /// As [`Store::create_byok`]; `None` creates a global credential, usable in every workspace.
    pub async fn create_byok_in(&self, workspace_id: Option<&str>, provider: ProviderSlug, f: &ByokFields, cred: &Credential) -> Result<ByokRecord> {
        let now = now_ms();
        let rec = ByokRecord {
            id: new_id(),
            workspace_id: workspace_id.map(str::to_owned),
            provider,
            name: f.name.clone(),
            label: cred.label(),
            disabled: f.disabled,
            is_fallback: f.is_fallback,
            always_use: f.always_use,
            is_byok_only: f.is_byok_only,
            sort_order: f.sort_order,
            allowed_models: f.allowed_models.clone(),
            allowed_api_key_hashes: f.allowed_api_key_hashes.clone(),
            allowed_user_ids: f.allowed_user_ids.clone(),
            model_mappings: f.model_mappings.clone(),
            declared_region: f.declared_region.clone(),
            declared_zdr: f.declared_zdr,
            created_at: now,
            updated_at: now,
        };
        let sealed = self.seal_credential(workspace_id, &rec.id, cred)?;
        let mut tx = self.pool.begin().await?;
        self.count();
        sqlx::query(&format!(
            "INSERT INTO byok_credentials ({COLUMNS}, sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        ))
        .bind(&rec.id)
        .bind(&rec.workspace_id)
        .bind(rec.provider.as_str())
        .bind(&rec.name)
        .bind(&rec.label)
        .bind(i64::from(rec.disabled))
        .bind(i64::from(rec.is_fallback))
        .bind(i64::from(rec.always_use))
        .bind(i64::from(rec.is_byok_only))
        .bind(rec.sort_order)
        .bind(to_json(&rec.allowed_models)?)
        .bind(to_json(&rec.allowed_api_key_hashes)?)
        .bind(to_json(&rec.allowed_user_ids)?)
        .bind(to_json(&rec.model_mappings)?)
        .bind(rec.declared_region.clone())
        .bind(i64::from(rec.declared_zdr))
        .bind(rec.created_at)
        .bind(rec.updated_at)
        .bind(sealed)
        .execute(&mut *tx)
        .await?;
        self.audit_in(&mut tx, "byok_credential", &rec.id, rec.workspace_id.as_deref()).await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// A page of credentials (metadata only), ordered as routing orders them, with the total.
    /// `workspace_id`: the credentials usable there (its own and the global ones); `None`: all.
    /// Unreadable rows are left out (see [`Store::list_byok_listing`]).
    pub async fn list_byok(&self, workspace_id: Option<&str>, provider: Option<ProviderSlug>, page: Page) -> Result<(Vec<ByokRecord>, i64)> {
        let (rows, total) = self.list_byok_listing(workspace_id, provider, page).await?;
        let rows = rows
            .into_iter()
            .filter_map(|l| match l {
                ByokListing::Readable(r) => Some(r),
                ByokListing::Unreadable(_) => None,
            })
            .collect();
        Ok((rows, total))
    }

    /// As [`Store::list_byok`], with the rows that can't be read in their place.
    pub async fn list_byok_listing(&self, workspace_id: Option<&str>, provider: Option<ProviderSlug>, page: Page) -> Result<(Vec<ByokListing>, i64)> {
        let mut filter = String::from("WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        if let Some(ws) = workspace_id {
            args.push(ws.to_owned());
            filter.push_str(&format!(" AND (workspace_id = ${} OR workspace_id IS NULL)", args.len()));
        }
        if let Some(p) = provider {
            args.push(p.as_str().to_owned());
            filter.push_str(&format!(" AND provider = ${}", args.len()));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM byok_credentials {filter} {ORDER} LIMIT ${} OFFSET ${}",
            args.len() + 1,
            args.len() + 2
        );
        let mut q = sqlx::query(&sql);
        for a in &args {
            q = q.bind(a.clone());
        }
        self.count();
        let rows = q.bind(page.limit).bind(page.offset).fetch_all(&self.pool).await?;
        let count_sql = format!("SELECT COUNT(*) AS n FROM byok_credentials {filter}");
        let mut cq = sqlx::query(&count_sql);
        for a in &args {
            cq = cq.bind(a.clone());
        }
        self.count();
        let total: i64 = cq.fetch_one(&self.pool).await?.try_get("n")?;
        Ok((rows.iter().map(row_to_listing).collect::<Result<_>>()?, total))
    }

    /// Every credential usable in a workspace (its own and the global ones), decrypted, in
    /// routing order, for the routing cache. A row that fails to open is returned as an error
    /// beside the others rather than hiding them all; a row whose metadata can't be read is
    /// skipped, logged with its id and counted ([`Store::unreadable_count`]).
    pub async fn load_byok_for_routing(&self, workspace_id: &str) -> Result<Vec<(ByokRecord, Result<Credential>)>> {
        self.count();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, sealed FROM byok_credentials WHERE workspace_id = $1 OR workspace_id IS NULL {ORDER}"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        self.refresh_keyring_for(rows.iter().filter_map(|r| r.try_get::<String, _>("sealed").ok())).await;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            match row_to_listing(r)? {
                ByokListing::Readable(rec) => {
                    let sealed: String = r.try_get("sealed")?;
                    let cred = self.open_credential(&rec, &sealed);
                    out.push((rec, cred));
                }
                ByokListing::Unreadable(u) => {
                    self.unreadable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(credential_id = %u.id, provider = %u.provider, reason = %u.reason, "skipping a credential row that cannot be read");
                }
            }
        }
        Ok(out)
    }

    pub async fn get_byok(&self, workspace_id: Option<&str>, id: &str) -> Result<ByokRecord> {
        Ok(self.get_byok_sealed(workspace_id, id).await?.0)
    }

    async fn get_byok_sealed(&self, workspace_id: Option<&str>, id: &str) -> Result<(ByokRecord, String)> {
        self.count();
        let row = sqlx::query(&format!("SELECT {COLUMNS}, sealed FROM byok_credentials WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let rec = row_to_byok(&row)?;
        if !visible(workspace_id, &rec) {
            return Err(StoreError::NotFound);
        }
        Ok((rec, row.try_get("sealed")?))
    }

    /// The record with its decrypted credential (Test key, the CLI's `byok test`).
    pub async fn open_byok(&self, workspace_id: Option<&str>, id: &str) -> Result<(ByokRecord, Credential)> {
        let (rec, sealed) = self.get_byok_sealed(workspace_id, id).await?;
        self.refresh_keyring_for(std::iter::once(sealed.clone())).await;
        let cred = self.open_credential(&rec, &sealed)?;
        Ok((rec, cred))
    }

    /// Applies `patch` (and a new secret when `credential` is given) in one transaction.
    /// A workspace scope changes only that workspace's own credentials, never a global one.
    pub async fn update_byok(&self, workspace_id: Option<&str>, id: &str, patch: &ByokPatch, credential: Option<&Credential>) -> Result<ByokRecord> {
        let mut tx = self.pool.begin().await?;
        self.count();
        let row = sqlx::query(&format!("SELECT {COLUMNS}, sealed FROM byok_credentials WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut rec = row_to_byok(&row)?;
        if !writable(workspace_id, &rec) {
            return Err(StoreError::NotFound);
        }
        let mut sealed: String = row.try_get("sealed")?;
        macro_rules! apply {
            ($($f:ident),*) => { $( if let Some(v) = &patch.$f { rec.$f = v.clone(); } )* };
        }
        apply!(name, disabled, is_fallback, always_use, is_byok_only, sort_order, allowed_models, allowed_api_key_hashes,
               allowed_user_ids, model_mappings, declared_region, declared_zdr);
        if let Some(cred) = credential {
            sealed = self.seal_credential(rec.workspace_id.as_deref(), &rec.id, cred)?;
            rec.label = cred.label();
        }
        rec.updated_at = now_ms();
        self.count();
        sqlx::query(
            "UPDATE byok_credentials SET name = $1, label = $2, disabled = $3, is_fallback = $4, always_use = $5, is_byok_only = $6, \
             sort_order = $7, allowed_models = $8, allowed_api_key_hashes = $9, allowed_user_ids = $10, model_mappings = $11, \
             declared_region = $12, declared_zdr = $13, updated_at = $14, sealed = $15 WHERE id = $16",
        )
        .bind(&rec.name)
        .bind(&rec.label)
        .bind(i64::from(rec.disabled))
        .bind(i64::from(rec.is_fallback))
        .bind(i64::from(rec.always_use))
        .bind(i64::from(rec.is_byok_only))
        .bind(rec.sort_order)
        .bind(to_json(&rec.allowed_models)?)
        .bind(to_json(&rec.allowed_api_key_hashes)?)
        .bind(to_json(&rec.allowed_user_ids)?)
        .bind(to_json(&rec.model_mappings)?)
        .bind(rec.declared_region.clone())
        .bind(i64::from(rec.declared_zdr))
        .bind(rec.updated_at)
        .bind(sealed)
        .bind(&rec.id)
        .execute(&mut *tx)
        .await?;
        self.audit_in(&mut tx, "byok_credential", &rec.id, rec.workspace_id.as_deref()).await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// As [`Store::update_byok`], a workspace scope deletes only its own credentials.
    pub async fn delete_byok(&self, workspace_id: Option<&str>, id: &str) -> Result<ByokRecord> {
        let rec = self.get_byok(None, id).await?;
        if !writable(workspace_id, &rec) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pool.begin().await?;
        self.count();
        sqlx::query("DELETE FROM byok_credentials WHERE id = $1").bind(&rec.id).execute(&mut *tx).await?;
        self.audit_in(&mut tx, "byok_credential", &rec.id, rec.workspace_id.as_deref()).await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// Deletes a row whatever state it is in (an unreadable one can't be read back first);
    /// with a workspace scope, only that workspace's own. Returns its `workspace_id`.
    pub async fn delete_byok_row(&self, workspace_id: Option<&str>, id: &str) -> Result<Option<String>> {
        self.count();
        let row = sqlx::query("SELECT workspace_id FROM byok_credentials WHERE id = $1").bind(id).fetch_optional(&self.pool).await?.ok_or(StoreError::NotFound)?;
        let owner: Option<String> = row.try_get("workspace_id")?;
        if workspace_id.is_some_and(|ws| owner.as_deref() != Some(ws)) {
            return Err(StoreError::NotFound);
        }
        self.count();
        sqlx::query("DELETE FROM byok_credentials WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(owner)
    }

    /// Test hook: copies one row's sealed secret onto another (proves the binding).
    #[doc(hidden)]
    pub async fn debug_copy_sealed(&self, from_id: &str, to_id: &str) -> Result<()> {
        self.count();
        let sealed: String = sqlx::query("SELECT sealed FROM byok_credentials WHERE id = $1")
            .bind(from_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?
            .try_get("sealed")?;
        sqlx::query("UPDATE byok_credentials SET sealed = $1 WHERE id = $2").bind(sealed).bind(to_id).execute(&self.pool).await?;
        Ok(())
    }

    /// Test hook: overwrites one metadata column of a row as a downgrade or a hand edit could
    /// leave it (`provider`, `allowed_models` or `model_mappings`).
    #[doc(hidden)]
    pub async fn debug_damage_byok(&self, id: &str, column: &str, value: &str) -> Result<()> {
        let column = ["provider", "allowed_models", "model_mappings"].into_iter().find(|c| *c == column).ok_or(StoreError::NotFound)?;
        self.count();
        sqlx::query(&format!("UPDATE byok_credentials SET {column} = $1 WHERE id = $2")).bind(value).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// The raw sealed column (tests assert no plaintext reaches the database).
    #[doc(hidden)]
    pub async fn debug_sealed(&self, id: &str) -> Result<String> {
        Ok(self.get_byok_sealed(None, id).await?.1)
    }
}
