-- A tamper-evident audit. Each entry carries the hash of the one before it
-- and its own hash over its content and that link (SHA-256), so altering,
-- deleting or reordering an entry breaks the chain. Entries are appended
-- one at a time under an advisory lock, in event_id order.
ALTER TABLE audit_event ADD COLUMN prev_hash bytea;
ALTER TABLE audit_event ADD COLUMN entry_hash bytea;

-- Signed checkpoints of the chain's head: a later truncation of the log
-- below a checkpoint is detected. Signed with the node's own key.
CREATE TABLE audit_checkpoint (
    checkpoint_id   bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    last_event_id   bigint NOT NULL,
    head_hash       bytea NOT NULL,
    signature       bytea NOT NULL
);
