//! `audit/forward.cursor` and `audit/store.cursor`: how far the collector or the store has been sent
//! (byte offset in the log, and the seq and hash of the last record sent), replaced atomically after
//! each batch.

use crate::record::GENESIS;
use crate::{AuditError, io_err};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cursor {
    pub offset: u64,
    pub seq: u64,
    pub hash: String,
}

impl Cursor {
    pub fn start() -> Cursor {
        Cursor { offset: 0, seq: 0, hash: GENESIS.to_string() }
    }
}

/// The saved cursor; the start of the log if there is none (or it cannot be read, which is logged).
pub(crate) fn load(path: &Path) -> Cursor {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::error!(path = %path.display(), error = %e, "unreadable forward cursor; forwarding from the start");
            Cursor::start()
        }),
        Err(_) => Cursor::start(),
    }
}

/// Replace the saved cursor (write a temporary file, sync, rename). The temporary file is this
/// process's own: a portal-only process on the same data directory forwards the same log (so the cursor
/// is shared with the gateway's group, like the rest of `audit/`).
pub(crate) fn save(path: &Path, cursor: &Cursor) -> Result<(), AuditError> {
    let tmp = path.with_extension(format!("cursor.{}.tmp", std::process::id()));
    let mut f = datadir::open_file(&tmp, datadir::Sharing::GroupWrite, datadir::Open::Truncate)
        .map_err(io_err(&tmp))?;
    let json = serde_json::to_vec(cursor).expect("a cursor serialises");
    f.write_all(&json).and_then(|_| f.sync_data()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}
