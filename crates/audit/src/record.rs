//! One line of the log: a record, its canonical JSON, and its hash.
//!
//! `hash = SHA-256("portcullis-audit-v1\n" || JSON of {seq, time, actor, action, target, details,
//! prev_hash})`, fields in that order, details sorted by key, serde_json's compact form. The line is the
//! same JSON with `hash` appended. A line is accepted only in exactly that canonical form, so any edit,
//! even one that keeps the meaning (whitespace, escapes, key order), is detected.

use crate::event::Event;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest line read from the log (records are far smaller; see [`crate::event`]'s bounds).
pub const MAX_LINE: usize = 64 * 1024;

const DOMAIN: &[u8] = b"portcullis-audit-v1\n";

/// One audit record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// 1 for the first record, then one more for each.
    pub seq: u64,
    /// When it was written, RFC 3339 UTC.
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: BTreeMap<String, String>,
    /// The previous record's `hash` ([`GENESIS`] for the first).
    pub prev_hash: String,
    pub hash: String,
}

/// The hashed part, borrowed, in the canonical field order.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    time: &'a str,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    details: &'a BTreeMap<String, String>,
    prev_hash: &'a str,
}

impl Record {
    /// The record for `event`, following a record with hash `prev_hash` and sequence `seq - 1`.
    pub(crate) fn seal(event: Event, seq: u64, prev_hash: &str, time: String) -> Record {
        let mut r = Record {
            seq,
            time,
            actor: event.actor,
            action: event.action.to_string(),
            target: event.target,
            details: event.details,
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        r.hash = r.computed_hash();
        r
    }

    /// The hash this record's content gives (equal to `hash` unless it was changed).
    pub fn computed_hash(&self) -> String {
        let body = Body {
            seq: self.seq,
            time: &self.time,
            actor: &self.actor,
            action: &self.action,
            target: &self.target,
            details: &self.details,
            prev_hash: &self.prev_hash,
        };
        let json = serde_json::to_vec(&body).expect("a record serialises");
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(DOMAIN);
        ctx.update(&json);
        crate::hex(ctx.finish().as_ref())
    }

    /// The line as stored, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a record serialises")
    }

    /// Parse one stored line (without its newline); it must be in canonical form.
    pub fn parse_line(line: &[u8]) -> Result<Record, String> {
        if line.len() > MAX_LINE {
            return Err(format!("longer than {MAX_LINE} bytes"));
        }
        let r: Record = serde_json::from_slice(line).map_err(|e| format!("not a record: {e}"))?;
        if r.to_line().as_bytes() != line {
            return Err("not in canonical form (edited by hand?)".into());
        }
        Ok(r)
    }
}
