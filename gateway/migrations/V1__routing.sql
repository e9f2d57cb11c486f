-- The gateway's own database: where each record is (Schedule 1 para 19),
-- how far it has read each node's outbox, and its audit. Nothing else: no
-- child's details are ever stored here.

-- Identifier to responsible authority.
CREATE TABLE routing_index (
    record_id       text PRIMARY KEY,
    authority_code  text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The last outbox event read from each authority's node.
CREATE TABLE feed_cursor (
    authority_code  text PRIMARY KEY,
    last_event_id   bigint NOT NULL
);

-- Every call through the gateway: who, in which role, what, which records
-- and authorities, and the outcome. Never a name, date of birth or address.
CREATE TABLE gateway_audit (
    event_id        bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    caller_organisation text NOT NULL,
    caller_unit     text,
    caller_name     text NOT NULL,
    role            text NOT NULL,
    method          text NOT NULL,
    record_ids      text[] NOT NULL DEFAULT '{}',
    authorities     text[] NOT NULL DEFAULT '{}',
    outcome         text NOT NULL
);
