-- The audit cannot be rewritten by the application (issue 19, item 3).
--
-- Two locks, one behind the other:
-- 1. A trigger refuses every UPDATE, DELETE and TRUNCATE of the audit
--    (entries and signed checkpoints), whoever asks. Only a table's owner
--    can turn it off (ALTER TABLE ... DISABLE TRIGGER).
-- 2. With `schema_owner_url` set, the node migrates as the schema's owner
--    and serves as another role, which `contactpoint_grant_application`
--    gives only what the node needs: the audit's SELECT and INSERT, no
--    UPDATE, DELETE or TRUNCATE, and not being the owner, no way to turn
--    the trigger off. A database administrator still can; the hash chain,
--    its signed checkpoints and the gateway's countersignatures are what
--    catch them (`contactpoint-node --verify-audit`).
CREATE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit is append-only: % of % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_event_never_truncated BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_never_truncated BEFORE TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- What the application role may do, granted by the owner at every start
-- (so tables of later migrations are covered): read and write the
-- records' tables, append to the audit, use the sequences. Nothing on the
-- migrations' history but reading it.
CREATE FUNCTION contactpoint_grant_application(p_role text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', p_role);
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_event, audit_checkpoint FROM %I', p_role);
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON refinery_schema_history FROM %I', p_role);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', p_role);
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO %I', p_role);
END
$$;
