-- Storing an accepted package in one round trip (issue 16: the submit transaction was eight:
-- BEGIN, two advisory locks, two lookups, the inserts, the events, COMMIT).
--
-- store_package: the rows of one package: the package, one delivery per recipient with its
-- outbox row, the 'submitted' event, the verification report if any, and further events
-- (parallel arrays, in order). Called inside the caller's transaction.
--
-- accept_package: the whole acceptance of a package that settles no flow (a new document):
-- under the digest lock, the stored package with the same bytes wins; under the DocumentId
-- lock, a new document may not reuse the id of an earlier one; then store_package. Each
-- statement of a volatile function takes a new snapshot, so a lookup after a lock sees what
-- the lock's previous holder committed. One row comes back: `existing` (same bytes stored),
-- `clash` (the DocumentId is taken), or the new deliveries.

CREATE OR REPLACE FUNCTION store_package(
    p_id uuid, p_digest bytea, p_sender text, p_kind text, p_document_id text,
    p_business_doc_type smallint, p_status_code text, p_response_organ text,
    p_response_document text, p_about uuid, p_subject text, p_size bigint,
    p_recipients text[], p_routing_keys text[], p_addressed_as text[], p_retry_seconds float8,
    p_at timestamptz, p_detail jsonb, p_leaf bytea,
    p_report_indication text, p_report_digest bytea, p_report bytea,
    p_event_packages uuid[], p_events text[], p_event_organs text[], p_event_at timestamptz[],
    p_event_details text[], p_event_digests bytea[], p_event_leaves bytea[])
