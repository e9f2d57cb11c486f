-- Cross-authority duplicates (issue 17): each record's strong blocking keys
-- (surname, forename and the whole date of birth, as they sound; keyed
-- hashes like the rest) are kept apart, and two live records at two
-- authorities sharing one are journaled as a notice, which the gateway
-- tells both authorities' management teams of, retrying until both have
-- it. A pair is noticed once: the authorities decide, not the gateway. No
-- name or date: record identifiers and authority codes only.
ALTER TABLE blind_index ADD COLUMN strong bigint[] NOT NULL DEFAULT '{}';
CREATE INDEX blind_index_strong ON blind_index USING gin (strong);

CREATE TABLE duplicate_notice (
    notice_id        bigserial PRIMARY KEY,
    first_record     text NOT NULL,
    first_authority  text NOT NULL,
    second_record    text NOT NULL,
    second_authority text NOT NULL,
    found_at         timestamptz NOT NULL DEFAULT now(),
    -- Both authorities told (NULL: still to tell).
    told_at          timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    -- Why the last attempt did not tell both (it is retried).
    waiting_reason   text,
    CHECK (first_record < second_record),
    UNIQUE (first_record, second_record)
);
CREATE INDEX duplicate_notice_untold ON duplicate_notice (notice_id) WHERE told_at IS NULL;

-- A merge across authorities: the duplicate travels to the survivor's
-- authority by the transfer machinery, and is merged into it there after
-- activation. The outcome is kept: "merged", or why not.
ALTER TABLE transfer ADD COLUMN merge_into text;
ALTER TABLE transfer ADD COLUMN merge_reason text;
ALTER TABLE transfer ADD COLUMN merge_outcome text;
ALTER TABLE transfer ADD CONSTRAINT transfer_merge_reason
    CHECK ((merge_into IS NULL) = (merge_reason IS NULL));
