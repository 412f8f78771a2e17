//! The keyring's persisted half: master keys sealed under the root key, and rotation.
//!
//! The root key (the `master.key` file or `KEYWAY_MASTER_KEY`) only seals the keyring's own keys.
//! Records are sealed under the keyring's active key. A rotation therefore never changes the
//! root: it creates a new keyring key, commits it (sealed under the root) *before* anything is
//! sealed with it, makes it active, then re-wraps the records' data keys in batches, each batch
//! one transaction. A crash, a bad row or a second node at any point leaves every record under
//! a key that is persisted and that every node can load; running the rotation again finishes it.

use crate::{now_ms, Result, Store, StoreError};
use keyway_crypto::{Keyring, MasterKey};
use serde::Serialize;
use sqlx::Row;

/// The meta entry naming the key an unfinished rotation moves records to.
const ROTATION: &str = "keyring_rotation";

/// A keyring key as the API shows it (never key material).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyringKey {
    pub id: String,
    pub state: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// Records sealed under it right now.
    pub records: i64,
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// The key records are now sealed under.
    pub key_id: String,
    /// Whether this run picked up a rotation an earlier run left unfinished.
    pub resumed: bool,
    pub rewrapped: u64,
    pub already_current: u64,
    /// Records that could not be opened, by id, with the reason; left exactly as they were.
    pub failed: Vec<RotationFailure>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RotationFailure {
    pub id: String,
    pub error: String,
}

/// Rows re-wrapped per transaction.
const BATCH: i64 = 200;

impl Store {
    /// Loads every keyring key from the store into the in-memory keyring (opening each with the
    /// root key, which must be the keyring's current key when this is called) and makes the
    /// active one current. A store with no keyring key yet gets its first one here.
    pub async fn open_keyring(&self) -> Result<()> {
        // The keys held now are the root and any retired roots (`retired_master_keys`).
        let root_id = self.keyring.current_id();
        let mut roots = self.keyring.key_ids();
        roots.retain(|id| *id != root_id);
        roots.insert(0, root_id);
        *self.roots.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = roots;
        if self.load_keyring_keys().await? {
            return Ok(());
        }
        // First start (or a store from before the keyring): create the active key. Two nodes
        // starting at once race on the one-active index; the loser loads the winner's key.
        let root = self.root_key()?;
        let key = MasterKey::generate();
        self.count();
        let inserted = sqlx::query("INSERT INTO keyring_keys (id, sealed, state, created_at) VALUES ($1, $2, 'active', $3)")
            .bind(key.id())
            .bind(key.seal_under(&root)?)
            .bind(now_ms())
            .execute(&self.pool)
            .await;
        if let Err(e) = inserted {
            if !crate::is_unique_violation(&e) {
                return Err(e.into());
            }
        }
        if self.load_keyring_keys().await? {
            Ok(())
        } else {
            Err(StoreError::Corrupt("the keyring has no active key".into()))
        }
    }

    fn root_key(&self) -> Result<MasterKey> {
        let roots = self.roots.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        roots
            .first()
            .and_then(|id| self.keyring.key(id))
            .ok_or_else(|| StoreError::Conflict("the keyring is not open (open_keyring first)".into()))
    }

