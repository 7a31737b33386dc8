//! Digest-link tokens: signed, bound, expiring, single-use.
//!
//! ```text
//! token   = base64url( payload || tag )                       (no padding)
//! payload = version 0x01 | action u8 | expires_at u64 BE (Unix s) | nonce [16]
//!           | item_len u8 | item id | recipient_len u8 | recipient
//! tag     = HMAC-SHA256(key, "portcullis-digest-token\0" || payload)   (32 bytes)
//! ```
//! The tag is checked first, with `ring::hmac::verify` (constant time), over everything but the last
//! 32 bytes; a token cut short, extended, or changed in any byte fails it, and HMAC has no length
//! extension. Only then is the payload parsed, strictly (every length must add up exactly), and the
//! expiry checked. Single use is the store's atomic insert of the nonce ([`crate::Quarantine::redeem`]).
//! The key is 32 random bytes in `<data_dir>/keys/digest.key`, made on first use (the mail plane makes it
//! at start), 0640 in a 2750 directory ([`datadir`]): a portal running as its own user checks links with
//! it and cannot replace it.

use crate::control::{Caller, Op};
use crate::item::ItemId;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use std::io::Write;
use std::path::Path;

/// The key file inside `<data_dir>/keys`.
pub const KEY_FILE: &str = "digest.key";
const VERSION: u8 = 1;
const CONTEXT: &[u8] = b"portcullis-digest-token\0";
const TAG_LEN: usize = 32;
const NONCE_LEN: usize = 16;
/// Longest token accepted for decoding at all.
const MAX_TOKEN: usize = 1024;

/// What a digest link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestAction {
    Release,
    ReleaseAndSafelist,
    Delete,
}

impl DigestAction {
    fn code(self) -> u8 {
        match self {
            DigestAction::Release => 1,
            DigestAction::ReleaseAndSafelist => 2,
            DigestAction::Delete => 3,
        }
    }
    fn from_code(c: u8) -> Option<DigestAction> {
        [DigestAction::Release, DigestAction::ReleaseAndSafelist, DigestAction::Delete]
            .into_iter()
            .find(|a| a.code() == c)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAction::Release => "release",
            DigestAction::ReleaseAndSafelist => "release_and_safelist",
            DigestAction::Delete => "delete",
        }
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenClaims {
    pub action: DigestAction,
    pub item: ItemId,
    /// The digest's recipient (lower-case): the only address the link acts for.
    pub recipient: String,
    /// Unix seconds.
    pub expires_at: u64,
    #[serde(skip)]
    pub nonce: [u8; NONCE_LEN],
}

impl TokenClaims {
    /// The nonce as hex: what the store marks used.
    pub fn nonce_hex(&self) -> String {
        self.nonce.iter().map(|b| format!("{b:02x}")).collect()
    }
    /// A short id for logs and audit records (never the token itself).
    pub fn token_id(&self) -> String {
        self.nonce_hex()[..16].to_string()
    }
}

/// Why a token was refused. The portal answers `Invalid` with 401 and `Expired`/`AlreadyUsed` with
/// 410, each with an explanation and a login offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this link is not valid")]
    Invalid,
    #[error("this link has expired")]
    Expired,
    #[error("this link has already been used")]
    AlreadyUsed,
    /// The gateway could not carry the action out (the link stays usable).
    #[error("the action could not be carried out now: {0}")]
    Unavailable(String),
}

/// What redeeming a token did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Redeemed {
    pub claims: TokenClaims,
    pub outcome: crate::ActionOutcome,
}

/// The HMAC key for digest tokens.
pub struct DigestKey(hmac::Key);

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

