//! The audit trail: an append-only, hash-chained log of security-relevant actions, signed checkpoints of
//! its head, verification, forwarding to a remote syslog collector as records are written, and on a
//! shared store the copy of every node's trail that makes the cluster's one audit trail.
//!
//! Owns: `<data_dir>/audit/` (`audit.log`, one JSON [`Record`] per line; `checkpoints.log`, Ed25519
//! signatures of the chain head; `forward.cursor` and `store.cursor`, how far the collector and the
//! store have been sent) and the signing key in `<data_dir>/keys/` (`audit-signing.key`, made on first
//! start, kept apart from the log so a process that may read the log need not read the key). Modes are
//! [`datadir`]'s: `audit/` 2770 and its files 0660, since a portal running as its own user (in the
//! gateway's group) appends its own records and signs checkpoints; `keys/` 2750 and the key 0640, which
//! that portal reads and cannot replace.
//! Must not touch: anything but appends. No record is ever rewritten or removed here; the only repair
//! is dropping an incomplete last line after a crash, and that is itself recorded. In the store it only
//! adds rows (through `store`'s audit methods) and reads them.
//!
//! Ways in: [`Audit`] (the gateway's writer task: [`Audit::record`] never blocks mail flow,
//! [`Audit::record_durable`] waits for the fsync, [`Audit::copy_to_store`] starts the copy into a
//! shared store), [`AuditLog`] (synchronous appends for command-line tools, under the same file lock as
//! the gateway, so there is one chain), [`verify()`] for `portcullis audit verify` and `doctor`, and
//! [`verify_store()`] for `portcullis audit verify --store` and the admin console (every node's chain
//! in the store, and this node's log against the store's copy of it). The portal records logins,
//! quarantine actions and user and token changes with the [`Action`]s made for them.
//!
//! # The cluster's trail
//! Each node's log stays its source of truth. A forwarder with its own cursor copies each record's
//! line, as written, into the store under the node's name (`cluster.node_name`), the same way the
//! syslog forwarder sends it: never in the way of an append, retried with backoff while the store is
//! down, caught up from the log when it is back. With the node's first copy its checkpoint key is
//! registered in the store, and its latest signed checkpoint is copied once the records it covers are
//! there. So each node's rows chain by hash exactly as its log does, and a row changed, removed,
//! reordered, or a store cut short of a signed head is found by [`verify_store()`], naming the node and
//! the seq.
//!
//! # Security
//! Event details are data only and bounded ([`event`]: lengths, counts, control characters replaced);
//! they are JSON-escaped in the log and in the syslog message, so nothing in an address or a file name
//! can forge a record boundary. Each record's hash covers its canonical JSON and the previous hash, so
//! changing, deleting or reordering a record breaks the chain at that record; a truncated log, or one
//! replaced whole by a shorter valid chain, disagrees with the signed checkpoints; and records already
//! forwarded survive a wiped box. Reading the log in [`verify()`] and the forwarders is bounded per
//! line. Whoever can write the store can change its copy but cannot make it verify: hashes are
//! recomputed from the stored lines, checkpoints need the node's key, and a node compares the copy
//! with its own log. A node name registered first keeps its key (a second node of the same name is
//! logged, and its checkpoints do not verify in the store).

#![forbid(unsafe_code)]

mod checkpoint;
pub mod event;
mod forward;
mod keys;
mod log;
mod record;
mod verify;
mod verify_store;
mod writer;

pub use checkpoint::Checkpoint;
pub use event::{Action, Actor, Event};
pub use keys::SigningKey;
pub use log::{AuditLog, Head};
pub use record::{GENESIS, Record};
pub use verify::{Problem, ProblemKind, Report, verify};
pub use verify_store::{LocalReport, NodeReport, StoreReport, verify_store};
pub use writer::Audit;

use std::path::{Path, PathBuf};

/// Where the audit trail lives under a data directory.
#[derive(Debug, Clone)]
pub struct AuditPaths {
    /// `<data_dir>/audit`.
    pub dir: PathBuf,
    /// `<data_dir>/keys`.
    pub keys: PathBuf,
}

impl AuditPaths {
    pub fn new(data_dir: &Path) -> AuditPaths {
        AuditPaths { dir: data_dir.join("audit"), keys: data_dir.join("keys") }
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join(CHECKPOINT_FILE)
    }
    pub fn cursor(&self) -> PathBuf {
        self.dir.join(CURSOR_FILE)
    }
    pub fn store_cursor(&self) -> PathBuf {
        self.dir.join(STORE_CURSOR_FILE)
    }
}

/// The log file inside `audit/`.
pub const LOG_FILE: &str = "audit.log";
/// The signed checkpoints inside `audit/`.
pub const CHECKPOINT_FILE: &str = "checkpoints.log";
/// The syslog forwarder's position inside `audit/`.
pub const CURSOR_FILE: &str = "forward.cursor";
/// How far the shared store's copy has got, inside `audit/`.
pub const STORE_CURSOR_FILE: &str = "store.cursor";
/// The signing key inside `keys/`.
pub const KEY_FILE: &str = "audit-signing.key";
/// The public half of the signing key inside `keys/`, for operators to pin.
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub";

/// Why the audit trail could not be written or read. Every variant says what and where.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the audit log {path} ends in a damaged record ({why}); run `portcullis audit verify`")]
    DamagedTail { path: PathBuf, why: String },
    #[error("signing key {path} is invalid: {why}")]
    Key { path: PathBuf, why: String },
    #[error("the audit writer has stopped")]
    Stopped,
    #[error("audit record not written: {0}")]
    NotWritten(String),
    #[error("audit forwarding: {0}")]
    Forward(String),
    #[error("the audit trail in the store: {0}")]
    Store(#[from] store::StoreError),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io { path: path.to_path_buf(), source }
}

/// Create `dir` (and parents) if missing, with the mode `sharing` gives it (see [`datadir`]).
pub(crate) fn create_dir(dir: &Path, sharing: datadir::Sharing) -> Result<(), AuditError> {
    datadir::create_dir(dir, sharing).map_err(io_err(dir))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a lower-case or upper-case hex string of exactly `N` bytes.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// SHA-256 of `data`, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// The current time as RFC 3339 UTC with milliseconds (`2026-01-02T03:04:05.678Z`).
pub(crate) fn now_rfc3339() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;
