-- Each node's queue-id tag: see migrations/sqlite/0305.
ALTER TABLE nodes ADD COLUMN tag BIGINT CHECK (tag BETWEEN 0 AND 1023);
CREATE UNIQUE INDEX nodes_by_tag ON nodes (tag);