RETURNS TABLE (delivery_id bigint, recipient text, event_id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    submitted_id bigint;
    delivery_ids bigint[];
    delivery_recipients text[];
BEGIN
    INSERT INTO packages (id, digest, sender, kind, document_id, business_doc_type, status_code,
                          response_for_organ, response_for_document, about_package, subject,
                          size)
    VALUES (p_id, p_digest, p_sender, p_kind, p_document_id, p_business_doc_type, p_status_code,
            p_response_organ, p_response_document, p_about, p_subject, p_size);
    WITH d AS (
        INSERT INTO deliveries (package_id, recipient, addressed_as)
        SELECT p_id, x.r, x.a FROM unnest(p_recipients, p_addressed_as) AS x(r, a)
        RETURNING deliveries.id, deliveries.recipient
    ), o AS (
        INSERT INTO outbox (delivery_id, routing_key, next_attempt_at)
        SELECT d.id, k.key, now() + make_interval(secs => p_retry_seconds)
        FROM d JOIN unnest(p_recipients, p_routing_keys) AS k(r, key) ON k.r = d.recipient
    )
    SELECT array_agg(d.id ORDER BY d.id), array_agg(d.recipient ORDER BY d.id)
    INTO delivery_ids, delivery_recipients FROM d;
    INSERT INTO events (package_id, event, organ_id, at, detail, digest, leaf)
    VALUES (p_id, 'submitted', p_sender, p_at, p_detail, p_digest, p_leaf)
    RETURNING id INTO submitted_id;
    IF p_report IS NOT NULL THEN
        INSERT INTO verification_reports (package_id, indication, digest, report)
        VALUES (p_id, p_report_indication, p_report_digest, p_report);
    END IF;
    INSERT INTO events (package_id, event, organ_id, at, detail, digest, leaf)
    SELECT e.package, e.kind, e.organ, e.at, e.detail::jsonb, e.digest, e.leaf
    FROM unnest(p_event_packages, p_events, p_event_organs, p_event_at, p_event_details,
                p_event_digests, p_event_leaves)
        WITH ORDINALITY AS e(package, kind, organ, at, detail, digest, leaf, n)
    ORDER BY e.n;
    RETURN QUERY SELECT u.id, u.recipient, submitted_id
    FROM unnest(delivery_ids, delivery_recipients) AS u(id, recipient);
END
$$;

CREATE OR REPLACE FUNCTION accept_package(
    p_digest_lock integer, p_document_lock integer, p_check_document_id boolean,
    p_id uuid, p_digest bytea, p_sender text, p_kind text, p_document_id text,
    p_business_doc_type smallint, p_status_code text, p_response_organ text,
    p_response_document text, p_about uuid, p_subject text, p_size bigint,
    p_recipients text[], p_routing_keys text[], p_addressed_as text[], p_retry_seconds float8,
    p_at timestamptz, p_detail jsonb, p_leaf bytea,
    p_report_indication text, p_report_digest bytea, p_report bytea,
    p_event_packages uuid[], p_events text[], p_event_organs text[], p_event_at timestamptz[],
    p_event_details text[], p_event_digests bytea[], p_event_leaves bytea[])
RETURNS TABLE (existing uuid, clash uuid, delivery_id bigint, recipient text, event_id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    found_id uuid;
BEGIN
    PERFORM pg_advisory_xact_lock(p_digest_lock, hashtext(encode(p_digest, 'hex')));
    SELECT p.id INTO found_id FROM packages p WHERE p.digest = p_digest;
    IF found_id IS NOT NULL THEN
        RETURN QUERY SELECT found_id, NULL::uuid, NULL::bigint, NULL::text, NULL::bigint;
        RETURN;
    END IF;
    IF p_check_document_id THEN
        PERFORM pg_advisory_xact_lock(p_document_lock, hashtext(p_sender || '/' || p_document_id));
        SELECT p.id INTO found_id FROM packages p
        WHERE p.sender = p_sender AND p.document_id = p_document_id AND p.kind = 'edoc'
        LIMIT 1;
        IF found_id IS NOT NULL THEN
            RETURN QUERY SELECT NULL::uuid, found_id, NULL::bigint, NULL::text, NULL::bigint;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT NULL::uuid, NULL::uuid, s.delivery_id, s.recipient, s.event_id
    FROM store_package(p_id, p_digest, p_sender, p_kind, p_document_id, p_business_doc_type,
                       p_status_code, p_response_organ, p_response_document, p_about,
                       p_subject, p_size, p_recipients, p_routing_keys, p_addressed_as,
                       p_retry_seconds, p_at, p_detail, p_leaf, p_report_indication,
                       p_report_digest, p_report, p_event_packages, p_events,
                       p_event_organs, p_event_at, p_event_details, p_event_digests,
                       p_event_leaves) AS s;
END
$$;

-- queue_pushes: a push for each of these copies whose recipient is on push (a copy already
-- pushed keeps its push), and the pushers of every hub woken when one was made; called in the
-- transaction that delivers the copies (deliver_copies) or puts an agency on push.
CREATE OR REPLACE FUNCTION queue_pushes(p_ids bigint[], p_push_channel text)
RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    made bigint;
BEGIN
    WITH inserted AS (
        INSERT INTO push_deliveries (id, delivery_id, organ_id)
        SELECT gen_random_uuid(), d.id, d.recipient FROM deliveries d
        JOIN push_endpoints e ON e.organ_id = d.recipient AND e.enabled
        WHERE d.id = ANY(p_ids)
        ON CONFLICT (delivery_id) DO NOTHING RETURNING 1
    )
    SELECT count(*) INTO made FROM inserted;
    IF made > 0 THEN
        PERFORM pg_notify(p_push_channel, '');
    END IF;
    RETURN made;
END
$$;

-- deliver_copies: pending copies into their recipients' inboxes (cursor, time, state), under
-- the delivering lock so that inbox cursors grow in commit order, with a push queued for each
-- copy whose recipient is on push (and the pushers woken); returns the copies that moved, for
-- their 'delivered' events, which the caller writes in the same transaction.
CREATE OR REPLACE FUNCTION deliver_copies(p_lock bigint, p_ids bigint[], p_push_channel text)
RETURNS TABLE (delivery_id bigint, package_id uuid, recipient text, digest bytea)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    moved_ids bigint[];
    moved_packages uuid[];
    moved_recipients text[];
    moved_digests bytea[];
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    -- in id order, as the confirms of the outbox lock them: batches wait, never deadlock
    PERFORM 1 FROM deliveries d WHERE d.id = ANY(p_ids) AND d.state = 'pending'
    ORDER BY d.id FOR UPDATE;
    WITH moved AS (
        UPDATE deliveries d SET state = 'delivered', delivered_at = now(),
            inbox_seq = nextval('inbox_seq')
        FROM packages p
        WHERE d.id = ANY(p_ids) AND d.state = 'pending' AND p.id = d.package_id
        RETURNING d.id, d.package_id, d.recipient, p.digest
    )
    SELECT array_agg(m.id ORDER BY m.id), array_agg(m.package_id ORDER BY m.id),
           array_agg(m.recipient ORDER BY m.id), array_agg(m.digest ORDER BY m.id)
    INTO moved_ids, moved_packages, moved_recipients, moved_digests FROM moved m;
    IF moved_ids IS NULL THEN
        RETURN;
    END IF;
    PERFORM queue_pushes(moved_ids, p_push_channel);
    RETURN QUERY SELECT * FROM unnest(moved_ids, moved_packages, moved_recipients, moved_digests);
END
$$;
