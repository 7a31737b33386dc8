-- Which node's spool holds each quarantined file: see migrations/sqlite/0301.

ALTER TABLE quarantine_items ADD COLUMN holder TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX quarantine_items_by_holder ON quarantine_items (holder, status, queue_id);
