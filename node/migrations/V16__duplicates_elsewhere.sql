-- Cross-authority duplicates (issue 17): the gateway, finding two live
-- records at two authorities that share a strong blocking key in its blind
-- index, tells each authority's management team of the other's record. A
-- notice told twice (a retry, two gateways) is one notification: its
-- gateway identifier is unique here.
ALTER TABLE notification DROP CONSTRAINT notification_kind_check;
ALTER TABLE notification ADD CONSTRAINT notification_kind_check
    CHECK (kind IN ('shield_override', 'viewed_by_other_organisation',
                    'possible_duplicate_of_shielded', 'reader_shares_surname',
                    'possible_duplicate_elsewhere'));
ALTER TABLE notification ADD COLUMN notice_id text UNIQUE;
ALTER TABLE notification ADD COLUMN related_authority_code text;
ALTER TABLE notification ADD COLUMN related_authority_name text;
