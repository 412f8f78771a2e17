//! The credits ledger: top-ups per workspace, and the sums the gateway loads into memory at
//! start and re-reads to reconcile (never per request).
//!
//! What a generation charged is derived from its row (`CHARGED`), so a charge is written once,
//! with the generation, in the usage writer's batch. The same transaction adds it to the key's
//! day in `usage_days`, which is what the reconcile sums: a few rows per key and day instead of
//! every generation ever recorded.

use crate::{new_id, now_ms, Result, Store, StoreError};
use keyway_core::pricing::day_of;
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;

/// SQL for what one generation row charged to credits: the fee for BYOK, else the full cost.
pub(crate) const CHARGED: &str = "CASE WHEN is_byok = 1 THEN fee_micros ELSE cost_micros END";

/// `SUM` of a BIGINT is NUMERIC on PostgreSQL, which the Any driver can't read as i64: cast back.
pub(crate) fn sum(expr: &str) -> String {
    format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditKind {
    Topup,
    Adjustment,
}

impl CreditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CreditKind::Topup => "topup",
            CreditKind::Adjustment => "adjustment",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditEntry {
    pub id: String,
    pub workspace_id: String,
    pub kind: CreditKind,
    pub amount_micros: i64,
    pub note: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// One workspace's money as the database knows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreditTotals {
    /// Sum of top-ups and adjustments.
    pub credits_micros: i64,
    /// Sum of what generations charged, all time.
    pub usage_micros: i64,
    /// Sum of what generations charged since the `since` instant given.
    pub usage_since_micros: i64,
    /// BYOK generations (that reached an upstream) since `since`.
    pub byok_requests_since: i64,
}

impl Store {
    /// Adds a ledger entry (a top-up is positive; an adjustment may be negative).
    pub async fn add_credits(&self, workspace_id: &str, kind: CreditKind, amount_micros: i64, note: Option<&str>, created_by: Option<&str>) -> Result<CreditEntry> {
        if kind == CreditKind::Topup && amount_micros <= 0 {
            return Err(StoreError::Conflict("a top-up must be positive".into()));
        }
        let e = CreditEntry {
            id: new_id(),
            workspace_id: workspace_id.to_owned(),
            kind,
            amount_micros,
            note: note.map(str::to_owned),
            created_by: created_by.map(str::to_owned),
            created_at: now_ms(),
        };
        self.count();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO credit_entries (id, workspace_id, kind, amount_micros, note, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(e.id.clone())
            .bind(e.workspace_id.clone())
            .bind(kind.as_str())
            .bind(e.amount_micros)
            .bind(e.note.clone())
            .bind(e.created_by.clone())
            .bind(e.created_at)
            .execute(&mut *tx)
            .await?;
        self.audit_in(&mut tx, "credits", &e.id, Some(&e.workspace_id)).await?;
        tx.commit().await?;
        Ok(e)
    }

    /// A workspace's ledger entries, newest first.
    pub async fn list_credit_entries(&self, workspace_id: &str, limit: i64) -> Result<Vec<CreditEntry>> {
        self.count();
        let rows = sqlx::query(
            "SELECT id, workspace_id, kind, amount_micros, note, created_by, created_at FROM credit_entries \
             WHERE workspace_id = $1 ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(workspace_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(CreditEntry {
                    id: r.try_get("id")?,
                    workspace_id: r.try_get("workspace_id")?,
                    kind: match kind.as_str() {
                        "topup" => CreditKind::Topup,
                        "adjustment" => CreditKind::Adjustment,
                        other => return Err(StoreError::Corrupt(format!("credit kind `{other}`"))),
                    },
                    amount_micros: r.try_get("amount_micros")?,
                    note: r.try_get("note")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Every workspace's totals (start-up and reconciliation only). Usage comes from
    /// `usage_days`, so `since_ms` counts whole UTC days: from the start of its day.
    pub async fn credit_totals(&self, since_ms: i64) -> Result<HashMap<String, CreditTotals>> {
        let mut out: HashMap<String, CreditTotals> = HashMap::new();
        for (ws, n) in self.credit_sums().await? {
            out.entry(ws).or_default().credits_micros = n;
        }
        self.count();
        let rows = sqlx::query(&format!(
            "SELECT workspace_id, {} AS n, {} AS s, {} AS b FROM usage_days GROUP BY workspace_id",
            sum("charged_micros"),
            sum("CASE WHEN day >= $1 THEN charged_micros ELSE 0 END"),
            sum("CASE WHEN day >= $1 THEN byok_requests ELSE 0 END"),
        ))
        .bind(day_of(since_ms))
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let t = out.entry(r.try_get("workspace_id")?).or_default();
            t.usage_micros = r.try_get("n")?;
            t.usage_since_micros = r.try_get("s")?;
            t.byok_requests_since = r.try_get("b")?;
        }
        Ok(out)
    }

    /// Each workspace's sum of ledger entries. Top-ups are refused when they would overflow a
    /// balance, but rows written before that check (or by hand) may sum past `i64`: then the
    /// database's `SUM` fails, and the entries are summed here instead, saturating, so that
    /// start-up never fails on them.
    async fn credit_sums(&self) -> Result<Vec<(String, i64)>> {
        self.count();
        let summed = sqlx::query(&format!("SELECT workspace_id, {} AS n FROM credit_entries GROUP BY workspace_id", sum("amount_micros")))
            .fetch_all(&self.pool)
            .await;
        match summed {
            Ok(rows) => rows.iter().map(|r| Ok((r.try_get("workspace_id")?, r.try_get("n")?))).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "summing credit entries in the database failed; summing them one by one (saturating)");
                self.count();
                let rows = sqlx::query("SELECT workspace_id, amount_micros FROM credit_entries").fetch_all(&self.pool).await?;
                let mut sums: HashMap<String, i64> = HashMap::new();
                for r in rows {
                    let n: i64 = r.try_get("amount_micros")?;
                    let total = sums.entry(r.try_get("workspace_id")?).or_default();
                    *total = total.saturating_add(n);
                }
                Ok(sums.into_iter().collect())
            }
        }
    }

    /// What each key spent (catalog cost plus fee) since the start of `since_ms`'s UTC day,
    /// by key hash.
    pub async fn key_spend_since(&self, since_ms: i64) -> Result<HashMap<String, i64>> {
        self.count();
        let rows = sqlx::query(&format!("SELECT api_key_hash, {} AS n FROM usage_days WHERE day >= $1 GROUP BY api_key_hash", sum("spend_micros")))
            .bind(day_of(since_ms))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("api_key_hash")?, r.try_get("n")?))).collect()
    }

    /// What each workspace spent (catalog cost plus fee) since the start of `day_ms`'s UTC day
    /// and since the start of `month_ms`'s.
    pub async fn workspace_spend_since(&self, day_ms: i64, month_ms: i64) -> Result<HashMap<String, (i64, i64)>> {
        self.count();
        let (day, month) = (day_of(day_ms), day_of(month_ms));
        let rows = sqlx::query(&format!(
            "SELECT workspace_id, {} AS d, {} AS m FROM usage_days WHERE day >= $3 GROUP BY workspace_id",
            sum("CASE WHEN day >= $1 THEN spend_micros ELSE 0 END"),
            sum("CASE WHEN day >= $2 THEN spend_micros ELSE 0 END"),
        ))
        .bind(day)
        .bind(month)
        .bind(day.min(month))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("workspace_id")?, (r.try_get("d")?, r.try_get("m")?)))).collect()
    }
}
