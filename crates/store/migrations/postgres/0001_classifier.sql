-- The trainable classifier's first state (Bayes token counts), as in migrations/sqlite/0001. Kept so that
-- both backends have the same versions; 0050 replaces these tables.
--
-- PostgreSQL types: every integer the code reads as i64 is BIGINT, blobs are BYTEA, text is compared
-- byte-wise (COLLATE "C", like SQLite's BINARY).

CREATE TABLE bayes_tokens (
    bucket BIGINT PRIMARY KEY NOT NULL CHECK (bucket >= 0 AND bucket < 4096),
    counts BYTEA NOT NULL
);

CREATE TABLE bayes_totals (
    id   BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    spam BIGINT NOT NULL DEFAULT 0 CHECK (spam >= 0),
    ham  BIGINT NOT NULL DEFAULT 0 CHECK (ham >= 0)
);
INSERT INTO bayes_totals (id, spam, ham) VALUES (1, 0, 0);

CREATE TABLE bayes_learned (
    fingerprint BYTEA PRIMARY KEY NOT NULL,
    class       BIGINT NOT NULL CHECK (class IN (0, 1)),
    learned_at  BIGINT NOT NULL
);
