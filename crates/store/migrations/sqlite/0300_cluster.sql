-- What the nodes of a cluster share: the nodes that run, the bodies of quarantined messages (so any node
-- can show or release what another held), and a durable queue of release requests that any live node
-- claims. Times are Unix milliseconds.

-- One row per node: its last heartbeat.
CREATE TABLE nodes (
    name          TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    version       TEXT NOT NULL,
    started_at_ms INTEGER NOT NULL,
    heartbeat_ms  INTEGER NOT NULL,
    queue_depth   INTEGER NOT NULL CHECK (queue_depth >= 0),
    -- Listeners as text (the portal's is empty when the node serves none).
    smtp_listen   TEXT NOT NULL,
    portal_listen TEXT NOT NULL
);

-- The message of a quarantine item, byte for byte, with its SHA-256 (hex).
CREATE TABLE quarantine_bodies (
    item_id TEXT PRIMARY KEY NOT NULL REFERENCES quarantine_items (id) ON DELETE CASCADE,
    sha256  TEXT NOT NULL CHECK (length(sha256) = 64),
    body    BLOB NOT NULL
);

-- "Deliver this quarantined item": claimed by one node at a time (claimed_by, claimed_at_ms), removed
-- when done; a claim older than the claimer's staleness limit may be claimed again.
CREATE TABLE release_requests (
    item_id         TEXT PRIMARY KEY NOT NULL REFERENCES quarantine_items (id) ON DELETE CASCADE,
    requested_at_ms INTEGER NOT NULL,
    claimed_by      TEXT,
    claimed_at_ms   INTEGER
);
CREATE INDEX release_requests_by_age ON release_requests (requested_at_ms, item_id);
