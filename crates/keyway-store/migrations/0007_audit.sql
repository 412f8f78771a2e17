-- Who changed what, when, from where, and how it ended. Rows for changes that happened are
-- written in the transaction of the change itself; refused attempts are written on their own.
-- `changes` names the fields a change set (with their new values where they are not secret).
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    workspace_id TEXT,
    actor_key TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    source TEXT,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT,
    changes TEXT NOT NULL DEFAULT '{}',
    outcome TEXT NOT NULL
);
CREATE INDEX audit_at ON audit_log(at, id);
CREATE INDEX audit_workspace_at ON audit_log(workspace_id, at, id);
