-- The node's audit signing keys (issue 19, item 3): a key of its own, never
-- the TLS key, with its history, so that every checkpoint signed under an
-- earlier key still verifies after a rotation.
--
-- Each key after the first carries its link to the key before it, signed by
-- both (`endorsement` by the key before, `acceptance` by this one, over
-- contactpoint_mtls::key_link_message), so that a key written here by
-- someone who holds neither breaks the history. Append-only, like the audit.
CREATE TABLE audit_key (
    key_seq       bigserial PRIMARY KEY,
    key_id        bytea NOT NULL UNIQUE CHECK (length(key_id) = 32),
    public_key    bytea NOT NULL,
    introduced_at timestamptz NOT NULL DEFAULT now(),
    endorsement   bytea,
    acceptance    bytea,
    CHECK ((endorsement IS NULL) = (acceptance IS NULL))
);

-- The key that signed each checkpoint; NULL for those signed before this
-- migration, with the TLS key, which the history then holds as its first.
ALTER TABLE audit_checkpoint ADD COLUMN key_id bytea;

CREATE TRIGGER audit_key_append_only BEFORE UPDATE OR DELETE ON audit_key
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_key_never_truncated BEFORE TRUNCATE ON audit_key
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- As V17's, the key history append-only for the application role too.
CREATE OR REPLACE FUNCTION contactpoint_grant_application(p_role text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', p_role);
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_event, audit_checkpoint, audit_key FROM %I', p_role);
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON refinery_schema_history FROM %I', p_role);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', p_role);
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO %I', p_role);
END
$$;
