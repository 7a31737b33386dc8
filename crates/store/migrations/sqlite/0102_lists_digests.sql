-- Per-user sender lists, digest preferences and the single-use marks of digest-link tokens.

-- A sender (address or domain, lower-case) on a recipient address's safelist or blocklist.
CREATE TABLE sender_lists (
    owner         TEXT NOT NULL,
    list          TEXT NOT NULL CHECK (list IN ('safe', 'block')),
    sender        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    PRIMARY KEY (owner, list, sender)
);
CREATE INDEX sender_lists_by_sender ON sender_lists (sender);

-- Digest preferences and progress per recipient address. No row: digests on, nothing sent yet.
CREATE TABLE digest_prefs (
    address         TEXT PRIMARY KEY NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    -- Items held after this (held_at_ms) are new for the next digest.
    last_digest_ms  INTEGER NOT NULL DEFAULT 0
);

-- Digest-link tokens already redeemed, by their random nonce (hex). A row is inserted atomically on
-- first use; a second insert finds it. Rows past `expires_at_ms` are purged (the token is refused as
-- expired before this table is consulted).
CREATE TABLE digest_tokens_used (
    nonce         TEXT PRIMARY KEY NOT NULL,
    used_at_ms    INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX digest_tokens_used_by_expiry ON digest_tokens_used (expires_at_ms);
