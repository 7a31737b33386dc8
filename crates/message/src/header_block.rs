//! Splitting a header block into fields, in one pass and under the header limits.
//!
//! This is ours rather than the MIME library's so that the count and byte limits apply before anything
//! else looks at the fields, and so that a 1 MB line, 50,000 fields or 1 MB of folded continuation lines
//! cost one linear scan (each byte is looked at a bounded number of times: `memchr` to the line end,
//! then the line's first byte).

use crate::limits::{Hits, Limit, MessageLimits};
use std::ops::Range;

/// One header field as it appears: `name` and the raw value after the colon (folding kept, final line
/// break dropped), both as ranges into the scanned buffer.
#[derive(Debug, Clone)]
pub(crate) struct RawField {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

/// The fields of a header block and where its body starts.
#[derive(Debug)]
pub(crate) struct HeaderBlock {
    pub fields: Vec<RawField>,
    /// Offset of the first body byte (after the empty line), or the end of the range if there is none.
    pub body_start: usize,
    /// Offset where the fields end: the empty line, the line taken for the first body line, or the
    /// end of the range.
    pub end: usize,
    /// A line that is neither a field, a continuation nor empty ended the header early.
    pub malformed_line: bool,
}

/// Room for a typical header block's fields at once (more grow the vector as usual; the bound is
/// `max_headers`).
const TYPICAL_FIELDS: usize = 32;

/// Split the header block that starts at `range.start`. Fields past `max_headers` or past
/// `max_header_bytes` are dropped (a field crossing the byte bound is cut at it) and recorded in `hits`.
pub(crate) fn split(
    buf: &[u8],
    range: Range<usize>,
    limits: &MessageLimits,
    hits: &mut Hits,
    at: &str,
) -> HeaderBlock {
    let mut fields: Vec<RawField> = Vec::with_capacity(TYPICAL_FIELDS);
    let mut pos = range.start;
    let end = range.end;
    let budget_end = range.start.saturating_add(limits.max_header_bytes);
    let mut dropping = false;
    let mut malformed_line = false;
    while pos < end {
        let line_end = memchr::memchr(b'\n', &buf[pos..end]).map_or(end, |i| pos + i + 1);
        let content_end = trim_eol(buf, pos, line_end);
        let first = buf[pos];
        if content_end == pos {
            // The empty line: the body follows.
            return HeaderBlock { fields, body_start: line_end, end: pos, malformed_line };
        }
        if first == b' ' || first == b'\t' {
            if !dropping && let Some(last) = fields.last_mut() {
                last.value.end = content_end.min(budget_end);
                if content_end > budget_end {
                    hits.add(Limit::HeaderBytes, limits.max_header_bytes, at);
                    dropping = true;
                }
            }
        } else if let Some(colon) = field_name_end(&buf[pos..content_end]) {
            if !dropping {
                if fields.len() >= limits.max_headers {
                    hits.add(Limit::Headers, limits.max_headers, at);
                    dropping = true;
                } else if pos + colon >= budget_end {
                    hits.add(Limit::HeaderBytes, limits.max_header_bytes, at);
                    dropping = true;
                } else {
                    if content_end > budget_end {
                        hits.add(Limit::HeaderBytes, limits.max_header_bytes, at);
                        dropping = true;
                    }
                    fields.push(RawField {
                        name: pos..pos + colon,
                        value: pos + colon + 1..content_end.min(budget_end),
                    });
                }
            }
        } else {
            // Not a header line: treat it as the first body line, as mail clients do.
            malformed_line = true;
            return HeaderBlock { fields, body_start: pos, end: pos, malformed_line };
        }
        pos = line_end;
    }
    HeaderBlock { fields, body_start: end, end, malformed_line }
}

/// The end of a line's content, without its CRLF or LF.
pub(crate) fn trim_eol(buf: &[u8], start: usize, line_end: usize) -> usize {
    let mut e = line_end;
    if e > start && buf[e - 1] == b'\n' {
        e -= 1;
    }
    if e > start && buf[e - 1] == b'\r' {
        e -= 1;
    }
    e
}

/// Where a field name ends (the colon), if the line starts with a valid one (RFC 5322 ftext).
fn field_name_end(line: &[u8]) -> Option<usize> {
    let colon = memchr::memchr(b':', line)?;
    let name = &line[..colon];
    let name = name.strip_suffix(b" ").unwrap_or(name); // "Subject :" is seen in the wild.
    (!name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':')).then_some(colon)
}

