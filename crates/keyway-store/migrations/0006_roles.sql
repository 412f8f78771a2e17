-- Roles of management keys: 'admin' (the instance), 'owner' (its workspace's credentials and
-- keys), 'viewer' (reads its workspace, changes nothing); inference keys are 'inference'.
-- `kind` and `admin` stay as they were (older readers); `role` is the source of truth.
ALTER TABLE api_keys ADD COLUMN role TEXT;
UPDATE api_keys SET role = CASE
    WHEN kind = 'inference' THEN 'inference'
    WHEN admin <> 0 THEN 'admin'
    ELSE 'owner'
END;
