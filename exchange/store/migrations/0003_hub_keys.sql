-- Migrations are applied in order, each once, in one transaction, and recorded in
-- schema_migrations (exchange/store/database.py). Statements stay safe to run again
-- (IF NOT EXISTS), so a database made by an older, unnumbered schema takes them as well.

-- Every key the hub has signed heads or receipts with (exchange/hubkeys.py): a key id is the
-- SHA-256 (hex) of the signer certificate (DER). Old keys stay listed after a rotation, so what
-- they signed stays verifiable; trust in them comes from the auditor's anchors, not from here.
CREATE TABLE IF NOT EXISTS hub_keys (
    key_id     text PRIMARY KEY,
    subject    text NOT NULL,
    chain      text NOT NULL,                     -- PEM: the signer's certificate, then its CAs
    first_used timestamptz NOT NULL DEFAULT now(),
    last_used  timestamptz NOT NULL DEFAULT now()
);
-- The key that signed each head and receipt (NULL: signed before keys were recorded).
ALTER TABLE tree_heads ADD COLUMN IF NOT EXISTS key_id text;
ALTER TABLE receipts ADD COLUMN IF NOT EXISTS key_id text;
