-- The classifier's weights, totals and learned messages: see migrations/sqlite/0050 for what each holds.

CREATE TABLE classifier_weights (
    bucket  BIGINT PRIMARY KEY NOT NULL CHECK (bucket >= 0 AND bucket < 4096),
    weights BYTEA NOT NULL CHECK (length(weights) = 1024)
);

CREATE TABLE classifier_totals (
    id   BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    spam BIGINT NOT NULL DEFAULT 0 CHECK (spam >= 0),
    ham  BIGINT NOT NULL DEFAULT 0 CHECK (ham >= 0)
);
INSERT INTO classifier_totals (id, spam, ham) VALUES (1, 0, 0);

CREATE TABLE classifier_learned (
    fingerprint BYTEA PRIMARY KEY NOT NULL,
    class       BIGINT NOT NULL CHECK (class IN (0, 1)),
    learned_at  BIGINT NOT NULL,
    features    BYTEA
);
CREATE INDEX classifier_learned_kept ON classifier_learned (class, learned_at) WHERE features IS NOT NULL;

DROP TABLE bayes_tokens;
DROP TABLE bayes_totals;
DROP TABLE bayes_learned;
