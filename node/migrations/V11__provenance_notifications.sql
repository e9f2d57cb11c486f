-- Every access is audited with the query's parameters (RULES.md, audit): a
-- search's surname, forename, date of birth, postcode and gender, as JSON.
-- NULL for calls that are not searches. Part of the chained entry when set.
ALTER TABLE audit_event ADD COLUMN query text;

-- Provenance of each entry (regulation 11; paragraph 20 metadata, which users
-- do not see): the body that supplied it, under which of its own identifiers
-- for the child (paragraph 18, "scheme:value"), and when.
ALTER TABLE contact ADD COLUMN supplied_by text, ADD COLUMN supplied_ref text, ADD COLUMN supplied_at timestamptz;
ALTER TABLE education ADD COLUMN supplied_by text, ADD COLUMN supplied_ref text, ADD COLUMN supplied_at timestamptz;
ALTER TABLE service ADD COLUMN supplied_by text, ADD COLUMN supplied_ref text, ADD COLUMN supplied_at timestamptz;
ALTER TABLE caf_assessment ADD COLUMN supplied_by text, ADD COLUMN supplied_ref text, ADD COLUMN supplied_at timestamptz;
ALTER TABLE lead_professional ADD COLUMN supplied_by text, ADD COLUMN supplied_ref text, ADD COLUMN supplied_at timestamptz;
-- A body's open entries, found when its next contribution supersedes them.
CREATE INDEX service_supplier ON service (record_id, supplied_by);
CREATE INDEX education_supplier ON education (record_id, supplied_by);

-- What the responsible authority is told (RULES.md; as CP-IS does): shielding
-- overridden, its record viewed by another organisation, a new record that
-- may duplicate a shielded one. The shield alerts become one kind of these.
ALTER TABLE shield_alert RENAME TO notification;
ALTER TABLE notification RENAME COLUMN alert_id TO notification_id;
ALTER TABLE notification ALTER COLUMN reason DROP NOT NULL;
ALTER TABLE notification ADD COLUMN kind text NOT NULL DEFAULT 'shield_override'
    CHECK (kind IN ('shield_override', 'viewed_by_other_organisation', 'possible_duplicate_of_shielded'));
ALTER TABLE notification ALTER COLUMN kind DROP DEFAULT;
-- For a possible duplicate: the shielded record it may duplicate.
ALTER TABLE notification ADD COLUMN related_record_id text;
CREATE INDEX notification_record ON notification (record_id);

-- Subject access requests read the audit by record.
CREATE INDEX audit_event_records ON audit_event USING gin (record_ids);

-- A duplicate merged into another record of this authority: its identifier
-- answers with the record it was merged into.
ALTER TABLE record_forwarding ADD COLUMN merged_into text;
