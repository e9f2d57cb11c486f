-- The gateway checks a node's audit head before it countersigns it
-- (issue 19, item 3): the node's audit keys it has seen (pinned on first
-- use; a later key is accepted only linked to one of them), the newest head
-- it countersigned per node (the one every new head must not go behind),
-- and the heads it refused, each an alarm.
CREATE TABLE audit_node_key (
    authority_code text NOT NULL,
    public_key     bytea NOT NULL,
    pinned_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (authority_code, public_key)
);

CREATE TABLE audit_witness_head (
    authority_code    text PRIMARY KEY,
    last_event_id     bigint NOT NULL,
    head_hash         bytea NOT NULL,
    node_signature    bytea NOT NULL,
    gateway_signature bytea NOT NULL,
    witnessed_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_witness_head (authority_code, last_event_id, head_hash, node_signature,
                                gateway_signature, witnessed_at)
SELECT DISTINCT ON (authority_code) authority_code, last_event_id, head_hash, node_signature,
       gateway_signature, witnessed_at
FROM audit_witness ORDER BY authority_code, last_event_id DESC;

-- The history keeps a countersigned head a minute at most apart per node
-- (the head table has the newest): a few seconds' window without a row a
-- node every few seconds.
CREATE INDEX audit_witness_recent ON audit_witness (authority_code, witnessed_at);

CREATE TABLE audit_witness_refusal (
    refusal_id     bigserial PRIMARY KEY,
    authority_code text NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    reason         text NOT NULL CHECK (reason IN ('behind', 'forked', 'keys', 'signature')),
    detail         text NOT NULL,
    last_event_id  bigint NOT NULL,
    head_hash      bytea NOT NULL,
    node_signature bytea NOT NULL
);
