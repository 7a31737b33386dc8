-- Which node's spool holds each quarantined file: with a shared store, a node reconciles only the items
-- it holds (another node's files are not missing from its spool). Empty for items indexed before this
-- migration, which no node then judges missing.

ALTER TABLE quarantine_items ADD COLUMN holder TEXT NOT NULL DEFAULT '';
CREATE INDEX quarantine_items_by_holder ON quarantine_items (holder, status, queue_id);
