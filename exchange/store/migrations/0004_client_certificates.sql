-- Migrations are applied in order, each once, in one transaction, and recorded in
-- schema_migrations (exchange/store/database.py). Statements stay safe to run again
-- (IF NOT EXISTS), so a database made by an older, unnumbered schema takes them as well.

-- Client certificates bound to an agency (mutual TLS, the X-Road way): a connection that
-- presents one of these, verified against tls_client_ca, is that agency.
CREATE TABLE IF NOT EXISTS client_certificates (
    fingerprint bytea PRIMARY KEY,            -- sha256 of the DER certificate
    organ_id    text NOT NULL REFERENCES agencies (code),
    subject     text NOT NULL,
    not_after   timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

