-- The keyring: the master keys that wrap every record's data key, each sealed under the root key
-- (`master.key` or KEYWAY_MASTER_KEY). A key is written here, committed, before anything is sealed
-- under it, so no crash or failed rotation can leave a record under a key nobody holds.
-- state: 'active' (new records are sealed with it; exactly one) or 'retired' (still opens old ones).
CREATE TABLE keyring_keys (
    id TEXT PRIMARY KEY,
    sealed TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE UNIQUE INDEX keyring_one_active ON keyring_keys(state) WHERE state = 'active';
