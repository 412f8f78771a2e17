use crate::keys::new_key_record;
use crate::{is_unique_violation, new_id, now_ms, ApiKeyRecord, KeyKind, Limits, Result, Store, StoreError, Workspace};
use sqlx::Row;
use zeroize::Zeroizing;

/// What [`Store::bootstrap`] found or did. (No `Debug`: it may hold a raw key.)
pub enum Bootstrapped {
    /// Set up before (by an earlier start, or by another node a moment ago); nothing was written.
    Existing { workspace_id: String, master_key_id: Option<String> },
    /// Set up by this call: the default workspace, its first management key and the store's meta.
    Created {
        workspace_id: String,
        key: Box<ApiKeyRecord>,
        /// The generated key, to be shown once; `None` when the caller supplied it.
        raw_key: Option<Zeroizing<String>>,
    },
}

fn row_to_ws(r: &sqlx::any::AnyRow) -> Result<Workspace> {
    Ok(Workspace { id: r.try_get("id")?, name: r.try_get("name")?, slug: r.try_get("slug")?, created_at: r.try_get("created_at")? })
}

impl Store {
    pub async fn create_workspace(&self, name: &str, slug: &str) -> Result<Workspace> {
        self.count();
        let ws = Workspace { id: new_id(), name: name.to_owned(), slug: slug.to_owned(), created_at: now_ms() };
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO workspaces (id, name, slug, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&ws.id)
            .bind(&ws.name)
            .bind(&ws.slug)
            .bind(ws.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict(format!("a workspace with slug `{slug}` exists")) } else { e.into() })?;
        self.audit_in(&mut tx, "workspace", &ws.id, Some(&ws.id)).await?;
        tx.commit().await?;
        Ok(ws)
    }

    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        self.count();
        let rows = sqlx::query("SELECT id, name, slug, created_at FROM workspaces ORDER BY created_at, id").fetch_all(&self.pool).await?;
        rows.iter().map(row_to_ws).collect()
    }

    /// By id or slug.
    pub async fn get_workspace(&self, id_or_slug: &str) -> Result<Workspace> {
        self.count();
        let row = sqlx::query("SELECT id, name, slug, created_at FROM workspaces WHERE id = $1 OR slug = $1")
            .bind(id_or_slug)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        row_to_ws(&row)
    }

    /// First-start setup in one transaction: the `default` workspace, an admin management key
    /// (`management_key`, else a generated one) and the `default_workspace` / `master_key_id`
    /// meta. A crash part-way leaves nothing, so the next start simply runs it again; rows an
    /// older, non-transactional start left behind (the workspace, the same supplied key) are
    /// reused rather than refused.
    pub async fn bootstrap(&self, master_key_id: &str, management_key: Option<&str>) -> Result<Bootstrapped> {
        if let Some(ws) = self.get_meta("default_workspace").await? {
            return Ok(Bootstrapped::Existing { workspace_id: ws, master_key_id: self.get_meta("master_key_id").await? });
        }
        let (raw, generated) = match management_key {
            Some(k) => (Zeroizing::new(k.to_owned()), false),
            None => (keyway_crypto::generate_api_key(true), true),
        };
        let mut tx = self.pool.begin().await?;
        // A write first: SQLite then takes its write lock at once and a concurrent start waits
        // (busy_timeout) instead of failing later on a read-then-write upgrade.
        self.count();
        sqlx::query("INSERT INTO workspaces (id, name, slug, created_at) VALUES ($1, 'Default', 'default', $2) ON CONFLICT (slug) DO NOTHING")
            .bind(new_id())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        self.count();
        let ws: String = sqlx::query("SELECT id FROM workspaces WHERE slug = 'default'").fetch_one(&mut *tx).await?.try_get("id")?;
        self.count();
        let claimed = sqlx::query("INSERT INTO meta (key, value) VALUES ('default_workspace', $1) ON CONFLICT (key) DO NOTHING")
            .bind(&ws)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !claimed {
            // Another node finished its bootstrap after our first check: use what it made.
            tx.rollback().await?;
            let workspace_id = self.get_meta("default_workspace").await?.ok_or(StoreError::NotFound)?;
            return Ok(Bootstrapped::Existing { workspace_id, master_key_id: self.get_meta("master_key_id").await? });
        }
        let key = match self.find_key_by_hash_on(&mut tx, &keyway_crypto::hash_api_key(&raw)).await? {
            Some(k) if k.workspace_id == ws && k.kind == KeyKind::Management && k.admin => k,
            Some(_) => return Err(StoreError::Conflict("the bootstrap management key is already registered as another key".into())),
            None => {
                let rec = new_key_record(&ws, "bootstrap", KeyKind::Management, true, &Limits::default(), &raw);
                self.insert_key_row(&mut tx, &rec).await?;
                rec
            }
        };
        self.count();
        sqlx::query("INSERT INTO meta (key, value) VALUES ('master_key_id', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(master_key_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Bootstrapped::Created { workspace_id: ws, key: Box::new(key), raw_key: generated.then_some(raw) })
    }
}
