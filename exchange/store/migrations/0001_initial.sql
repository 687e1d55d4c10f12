-- Migrations are applied in order, each once, in one transaction, and recorded in
-- schema_migrations (exchange/store/database.py). Statements stay safe to run again
-- (IF NOT EXISTS), so a database made by an older, unnumbered schema takes them as well.

CREATE TABLE IF NOT EXISTS agencies (
    code        text PRIMARY KEY,             -- normalised organ id
    name        text NOT NULL,
    parent      text,                         -- organ id of the unit one level up
    level       text NOT NULL CHECK (level IN ('central', 'province', 'district', 'commune')),
    valid_from  date,
    valid_to    date,                         -- after this day the code takes no new documents
    successor   text,                         -- the code that replaced it (mergers)
    routing_key text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS agencies_parent ON agencies (parent);

CREATE TABLE IF NOT EXISTS credentials (
    client_id   text PRIMARY KEY,
    organ_id    text NOT NULL REFERENCES agencies (code),
    secret_hash text NOT NULL,                -- scrypt, never the secret itself
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE IF NOT EXISTS tokens (
    token_hash  bytea PRIMARY KEY,            -- sha256 of the bearer token
    client_id   text NOT NULL REFERENCES credentials (client_id),
    organ_id    text NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_expiry ON tokens (expires_at);

CREATE TABLE IF NOT EXISTS packages (
    id                    uuid PRIMARY KEY,
    digest                bytea NOT NULL UNIQUE,   -- sha256 of exactly the bytes received
    sender                text NOT NULL,
    kind                  text NOT NULL CHECK (kind IN ('edoc', 'status')),
    document_id           text,
    business_doc_type     smallint NOT NULL DEFAULT 0,
    status_code           text,
    response_for_organ    text,
    response_for_document text,
    about_package         uuid REFERENCES packages (id),  -- the document a status is about
    subject               text,
    size                  bigint NOT NULL,
    received_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS packages_document ON packages (sender, document_id);

CREATE SEQUENCE IF NOT EXISTS inbox_seq;

CREATE TABLE IF NOT EXISTS deliveries (
    id           bigserial PRIMARY KEY,
    package_id   uuid NOT NULL REFERENCES packages (id),
    recipient    text NOT NULL,
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'delivered', 'acknowledged')),
    inbox_seq    bigint UNIQUE,               -- the recipient's inbox cursor, set on delivery
    delivered_at timestamptz,
    fetched_at   timestamptz,
    acked_at     timestamptz,
    UNIQUE (package_id, recipient)
);
CREATE INDEX IF NOT EXISTS deliveries_inbox ON deliveries (recipient, inbox_seq)
    WHERE state = 'delivered';

-- Transactional outbox: a row per delivery not yet confirmed by the broker.
CREATE TABLE IF NOT EXISTS outbox (
    delivery_id     bigint PRIMARY KEY REFERENCES deliveries (id),
    routing_key     text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at);

-- The trail. Each row carries its ledger leaf (canonical JSON, see exchange/events.py), written
-- in the transaction of the change it records; the sequencer then gives it a ledger position.
CREATE TABLE IF NOT EXISTS events (
    id           bigserial PRIMARY KEY,
    package_id   uuid REFERENCES packages (id),   -- NULL for a refused body
    event        text NOT NULL,
    organ_id     text,
    at           timestamptz NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}',
    digest       bytea NOT NULL,                  -- the package digest
    leaf         bytea NOT NULL,                  -- canonical encoding, never rewritten
    ledger_index bigint UNIQUE                    -- position in the Merkle log
);
CREATE INDEX IF NOT EXISTS events_package ON events (package_id, id);
CREATE INDEX IF NOT EXISTS events_unsequenced ON events (id) WHERE ledger_index IS NULL;

-- Hashes of the complete perfect subtrees of the ledger (level 0 = leaf hashes).
CREATE TABLE IF NOT EXISTS ledger_nodes (
    level smallint NOT NULL,
    idx   bigint NOT NULL,
    hash  bytea NOT NULL,
    PRIMARY KEY (level, idx)
);

-- Signed tree heads: (size, root, time) signed by the hub (CMS), optionally timestamped.
CREATE TABLE IF NOT EXISTS tree_heads (
    tree_size  bigint PRIMARY KEY,
    root_hash  bytea NOT NULL,
    signed_at  timestamptz NOT NULL,
    head       bytea NOT NULL,                    -- the canonical JSON that was signed
    signature  bytea NOT NULL                     -- CMS SignedData (DER), detached
);

-- The hub's signed receipt for each accepted package (non-repudiation of receipt).
CREATE TABLE IF NOT EXISTS receipts (
    package_id uuid PRIMARY KEY REFERENCES packages (id),
    body       bytea NOT NULL,                    -- canonical JSON that the signature covers
    signature  bytea NOT NULL                     -- CMS SignedData (DER), detached
);

-- Signature verification reports made at the hub's door (JSON bytes, as served).
CREATE TABLE IF NOT EXISTS verification_reports (
    package_id uuid PRIMARY KEY REFERENCES packages (id),
    indication text NOT NULL,
    digest     bytea NOT NULL,                    -- sha256 of report
    report     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Who may sign for an agency (see exchange/signers.py).
CREATE TABLE IF NOT EXISTS agency_signers (
    organ_id text NOT NULL REFERENCES agencies (code),
    rule     text NOT NULL CHECK (rule IN ('cert', 'organization_identifier', 'delegate')),
    value    text NOT NULL,
    PRIMARY KEY (organ_id, rule, value)
);

-- Per-agency verification policy; NULL follows the hub's setting.
ALTER TABLE agencies ADD COLUMN IF NOT EXISTS verify_policy text
    CHECK (verify_policy IN ('enforce', 'report-only'));


-- The ledger sequencer, in one round trip: give the next committed, unsequenced leaves their
-- positions and store the hashes of the perfect subtrees they complete (RFC 9162:
-- leaf = SHA-256(0x00 || leaf), node = SHA-256(0x01 || left || right)). It keeps the tree's
-- frontier (the left siblings still waiting for a right one, one per level) in an array, and
-- writes all new nodes and positions in two bulk statements. One caller at a time (advisory
-- lock); `lienthong audit check` recomputes all of it independently in Python.
CREATE OR REPLACE FUNCTION ledger_sequence(max_rows integer)
RETURNS TABLE (sequenced_event bigint, ledger_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    next_position bigint;
    pending record;
    node_index bigint;
    node_level integer;
    node bytea;
    frontier bytea[] := '{}';   -- frontier[level + 1]
    new_levels smallint[] := '{}';
    new_indexes bigint[] := '{}';
    new_hashes bytea[] := '{}';
    event_ids bigint[] := '{}';
    positions bigint[] := '{}';
BEGIN
    IF NOT pg_try_advisory_xact_lock(7214003) THEN
        RETURN;
    END IF;
    SELECT coalesce(max(n.idx) + 1, 0) INTO next_position FROM ledger_nodes n WHERE n.level = 0;
    FOR level_bit IN 0..62 LOOP
        EXIT WHEN (next_position >> level_bit) = 0;
        IF ((next_position >> level_bit) & 1) = 1 THEN
            SELECT n.hash INTO STRICT node FROM ledger_nodes n
            WHERE n.level = level_bit AND n.idx = (next_position >> level_bit) - 1;
            frontier[level_bit + 1] := node;
        END IF;
    END LOOP;
    FOR pending IN
        SELECT e.id, e.leaf FROM events e WHERE e.ledger_index IS NULL ORDER BY e.id
        LIMIT max_rows
    LOOP
        node_index := next_position;
        node_level := 0;
        node := sha256(decode('00', 'hex') || pending.leaf);
        new_levels := new_levels || 0::smallint;
        new_indexes := new_indexes || node_index;
        new_hashes := new_hashes || node;
        WHILE node_index % 2 = 1 LOOP
            node := sha256(decode('01', 'hex') || frontier[node_level + 1] || node);
            node_index := node_index / 2;
            node_level := node_level + 1;
            new_levels := new_levels || node_level::smallint;
            new_indexes := new_indexes || node_index;
            new_hashes := new_hashes || node;
        END LOOP;
        frontier[node_level + 1] := node;
        event_ids := event_ids || pending.id;
        positions := positions || next_position;
        next_position := next_position + 1;
    END LOOP;
    INSERT INTO ledger_nodes (level, idx, hash)
    SELECT * FROM unnest(new_levels, new_indexes, new_hashes);
    UPDATE events e SET ledger_index = u.position
    FROM unnest(event_ids, positions) AS u(id, position) WHERE e.id = u.id;
    RETURN QUERY SELECT * FROM unnest(event_ids, positions);
END
$$;
