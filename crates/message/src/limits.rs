//! The named bounds every parse lives under, and the record of which ones a message reached.

use std::fmt;

/// Bounds on what [`crate::parse`] reads. Reaching one is not an error: the view records a [`LimitHit`]
/// and holds what was read up to that point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageLimits {
    /// Deepest nesting of multiparts and enclosed messages below the top-level message.
    pub max_depth: usize,
    /// Most MIME parts (of any kind, enclosed messages included) looked at.
    pub max_parts: usize,
    /// Most header fields kept per header block (the message's or one part's).
    pub max_headers: usize,
    /// Most bytes of one header block kept (field names, values and folding included).
    pub max_header_bytes: usize,
    /// Most decoded bytes kept from one part.
    pub max_part_bytes: usize,
    /// Most decoded bytes kept over the whole message (all parts and enclosed messages).
    pub max_decoded_bytes: usize,
    /// Most URLs collected.
    pub max_urls: usize,
    /// Most bytes of text (plain and rendered HTML, all parts together) kept for analysis.
    pub max_text_bytes: usize,
}

impl Default for MessageLimits {
    fn default() -> Self {
        MessageLimits {
            max_depth: 20,
            max_parts: 500,
            max_headers: 1000,
            max_header_bytes: 100 * 1024,
            max_part_bytes: 25 << 20,
            max_decoded_bytes: 64 << 20,
            max_urls: 500,
            max_text_bytes: 1 << 20,
        }
    }
}

/// Which bound was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Limit {
    Depth,
    Parts,
    Headers,
    HeaderBytes,
    PartBytes,
    DecodedBytes,
    Urls,
    TextBytes,
}

impl Limit {
    /// The symbol a checker emits for this limit (stable: scores refer to it).
    pub fn symbol(self) -> &'static str {
        match self {
            Limit::Depth => "MIME_TOO_DEEP",
            Limit::Parts => "MIME_TOO_MANY_PARTS",
            Limit::Headers => "TOO_MANY_HEADERS",
            Limit::HeaderBytes => "HEADERS_TOO_LARGE",
            Limit::PartBytes => "MIME_PART_TOO_LARGE",
            Limit::DecodedBytes => "MIME_DECODED_TOO_LARGE",
            Limit::Urls => "TOO_MANY_URLS",
            Limit::TextBytes => "TEXT_TRUNCATED",
        }
    }
}

/// One bound reached, with where (a part path such as `1.2`, or `header`) and the bound's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    pub limit: Limit,
    pub bound: usize,
    pub at: String,
}

impl fmt::Display for LimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} limit {} reached at {}", self.limit, self.bound, self.at)
    }
}

/// Collects limit hits, one per (limit, place), so a hostile message cannot grow the list without bound.
#[derive(Debug, Default)]
pub(crate) struct Hits(pub Vec<LimitHit>);

/// At most this many hits are recorded; later ones add nothing an operator needs.
const MAX_HITS: usize = 32;

impl Hits {
    pub fn add(&mut self, limit: Limit, bound: usize, at: &str) {
        if self.0.len() < MAX_HITS && !self.0.iter().any(|h| h.limit == limit && h.at == at) {
            self.0.push(LimitHit { limit, bound, at: at.to_string() });
        }
    }
}
