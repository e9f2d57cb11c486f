-- The Schedule 1 record (SI 2007/2182). One row per record in child_record;
-- the repeating paragraphs in their own tables. Addresses and contact
-- details are JSONB; everything that is searched, constrained or (later)
-- archived by date is a column.

-- Para 5: serial part of identifiers this node mints. A sequence never hands
-- out a value twice, even when the transaction that drew it rolls back.
CREATE SEQUENCE record_serial_seq AS bigint START 1;

-- Entry ids for paragraphs 6 to 16, unique across all entry tables.
CREATE SEQUENCE entry_id_seq AS bigint START 1;

CREATE TABLE child_record (
    -- Para 5, canonical hyphenated form.
    id                  text PRIMARY KEY,
    version             bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    category            text NOT NULL CHECK (category IN ('child', 'participating_young_person')),
    -- Para 1.
    given_names         text NOT NULL CHECK (given_names <> ''),
    family_name         text NOT NULL CHECK (family_name <> ''),
    -- Search keys: lower case, letters and digits only (forenames space separated).
    given_names_key     text NOT NULL,
    family_name_key     text NOT NULL,
    -- Para 2 (the whole state) and the postcode of a current or last known address.
    whereabouts         jsonb NOT NULL,
    postcode            text,
    -- Para 3.
    gender              text NOT NULL CHECK (gender IN ('female', 'male', 'other', 'not_specified')),
    -- Para 4.
    date_of_birth       date NOT NULL,
    -- Para 17.
    date_of_death       date CHECK (date_of_death IS NULL OR date_of_death >= date_of_birth),
    -- Para 19.
    responsible_authority_code text NOT NULL,
    responsible_authority_name text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX child_record_surname_dob ON child_record (family_name_key, date_of_birth);
CREATE INDEX child_record_postcode ON child_record (postcode);

-- Para 1: former names.
CREATE TABLE former_name (
    record_id       text NOT NULL REFERENCES child_record (id) ON DELETE CASCADE,
    position        int NOT NULL,
    given_names     text NOT NULL,
    family_name     text NOT NULL CHECK (family_name <> ''),
    family_name_key text NOT NULL,
    ceased_on       date,
    PRIMARY KEY (record_id, position)
);
CREATE INDEX former_name_surname ON former_name (family_name_key);

-- Para 6.
CREATE TABLE contact (
    entry_id        bigint PRIMARY KEY DEFAULT nextval('entry_id_seq'),
    record_id       text NOT NULL REFERENCES child_record (id) ON DELETE CASCADE,
    relationship    text NOT NULL CHECK (relationship IN ('parental_responsibility', 'has_care_of_child', 'carer_of_young_person')),
    given_names     text NOT NULL,
    family_name     text NOT NULL,
    details         jsonb NOT NULL,
    started_on      date,
    ended_on        date CHECK (ended_on IS NULL OR started_on IS NULL OR ended_on >= started_on)
);
CREATE INDEX contact_record ON contact (record_id);

-- Para 7.
CREATE TABLE education (
    entry_id        bigint PRIMARY KEY DEFAULT nextval('entry_id_seq'),
    record_id       text NOT NULL REFERENCES child_record (id) ON DELETE CASCADE,
    setting         text NOT NULL CHECK (setting IN ('educational_institution', 'other_provider')),
    provider_name   text NOT NULL,
    details         jsonb NOT NULL,
    started_on      date NOT NULL,
    ended_on        date CHECK (ended_on IS NULL OR ended_on >= started_on)
);
CREATE INDEX education_record ON education (record_id);

-- Paras 8, 9, 11, 12, 13 with the dates of para 14 and the archive period of para 15.
CREATE TABLE service (
    entry_id        bigint PRIMARY KEY DEFAULT nextval('entry_id_seq'),
    record_id       text NOT NULL REFERENCES child_record (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('primary_medical', 'specialist_or_targeted', 'health_visitor', 'school_nurse', 'midwife')),
    provider_name   text NOT NULL,
    details         jsonb NOT NULL,
    -- Para 9(b); NULL when the service is not sensitive.
    sensitive_ground text CHECK (sensitive_ground IN ('consent', 'significant_harm')),
    started_on      date NOT NULL,
    ended_on        date CHECK (ended_on IS NULL OR ended_on >= started_on),
    archive_after_years smallint CHECK (archive_after_years BETWEEN 1 AND 5),
    -- Para 8(2): a sensitive primary medical service is recorded under para 9.
    CHECK (NOT (kind = 'primary_medical' AND sensitive_ground IS NOT NULL)),
    -- Para 15 applies to paras 9 and 11 to 13, not to para 8.
    CHECK ((kind = 'primary_medical') = (archive_after_years IS NULL))
);
CREATE INDEX service_record ON service (record_id);

-- Para 10.
CREATE TABLE caf_assessment (
    entry_id        bigint PRIMARY KEY DEFAULT nextval('entry_id_seq'),
    record_id       text NOT NULL REFERENCES child_record (id) ON DELETE CASCADE,
    assessor_name   text NOT NULL,
    assessing_body  text NOT NULL,
    details         jsonb NOT NULL,
    assessed_on     date NOT NULL,
    actions_completed_on date CHECK (actions_completed_on IS NULL OR actions_completed_on >= assessed_on)
);
CREATE INDEX caf_assessment_record ON caf_assessment (record_id);

-- Para 16.
CREATE TABLE lead_professional (
    entry_id        bigint PRIMARY KEY DEFAULT nextval('entry_id_seq'),
    record_id       text NOT NULL REFERENCES child_record (id) ON DELETE CASCADE,
    capacity        text NOT NULL CHECK (capacity IN ('service_provider', 'caf_assessor', 'health_visitor_school_nurse_or_midwife', 'school_staff')),
    name            text NOT NULL,
    details         jsonb NOT NULL,
    started_on      date NOT NULL,
    ended_on        date CHECK (ended_on IS NULL OR ended_on >= started_on)
);
CREATE INDEX lead_professional_record ON lead_professional (record_id);

-- Para 18.
CREATE TABLE body_identifier (
    record_id       text NOT NULL REFERENCES child_record (id) ON DELETE CASCADE,
    position        int NOT NULL,
    body            text NOT NULL,
    scheme          text NOT NULL,
    value           text NOT NULL,
    PRIMARY KEY (record_id, position)
);

-- Para 20.
CREATE TABLE record_metadata (
    record_id       text NOT NULL REFERENCES child_record (id) ON DELETE CASCADE,
    position        int NOT NULL,
    paragraph       smallint NOT NULL CHECK (paragraph BETWEEN 1 AND 19),
    key             text NOT NULL,
    value           text NOT NULL,
    PRIMARY KEY (record_id, position)
);

-- Every access and change: who (from the verified certificate), which
-- method, which record, and the outcome. Never personal data.
CREATE TABLE audit_event (
    event_id        bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    caller_organisation text NOT NULL,
    caller_unit     text,
    caller_name     text NOT NULL,
    method          text NOT NULL,
    record_ids      text[] NOT NULL DEFAULT '{}',
    outcome         text NOT NULL
);
