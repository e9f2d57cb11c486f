-- The audit's two hot reads, as functions planned with sequential scans
-- off. A prepared statement keeps the plan made when it was first run: on
-- a new node's almost empty audit that is a scan and sort of every entry,
-- which it then goes on doing, on every append, as the audit grows, until
-- ANALYZE happens to invalidate it (measured: 8.7 ms an append at 20,000
-- entries, against a few microseconds by the primary key). JIT is off for
-- them: the cost a disabled plan node carries would otherwise set off
-- compilation (a fifth of a second) on every call.

-- The chain's head and the next entry's id. Called under the append lock,
-- in a statement of its own; each statement of a VOLATILE function takes
-- a fresh snapshot, so it sees every entry appended before the lock.
CREATE FUNCTION audit_chain_head(OUT head_hash bytea, OUT next_event_id bigint)
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off SET jit = off AS $$
BEGIN
    SELECT e.entry_hash INTO head_hash FROM audit_event e ORDER BY e.event_id DESC LIMIT 1;
    next_event_id := nextval('audit_event_event_id_seq');
END
$$;

-- How long, in seconds, the oldest entry not under a signed checkpoint has
-- waited (0 when every entry is under one): the health loop's question.
-- Entries are timed under the append lock, so the oldest is the first.
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
