//! What the quarantine hands out: items, their details, search queries and pages, outcomes.

use crate::QuarantineError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

pub use store::ItemStatus as Status;
pub use store::QuarantineKind as Kind;

/// Longest text kept from `From:` and `Subject:` (bytes).
pub(crate) const MAX_HEADER_TEXT: usize = 998;
/// Longest text body returned by [`crate::Quarantine::get`] (bytes).
pub(crate) const MAX_BODY_TEXT: usize = 256 * 1024;
/// Most header fields returned by [`crate::Quarantine::get`].
pub(crate) const MAX_HEADERS: usize = 200;
/// Largest page a search returns, and the page size when none is asked for.
pub const MAX_PAGE: u32 = 200;
pub const DEFAULT_PAGE: u32 = 50;
/// Longest search term accepted.
const MAX_TERM: usize = 320;

/// An item's opaque id: 16 bytes, base64url (22 characters), 127 of their bits random; the first bit is
/// clear so the id starts with a letter (`A` to `f`), never with `-` (a command line would take it for
/// an option). Not the queue id, not a sequence. Ids made before may start with `-` or `_`: [`parse`]
/// takes any 22 base64url characters.
///
/// [`parse`]: ItemId::parse
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ItemId(String);

impl ItemId {
    /// A new random id.
    pub(crate) fn random() -> ItemId {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .expect("the system CSPRNG is available");
        bytes[0] &= 0x7f;
        ItemId(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// An id from outside (a URL, an argument). Anything that is not exactly 22 base64url characters
    /// is [`QuarantineError::NotFound`]: `../`, `%00` and friends never get near a file or a query.
    pub fn parse(s: &str) -> Result<ItemId, QuarantineError> {
        let ok = s.len() == 22 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(ItemId(s.to_string())) } else { Err(QuarantineError::NotFound) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Symbols that make an item a policy item (attachments, archives, what could not be scanned).
fn is_policy_symbol(name: &str) -> bool {
    name.starts_with("ATTACH_")
        || name.starts_with("ARCHIVE_")
        || name == "AV_UNSCANNABLE"
        || name == "AV_FAILURE"
}

/// The kind of quarantine a verdict puts a message in: virus if a virus was found, else policy if an
/// attachment, archive or unscannable symbol is present, else spam. The stricter kind wins.
pub fn kind_of<'a>(symbols: impl IntoIterator<Item = &'a str>) -> Kind {
    let mut kind = Kind::Spam;
    for s in symbols {
        if s == "VIRUS_FOUND" {
            return Kind::Virus;
        }
        if is_policy_symbol(s) {
            kind = Kind::Policy;
        }
    }
    kind
}

/// One symbol of the verdict that held an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symbol {
    pub name: String,
    pub score: f64,
    pub reason: String,
}

/// An item as search and the portal show it. Text fields are untrusted data from the message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub id: ItemId,
    pub queue_id: String,
    pub kind: &'static str,
    pub status: &'static str,
    /// Who released, deleted or expired it (any owner sees this), and when (Unix ms).
    pub status_by: Option<String>,
    pub status_at_ms: Option<i64>,
    /// Envelope sender (empty for `<>`).
    pub sender: String,
    /// Envelope recipients: the owners.
    pub recipients: Vec<String>,
    pub from: String,
    pub subject: String,
    pub message_id: String,
    pub score: f64,
    pub symbols: Vec<Symbol>,
    pub received_at_ms: i64,
    pub size: i64,
}

impl Item {
    pub(crate) fn from_row(r: store::ItemRow) -> Item {
        let symbols = serde_json::from_str(&r.symbols_json).unwrap_or_default();
        Item {
            id: ItemId(r.id),
            queue_id: r.queue_id,
            kind: r.kind.as_str(),
            status: r.status.as_str(),
            status_by: r.status_by,
            status_at_ms: r.status_at_ms,
            sender: r.sender,
            recipients: r.owners,
            from: r.from_header,
            subject: r.subject,
            message_id: r.message_id,
            score: r.score,
            symbols,
            received_at_ms: r.received_at_ms,
            size: r.size,
        }
    }
}

/// An attachment of a held message, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentInfo {
    pub name: Option<String>,
    pub content_type: String,
    pub size: usize,
}

