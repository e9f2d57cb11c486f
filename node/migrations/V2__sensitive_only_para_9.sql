-- Para 9(b): the sensitive-service statement belongs to specialist or
-- targeted services only (a sensitive-only GP service is recorded there too, para 8(2)).
ALTER TABLE service ADD CONSTRAINT service_sensitive_only_para_9
    CHECK (sensitive_ground IS NULL OR kind = 'specialist_or_targeted');
