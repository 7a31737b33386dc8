-- The trainable classifier's state: per-token counts, message totals, and which messages were learned.
-- Token keys are 64-bit hashes of the token text, stored as the signed integer with the same bits.

CREATE TABLE bayes_tokens (
    token INTEGER PRIMARY KEY NOT NULL,
    spam  INTEGER NOT NULL DEFAULT 0 CHECK (spam >= 0),
    ham   INTEGER NOT NULL DEFAULT 0 CHECK (ham >= 0)
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
