-- How many transfers a record has been through. The routing feed carries it
-- so a gateway never lets an older announcement (the record's creation at
-- the authority it has since left) overwrite a newer one.
ALTER TABLE child_record ADD COLUMN moves integer NOT NULL DEFAULT 0 CHECK (moves >= 0);
ALTER TABLE routing_outbox ADD COLUMN moves integer NOT NULL DEFAULT 0;
