-- The credits ledger: top-ups (positive) and manual adjustments per workspace. Charges are not
-- repeated here: each generation row already carries its cost and fee, and what it charged is
-- `CASE WHEN is_byok = 1 THEN fee_micros ELSE cost_micros END` (see keyway-core's pricing).
CREATE TABLE credit_entries (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    kind TEXT NOT NULL,            -- 'topup' | 'adjustment'
    amount_micros BIGINT NOT NULL,
    note TEXT,
    created_by TEXT,               -- id of the management key that added it
    created_at BIGINT NOT NULL
);
CREATE INDEX credit_entries_workspace ON credit_entries(workspace_id, created_at);
