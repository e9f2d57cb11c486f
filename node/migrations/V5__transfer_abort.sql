-- Transfers out that were cancelled before their cutover. The decision
-- "handed over or cancelled" is taken here, under the record's row lock, so
-- a cancelled transfer can never hand the record over afterwards.
CREATE TABLE transfer_out_abort (
    transfer_id     text PRIMARY KEY,
    record_id       text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
