-- Migrations are applied in order, each once, in one transaction, and recorded in
-- schema_migrations (exchange/store/database.py). Statements stay safe to run again.

-- How often the reconciler has published a delivery again: each time it waits twice as long,
-- so a copy that is merely queued (a consumer away) is not published over and over.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS republished integer NOT NULL DEFAULT 0;
