-- The classifier becomes online logistic regression on hashed features: its state is a fixed vector
-- of 2^20 weights (f32) instead of token counts.
--
-- Weights are kept in 4,096 buckets of 256, each bucket one row holding its weights as a packed
-- little-endian f32 array (1,024 bytes); weight i is in bucket i / 256. A bucket never written is all
-- zeros. Loading the model reads 4,096 rows; learning rewrites only the buckets it touches, adding
-- its changes to what is stored (so two processes learning at once both count).
CREATE TABLE classifier_weights (
    bucket  INTEGER PRIMARY KEY NOT NULL CHECK (bucket >= 0 AND bucket < 4096),
    weights BLOB NOT NULL CHECK (length(weights) = 1024)
);

-- One row (id = 1): how many messages of each class are learned.
CREATE TABLE classifier_totals (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    spam INTEGER NOT NULL DEFAULT 0 CHECK (spam >= 0),
    ham  INTEGER NOT NULL DEFAULT 0 CHECK (ham >= 0)
);
INSERT INTO classifier_totals (id, spam, ham) VALUES (1, 0, 0);

-- Every learned message by fingerprint (32 bytes), with its class: 1 spam, 0 ham. Learning the same
-- message again changes nothing; learning it as the other class moves the weights until the model
-- agrees. The most recently learned messages of each class (a bounded number, set by the classifier)
-- keep their features (sorted feature indices, delta-encoded as LEB128 varints; hashes, no text),
-- which are learned again with every batch so that learning a folder of one class does not make the
-- model forget the other; older rows have `features` NULL.
CREATE TABLE classifier_learned (
    fingerprint BLOB PRIMARY KEY NOT NULL,
    class       INTEGER NOT NULL CHECK (class IN (0, 1)),
    learned_at  INTEGER NOT NULL,
    features    BLOB
);
CREATE INDEX classifier_learned_kept ON classifier_learned (class, learned_at) WHERE features IS NOT NULL;

-- The Bayes token counts of 0001 cannot be turned into weights (and the messages they came from are
-- not kept): they are dropped, and a store upgraded from them learns again from the start (`portcullis
-- learn` on the training folders; the classifier is silent until min_learned_spam/ham are reached).
DROP TABLE bayes_tokens;
DROP TABLE bayes_totals;
DROP TABLE bayes_learned;
