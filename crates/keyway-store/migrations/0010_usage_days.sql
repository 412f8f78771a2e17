-- What each key spent per UTC day, kept by the usage writer in the same transaction as the
-- generation rows it sums. The billing reconcile reads these once a minute instead of summing
-- every generation ever recorded (no index leads with created_at: it scanned the whole table,
-- a cost that grew with history, not traffic).
CREATE TABLE usage_days (
    workspace_id TEXT NOT NULL,
    api_key_hash TEXT NOT NULL,
    day BIGINT NOT NULL,
    -- What the balance pays: the fee for a BYOK request, the catalog cost otherwise.
    charged_micros BIGINT NOT NULL,
    -- Cost plus fee: what budgets count.
    spend_micros BIGINT NOT NULL,
    -- BYOK requests an upstream served: what the monthly fee waiver counts.
    byok_requests BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, api_key_hash, day)
);
INSERT INTO usage_days (workspace_id, api_key_hash, day, charged_micros, spend_micros, byok_requests)
SELECT workspace_id, api_key_hash, created_at / 86400000,
       COALESCE(SUM(CASE WHEN is_byok = 1 THEN fee_micros ELSE cost_micros END), 0),
       COALESCE(SUM(cost_micros + fee_micros), 0),
       COALESCE(SUM(CASE WHEN is_byok = 1 AND provider IS NOT NULL THEN 1 ELSE 0 END), 0)
FROM generations
GROUP BY workspace_id, api_key_hash, created_at / 86400000;