    /// Reads the keyring rows into memory; returns whether an active key was found (and made
    /// current). A row sealed under a retired root (the root key was changed, the old one listed
    /// in `retired_master_keys`) is re-sealed under the current root, so the old root can go.
    async fn load_keyring_keys(&self) -> Result<bool> {
        let roots: Vec<MasterKey> = {
            let ids = self.roots.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            ids.iter().filter_map(|id| self.keyring.key(id)).collect()
        };
        let Some(root) = roots.first() else { return Ok(false) };
        self.count();
        let rows = sqlx::query("SELECT id, sealed, state FROM keyring_keys").fetch_all(&self.pool).await?;
        let mut active = None;
        for r in rows {
            let (id, sealed, state): (String, String, String) = (r.try_get("id")?, r.try_get("sealed")?, r.try_get("state")?);
            let opened = roots.iter().enumerate().find_map(|(i, rk)| MasterKey::open_under(rk, &id, &sealed).ok().map(|k| (i, k)));
            let Some((under, key)) = opened else {
                return Err(StoreError::Corrupt(format!(
                    "keyring key `{id}` opens with none of the configured master keys (current `{}`)",
                    root.id()
                )));
            };
            if under != 0 {
                self.count();
                sqlx::query("UPDATE keyring_keys SET sealed = $1 WHERE id = $2 AND sealed = $3")
                    .bind(key.seal_under(root)?)
                    .bind(&id)
                    .bind(&sealed)
                    .execute(&self.pool)
                    .await?;
            }
            self.keyring.add(key);
            if state == "active" {
                active = Some(id);
            }
        }
        match active {
            Some(id) => {
                self.keyring.set_current(&id)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Re-reads the keyring after a record named a key this node does not hold (another node
    /// rotated). Returns whether the keyring changed.
    pub(crate) async fn refresh_keyring(&self) -> Result<bool> {
        let before = (self.keyring.key_ids().len(), self.keyring.current_id());
        self.load_keyring_keys().await?;
        Ok(before != (self.keyring.key_ids().len(), self.keyring.current_id()))
    }

    /// Refreshes the keyring when one of `sealed` names a key this node does not hold yet (a
    /// rotation on another node). Failing to refresh is left to the open that follows to report.
    pub(crate) async fn refresh_keyring_for(&self, sealed: impl Iterator<Item = String>) {
        let mut unknown = false;
        for s in sealed {
            if Keyring::key_id_of(&s).is_some_and(|kid| !self.keyring.holds(kid)) {
                unknown = true;
                break;
            }
        }
        if unknown {
            if let Err(e) = self.refresh_keyring().await {
                tracing::warn!(error = %e, "could not refresh the keyring");
            }
        }
    }

    /// The keyring's keys, newest first, with how many records each seals.
    pub async fn keyring_keys(&self) -> Result<Vec<KeyringKey>> {
        self.count();
        let rows = sqlx::query("SELECT id, state, created_at, retired_at FROM keyring_keys ORDER BY created_at DESC, id").fetch_all(&self.pool).await?;
        self.count();
        let sealed = sqlx::query("SELECT sealed FROM byok_credentials").fetch_all(&self.pool).await?;
        let mut counts = std::collections::HashMap::<String, i64>::new();
        for r in &sealed {
            let s: String = r.try_get("sealed")?;
            if let Some(kid) = Keyring::key_id_of(&s) {
                *counts.entry(kid.to_owned()).or_default() += 1;
            }
        }
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                Ok(KeyringKey {
                    records: counts.get(&id).copied().unwrap_or(0),
                    state: r.try_get("state")?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                    id,
                })
            })
            .collect()
    }

    /// Rotates the keyring: a new active key (or the one an unfinished rotation left), then every
    /// record's data key re-wrapped under it, in batches of one transaction each. Safe while the
    /// gateway serves (records are updated only if unchanged since read), safe to interrupt, and
    /// safe to run again: it resumes and finishes. Call [`Store::open_keyring`] first.
    pub async fn rotate_keyring(&self) -> Result<RotationReport> {
        let root = self.root_key()?;
        let mut report = RotationReport::default();
        let pending = self.get_meta(ROTATION).await?;
        // Resume only the rotation whose key is still the active one.
        let target = match pending {
            Some(id) if self.keyring.current_id() == id => {
                report.resumed = true;
                id
            }
            _ => self.begin_rotation(&root).await?,
        };
        report.key_id = target.clone();

        let mut after = String::new();
        loop {
            self.count();
            let rows = sqlx::query("SELECT id, workspace_id, sealed FROM byok_credentials WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(&after)
                .bind(BATCH)
                .fetch_all(&self.pool)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("id")?;
            let mut updates = Vec::new();
            for r in &rows {
                let (id, ws, sealed): (String, Option<String>, String) = (r.try_get("id")?, r.try_get("workspace_id")?, r.try_get("sealed")?);
                if Keyring::key_id_of(&sealed) == Some(target.as_str()) {
                    report.already_current += 1;
                    continue;
                }
                match self.keyring.reseal(&sealed, &crate::byok::aad(ws.as_deref(), &id)) {
                    Ok(resealed) => updates.push((id, sealed, resealed)),
                    Err(e) => report.failed.push(RotationFailure { id, error: e.to_string() }),
                }
            }
            let mut tx = self.pool.begin().await?;
            for (id, old, new) in &updates {
                self.count();
                // Unchanged since read: a record edited meanwhile was sealed under the new key already.
                let n = sqlx::query("UPDATE byok_credentials SET sealed = $1 WHERE id = $2 AND sealed = $3")
                    .bind(new)
                    .bind(id)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                report.rewrapped += n;
            }
            tx.commit().await?;
        }
        if report.failed.is_empty() {
            self.count();
            sqlx::query("DELETE FROM meta WHERE key = $1").bind(ROTATION).execute(&self.pool).await?;
        }
        Ok(report)
    }

    /// Persists a new active key (sealed under `root`) and marks the rotation as started, in one
    /// transaction; only then does this node seal anything with it.
    async fn begin_rotation(&self, root: &MasterKey) -> Result<String> {
        let key = MasterKey::generate();
        let id = key.id().to_owned();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        self.count();
        sqlx::query("UPDATE keyring_keys SET state = 'retired', retired_at = $1 WHERE state = 'active'").bind(now).execute(&mut *tx).await?;
        self.count();
        sqlx::query("INSERT INTO keyring_keys (id, sealed, state, created_at) VALUES ($1, $2, 'active', $3)")
            .bind(&id)
            .bind(key.seal_under(root)?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        self.count();
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(ROTATION)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        self.audit_in(&mut tx, "keyring_key", &id, None).await?;
        tx.commit().await?;
        self.keyring.add(key);
        self.keyring.set_current(&id)?;
        Ok(id)
    }
}
