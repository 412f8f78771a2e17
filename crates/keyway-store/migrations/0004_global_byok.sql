-- BYOK credentials usable in every workspace (OpenRouter's `workspace_id: null`).
--
-- Representation: a plain SQL NULL in byok_credentials.workspace_id. The column was NOT NULL,
-- and neither engine can drop that in one portable statement (SQLite has no ALTER COLUMN), so
-- the table is rebuilt: create the new shape, copy every row, drop the old table, rename. That
-- sequence is valid in both SQLite and PostgreSQL and keeps the foreign key for scoped rows
-- (a NULL foreign key is never checked). A sentinel workspace row was the alternative; it would
-- have shown up wherever workspaces are listed or counted.
--
-- Sealed secrets stay valid: a scoped row's AAD is unchanged (`keyway:byok:<workspace>:<id>`);
-- a global row is sealed with the marker `*` in the workspace position.

CREATE TABLE byok_credentials_v4 (
    id TEXT PRIMARY KEY,
    workspace_id TEXT REFERENCES workspaces(id),   -- NULL: every workspace
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    sealed TEXT NOT NULL,        -- envelope-encrypted secret, bound to (workspace_id or '*', id)
    disabled BIGINT NOT NULL DEFAULT 0,
    is_fallback BIGINT NOT NULL DEFAULT 0,
    always_use BIGINT NOT NULL DEFAULT 0,
    is_byok_only BIGINT NOT NULL DEFAULT 0,
    sort_order BIGINT NOT NULL DEFAULT 0,
    allowed_models TEXT NOT NULL DEFAULT '[]',
    allowed_api_key_hashes TEXT NOT NULL DEFAULT '[]',
    allowed_user_ids TEXT NOT NULL DEFAULT '[]',
    model_mappings TEXT NOT NULL DEFAULT '[]',
    declared_region TEXT,
    declared_zdr BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

INSERT INTO byok_credentials_v4 (id, workspace_id, provider, name, label, sealed, disabled, is_fallback, always_use,
    is_byok_only, sort_order, allowed_models, allowed_api_key_hashes, allowed_user_ids, model_mappings,
    declared_region, declared_zdr, created_at, updated_at)
SELECT id, workspace_id, provider, name, label, sealed, disabled, is_fallback, always_use,
    is_byok_only, sort_order, allowed_models, allowed_api_key_hashes, allowed_user_ids, model_mappings,
    declared_region, declared_zdr, created_at, updated_at
FROM byok_credentials;

DROP TABLE byok_credentials;
ALTER TABLE byok_credentials_v4 RENAME TO byok_credentials;
CREATE INDEX byok_workspace_provider ON byok_credentials(workspace_id, provider, sort_order);
