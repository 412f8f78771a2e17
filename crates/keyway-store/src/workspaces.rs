use crate::{is_unique_violation, new_id, now_ms, Result, Store, StoreError, Workspace};
use sqlx::Row;

fn row_to_ws(r: &sqlx::any::AnyRow) -> Result<Workspace> {
    Ok(Workspace { id: r.try_get("id")?, name: r.try_get("name")?, slug: r.try_get("slug")?, created_at: r.try_get("created_at")? })
}

impl Store {
    pub async fn create_workspace(&self, name: &str, slug: &str) -> Result<Workspace> {
        self.count();
        let ws = Workspace { id: new_id(), name: name.to_owned(), slug: slug.to_owned(), created_at: now_ms() };
        sqlx::query("INSERT INTO workspaces (id, name, slug, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&ws.id)
            .bind(&ws.name)
            .bind(&ws.slug)
            .bind(ws.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict(format!("a workspace with slug `{slug}` exists")) } else { e.into() })?;
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
}
