-- Records that have left the authority that minted their identifier are
-- the few routes a lookup cannot work out from the identifier itself. Each
-- gateway keeps those in memory and follows their changes by `changed`, a
-- number every insert or update of a route takes, so that gateways sharing
-- this database learn of each other's corrections and of transfers.
CREATE SEQUENCE routing_change;
ALTER TABLE routing_index ADD COLUMN changed bigint;

CREATE FUNCTION routing_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed := nextval('routing_change');
    RETURN NEW;
END
$$;
CREATE TRIGGER routing_changed BEFORE INSERT OR UPDATE ON routing_index
    FOR EACH ROW EXECUTE FUNCTION routing_changed();

-- The routes already moved take their numbers (from the trigger).
UPDATE routing_index SET changed = NULL WHERE authority_code <> left(record_id, 9);
CREATE INDEX routing_index_moved ON routing_index (changed)
    WHERE authority_code <> left(record_id, 9);
