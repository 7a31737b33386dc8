-- The quarantine index: one row per message held in the spool's `quarantine/` queue, and its owners.
--
-- The message itself stays in the spool (byte for byte, with a SHA-256 of its content here); this is
-- what search, the portal and digests read. Times are Unix milliseconds. Text from the message
-- (From, Subject) is bounded before it is stored and only ever bound as a parameter. `*_fold` columns
-- hold the lower-cased text that search compares with, so SQLite and PostgreSQL match the same way.
--
-- Portable to PostgreSQL: plain INTEGER/TEXT/REAL columns, no SQLite-only functions in queries.

CREATE TABLE quarantine_items (
    -- Opaque random id for URLs (22 characters of base64url): never the queue id, never a sequence.
    id             TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 22),
    queue_id       TEXT NOT NULL UNIQUE CHECK (length(queue_id) = 16),
    kind           TEXT NOT NULL CHECK (kind IN ('spam', 'virus', 'policy')),
    -- Envelope sender as received (empty for the null sender), lower-cased, and its domain.
    sender         TEXT NOT NULL,
    sender_domain  TEXT NOT NULL,
    from_header    TEXT NOT NULL,
    subject        TEXT NOT NULL,
    subject_fold   TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    score          REAL NOT NULL,
    -- JSON array of {"name", "score", "reason"}.
    symbols        TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    -- When the index row was written (digests list items held since the last one).
    held_at_ms     INTEGER NOT NULL,
    size           INTEGER NOT NULL CHECK (size >= 0),
    sha256         TEXT NOT NULL CHECK (length(sha256) = 64),
    status         TEXT NOT NULL CHECK (status IN ('held', 'released', 'deleted', 'expired')),
    -- Who changed the status and when (NULL while held).
    status_by      TEXT,
    status_at_ms   INTEGER
);
CREATE INDEX quarantine_items_by_time ON quarantine_items (received_at_ms, id);
CREATE INDEX quarantine_items_by_sender ON quarantine_items (sender, received_at_ms);
CREATE INDEX quarantine_items_by_sender_domain ON quarantine_items (sender_domain, received_at_ms);
CREATE INDEX quarantine_items_by_kind ON quarantine_items (kind, received_at_ms);
CREATE INDEX quarantine_items_by_status ON quarantine_items (status, received_at_ms);
CREATE INDEX quarantine_items_by_held ON quarantine_items (held_at_ms);

-- The owners of an item: its envelope recipients, lower-case. The item's time is copied here so a
-- user's newest items come straight from this index.
CREATE TABLE quarantine_owners (
    address        TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    item_id        TEXT NOT NULL REFERENCES quarantine_items (id) ON DELETE CASCADE,
    PRIMARY KEY (address, received_at_ms, item_id)
);
CREATE INDEX quarantine_owners_by_item ON quarantine_owners (item_id);
