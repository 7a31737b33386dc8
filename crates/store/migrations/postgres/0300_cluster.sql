-- What the nodes of a cluster share: see migrations/sqlite/0300.

CREATE TABLE nodes (
    name          TEXT COLLATE "C" PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    version       TEXT COLLATE "C" NOT NULL,
    started_at_ms BIGINT NOT NULL,
    heartbeat_ms  BIGINT NOT NULL,
    queue_depth   BIGINT NOT NULL CHECK (queue_depth >= 0),
    smtp_listen   TEXT COLLATE "C" NOT NULL,
    portal_listen TEXT COLLATE "C" NOT NULL
);

CREATE TABLE quarantine_bodies (
    item_id TEXT COLLATE "C" PRIMARY KEY NOT NULL REFERENCES quarantine_items (id) ON DELETE CASCADE,
    sha256  TEXT COLLATE "C" NOT NULL CHECK (length(sha256) = 64),
    body    BYTEA NOT NULL
);

CREATE TABLE release_requests (
    item_id         TEXT COLLATE "C" PRIMARY KEY NOT NULL REFERENCES quarantine_items (id) ON DELETE CASCADE,
    requested_at_ms BIGINT NOT NULL,
    claimed_by      TEXT COLLATE "C",
    claimed_at_ms   BIGINT
);
CREATE INDEX release_requests_by_age ON release_requests (requested_at_ms, item_id);
