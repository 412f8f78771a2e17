-- The route plan each request was made with: its candidates in order and every credential or
-- provider left out with the rule that did it (JSON text, see the gateway's explain module).
-- NULL for requests recorded before it.
ALTER TABLE generations ADD COLUMN route_plan TEXT;
