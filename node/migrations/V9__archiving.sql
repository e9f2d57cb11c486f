-- Archiving (regulation 8, RULES.md): the date a record, or a service entry
-- of paragraphs 9 and 11 to 13, became archived information. Archived
-- information is destroyed six years later.
ALTER TABLE child_record ADD COLUMN archived_on date;
ALTER TABLE service ADD COLUMN archived_on date;
