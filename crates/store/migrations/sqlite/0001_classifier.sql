-- The trainable classifier's state: token counts, message totals, and which messages were learned.
--
-- Token keys are 64-bit hashes. Counts are kept in buckets by the top 12 bits of the key, each
-- bucket one row holding its tokens as a packed array sorted by key (16 bytes per token: key u64,
-- spam u32, ham u32, little-endian). A store of a million tokens is then 4,096 rows, read in
-- milliseconds at start, instead of a million rows; learning rewrites only the buckets it touches.

CREATE TABLE bayes_tokens (
    bucket INTEGER PRIMARY KEY NOT NULL CHECK (bucket >= 0 AND bucket < 4096),
    counts BLOB NOT NULL
);

-- One row (id = 1): how many messages of each class the counts were learned from.
CREATE TABLE bayes_totals (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    spam INTEGER NOT NULL DEFAULT 0 CHECK (spam >= 0),
    ham  INTEGER NOT NULL DEFAULT 0 CHECK (ham >= 0)
);
INSERT INTO bayes_totals (id, spam, ham) VALUES (1, 0, 0);

-- Every learned message by fingerprint (32 bytes), with its class: 1 spam, 0 ham. Learning the same
-- message again changes nothing; learning it as the other class moves its tokens.
CREATE TABLE bayes_learned (
    fingerprint BLOB PRIMARY KEY NOT NULL,
    class       INTEGER NOT NULL CHECK (class IN (0, 1)),
    learned_at  INTEGER NOT NULL
);
