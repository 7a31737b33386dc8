-- The words of each quarantined item's subject, so a subject search is read off an index newest first
-- instead of filtering every item (a `LIKE '%word%'` over a million subjects). Words are cut out of the
-- lower-cased subject by `quarantine::subject_words` (Rust, the same on both backends): runs of
-- characters other than ASCII spaces, punctuation and controls, the first 64 distinct ones, each cut to
-- 64 characters. The item's time is copied here so a word's newest items come straight off the key.
CREATE TABLE quarantine_words (
    word           TEXT NOT NULL CHECK (length(word) BETWEEN 1 AND 64),
    received_at_ms INTEGER NOT NULL,
    item_id        TEXT NOT NULL REFERENCES quarantine_items (id) ON DELETE CASCADE,
    PRIMARY KEY (word, received_at_ms, item_id)
);
-- "Does this item's subject have this word" (user-scoped searches), and the cascade from an item.
CREATE INDEX quarantine_words_by_item ON quarantine_words (item_id, word);

-- 1 once an item's words are in quarantine_words (written with the item). Items indexed before this
-- migration start at 0: opening the store (and `portcullis migrate`) indexes them in batches, resuming
-- where it stopped if interrupted; the partial index finds the rest without reading every item.
ALTER TABLE quarantine_items ADD COLUMN words_indexed INTEGER NOT NULL DEFAULT 0 CHECK (words_indexed IN (0, 1));
CREATE INDEX quarantine_items_words_pending ON quarantine_items (id) WHERE words_indexed = 0;
