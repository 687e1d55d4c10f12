-- Migrations are applied in order, each once, in one transaction, and recorded in
-- schema_migrations (exchange/store/database.py). Statements stay safe to run again
-- (IF NOT EXISTS), so a database made by an older, unnumbered schema takes them as well.

-- When the delivery was last published (confirmed): the reconciler re-publishes deliveries
-- routed long ago and still pending (a message lost by the broker); outbox rows know their age.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS routed_at timestamptz;
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (routed_at) WHERE state = 'pending';
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