/// Everything the portal shows about one item: the item, its headers and its text body, as data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemDetail {
    pub item: Item,
    /// Top-level header fields, name and decoded value (bounded).
    pub headers: Vec<(String, String)>,
    /// The text parts (HTML rendered to text), bounded; never HTML.
    pub text: String,
    /// The first HTML part's source, as parsed by `message::parse` under its limits: untrusted markup,
    /// only ever shown after sanitising (the portal's preview). Not serialised: the API gives `text`.
    #[serde(skip)]
    pub html: Option<String>,
    pub attachments: Vec<AttachmentInfo>,
    /// The content still has the SHA-256 recorded when it was held.
    pub checksum_ok: bool,
}

/// The held message as a file to download (always as an attachment, never displayed inline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// A safe file name made from the item id: `<id>.eml`.
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// What to do besides releasing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct ReleaseOptions {
    /// Learn the message as ham.
    #[serde(default)]
    pub learn_ham: bool,
    /// Put the envelope sender on the owners' safelists (the actor's own addresses, for end users).
    #[serde(default)]
    pub safelist_sender: bool,
}

/// What an operation did. Repeating one is not an error: it says it was done already, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ActionOutcome {
    /// Done now.
    Done,
    /// The item had already left `held` (released, deleted or expired), by `by` at `at_ms`.
    AlreadyDone { status: &'static str, by: Option<String>, at_ms: Option<i64> },
}

/// A quarantine search. Empty fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    /// An owner address (exact, case-insensitive).
    pub recipient: Option<String>,
    /// An envelope sender address, or a domain (no `@`).
    pub sender: Option<String>,
    /// Text in the subject: case-insensitive and literal, and its longest word must be a whole word of
    /// the subject (`invoice` finds "Invoice 42", not "invoices"; see `store::quarantine`).
    pub subject: Option<String>,
    /// Received at or after (Unix ms).
    pub from_ms: Option<i64>,
    /// Received before (Unix ms).
    pub to_ms: Option<i64>,
    pub kind: Option<String>,
    pub status: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Page size (at most [`MAX_PAGE`]; default [`DEFAULT_PAGE`]).
    pub limit: Option<u32>,
}

/// One page of search results, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub items: Vec<Item>,
    /// Pass as `cursor` for the next page; `None` on the last one.
    pub next: Option<String>,
}

/// A search term, trimmed, lower-cased and bounded; `None` when empty.
pub(crate) fn term(name: &str, value: &Option<String>) -> Result<Option<String>, QuarantineError> {
    let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
    if v.len() > MAX_TERM || v.chars().any(char::is_control) {
        return Err(QuarantineError::BadQuery(format!("{name} is too long or holds control characters")));
    }
    Ok(Some(v.to_lowercase()))
}

/// A keyset cursor `<received_at_ms>.<item or queue id>`.
pub(crate) fn cursor_encode(at_ms: i64, id: &str) -> String {
    format!("{at_ms}.{id}")
}

pub(crate) fn cursor_decode(s: &Option<String>) -> Result<Option<(i64, String)>, QuarantineError> {
    let Some(s) = s.as_deref().filter(|s| !s.is_empty()) else { return Ok(None) };
    let bad = || QuarantineError::BadQuery("cursor is not one this server gave out".into());
    let (at, id) = s.split_once('.').ok_or_else(bad)?;
    let id_ok = !id.is_empty()
        && id.len() <= 32
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(bad());
    }
    Ok(Some((at.parse().map_err(|_| bad())?, id.to_string())))
}

/// The page size asked for, bounded.
pub(crate) fn page_size(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_start_with_a_letter_and_old_ones_still_parse() {
        for _ in 0..2_000 {
            let id = ItemId::random();
            assert!(id.as_str().starts_with(|c: char| c.is_ascii_alphabetic()), "{id}");
            assert_eq!(ItemId::parse(id.as_str()).unwrap(), id);
        }
        assert!(
            ItemId::parse("-zX0aaaaaaaaaaaaaaaaaa").is_ok()
                && ItemId::parse("_zX0aaaaaaaaaaaaaaaaaa").is_ok()
        );
    }
}
