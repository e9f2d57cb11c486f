-- The national blind index: for each record a node publishes through its
-- routing feed, the keyed hashes (HMAC-SHA256 under the federation's
-- matching key, first 64 bits) of its blocking keys. No name, date or
-- address: only hashes, a record identifier (as the routing index already
-- holds) and an authority code. A search is sent to the authorities holding
-- one of its own keys' hashes.
CREATE TABLE blind_index (
    record_id       text NOT NULL,
    authority_code  text NOT NULL,
    keys            bigint[] NOT NULL,
    PRIMARY KEY (record_id, authority_code)
);
CREATE INDEX blind_index_keys ON blind_index USING gin (keys);

-- Whether each node's feed, as last read, carried keys (the node holds the
-- matching key) and was read to its end: only then is the index complete
-- for that authority, and a search may pass it by.
ALTER TABLE feed_cursor ADD COLUMN keyed boolean NOT NULL DEFAULT false;
ALTER TABLE feed_cursor ADD COLUMN caught_up boolean NOT NULL DEFAULT false;

-- A search's names are coded here as each node codes its records': the same
-- functions as the node's migration V14, over the same fuzzystrmatch.
CREATE EXTENSION IF NOT EXISTS fuzzystrmatch;

CREATE FUNCTION name_parts(name text) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN array_remove(
        regexp_split_to_array(regexp_replace(lower(name), '[^[:alnum:][:space:]-]', '', 'g'), '[[:space:]-]+'),
        '');

CREATE FUNCTION name_codes(name text) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT coalesce(array_agg(DISTINCT code) FILTER (WHERE code <> ''), '{}')
            FROM unnest(name_parts(name) || array_to_string(name_parts(name), '')) AS part,
                 LATERAL (VALUES (dmetaphone(part)), (dmetaphone_alt(part))) AS codes (code));
