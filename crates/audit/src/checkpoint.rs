//! Signed checkpoints of the chain head: one JSON line per checkpoint in `audit/checkpoints.log`.
//!
//! The signature (Ed25519) covers `"portcullis-audit-checkpoint-v1\n{seq}\n{hash}\n{time}\n"`: the head
//! record's sequence number and hash say what the whole chain up to it was, so a log cut short, or
//! replaced by a different (even internally valid) chain, disagrees with a checkpoint.

use crate::keys::{SigningKey, verify_signature};
use crate::record::MAX_LINE;
use serde::{Deserialize, Serialize};

/// One signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The head record's `seq`.
    pub seq: u64,
    /// The head record's `hash`.
    pub hash: String,
    pub time: String,
    /// The signer's public key, hex (verification uses the pinned key, not this one).
    pub key: String,
    pub sig: String,
}

impl Checkpoint {
    pub(crate) fn sign(key: &SigningKey, seq: u64, hash: &str, time: String) -> Checkpoint {
        let sig = key.sign(&message(seq, hash, &time));
        Checkpoint { seq, hash: hash.to_string(), time, key: key.public_hex(), sig }
    }

    /// Whether the signature is valid for `public_hex`.
    pub fn verify(&self, public_hex: &str) -> bool {
        verify_signature(public_hex, &message(self.seq, &self.hash, &self.time), &self.sig)
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a checkpoint serialises")
    }

    pub fn parse_line(line: &[u8]) -> Result<Checkpoint, String> {
        if line.len() > MAX_LINE {
            return Err(format!("longer than {MAX_LINE} bytes"));
        }
        serde_json::from_slice(line).map_err(|e| format!("not a checkpoint: {e}"))
    }
}

fn message(seq: u64, hash: &str, time: &str) -> Vec<u8> {
    format!("portcullis-audit-checkpoint-v1\n{seq}\n{hash}\n{time}\n").into_bytes()
}
