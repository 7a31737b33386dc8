//! The normalised view every check reads. Everything here is owned, bounded and already decoded.

use crate::limits::LimitHit;

/// One message, as far as the limits allowed it to be read.
#[derive(Debug, Default, Clone)]
pub struct MessageView {
    /// Size of the raw message in bytes.
    pub raw_size: usize,
    /// The first `max_text_bytes` of the raw message, for rules that match raw bytes.
    pub raw_head: Vec<u8>,
    /// The top-level header fields in order (at most `max_headers`).
    pub headers: Vec<Header>,
    pub from: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub sender: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    /// The address in `Return-Path:`, without angle brackets (empty for `<>`).
    pub return_path: Option<String>,
    pub subject: Option<String>,
    /// The `Date:` field, if present and parseable.
    pub date: Option<Date>,
    /// The `Message-ID:` without angle brackets, if present and well-formed.
    pub message_id: Option<String>,
    /// Every part looked at, in document order (the top-level message is part `""`).
    pub parts: Vec<PartInfo>,
    /// Text parts decoded to UTF-8; HTML parts rendered to plain text.
    pub texts: Vec<TextPart>,
    /// The first HTML part's source, decoded to UTF-8 and cut at `max_text_bytes`: untrusted markup,
    /// for a preview that sanitises it (never rendered as it is).
    pub html: Option<String>,
    pub urls: Vec<Url>,
    pub attachments: Vec<Attachment>,
    /// The limits this message reached. A message with hits was judged on what was read.
    pub limit_hits: Vec<LimitHit>,
}

impl MessageView {
    /// Header fields named `name` (case-insensitive), in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Header> + 'a {
        self.headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name))
    }
    /// The first header field named `name`.
    pub fn header(&self, name: &str) -> Option<&Header> {
        self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))
    }
    /// All analysed text (each part's text, one after another).
    pub fn text(&self) -> impl Iterator<Item = &str> {
        self.texts.iter().map(|t| t.text.as_str())
    }
}

/// A header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name as written.
    pub name: String,
    /// The raw value after the colon, folding kept, invalid UTF-8 replaced.
    pub raw: String,
    /// The value unfolded, trimmed, with RFC 2047 words decoded.
    pub decoded: String,
    /// The raw value held bytes above 127.
    pub eight_bit: bool,
    /// An encoded word in the value could not be decoded.
    pub bad_encoding: bool,
}

/// A mailbox from an address header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailbox {
    /// The display name, decoded.
    pub name: Option<String>,
    /// The address as written (may be empty or invalid: checks decide).
    pub address: String,
}

impl Mailbox {
    /// The domain of the address, lower-case, if it has one.
    pub fn domain(&self) -> Option<String> {
        let (_, d) = self.address.rsplit_once('@')?;
        let d = d.trim().trim_end_matches('>').trim_end_matches('.');
        (!d.is_empty()).then(|| d.to_ascii_lowercase())
    }
}

/// A `Date:` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub timestamp: i64,
}

/// What a MIME part is and what was odd about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartInfo {
    /// Where the part is: `""` for the message, `1`, `1.2` for sub-parts, as IMAP numbers them.
    pub path: String,
    pub depth: usize,
    /// The declared type, lower-case (`text/plain` when none is declared).
    pub content_type: String,
    /// The declared transfer encoding, lower-case (empty when none).
    pub transfer_encoding: String,
    /// MIME disagreements and defects found in this part.
    pub defects: Vec<Defect>,
}

/// A MIME defect: something different parsers may read differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Defect {
    /// More than one `Content-Type:` field.
    DuplicateContentType,
    /// More than one `Content-Transfer-Encoding:` field.
    DuplicateTransferEncoding,
    /// A parameter given twice (e.g. two `boundary=`).
    DuplicateParameter,
    /// `filename=` and `filename*=` (or `name=` and `name*=`) give different names.
    FilenameMismatch,
    /// A multipart without its closing `--boundary--`.
    MissingClosingBoundary,
    /// A multipart whose boundary never appears: read as one text part.
    BoundaryNotFound,
    /// A multipart without a `boundary=` parameter.
    MissingBoundary,
    /// Base64 or quoted-printable content that is not valid; decoded leniently.
    BadTransferEncoding,
    /// A transfer encoding nobody knows.
    UnknownTransferEncoding,
    /// A line in the header block that is not a header field.
    MalformedHeaderLine,
    /// Boundary lines ending in a bare LF while others end in CRLF.
    MixedLineEndings,
}

/// Decoded text from a text part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPart {
    pub path: String,
    /// The part was HTML; `text` is what a reader sees.
    pub html: bool,
    /// The part was HTML and its source (all of it, before any cut) holds a `<form` tag.
    pub form: bool,
    /// The part was sent in base64 (`Content-Transfer-Encoding`, as [`PartInfo::transfer_encoding`]).
    pub base64: bool,
    pub text: String,
    /// Cut at `max_text_bytes`.
    pub truncated: bool,
}

/// A URL found in a text or HTML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The URL as written (trimmed, entities decoded).
    pub url: String,
    /// The host, lower-case, without port or user info (empty if there is none).
    pub host: String,
    /// For HTML links: the text a reader sees for it.
    pub text: Option<String>,
}

/// An attachment (any part that is not the message's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub path: String,
    /// The file name from `Content-Disposition` or `Content-Type` (RFC 2231 and 2047 decoded).
    pub filename: Option<String>,
    /// The declared type, lower-case.
    pub declared_type: String,
    /// The type recognised from the first bytes, if any.
    pub detected_type: Option<&'static str>,
    /// Decoded size in bytes (the full size, even when `data` was cut).
    pub size: usize,
    /// The decoded content, cut at the part and total limits.
    pub data: Vec<u8>,
    /// `data` is shorter than `size`.
    pub truncated: bool,
}

impl Attachment {
    /// The first bytes, for type detection.
    pub fn head(&self) -> &[u8] {
        &self.data[..self.data.len().min(512)]
    }
}
