-- Accounts of the portal, admin console and API: local users, the addresses each one owns, API tokens,
-- web sessions and login-throttle counters.
--
-- Portable to PostgreSQL: plain INTEGER/TEXT columns, times as Unix seconds, secrets never stored in
-- clear (passwords as Argon2id PHC strings, tokens and session ids as SHA-256 hex).

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    role          TEXT NOT NULL CHECK (role IN ('admin', 'helpdesk', 'user')),
    -- Argon2id PHC string; empty: no password (the account cannot log in with one).
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    -- Base32 TOTP secret (RFC 6238) for a second factor; admins only.
    totp_secret   TEXT,
    created_at    INTEGER NOT NULL,
    changed_at    INTEGER NOT NULL
);

-- The recipient addresses an account owns (lower-case); an end user sees mail addressed to these.
CREATE TABLE account_addresses (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    address    TEXT NOT NULL CHECK (length(address) BETWEEN 3 AND 320),
    PRIMARY KEY (account_id, address)
);
CREATE INDEX account_addresses_by_address ON account_addresses (address);

-- API tokens: only the SHA-256 of the secret is kept.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY NOT NULL,
    account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    label        TEXT NOT NULL CHECK (length(label) BETWEEN 1 AND 64),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);

-- Web sessions, shared by every node that serves the portal: the id is kept as its SHA-256 only.
CREATE TABLE web_sessions (
    id_hash             TEXT PRIMARY KEY NOT NULL,
    account_id          INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token          TEXT NOT NULL,
    -- 1 while the password was right but the second factor is still owed.
    second_factor_due   INTEGER NOT NULL DEFAULT 0 CHECK (second_factor_due IN (0, 1)),
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL
);
CREATE INDEX web_sessions_by_account ON web_sessions (account_id);

-- Failed logins per account name and per client address in the current window. Rows whose window has
-- passed are removed whenever a failure is counted, so the table holds at most the keys that failed
-- within one window.
CREATE TABLE login_throttle (
    scope        TEXT NOT NULL CHECK (scope IN ('account', 'address')),
    key          TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL CHECK (failures >= 0),
    PRIMARY KEY (scope, key)
);
CREATE INDEX login_throttle_by_window ON login_throttle (window_start);
