-- A participating young person's record exists only with their explicit
-- consent (RULES.md); withdrawing it archives the record.
ALTER TABLE child_record ADD COLUMN consent_given_on date;
ALTER TABLE child_record ADD COLUMN consent_recorded_by text;
ALTER TABLE child_record ADD COLUMN consent_withdrawn_on date;
ALTER TABLE child_record ADD CONSTRAINT child_record_young_person_consents
    CHECK (category <> 'participating_young_person' OR consent_given_on IS NOT NULL) NOT VALID;
