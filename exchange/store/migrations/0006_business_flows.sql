-- Migrations are applied in order, each once, in one transaction, and recorded in
-- schema_migrations (exchange/store/database.py). Statements stay safe to run again.

-- Each recipient's copy as the business flows see it (exchange/flows.py): the last status the
-- recipient sent about it, its disposition, and the request (a recall, an update, a
-- replacement) waiting for its answer (15/16). No row: active, no status yet. The references
-- are checked at commit, so a package and the changes it causes go in one transaction.
CREATE TABLE IF NOT EXISTS dispositions (
    package_id      uuid NOT NULL,
    recipient       text NOT NULL,
    disposition     text NOT NULL DEFAULT 'active' CHECK (disposition IN
                    ('active', 'recall_requested', 'recalled', 'recall_refused', 'superseded')),
    progress        text,                 -- the last of 01-06 the recipient sent
    status_code     text,                 -- the last status it sent (14 is taken as 15)
    status_received text,                 -- that status exactly as received
    status_package  uuid REFERENCES packages (id) DEFERRABLE INITIALLY DEFERRED,
    awaiting        uuid REFERENCES packages (id) DEFERRABLE INITIALLY DEFERRED,
    answer          text CHECK (answer IN ('agreed', 'refused')),
    superseded_by   uuid REFERENCES packages (id) DEFERRABLE INITIALLY DEFERRED,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (package_id, recipient),
    FOREIGN KEY (package_id, recipient) REFERENCES deliveries (package_id, recipient)
        DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX IF NOT EXISTS dispositions_awaiting ON dispositions (awaiting)
    WHERE awaiting IS NOT NULL;

-- What a revocation, update or replacement concerns: one row per earlier document, with the
-- recipients whose copy it concerns.
CREATE TABLE IF NOT EXISTS package_links (
    package_id uuid NOT NULL REFERENCES packages (id) DEFERRABLE INITIALLY DEFERRED,
    concerns   uuid NOT NULL REFERENCES packages (id),
    relation   text NOT NULL CHECK (relation IN ('revokes', 'updates', 'replaces')),
    organs     text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (package_id, concerns)
);
CREATE INDEX IF NOT EXISTS package_links_concerns ON package_links (concerns);

-- A DocumentId whoever sent it (is the concerned document another sender's? GET /v1/documents),
-- and the statuses about a package, without a scan of every package.
CREATE INDEX IF NOT EXISTS packages_document_id ON packages (document_id);
CREATE INDEX IF NOT EXISTS packages_about ON packages (about_package)
    WHERE about_package IS NOT NULL;
