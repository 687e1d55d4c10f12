-- Migrations are applied in order, each once, in one transaction, and recorded in
-- schema_migrations (exchange/store/database.py). Statements stay safe to run again.

-- The registry keeps its history (exchange/store/registry.py): every change of an agency is a
-- new version with the day it takes effect, never an edit in place. `agencies` keeps one row per
-- code (the latest version, which credentials and signer rules point at); the registry answers
-- "as of a day" from agency_versions.
ALTER TABLE agencies ADD COLUMN IF NOT EXISTS successors text[] NOT NULL DEFAULT '{}';
ALTER TABLE agencies ADD COLUMN IF NOT EXISTS route_to text[] NOT NULL DEFAULT '{}';
UPDATE agencies SET successors = ARRAY[successor]
    WHERE successor IS NOT NULL AND successors = '{}';

CREATE TABLE IF NOT EXISTS agency_versions (
    id             bigserial PRIMARY KEY,
    code           text NOT NULL REFERENCES agencies (code),
    effective_from date NOT NULL,              -- the version answers for this day onwards
    name           text NOT NULL,
    parent         text,
    level          text NOT NULL CHECK (level IN ('central', 'province', 'district', 'commune')),
    valid_from     date,
    valid_to       date,
    successors     text[] NOT NULL DEFAULT '{}',  -- the codes that replaced it, in order
    route_to       text[] NOT NULL DEFAULT '{}',  -- which of them take redirected packages
    verify_policy  text CHECK (verify_policy IN ('enforce', 'report-only')),
    routing_key    text NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    recorded_by    text NOT NULL,
    reason         text
);
CREATE INDEX IF NOT EXISTS agency_versions_as_of
    ON agency_versions (code, effective_from DESC, id DESC);
-- Who retired into a code (a successor's predecessors: parties, signer rules).
CREATE INDEX IF NOT EXISTS agency_versions_successors ON agency_versions USING gin (successors);

-- Rows registered before the registry had history become each code's first version, in force
-- since always; their validity dates still say when they took documents.
INSERT INTO agency_versions (code, effective_from, name, parent, level, valid_from, valid_to,
                             successors, route_to, verify_policy, routing_key, recorded_at,
                             recorded_by, reason)
SELECT a.code, DATE '0001-01-01', a.name, a.parent, a.level, a.valid_from, a.valid_to,
       a.successors, a.route_to, a.verify_policy, a.routing_key, a.updated_at,
       'migration 0009', 'registered before the registry kept history'
FROM agencies a
WHERE NOT EXISTS (SELECT 1 FROM agency_versions v WHERE v.code = a.code);

-- The code the sender addressed, when the hub redirected a copy to that code's successor.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS addressed_as text;
