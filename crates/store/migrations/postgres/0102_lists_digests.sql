-- Per-user sender lists, digest preferences and digest-token marks: see migrations/sqlite/0102. Flags are
-- BIGINT 0/1 because the code binds them as integers.

CREATE TABLE sender_lists (
    owner         TEXT COLLATE "C" NOT NULL,
    list          TEXT COLLATE "C" NOT NULL CHECK (list IN ('safe', 'block')),
    sender        TEXT COLLATE "C" NOT NULL,
    created_at_ms BIGINT NOT NULL,
    created_by    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (owner, list, sender)
);
CREATE INDEX sender_lists_by_sender ON sender_lists (sender);

CREATE TABLE digest_prefs (
    address         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    enabled         BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    last_digest_ms  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE digest_tokens_used (
    nonce         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    used_at_ms    BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX digest_tokens_used_by_expiry ON digest_tokens_used (expires_at_ms);
