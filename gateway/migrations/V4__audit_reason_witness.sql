-- The reason a reader stated, and a search's parameters (JSON), for every access.
ALTER TABLE gateway_audit ADD COLUMN reason text;
ALTER TABLE gateway_audit ADD COLUMN query text;

-- The gateway's countersignatures of each node's signed audit checkpoints.
-- Kept outside the node's control: a node that cut its log back, even with
-- its own checkpoints, cannot cut these, and its verifier is given them.
CREATE TABLE audit_witness (
    authority_code  text NOT NULL,
    last_event_id   bigint NOT NULL,
    head_hash       bytea NOT NULL,
    node_signature  bytea NOT NULL,
    gateway_signature bytea NOT NULL,
    witnessed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (authority_code, last_event_id)
);
