-- Message tracking: one row per message the gateway received (or generated), its recipients, and its
-- ordered events (received, verdict, quarantined, released, deleted, delivery attempts, deferrals,
-- bounces, DSNs). Times are Unix milliseconds; text is bounded before it is stored.
--
-- Portable to PostgreSQL: the event sequence is SQLite's rowid here and an identity column there.

CREATE TABLE tracking_messages (
    queue_id       TEXT PRIMARY KEY NOT NULL,
    received_at_ms INTEGER NOT NULL,
    sender         TEXT NOT NULL,
    subject        TEXT NOT NULL,
    subject_fold   TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    client_ip      TEXT NOT NULL,
    -- The verdict's action (accept, tag, quarantine, reject, tempfail; `local` for generated mail).
    verdict        TEXT NOT NULL,
    score          REAL NOT NULL
);
CREATE INDEX tracking_messages_by_time ON tracking_messages (received_at_ms);
CREATE INDEX tracking_messages_by_sender ON tracking_messages (sender, received_at_ms);
CREATE INDEX tracking_messages_by_message_id ON tracking_messages (message_id);
CREATE INDEX tracking_messages_by_client ON tracking_messages (client_ip, received_at_ms);
CREATE INDEX tracking_messages_by_verdict ON tracking_messages (verdict, received_at_ms);

CREATE TABLE tracking_recipients (
    address        TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    queue_id       TEXT NOT NULL,
    PRIMARY KEY (address, received_at_ms, queue_id)
);
CREATE INDEX tracking_recipients_by_message ON tracking_recipients (queue_id);

CREATE TABLE tracking_events (
    seq      INTEGER PRIMARY KEY NOT NULL,
    queue_id TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    -- received, verdict, quarantined, released, deleted, expired, delivered, deferred, bounced,
    -- dsn_queued, learned, safelisted.
    kind     TEXT NOT NULL,
    actor    TEXT NOT NULL,
    -- JSON object of short details (next hop, reply, recipient...), bounded.
    details  TEXT NOT NULL
);
CREATE INDEX tracking_events_by_message ON tracking_events (queue_id, at_ms);
