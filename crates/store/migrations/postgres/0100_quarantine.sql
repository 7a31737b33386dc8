-- The quarantine index and its owners: see migrations/sqlite/0100 for what each column holds.
-- Text is COLLATE "C" so ordering and keyset comparisons are byte-wise, as on SQLite.

CREATE TABLE quarantine_items (
    id             TEXT COLLATE "C" PRIMARY KEY NOT NULL CHECK (length(id) = 22),
    queue_id       TEXT COLLATE "C" NOT NULL UNIQUE CHECK (length(queue_id) = 16),
    kind           TEXT COLLATE "C" NOT NULL CHECK (kind IN ('spam', 'virus', 'policy')),
    sender         TEXT COLLATE "C" NOT NULL,
    sender_domain  TEXT COLLATE "C" NOT NULL,
    from_header    TEXT COLLATE "C" NOT NULL,
    subject        TEXT COLLATE "C" NOT NULL,
    subject_fold   TEXT COLLATE "C" NOT NULL,
    message_id     TEXT COLLATE "C" NOT NULL,
    score          DOUBLE PRECISION NOT NULL,
    symbols        TEXT COLLATE "C" NOT NULL,
    received_at_ms BIGINT NOT NULL,
    held_at_ms     BIGINT NOT NULL,
    size           BIGINT NOT NULL CHECK (size >= 0),
    sha256         TEXT COLLATE "C" NOT NULL CHECK (length(sha256) = 64),
    status         TEXT COLLATE "C" NOT NULL CHECK (status IN ('held', 'released', 'deleted', 'expired')),
    status_by      TEXT COLLATE "C",
    status_at_ms   BIGINT
);
CREATE INDEX quarantine_items_by_time ON quarantine_items (received_at_ms, id);
CREATE INDEX quarantine_items_by_sender ON quarantine_items (sender, received_at_ms);
CREATE INDEX quarantine_items_by_sender_domain ON quarantine_items (sender_domain, received_at_ms);
CREATE INDEX quarantine_items_by_kind ON quarantine_items (kind, received_at_ms);
CREATE INDEX quarantine_items_by_status ON quarantine_items (status, received_at_ms);
CREATE INDEX quarantine_items_by_held ON quarantine_items (held_at_ms);

CREATE TABLE quarantine_owners (
    address        TEXT COLLATE "C" NOT NULL,
    received_at_ms BIGINT NOT NULL,
    item_id        TEXT COLLATE "C" NOT NULL REFERENCES quarantine_items (id) ON DELETE CASCADE,
    PRIMARY KEY (address, received_at_ms, item_id)
);
CREATE INDEX quarantine_owners_by_item ON quarantine_owners (item_id);
