-- The national blind index (gateway): the routing feed also carries, for
-- each record it names, the keyed hashes of the record's blocking keys as
-- they are when the feed is read. So that the gateway hears of every change
-- to them, a change to what they are made of writes an event of its own
-- ("keys only": it names no new responsible authority), in the same
-- transaction, by trigger, whichever statement makes it: a record's details
-- written (its names, date of birth, former names), a record archived,
-- handed over, arrived, merged away or destroyed. A record created needs
-- none: its announcement carries its keys.
ALTER TABLE routing_outbox ADD COLUMN keys_only boolean NOT NULL DEFAULT false;
-- A keys-only event's authority is this node's own, which the node fills in.
ALTER TABLE routing_outbox ALTER COLUMN authority_code DROP NOT NULL;

CREATE FUNCTION outbox_record_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO routing_outbox (record_id, authority_code, keys_only) VALUES (OLD.id, NULL, true);
    ELSE
        INSERT INTO routing_outbox (record_id, authority_code, keys_only) VALUES (NEW.id, NULL, true);
    END IF;
    RETURN NULL;
END
$$;

-- A record's details written (UpdateRecord, a merge: its names, its date
-- of birth and its former names are written together, so this covers a
-- former surname added or removed).
CREATE TRIGGER record_details_written AFTER UPDATE OF given_names, family_name, date_of_birth
    ON child_record
    FOR EACH ROW EXECUTE FUNCTION outbox_record_keys_changed();
-- Archived, handed over, arrived.
CREATE TRIGGER record_standing_changed AFTER UPDATE OF status, archived_on ON child_record
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.archived_on IS DISTINCT FROM NEW.archived_on)
    EXECUTE FUNCTION outbox_record_keys_changed();
-- Merged away, destroyed, a transfer's staged copy dropped.
CREATE TRIGGER record_removed AFTER DELETE ON child_record
    FOR EACH ROW EXECUTE FUNCTION outbox_record_keys_changed();

-- The matching key the node last published under: when it is another, the
-- node announces every record's keys again (a rotation).
CREATE TABLE matching_key_state (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    key_id          text NOT NULL
);
