-- A transfer needs the sending authority's consent (issue 19): asked for by
-- anyone else (the destination's staff, the sender's own practitioners, an
-- operator), a transfer waits in 'awaiting_consent' until the management
-- team of the authority responsible now consents, and nothing moves before.
-- Who consented is journaled and named to the sending node at every step
-- that lets the record leave, which checks it against its own policy.
ALTER TABLE transfer DROP CONSTRAINT transfer_state_check;
ALTER TABLE transfer ADD CONSTRAINT transfer_state_check
    CHECK (state IN ('awaiting_consent', 'requested', 'staged', 'handed_over',
                     'activated', 'completed', 'cancelled'));
ALTER TABLE transfer ADD COLUMN consented_by text;
ALTER TABLE transfer ADD COLUMN consented_at timestamptz;
-- Open transfers journaled before consent was required name none: the
-- gateway sends one still at 'requested' back to 'awaiting_consent' at its
-- next step, and the sending node refuses to hand over one at 'staged'
-- that it has not handed over yet, which sends it back too; one the node
-- handed over already goes on (the node lets a hand-over it made be
-- repeated, to the same authority, audited).
