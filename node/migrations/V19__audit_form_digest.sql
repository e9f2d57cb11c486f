-- An entry's hash links the digest of its canonical form (issue 19,
-- item 3), so that a node can prove to the gateway that its head extends
-- the head countersigned before without sending any entry's content (which
-- names callers and holds search parameters): the digests after that head,
-- which the gateway links onto the hash it holds.
--
-- From here an entry's hash is SHA-256 over the previous hash and
-- `form_digest`, SHA-256 of the canonical form; entries before keep theirs
-- (`form_digest` NULL: linked over the form itself), and the verifier
-- checks each by its own formula.
ALTER TABLE audit_event ADD COLUMN form_digest bytea;

-- V13's, hashing the form's digest.
CREATE OR REPLACE FUNCTION audit_append(
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
    v_digest bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(18947064973248852); -- 0x0043504155444954, "CPAUDIT"
    SELECT e.entry_hash INTO v_prev FROM audit_event e ORDER BY e.event_id DESC LIMIT 1;
    v_prev := coalesce(v_prev, '\x'::bytea);
    v_id := nextval('audit_event_event_id_seq');
    v_digits := convert_to(v_id::text, 'UTF8');
    IF p_nested THEN
        v_canonical := convert_to('[[91,' || array_to_string(ARRAY(
            SELECT get_byte(v_digits, i) FROM generate_series(0, length(v_digits) - 1) i ORDER BY i), ','),
            'UTF8') || p_tail;
    ELSE
        v_canonical := '\x5b'::bytea || v_digits || p_tail;
    END IF;
    v_digest := sha256(v_canonical);
    INSERT INTO audit_event (event_id, at, caller_organisation, caller_unit, caller_name, method,
                             record_ids, outcome, role, via, reason, prev_hash, entry_hash, query,
                             form_digest)
    VALUES (v_id, p_at, p_organisation, p_unit, p_name, p_method, p_record_ids, p_outcome,
            p_role, p_via, p_reason, v_prev, sha256(v_prev || v_digest), p_query, v_digest);
    INSERT INTO notification (kind, record_id, caller_organisation, caller_name, role, reason)
    SELECT kind, record_id, p_organisation, p_name, p_role, p_reason
    FROM unnest(p_notify) kind CROSS JOIN unnest(p_record_ids) record_id;
    RETURN v_id;
END
$$;

-- The entries after `p_since`, oldest first, at most `p_limit`: the proof
-- a head extends the one the gateway countersigned. By the primary key.
CREATE FUNCTION audit_proof(p_since bigint, p_limit bigint)
RETURNS TABLE (event_id bigint, entry_hash bytea, form_digest bytea)
LANGUAGE sql STABLE SET enable_seqscan = off SET jit = off AS $$
    SELECT e.event_id, e.entry_hash, e.form_digest FROM audit_event e
    WHERE e.event_id > p_since ORDER BY e.event_id LIMIT p_limit
$$;
