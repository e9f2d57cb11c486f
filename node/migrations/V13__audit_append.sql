-- Appending to the audit chain in one statement, and the health loop's
-- question of it, as functions.
--
-- An append took the chain's lock, read the head, and wrote the entry
-- hashed by the node: the lock was held across two round trips to the node
-- (and its scheduling), so that under load appends queued on it. Here the
-- node sends the entry's canonical form without its id (the `tail`, see
-- `audit::Tail`), and the server takes the lock, reads the head, puts the
-- id in front, hashes and inserts; the lock is held for that and the
-- commit. The hash is the node's formula, SHA-256 over the previous hash
-- and the canonical form, so the verifier (`audit::verify`) is unchanged.
--
-- Both run with sequential scans off (and JIT off, which the cost a
-- disabled plan carries would otherwise set off on every call). A plan is
-- kept once made: on a new node's almost empty audit that was a scan and
-- sort of every entry, which went on being run, on every append, as the
-- audit grew, until ANALYZE happened to invalidate it (measured: 8.7 ms an
-- append at 20,000 entries, against microseconds by the primary key).

-- Appends an entry and the notifications it carries (`notify`, one for
-- each kind and record); returns its id. The lock is a transaction's: in
-- a statement of its own it is released when the statement commits; in a
-- transaction that changes records, when that commits. Each statement of
-- a VOLATILE function takes a fresh snapshot, so the head read after the
-- lock sees every entry appended before it.
CREATE FUNCTION audit_append(
    p_nested boolean, p_tail bytea, p_at timestamptz,
    p_organisation text, p_unit text, p_name text, p_method text, p_record_ids text[],
    p_outcome text, p_role text, p_via text, p_reason text, p_query text, p_notify text[]
) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off SET jit = off AS $$
DECLARE
    v_prev bytea;
    v_id bigint;
    v_digits bytea;
    v_canonical bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(18947064973248852); -- 0x0043504155444954, "CPAUDIT"
    SELECT e.entry_hash INTO v_prev FROM audit_event e ORDER BY e.event_id DESC LIMIT 1;
    v_prev := coalesce(v_prev, '\x'::bytea);
    v_id := nextval('audit_event_event_id_seq');
    v_digits := convert_to(v_id::text, 'UTF8');
    IF p_nested THEN
        -- A search's form holds the plain form as a JSON array of its bytes:
        -- '[' (91), then the id's digits, each as its code.
        v_canonical := convert_to('[[91,' || array_to_string(ARRAY(
            SELECT get_byte(v_digits, i) FROM generate_series(0, length(v_digits) - 1) i ORDER BY i), ','),
            'UTF8') || p_tail;
    ELSE
        v_canonical := '\x5b'::bytea || v_digits || p_tail;
    END IF;
    INSERT INTO audit_event (event_id, at, caller_organisation, caller_unit, caller_name, method,
                             record_ids, outcome, role, via, reason, prev_hash, entry_hash, query)
    VALUES (v_id, p_at, p_organisation, p_unit, p_name, p_method, p_record_ids, p_outcome,
            p_role, p_via, p_reason, v_prev, sha256(v_prev || v_canonical), p_query);
    INSERT INTO notification (kind, record_id, caller_organisation, caller_name, role, reason)
    SELECT kind, record_id, p_organisation, p_name, p_role, p_reason
    FROM unnest(p_notify) kind CROSS JOIN unnest(p_record_ids) record_id;
    RETURN v_id;
END
$$;

-- How long, in seconds, the oldest entry not under a signed checkpoint has
-- waited (0 when every entry is under one). The first by id: one row read,
-- however many are unsigned (the minimum time over all of them read every
-- one, 15 ms a call at 36,000). An entry is timed as the node sends it, so
-- the first by id is within moments of the oldest, and the answer is in
-- seconds.
CREATE FUNCTION audit_unsigned_age() RETURNS bigint
LANGUAGE plpgsql STABLE SET enable_seqscan = off SET jit = off AS $$
BEGIN
    RETURN COALESCE(
        (SELECT extract(epoch FROM now() - e.at)::bigint
         FROM audit_event e
         WHERE e.event_id > COALESCE((SELECT c.last_event_id FROM audit_checkpoint c
                                      ORDER BY c.checkpoint_id DESC LIMIT 1), 0)
         ORDER BY e.event_id LIMIT 1),
        0);
END
$$;
