-- Shielding (RULES.md): the responsible authority may decide that users see
-- only paragraphs 1, 3, 4 and 5 (and, for a child, the names of those with
-- parental responsibility or care). NULL: not shielded; otherwise the reason.
ALTER TABLE child_record ADD COLUMN shield_reason text;

-- Each time a role with child protection functions overrides shielding, the
-- responsible authority is told: who, in which role, why, when.
CREATE TABLE shield_alert (
    alert_id            bigserial PRIMARY KEY,
    at                  timestamptz NOT NULL DEFAULT now(),
    record_id           text NOT NULL,
    caller_organisation text NOT NULL,
    caller_name         text NOT NULL,
    role                text NOT NULL,
    reason              text NOT NULL
);

-- The reason a reader stated for an access.
ALTER TABLE audit_event ADD COLUMN reason text;
