-- The words of each quarantined item's subject, and which items have theirs indexed: see
-- migrations/sqlite/0303.
CREATE TABLE quarantine_words (
    word           TEXT COLLATE "C" NOT NULL CHECK (length(word) BETWEEN 1 AND 64),
    received_at_ms BIGINT NOT NULL,
    item_id        TEXT COLLATE "C" NOT NULL REFERENCES quarantine_items (id) ON DELETE CASCADE,
    PRIMARY KEY (word, received_at_ms, item_id)
);
CREATE INDEX quarantine_words_by_item ON quarantine_words (item_id, word);

ALTER TABLE quarantine_items ADD COLUMN words_indexed BIGINT NOT NULL DEFAULT 0 CHECK (words_indexed IN (0, 1));
CREATE INDEX quarantine_items_words_pending ON quarantine_items (id) WHERE words_indexed = 0;
