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
-- Open transfers journaled before consent was required and not yet at
-- their cutover wait for it now. One past its cutover goes on: the sending
-- node lets a hand-over it has made be repeated without a consent.
UPDATE transfer SET state = 'awaiting_consent', updated_at = now()
    WHERE state IN ('requested', 'staged');
