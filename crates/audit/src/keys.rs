//! The Ed25519 key that signs checkpoints: `<data_dir>/keys/audit-signing.key`, a 32-byte seed as hex,
//! made on first start; its public half beside it in `audit-signing.pub`. Both 0640 in a 2750 directory
//! ([`datadir`]): a portal running as its own user signs the checkpoints of its own records with it.

use crate::{AuditError, KEY_FILE, PUBLIC_KEY_FILE, create_dir, hex, io_err, unhex};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use std::io::Write;
use std::path::Path;

/// The checkpoint signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public {})", self.public_hex())
    }
}

impl SigningKey {
    /// The key in `keys_dir`, made (with its public half) if there is none yet.
    pub fn load_or_create(keys_dir: &Path) -> Result<SigningKey, AuditError> {
        if let Some(key) = SigningKey::load(keys_dir)? {
            return Ok(key);
        }
        create_dir(keys_dir, datadir::Sharing::GroupRead)?;
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| AuditError::Key { path: keys_dir.join(KEY_FILE), why: "no randomness".into() })?;
        let path = keys_dir.join(KEY_FILE);
        write_new(&path, format!("{}\n", hex(&seed)).as_bytes())?;
        let key = SigningKey::from_seed(&seed, &path)?;
        let public = keys_dir.join(PUBLIC_KEY_FILE);
        write_new(&public, format!("{}\n", key.public_hex()).as_bytes())?;
        Ok(key)
    }

    /// The key in `keys_dir`, if there is one.
    pub fn load(keys_dir: &Path) -> Result<Option<SigningKey>, AuditError> {
        let path = keys_dir.join(KEY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let seed: [u8; 32] = unhex(text.trim())
            .ok_or_else(|| AuditError::Key { path: path.clone(), why: "expected 64 hex digits".into() })?;
        SigningKey::from_seed(&seed, &path).map(Some)
    }

    fn from_seed(seed: &[u8; 32], path: &Path) -> Result<SigningKey, AuditError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| AuditError::Key { path: path.to_path_buf(), why: e.to_string() })?;
        Ok(SigningKey { pair })
    }

    pub fn public_hex(&self) -> String {
        hex(self.pair.public_key().as_ref())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> String {
        hex(self.pair.sign(message).as_ref())
    }
}

/// Whether `signature_hex` is `public_hex`'s signature of `message`.
pub(crate) fn verify_signature(public_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let (Some(public), Some(sig)) = (unhex::<32>(public_hex), unhex::<64>(signature_hex)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public).verify(message, &sig).is_ok()
}

/// Write a new key file (never replacing one), readable by the gateway's group, synced.
fn write_new(path: &Path, content: &[u8]) -> Result<(), AuditError> {
    let mut f =
        datadir::open_file(path, datadir::Sharing::GroupRead, datadir::Open::New).map_err(io_err(path))?;
    f.write_all(content).and_then(|_| f.sync_all()).map_err(io_err(path))
}
