//! The tables an export carries, in the order they are written and imported (parents before the
//! tables whose foreign keys name them), each with its typed column list and its constant statements.
//!
//! This list is fixed in code: the export never reads table or column names from the database, and
//! the import accepts nothing else. A test compares it with the tables and columns a freshly migrated
//! store has on both backends, so a migration that adds a table or a column fails until it is here.

/// The most bytes of a short text value: an id, a hash, an address, a name, an enumeration, or a
/// header field the quarantine keeps (bounded to 998 characters before it is stored, up to 4 bytes
/// each in UTF-8).
pub(crate) const FIELD_TEXT: usize = 4096;
/// The most bytes of a JSON document the store keeps in a text column (a quarantine item's symbols
/// with their reasons, a tracking event's details, an audit record or checkpoint line).
pub(crate) const DOCUMENT_TEXT: usize = 1 << 20;
/// The most bytes of a learned message's kept features (delta-encoded feature indices of one message).
pub(crate) const FEATURES_BYTES: usize = 1 << 20;
/// The bytes of one classifier weight bucket (256 little-endian f32).
pub(crate) const WEIGHTS_BYTES: usize = 1024;
/// The bytes of a learned message's fingerprint (SHA-256).
pub(crate) const FINGERPRINT_BYTES: usize = 32;
/// The most bytes of one quarantined message body: the same bound a backup puts on a queue file.
pub(crate) const MAX_BODY_BYTES: usize = 1 << 30;

/// A column's type, as both backends store it (INTEGER/BIGINT, REAL/DOUBLE PRECISION, TEXT, BLOB/BYTEA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Real,
    /// UTF-8 text of at most this many bytes.
    Text(usize),
    /// Bytes, at most this many.
    Blob(usize),
}

#[derive(Debug)]
pub(crate) struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub nullable: bool,
}

/// One table: its columns in export order and the constant statements that read, write and check it.
#[derive(Debug)]
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// Every row, every column, ordered by the primary key (so an export is the same bytes on both
    /// backends).
    pub select: &'static str,
    /// One row, every column bound in order.
    pub insert: &'static str,
    /// How many rows hold data (a row the migrations seed does not count).
    pub occupied: &'static str,
    /// Run before importing, for a table the migrations seed with a row (which the archive carries).
    pub clear: Option<&'static str>,
    /// PostgreSQL only: the table locked against writers while importing.
    pub lock: &'static str,
    /// PostgreSQL only: moves an identity column's sequence past the imported ids.
    pub reset_identity: Option<&'static str>,
}

/// `"$1, $2, ..."`, one placeholder per column named.
macro_rules! placeholders {
    ($($col:ident),+) => {
        placeholders!(@ [] [1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30] $($col)+)
    };
    (@ [$($out:tt)*] [$n:literal $($ns:literal)*] $col:ident $($cols:ident)+) => {
        placeholders!(@ [$($out)* "$", $n, ", ",] [$($ns)*] $($cols)+)
    };
    (@ [$($out:tt)*] [$n:literal $($ns:literal)*] $col:ident) => {
        concat!($($out)* "$", $n)
    };
}

/// `"a, b, c"` from the identifiers named.
macro_rules! names {
    ($first:ident $(, $rest:ident)*) => {
        concat!(stringify!($first) $(, ", ", stringify!($rest))*)
    };
}

/// A [`Table`] from its name, primary key, optional identity column or seeded-row condition, and
/// columns (`name: Kind` or `name: Kind?` when NULL is allowed).
macro_rules! table {
    ($table:ident key ($($key:ident),+) $(identity $identity:ident)? $(seeded $seeded:literal)?
     { $($col:ident : $kind:expr $(, $null:ident)?);+ $(;)? }) => {
        Table {
            name: stringify!($table),
            columns: &[$(Column { name: stringify!($col), kind: $kind, nullable: table!(@null $($null)?) }),+],
            select: concat!("SELECT ", names!($($col),+), " FROM ", stringify!($table), " ORDER BY ", names!($($key),+)),
            insert: concat!("INSERT INTO ", stringify!($table), " (", names!($($col),+), ") VALUES (", placeholders!($($col),+), ")"),
            occupied: concat!("SELECT COUNT(*) FROM ", stringify!($table) $(, " WHERE ", $seeded)?),
            clear: table!(@clear $table $($seeded)?),
            lock: concat!("LOCK TABLE ", stringify!($table), " IN EXCLUSIVE MODE"),
            reset_identity: table!(@identity $table $($identity)?),
        }
    };
    (@null) => { false };
    (@null null) => { true };
    (@clear $table:ident) => { None };
    (@clear $table:ident $seeded:literal) => { Some(concat!("DELETE FROM ", stringify!($table))) };
    (@identity $table:ident) => { None };
    (@identity $table:ident $col:ident) => {
        Some(concat!(
            "SELECT setval(pg_get_serial_sequence('", stringify!($table), "', '", stringify!($col), "'), ",
            "COALESCE(MAX(", stringify!($col), "), 0) + 1, false) FROM ", stringify!($table)
        ))
    };
}

use Kind::{Blob, Int, Real, Text};

