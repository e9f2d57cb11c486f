-- Unusual patterns in the audit, flagged for review (RULES.md, audit): a user
-- who makes many searches without viewing any record.
CREATE TABLE audit_flag (
    flag_id             bigserial PRIMARY KEY,
    at                  timestamptz NOT NULL DEFAULT now(),
    caller_organisation text NOT NULL,
    caller_unit         text,
    caller_name         text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('searches_without_views')),
    detail              text NOT NULL
);
CREATE INDEX gateway_audit_caller ON gateway_audit (caller_organisation, caller_name, at);
