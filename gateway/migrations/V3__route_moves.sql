-- The number of transfers behind a route: a feed event only replaces a
-- route of as many moves or fewer, so events read out of order across nodes
-- cannot point the index back at an authority the record has left.
ALTER TABLE routing_index ADD COLUMN moves integer NOT NULL DEFAULT 0;
