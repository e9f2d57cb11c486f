-- Tolerant matching (search with MATCH_MODE_TOLERANT): PostgreSQL's own
-- contrib modules find the candidates, through indexes, so that a large
-- authority's search stays fast; contactpoint-matching then scores them.
--   fuzzystrmatch: Double Metaphone codes, for names that sound alike;
--   pg_trgm: trigram similarity, for names within a letter or two.
-- Both are trusted extensions: the database's owner may create them.
CREATE EXTENSION IF NOT EXISTS fuzzystrmatch;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- A name's parts, keyed like contactpoint_matching::keys::name_parts: lower
-- case, split at spaces and hyphens, other punctuation dropped
-- ("Smith-Jones" is {smith,jones}; "O'Brien" is {obrien}).
CREATE FUNCTION name_parts(name text) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN array_remove(
        regexp_split_to_array(regexp_replace(lower(name), '[^[:alnum:][:space:]-]', '', 'g'), '[[:space:]-]+'),
        '');

-- The Double Metaphone codes (primary and alternate) of a name, of each of
-- its parts and of its parts run together: two names sound alike when their
-- codes overlap.
CREATE FUNCTION name_codes(name text) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT coalesce(array_agg(DISTINCT code) FILTER (WHERE code <> ''), '{}')
            FROM unnest(name_parts(name) || array_to_string(name_parts(name), '')) AS part,
                 LATERAL (VALUES (dmetaphone(part)), (dmetaphone_alt(part))) AS codes (code));

-- Kept beside each name, so that a search reads them rather than computes
-- them for every candidate, and indexed.
ALTER TABLE child_record
    ADD COLUMN family_name_parts text[] GENERATED ALWAYS AS (name_parts(family_name)) STORED,
    ADD COLUMN family_name_codes text[] GENERATED ALWAYS AS (name_codes(family_name)) STORED,
    ADD COLUMN given_names_codes text[] GENERATED ALWAYS AS (name_codes(given_names)) STORED;
ALTER TABLE former_name
    ADD COLUMN family_name_parts text[] GENERATED ALWAYS AS (name_parts(family_name)) STORED,
    ADD COLUMN family_name_codes text[] GENERATED ALWAYS AS (name_codes(family_name)) STORED;

CREATE INDEX child_record_surname_parts ON child_record USING gin (family_name_parts);
CREATE INDEX child_record_surname_codes ON child_record USING gin (family_name_codes);
CREATE INDEX child_record_surname_trigrams ON child_record USING gin (family_name_key gin_trgm_ops);
CREATE INDEX child_record_date_of_birth ON child_record (date_of_birth);
CREATE INDEX former_name_parts ON former_name USING gin (family_name_parts);
CREATE INDEX former_name_codes ON former_name USING gin (family_name_codes);
CREATE INDEX former_name_trigrams ON former_name USING gin (family_name_key gin_trgm_ops);
