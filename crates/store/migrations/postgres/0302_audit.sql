-- Every node's audit trail, copied from its local log: see migrations/sqlite/0302.

CREATE TABLE audit_records (
    node TEXT COLLATE "C" NOT NULL CHECK (length(node) BETWEEN 1 AND 255),
    seq  BIGINT NOT NULL CHECK (seq >= 1),
    time TEXT COLLATE "C" NOT NULL,
    hash TEXT COLLATE "C" NOT NULL CHECK (length(hash) = 64),
    line TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE INDEX audit_records_by_time ON audit_records (time, node, seq);

CREATE TABLE audit_keys (
    node             TEXT COLLATE "C" PRIMARY KEY NOT NULL CHECK (length(node) BETWEEN 1 AND 255),
    public_key       TEXT COLLATE "C" NOT NULL CHECK (length(public_key) = 64),
    registered_at_ms BIGINT NOT NULL
);

CREATE TABLE audit_checkpoints (
    node TEXT COLLATE "C" NOT NULL CHECK (length(node) BETWEEN 1 AND 255),
    seq  BIGINT NOT NULL CHECK (seq >= 1),
    line TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (node, seq)
);
