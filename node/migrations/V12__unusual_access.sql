-- Unusual patterns are flagged to the responsible authority (RULES.md,
-- audit): a reader whose own surname is the child's, a possible look-up of
-- a relative.
ALTER TABLE notification DROP CONSTRAINT notification_kind_check;
ALTER TABLE notification ADD CONSTRAINT notification_kind_check
    CHECK (kind IN ('shield_override', 'viewed_by_other_organisation',
                    'possible_duplicate_of_shielded', 'reader_shares_surname'));
