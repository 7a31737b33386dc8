-- Every node's audit trail, copied from its local log (`<data_dir>/audit/audit.log`, the source of
-- truth) as it is written, so the cluster has one trail that can be read and verified in one place.
--
-- audit_records holds each record as its node wrote it: the line (the record's canonical JSON, hash
-- included) and, beside it for ordering and lookups, its sequence number, time and hash. Each node's
-- rows chain by hash exactly as its log does; `portcullis audit verify --store` walks them.
CREATE TABLE audit_records (
    node TEXT NOT NULL CHECK (length(node) BETWEEN 1 AND 255),
    seq  INTEGER NOT NULL CHECK (seq >= 1),
    -- RFC 3339 UTC with milliseconds, fixed width: text order is time order.
    time TEXT NOT NULL,
    hash TEXT NOT NULL CHECK (length(hash) = 64),
    line TEXT NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE INDEX audit_records_by_time ON audit_records (time, node, seq);

-- The Ed25519 key each node signs its checkpoints with (hex), recorded when the node first copies
-- its trail here and never replaced by the copier.
CREATE TABLE audit_keys (
    node             TEXT PRIMARY KEY NOT NULL CHECK (length(node) BETWEEN 1 AND 255),
    public_key       TEXT NOT NULL CHECK (length(public_key) = 64),
    registered_at_ms INTEGER NOT NULL
);

-- Each node's signed checkpoints of its head (the line as in its `checkpoints.log`), so a store cut
-- short of a signed head is seen.
CREATE TABLE audit_checkpoints (
    node TEXT NOT NULL CHECK (length(node) BETWEEN 1 AND 255),
    seq  INTEGER NOT NULL CHECK (seq >= 1),
    line TEXT NOT NULL,
    PRIMARY KEY (node, seq)
);
