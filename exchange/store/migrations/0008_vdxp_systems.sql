-- Migrations are applied in order, each once, in one transaction, and recorded in
-- schema_migrations (exchange/store/database.py). Statements stay safe to run again.

-- VDXP systems (DMSs on VNPT's SDKVXP): the systemid a DMS signs its headers as, its HMAC
-- secret sealed with the hub's secret key (the hub needs the secret itself to check an HMAC,
-- so it cannot be a hash), and the organ ids it serves: one agency, or several for a centre
-- (a provincial hub). It sends and receives only for those.
CREATE TABLE IF NOT EXISTS vdxp_systems (
    system_id     text PRIMARY KEY,
    secret_sealed bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE TABLE IF NOT EXISTS vdxp_system_organs (
    system_id text NOT NULL REFERENCES vdxp_systems (system_id) ON DELETE CASCADE,
    organ_id  text NOT NULL REFERENCES agencies (code),
    position  int NOT NULL,                  -- the first is the system's own agency
    PRIMARY KEY (system_id, organ_id)
);

-- A recipient reporting that importing a package into its own system failed (VDXP
-- updateStatus fail, LGSP FAIL): the copy stays in its inbox, the sender sees the report.
CREATE INDEX IF NOT EXISTS events_import_failed ON events (package_id)
    WHERE event = 'import_failed';