impl DigestKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> DigestKey {
        DigestKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// The key in `keys_dir/digest.key` (64 hex digits), made (0640, directory 2750: see [`datadir`]) if
    /// missing. Two processes starting at once agree: the file is created exclusively, and the loser
    /// reads it.
    pub fn load_or_create(keys_dir: &Path) -> std::io::Result<DigestKey> {
        use datadir::{Open, Sharing};
        datadir::create_dir(keys_dir, Sharing::GroupRead)?;
        let path = keys_dir.join(KEY_FILE);
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| std::io::Error::other("the system CSPRNG failed"))?;
        match datadir::open_file(&path, Sharing::GroupRead, Open::New) {
            Ok(mut f) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                f.write_all(format!("{hex}\n").as_bytes())?;
                f.sync_all()?;
                return Ok(DigestKey::from_bytes(&bytes));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let text = std::fs::read_to_string(&path)?;
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not 64 hex digits", path.display()),
            )
        };
        let text = text.trim();
        if text.len() != 64 {
            return Err(bad());
        }
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(text.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
        }
        Ok(DigestKey::from_bytes(&bytes))
    }

    /// A token for `claims`.
    pub fn sign(&self, claims: &TokenClaims) -> String {
        let mut payload = vec![VERSION, claims.action.code()];
        payload.extend_from_slice(&claims.expires_at.to_be_bytes());
        payload.extend_from_slice(&claims.nonce);
        for field in [claims.item.as_str(), claims.recipient.as_str()] {
            let bytes = &field.as_bytes()[..field.len().min(255)];
            payload.push(bytes.len() as u8);
            payload.extend_from_slice(bytes);
        }
        let tag = hmac::sign(&self.0, &[CONTEXT, &payload].concat());
        payload.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(payload)
    }

    /// The claims of a genuine, unexpired token (single use is checked by the caller, after this).
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<TokenClaims, TokenError> {
        if token.len() > MAX_TOKEN {
            return Err(TokenError::Invalid);
        }
        let raw = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| TokenError::Invalid)?;
        if raw.len() < TAG_LEN + 1 {
            return Err(TokenError::Invalid);
        }
        let (payload, tag) = raw.split_at(raw.len() - TAG_LEN);
        hmac::verify(&self.0, &[CONTEXT, payload].concat(), tag).map_err(|_| TokenError::Invalid)?;
        let claims = parse(payload).ok_or(TokenError::Invalid)?;
        if claims.expires_at <= now_secs {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// The payload's fields, if its layout is exactly right.
fn parse(p: &[u8]) -> Option<TokenClaims> {
    let (&version, rest) = p.split_first()?;
    let (&action, rest) = rest.split_first()?;
    if version != VERSION {
        return None;
    }
    let (expires, rest) = rest.split_at_checked(8)?;
    let (nonce, rest) = rest.split_at_checked(NONCE_LEN)?;
    let (item, rest) = field(rest)?;
    let (recipient, rest) = field(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some(TokenClaims {
        action: DigestAction::from_code(action)?,
        item: ItemId::parse(std::str::from_utf8(item).ok()?).ok()?,
        recipient: std::str::from_utf8(recipient).ok()?.to_string(),
        expires_at: u64::from_be_bytes(expires.try_into().ok()?),
        nonce: nonce.try_into().ok()?,
    })
}

fn field(p: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = p.split_first()?;
    rest.split_at_checked(usize::from(len))
}

/// 16 fresh random bytes.
pub(crate) fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n)
        .expect("the system CSPRNG is available");
    n
}

impl crate::Quarantine {
    /// A signed link token for `action` on `item` for `recipient`, valid for `digest.token_lifetime`.
    pub fn digest_token(
        &self,
        action: DigestAction,
        item: &ItemId,
        recipient: &str,
    ) -> Result<String, crate::QuarantineError> {
        let lifetime = self.config().digest.token_lifetime.get().as_secs();
        let claims = TokenClaims {
            action,
            item: item.clone(),
            recipient: recipient.to_ascii_lowercase(),
            expires_at: now_secs().saturating_add(lifetime),
            nonce: nonce(),
        };
        Ok(self.digest_key()?.sign(&claims))
    }

    /// Check a token without using it (for a confirmation page: mail scanners fetch links, so the
    /// portal should show what the link will do and act on a POST).
    pub fn peek(&self, token: &str) -> Result<TokenClaims, TokenError> {
        let key = self.digest_key().map_err(|e| TokenError::Unavailable(e.to_string()))?;
        key.verify(token, now_secs())
    }

    /// Carry out what a digest link says, once. The link acts as a user owning only its recipient
    /// address: it can do nothing that recipient could not, and it logs no one in.
    pub async fn redeem(&self, token: &str) -> Result<Redeemed, TokenError> {
        let claims = self.peek(token)?;
        let unavailable = |e: store::StoreError| TokenError::Unavailable(e.to_string());
        let expires_ms = i64::try_from(claims.expires_at.saturating_mul(1000)).unwrap_or(i64::MAX);
        if !self
            .store()
            .digest_token_use(&claims.nonce_hex(), crate::now_ms(), expires_ms)
            .await
            .map_err(unavailable)?
        {
            return Err(TokenError::AlreadyUsed);
        }
        let item = claims.item.as_str();
        let (op, opts) = match claims.action {
            DigestAction::Release => (Op::Release, crate::ReleaseOptions::default()),
            DigestAction::ReleaseAndSafelist => {
                (Op::Release, crate::ReleaseOptions { learn_ham: false, safelist_sender: true })
            }
            DigestAction::Delete => (Op::Delete, crate::ReleaseOptions::default()),
        };
        let done = match self.remote() {
            // The mail plane checks the token again and acts as its recipient.
            Some(mail) => mail.act(Caller::DigestLink { token: token.to_string() }, op, item, opts).await,
            None => {
                let actor = crate::Actor::digest_link(&claims.recipient, &claims.token_id());
                match op {
                    Op::Delete => self.delete(&actor, item).await,
                    _ => self.release(&actor, item, opts).await,
                }
            }
        };
        match done {
            Ok(outcome) => Ok(Redeemed { claims, outcome }),
            Err(crate::QuarantineError::NotFound | crate::QuarantineError::Forbidden(_)) => {
                Err(TokenError::Invalid)
            }
            Err(e) => {
                // Our failure, not the user's: give the link back.
                let _ = self.store().digest_token_unuse(&claims.nonce_hex()).await;
                Err(TokenError::Unavailable(e.to_string()))
            }
        }
    }
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
