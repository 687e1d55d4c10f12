-- Migrations are applied in order, each once, in one transaction, and recorded in
-- schema_migrations (exchange/store/database.py). Statements stay safe to run again.

-- Push delivery (exchange/push/): an agency whose system takes documents by webhook. The
-- signing secret is sealed with the hub's secret box (exchange/sealing.py), never stored plain.
CREATE TABLE IF NOT EXISTS push_endpoints (
    organ_id   text PRIMARY KEY REFERENCES agencies (code),
    url        text NOT NULL,
    secret     bytea,                            -- sealed; NULL once push is turned off
    previous_secret bytea,                       -- sealed: the secret before --new-secret, which
    previous_until  timestamptz,                 -- signs too until then (receivers switch over)
    enabled    boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One push per delivered copy of a pushed agency. Its id is the webhook-id, the same on every
-- attempt; the copy itself stays in the inbox (pull keeps working) until a 2xx or an ack.
CREATE TABLE IF NOT EXISTS push_deliveries (
    id              uuid PRIMARY KEY,
    delivery_id     bigint NOT NULL UNIQUE REFERENCES deliveries (id),
    organ_id        text NOT NULL,
    state           text NOT NULL DEFAULT 'enqueued' CHECK (state IN
                    ('enqueued', 'in_progress', 'waiting_for_retry', 'acknowledged', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,                 -- an in_progress push whose hub died is taken again
    window_start    timestamptz NOT NULL DEFAULT now(),  -- push_ttl_seconds count from here
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz
);
CREATE INDEX IF NOT EXISTS push_deliveries_due ON push_deliveries (organ_id, next_attempt_at)
    WHERE state IN ('enqueued', 'waiting_for_retry', 'in_progress');
CREATE INDEX IF NOT EXISTS push_deliveries_state ON push_deliveries (state, organ_id);

-- Every attempt, as queryable rows (the KPIs count failures from here).
CREATE TABLE IF NOT EXISTS push_attempts (
    id          bigserial PRIMARY KEY,
    push_id     uuid NOT NULL REFERENCES push_deliveries (id),
    organ_id    text NOT NULL,
    attempt     integer NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ms double precision NOT NULL,
    http_status integer,                         -- NULL: no answer (timeout, connection error)
    error       text,
    outcome     text NOT NULL CHECK (outcome IN ('acknowledged', 'retry', 'failed'))
);
CREATE INDEX IF NOT EXISTS push_attempts_push ON push_attempts (push_id, id);
CREATE INDEX IF NOT EXISTS push_attempts_time ON push_attempts (started_at);

-- The hub's signed delivery receipt for each copy a recipient took (2xx on push, or ack).
CREATE TABLE IF NOT EXISTS delivery_receipts (
    delivery_id bigint PRIMARY KEY REFERENCES deliveries (id),
    body        bytea NOT NULL,                  -- canonical JSON that the signature covers
    signature   bytea NOT NULL,                  -- CMS SignedData (DER), detached
    key_id      text NOT NULL
);