/// Every table the store owns, parents first.
pub(crate) static TABLES: &[Table] = &[
    table!(classifier_weights key (bucket) {
        bucket: Int; weights: Blob(WEIGHTS_BYTES)
    }),
    table!(classifier_totals key (id) seeded "spam <> 0 OR ham <> 0" {
        id: Int; spam: Int; ham: Int; feature_version: Int, null
    }),
    table!(classifier_learned key (fingerprint) {
        fingerprint: Blob(FINGERPRINT_BYTES); class: Int; learned_at: Int; features: Blob(FEATURES_BYTES), null
    }),
    table!(accounts key (id) identity id {
        id: Int; name: Text(FIELD_TEXT); role: Text(FIELD_TEXT); password_hash: Text(FIELD_TEXT);
        disabled: Int; totp_secret: Text(FIELD_TEXT), null; created_at: Int; changed_at: Int
    }),
    table!(account_addresses key (account_id, address) {
        account_id: Int; address: Text(FIELD_TEXT)
    }),
    table!(api_tokens key (id) identity id {
        id: Int; account_id: Int; label: Text(FIELD_TEXT); token_hash: Text(FIELD_TEXT); created_at: Int;
        last_used_at: Int, null
    }),
    table!(web_sessions key (id_hash) {
        id_hash: Text(FIELD_TEXT); account_id: Int; csrf_token: Text(FIELD_TEXT); second_factor_due: Int;
        created_at: Int; last_seen_at: Int; absolute_expires_at: Int
    }),
    table!(login_throttle key (scope, key) {
        scope: Text(FIELD_TEXT); key: Text(FIELD_TEXT); window_start: Int; failures: Int
    }),
    table!(quarantine_items key (id) {
        id: Text(FIELD_TEXT); queue_id: Text(FIELD_TEXT); kind: Text(FIELD_TEXT); sender: Text(FIELD_TEXT);
        sender_domain: Text(FIELD_TEXT); from_header: Text(FIELD_TEXT); subject: Text(FIELD_TEXT);
        subject_fold: Text(FIELD_TEXT); message_id: Text(FIELD_TEXT); score: Real; symbols: Text(DOCUMENT_TEXT);
        received_at_ms: Int; held_at_ms: Int; size: Int; sha256: Text(FIELD_TEXT); status: Text(FIELD_TEXT);
        status_by: Text(FIELD_TEXT), null; status_at_ms: Int, null; holder: Text(FIELD_TEXT); words_indexed: Int
    }),
    table!(quarantine_owners key (address, received_at_ms, item_id) {
        address: Text(FIELD_TEXT); received_at_ms: Int; item_id: Text(FIELD_TEXT)
    }),
    table!(quarantine_words key (word, received_at_ms, item_id) {
        word: Text(FIELD_TEXT); received_at_ms: Int; item_id: Text(FIELD_TEXT)
    }),
    table!(quarantine_bodies key (item_id) {
        item_id: Text(FIELD_TEXT); sha256: Text(FIELD_TEXT); body: Blob(MAX_BODY_BYTES)
    }),
    table!(release_requests key (item_id) {
        item_id: Text(FIELD_TEXT); requested_at_ms: Int; claimed_by: Text(FIELD_TEXT), null;
        claimed_at_ms: Int, null
    }),
    table!(tracking_messages key (queue_id) {
        queue_id: Text(FIELD_TEXT); received_at_ms: Int; sender: Text(FIELD_TEXT); subject: Text(FIELD_TEXT);
        subject_fold: Text(FIELD_TEXT); message_id: Text(FIELD_TEXT); client_ip: Text(FIELD_TEXT);
        verdict: Text(FIELD_TEXT); score: Real
    }),
    table!(tracking_recipients key (address, received_at_ms, queue_id) {
        address: Text(FIELD_TEXT); received_at_ms: Int; queue_id: Text(FIELD_TEXT)
    }),
    table!(tracking_events key (seq) identity seq {
        seq: Int; queue_id: Text(FIELD_TEXT); at_ms: Int; kind: Text(FIELD_TEXT); actor: Text(FIELD_TEXT);
        details: Text(DOCUMENT_TEXT)
    }),
    table!(sender_lists key (owner, list, sender) {
        owner: Text(FIELD_TEXT); list: Text(FIELD_TEXT); sender: Text(FIELD_TEXT); created_at_ms: Int;
        created_by: Text(FIELD_TEXT)
    }),
    table!(digest_prefs key (address) {
        address: Text(FIELD_TEXT); enabled: Int; last_digest_ms: Int
    }),
    table!(digest_tokens_used key (nonce) {
        nonce: Text(FIELD_TEXT); used_at_ms: Int; expires_at_ms: Int
    }),
    table!(nodes key (name) {
        name: Text(FIELD_TEXT); version: Text(FIELD_TEXT); started_at_ms: Int; heartbeat_ms: Int;
        queue_depth: Int; smtp_listen: Text(FIELD_TEXT); portal_listen: Text(FIELD_TEXT); tag: Int, null
    }),
    table!(audit_records key (node, seq) {
        node: Text(FIELD_TEXT); seq: Int; time: Text(FIELD_TEXT); hash: Text(FIELD_TEXT); line: Text(DOCUMENT_TEXT)
    }),
    table!(audit_keys key (node) {
        node: Text(FIELD_TEXT); public_key: Text(FIELD_TEXT); registered_at_ms: Int
    }),
    table!(audit_checkpoints key (node, seq) {
        node: Text(FIELD_TEXT); seq: Int; line: Text(DOCUMENT_TEXT)
    }),
];

/// The table of this name, if the export carries one.
pub(crate) fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

impl Kind {
    /// The most bytes a value of this kind takes in a row line: JSON escapes may turn one byte of
    /// text into six, base64 turns three bytes into four; plus quotes and a separator.
    pub(crate) fn max_encoded(self) -> usize {
        match self {
            Kind::Int => 24,
            Kind::Real => super::format::MAX_REAL_TEXT + 3,
            Kind::Text(max) => max * 6 + 3,
            Kind::Blob(max) => max.div_ceil(3) * 4 + 3,
        }
    }
}

impl Table {
    /// The longest row line this table can have (a longer one is refused before it is parsed).
    pub(crate) fn max_line(&self) -> usize {
        self.columns.iter().map(|c| c.kind.max_encoded()).sum::<usize>() + 3
    }
}
