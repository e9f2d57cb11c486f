-- Who acted, in the regulations' terms, and through whom.
ALTER TABLE audit_event ADD COLUMN role text NOT NULL DEFAULT '';
-- The gateway's identity when it called on the caller's behalf.
ALTER TABLE audit_event ADD COLUMN via text;

-- The outbox the gateway reads to route lookups (Schedule 1 para 19): one
-- event for each record this node becomes responsible for, written in the
-- transaction that makes it so.
CREATE TABLE routing_outbox (
    event_id        bigserial PRIMARY KEY,
    record_id       text NOT NULL,
    authority_code  text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);

-- Records that have moved to another authority: the node answers a request
-- for one with where it went (issue 4 writes these).
CREATE TABLE record_forwarding (
    record_id       text PRIMARY KEY,
    moved_to_code   text NOT NULL,
    moved_at        timestamptz NOT NULL DEFAULT now()
);
