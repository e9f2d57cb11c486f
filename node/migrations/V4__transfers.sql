-- Transfers between authorities (Schedule 1 para 19). A record at a node is
-- 'live' (this authority is responsible and serves it), 'arriving' (a copy
-- staged by a transfer in, served to no one until the transfer activates it)
-- or 'handed_over' (a transfer out has moved responsibility away: lookups are
-- answered with where it went; the copy remains only until the new node has
-- it, then is deleted, leaving record_forwarding and the audit).
ALTER TABLE child_record ADD COLUMN status text NOT NULL DEFAULT 'live'
    CHECK (status IN ('live', 'arriving', 'handed_over'));
-- The transfer that staged or handed over the record.
ALTER TABLE child_record ADD COLUMN transfer_id text;
ALTER TABLE child_record ADD CONSTRAINT child_record_transfer_named
    CHECK (status = 'live' OR transfer_id IS NOT NULL);
