-- The journal of transfers between authorities (Schedule 1 para 19): one row
-- per transfer with its state, and one row per step taken. No child's
-- details: the record travels node to node and is never stored here.
CREATE SEQUENCE transfer_seq AS bigint START 1;

CREATE TABLE transfer (
    transfer_id     text PRIMARY KEY DEFAULT 'T-' || nextval('transfer_seq'),
    record_id       text NOT NULL,
    from_code       text NOT NULL,
    to_code         text NOT NULL CHECK (to_code <> from_code),
    -- requested -> staged -> handed_over -> activated -> completed, or
    -- requested/staged -> cancelled. handed_over is the cutover.
    state           text NOT NULL DEFAULT 'requested'
        CHECK (state IN ('requested', 'staged', 'handed_over', 'activated', 'completed', 'cancelled')),
    cancel_requested boolean NOT NULL DEFAULT false,
    requested_by    text NOT NULL,
    requested_role  text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    -- Why the last attempt did not move the transfer on (it is retried).
    waiting_reason  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- The same record cannot be in two transfers at once.
CREATE UNIQUE INDEX transfer_one_open_per_record ON transfer (record_id)
    WHERE state NOT IN ('completed', 'cancelled');
CREATE INDEX transfer_from ON transfer (from_code);
CREATE INDEX transfer_to ON transfer (to_code);

CREATE TABLE transfer_step (
    step_id         bigserial PRIMARY KEY,
    transfer_id     text NOT NULL REFERENCES transfer (transfer_id),
    at              timestamptz NOT NULL DEFAULT now(),
    from_state      text NOT NULL,
    to_state        text NOT NULL
);
