-- One schema for SQLite and PostgreSQL: TEXT ids (UUIDs), BIGINT booleans (0/1) and
-- BIGINT unix-millisecond timestamps keep every statement portable through sqlx's Any driver.

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    kind TEXT NOT NULL,          -- 'inference' | 'management'
    admin BIGINT NOT NULL DEFAULT 0,
    disabled BIGINT NOT NULL DEFAULT 0,
    limits TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX api_keys_workspace ON api_keys(workspace_id, created_at);

CREATE TABLE byok_credentials (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    sealed TEXT NOT NULL,        -- envelope-encrypted secret, bound to (workspace_id, id)
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
CREATE INDEX byok_workspace_provider ON byok_credentials(workspace_id, provider, sort_order);

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
