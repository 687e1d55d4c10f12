-- Federation (exchange/federation): peer hubs, each agency's home hub, notes received from
-- peers (deduplicated), and the witness countersignatures of peers' tree heads.

-- A peer hub: where its broker and API are, and the hub certificate it must present (pinned
-- by SHA-256 of its DER). The AMQP URL may hold a password: it is sealed (exchange/sealing.py).
CREATE TABLE IF NOT EXISTS federation_peers (
    hub_id        text PRIMARY KEY,
    amqp_sealed   bytea NOT NULL,
    http_url      text NOT NULL,
    cert_der      bytea NOT NULL,
    cert_sha256   bytea NOT NULL UNIQUE,
    added_at      timestamptz NOT NULL DEFAULT now(),
    last_error    text,
    last_error_at timestamptz,
    last_seen_at  timestamptz
);

-- The hub an agency belongs to, for agencies served by another hub (no row: served here).
-- Kept apart from the agencies table on purpose (the registry has its own history).
CREATE TABLE IF NOT EXISTS agency_home_hubs (
    organ_id   text PRIMARY KEY,
    hub_id     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS agency_home_hubs_hub ON agency_home_hubs (hub_id);

-- What peers told us about packages we handed over (accepted, delivered, fetched, ...),
-- each recorded once whatever the number of copies or paths.
CREATE TABLE IF NOT EXISTS federation_notes (
    digest   bytea NOT NULL,
    hub_id   text NOT NULL,
    organ_id text NOT NULL DEFAULT '',
    event    text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (digest, hub_id, organ_id, event)
);

-- Positions of the loops that read the events table (the note reporter).
CREATE TABLE IF NOT EXISTS federation_cursors (
    name     text PRIMARY KEY,
    position bigint NOT NULL
);

-- Our countersignatures of peers' signed tree heads, each made after checking consistency
-- with the previous head we saw of that peer.
CREATE TABLE IF NOT EXISTS federation_witnesses (
    peer           text NOT NULL,
    tree_size      bigint NOT NULL,
    root_hash      bytea NOT NULL,
    head           bytea NOT NULL,          -- the peer's signed head JSON, as it served it
    peer_signature bytea NOT NULL,          -- the peer's CMS over head
    body           bytea NOT NULL,          -- our canonical witness statement
    signature      bytea NOT NULL,          -- our CMS over body
    witnessed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (peer, tree_size)
);

-- Heads a peer showed that do not extend what it showed before: kept, never overwritten.
CREATE TABLE IF NOT EXISTS federation_inconsistencies (
    id        bigserial PRIMARY KEY,
    peer      text NOT NULL,
    seen_at   timestamptz NOT NULL DEFAULT now(),
    detail    jsonb NOT NULL
);