/// A field's value unfolded (line breaks inside it removed) and trimmed, as text (invalid UTF-8 replaced).
pub(crate) fn unfolded(raw: &[u8]) -> String {
    unfolded_from(raw, std::str::from_utf8(raw).ok())
}

/// [`unfolded`] for a caller that has already checked `raw` as UTF-8: `valid` is `raw` as text when
/// it is valid. Valid text is unfolded as it is (line breaks are ASCII, so every cut is a character
/// boundary); invalid bytes are unfolded before they are replaced, so a sequence split by a line break
/// is replaced as one.
pub(crate) fn unfolded_from(raw: &[u8], valid: Option<&str>) -> String {
    let one_line = memchr::memchr2(b'\r', b'\n', raw).is_none();
    match valid {
        // Most values are one line: one copy, none when trimming is all there is to do.
        Some(text) if one_line => text.trim().to_string(),
        Some(text) => {
            let mut out = String::with_capacity(text.len());
            between_line_breaks(raw, |piece| out.push_str(&text[piece]));
            out.trim().to_string()
        }
        None => {
            let mut out = Vec::with_capacity(raw.len());
            between_line_breaks(raw, |piece| out.extend_from_slice(&raw[piece]));
            String::from_utf8_lossy(&out).trim().to_string()
        }
    }
}

/// Hands `take` each range of `raw` between its line breaks (CR or LF), in order.
fn between_line_breaks(raw: &[u8], mut take: impl FnMut(Range<usize>)) {
    let mut from = 0;
    for at in memchr::memchr2_iter(b'\r', b'\n', raw) {
        take(from..at);
        from = at + 1;
    }
    take(from..raw.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(buf: &[u8], b: &HeaderBlock) -> Vec<String> {
        b.fields.iter().map(|f| String::from_utf8_lossy(&buf[f.name.clone()]).into()).collect()
    }

    #[test]
    fn fields_folding_and_body() {
        let m = b"A: 1\r\nB: two\r\n  lines\r\nC:3\r\n\r\nbody";
        let mut hits = Hits::default();
        let b = split(m, 0..m.len(), &MessageLimits::default(), &mut hits, "header");
        assert_eq!(names(m, &b), ["A", "B", "C"]);
        assert_eq!(unfolded(&m[b.fields[1].value.clone()]), "two  lines");
        assert_eq!(&m[b.body_start..], b"body");
        assert!(hits.0.is_empty());
    }

    #[test]
    fn unfolding_valid_and_invalid_text() {
        // Valid UTF-8 is cut at the breaks as text; invalid bytes are joined before they are replaced.
        assert_eq!(unfolded("  Caf\u{e9}\r\n \u{1F600}\r\n\tx ".as_bytes()), "Caf\u{e9} \u{1F600}\tx");
        assert_eq!(unfolded(b" a\xC3\r\n\xA9b "), "a\u{e9}b");
        assert_eq!(unfolded(b"a\xFF\r\n b"), "a\u{FFFD} b");
    }

    #[test]
    fn count_and_byte_limits_cut_and_record() {
        let limits = MessageLimits { max_headers: 2, max_header_bytes: 20, ..Default::default() };
        let m = b"A: 1\r\nB: 2\r\nC: 3\r\n\r\nx";
        let mut hits = Hits::default();
        let b = split(m, 0..m.len(), &limits, &mut hits, "header");
        assert_eq!(names(m, &b), ["A", "B"]);
        assert_eq!(hits.0[0].limit, Limit::Headers);
        assert_eq!(&m[b.body_start..], b"x");
        let m = b"Subject: 0123456789012345678901234567890\r\n\r\nx";
        let mut hits = Hits::default();
        let b = split(m, 0..m.len(), &limits, &mut hits, "header");
        assert_eq!(b.fields[0].value.end, 20);
        assert_eq!(hits.0[0].limit, Limit::HeaderBytes);
    }

    #[test]
    fn a_non_header_line_starts_the_body() {
        let m = b"A: 1\r\nthis is not a header\r\n";
        let b = split(m, 0..m.len(), &MessageLimits::default(), &mut Hits::default(), "h");
        assert!(b.malformed_line);
        assert_eq!(&m[b.body_start..], b"this is not a header\r\n");
    }
}
