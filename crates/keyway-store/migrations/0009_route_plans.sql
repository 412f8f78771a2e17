-- Each distinct route plan once, named by the first 128 bits of its text's SHA-256: a busy
-- gateway makes the same few plans over and over, and a ~700-byte text on every generation row
-- tripled the row and most of what recording a request cost (bench/README.md, 2026-12-08).
-- Rows recorded before this keep their text in generations.route_plan.
CREATE TABLE route_plans (
    id TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
ALTER TABLE generations ADD COLUMN route_plan_id TEXT;
