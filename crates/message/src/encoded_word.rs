//! RFC 2047 encoded words (`=?charset?B|Q?text?=`), decoded strictly enough to tell a broken one.
//!
//! Our own (rather than the MIME library's header decoder) because checks need to know whether a word
//! was malformed, and because the same decoder serves parameter values (`filename="=?...?="`), which
//! mail clients decode although RFC 2047 does not allow it there.

use mail_parser::decoders::charsets::map::charset_decoder;
use std::borrow::Cow;

/// A header text with its encoded words decoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    /// At least one `=?...?=` word could not be decoded (bad encoding letter, bad base64, unknown
    /// charset or missing `?=`); it is kept as written.
    pub malformed: bool,
    /// At least one word was decoded.
    pub encoded: bool,
}

/// Longest charset name considered; longer ones are not encoded words.
const MAX_CHARSET: usize = 64;

/// Decode every encoded word in `s`. Whitespace between two adjacent encoded words is dropped
/// (RFC 2047 section 6.2). Linear in `s`: after a failed word, scanning resumes where it failed.
pub fn decode(s: &str) -> Decoded {
    let b = s.as_bytes();
    let mut out = Decoded::default();
    let mut pos = 0;
    let mut last_was_word = false;
    while pos < b.len() {
        let Some(start) = find(b, pos, b"=?") else { break };
        let literal = &s[pos..start];
        match word(b, start) {
            Ok((text, end)) => {
                let ws_only = literal.bytes().all(|c| c == b' ' || c == b'\t' || c == b'\r' || c == b'\n');
                if !(last_was_word && ws_only) {
                    out.text.push_str(literal);
                }
                out.text.push_str(&text);
                out.encoded = true;
                last_was_word = true;
                pos = end;
            }
            Err(resume) => {
                // Only a word that got as far as its encoding letter counts as malformed: `=?` alone
                // is ordinary text.
                out.malformed |= resume.1;
                let mut resume = resume.0.max(start + 2).min(b.len());
                // Resume points are found on bytes; step past the rest of a multi-byte character.
                while !s.is_char_boundary(resume) {
                    resume += 1;
                }
                out.text.push_str(&s[pos..resume]);
                last_was_word = false;
                pos = resume;
            }
        }
    }
    out.text.push_str(&s[pos.min(s.len())..]);
    out
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(&b[from..], needle).map(|i| from + i)
}

/// Decode the word starting at `start` (`=?`). On success: text and the offset after `?=`. On failure:
/// the offset from which scanning may safely resume (no word can start before it), and whether the
/// word was malformed rather than not a word at all.
fn word(b: &[u8], start: usize) -> Result<(String, usize), (usize, bool)> {
    let cs_start = start + 2;
    let cs_end = scan_token(b, cs_start).ok_or((b.len(), false))?;
    if b.get(cs_end) != Some(&b'?') || cs_end == cs_start || cs_end - cs_start > MAX_CHARSET {
        return Err((cs_end.saturating_sub(1), false));
    }
    let enc = *b.get(cs_end + 1).ok_or((b.len(), false))?;
    if b.get(cs_end + 2) != Some(&b'?') {
        return Err((cs_end - 1, false));
    }
    let t_start = cs_end + 3;
    let t_end = scan_token(b, t_start).ok_or((b.len(), true))?;
    if b.get(t_end) != Some(&b'?') || b.get(t_end + 1) != Some(&b'=') {
        return Err((t_end.saturating_sub(1), true));
    }
    let bad = (t_end + 1, true);
    let bytes = match enc.to_ascii_uppercase() {
        b'B' => mail_parser::decoders::base64::base64_decode(&b[t_start..t_end]).ok_or(bad)?,
        b'Q' => q_decode(&b[t_start..t_end]).ok_or(bad)?,
        _ => return Err(bad),
    };
    // RFC 2231 allows a language after `*` in the charset (`utf-8*en`).
    let charset = &b[cs_start..cs_end];
    let charset = charset.split(|&c| c == b'*').next().unwrap_or(charset);
    Ok((to_text(charset, &bytes).ok_or(bad)?, t_end + 2))
}

/// The end of a run of bytes that may appear inside an encoded word (no `?`, no whitespace).
fn scan_token(b: &[u8], from: usize) -> Option<usize> {
    (from..b.len()).find(|&i| matches!(b[i], b'?' | b' ' | b'\t' | b'\r' | b'\n'))
}

fn q_decode(t: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(t.len());
    let mut i = 0;
    while i < t.len() {
        match t[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = t.get(i + 1..i + 3)?;
                let s = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(s, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

/// Bytes read as UTF-8, invalid sequences replaced (as `String::from_utf8_lossy`), borrowed when they
/// are valid. Valid text, which is nearly all of it, is checked by `str::from_utf8`, which reads ASCII
/// a word at a time; the lossy decoder reads every byte on its own (a header field went through it three
/// times, about 2% of a verdict's instructions).
pub(crate) fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Bytes in a named charset as text; `None` for a charset nobody knows (which is suspicious).
pub(crate) fn to_text(charset: &[u8], bytes: &[u8]) -> Option<String> {
    if is_utf8(charset) {
        return Some(lossy(bytes).into_owned());
    }
    charset_decoder(charset).map(|d| d(bytes))
}

/// A charset whose bytes are read as UTF-8 (ASCII is a subset).
pub(crate) fn is_utf8(charset: &[u8]) -> bool {
    [&b"utf-8"[..], b"utf8", b"us-ascii", b"ascii"].iter().any(|c| charset.eq_ignore_ascii_case(c))
}

/// A single-byte charset whose first 128 bytes are ASCII (ISO 8859, Windows 125x, KOI8), so that
/// text in it holding only ASCII bytes reads the same as UTF-8, without going through its decoder
/// (which builds the text a character at a time).
pub(crate) fn is_ascii_superset(charset: &[u8]) -> bool {
    let lower = charset.to_ascii_lowercase();
    let numbered = |prefix: &[u8], range: std::ops::RangeInclusive<u32>| {
        lower
            .strip_prefix(prefix)
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<u32>().ok())
            .is_some_and(|n| range.contains(&n))
    };
    numbered(b"iso-8859-", 1..=16)
        || numbered(b"windows-", 1250..=1258)
        || numbered(b"cp", 1250..=1258)
        || matches!(lower.as_slice(), b"latin1" | b"koi8-r" | b"koi8-u")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_b_and_q_and_joins_adjacent_words() {
        let d = decode("=?utf-8?B?SGVsbG8=?= =?ISO-8859-1?Q?w=F6rld_!?= end");
        assert_eq!(d.text, "Hellowörld ! end");
        assert!(d.encoded && !d.malformed);
    }

    #[test]
    fn malformed_words_are_kept_and_flagged() {
        for s in ["=?utf-8?X?abc?=", "=?utf-8?B?***?=", "=?utf-8?Q?abc", "=?nosuchcharset?Q?abc?="] {
            let d = decode(s);
            assert!(d.malformed, "{s}");
            assert!(d.text.contains("abc") || d.text.contains("***"), "{s}: {}", d.text);
        }
        assert!(!decode("price =? maybe").malformed);
    }

    #[test]
    fn ascii_superset_charsets_decode_ascii_as_it_is() {
        let ascii: Vec<u8> = (0..128).collect();
        let names = (1..=16)
            .map(|n| format!("ISO-8859-{n}"))
            .chain((1250..=1258).flat_map(|n| [format!("windows-{n}"), format!("CP{n}")]))
            .chain(["latin1", "KOI8-R", "koi8-u"].map(String::from));
        for name in names {
            assert!(is_ascii_superset(name.as_bytes()), "{name}");
            let text = to_text(name.as_bytes(), &ascii);
            assert!(text.is_none_or(|t| t.as_bytes() == ascii), "{name}");
        }
        for name in ["utf-7", "utf-16", "iso-2022-jp", "iso-8859-", "iso-8859-17", "cp1249", "shift_jis"] {
            assert!(!is_ascii_superset(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn east_asian_charsets_decode() {
        // "日本語" in ISO-2022-JP (7-bit, with escapes), Shift_JIS, EUC-KR ("한국어") and GB2312 ("中文").
        let cases: [(&str, &[u8], &str); 4] = [
            ("ISO-2022-JP", b"\x1b$BF|K\\8l\x1b(B", "日本語"),
            ("shift_jis", b"\x93\xfa\x96\x7b\x8c\xea", "日本語"),
            ("euc-kr", b"\xc7\xd1\xb1\xb9\xbe\xee", "한국어"),
            ("gb2312", b"\xd6\xd0\xce\xc4", "中文"),
        ];
        for (charset, bytes, text) in cases {
            assert_eq!(to_text(charset.as_bytes(), bytes).as_deref(), Some(text), "{charset}");
        }
        assert_eq!(decode("=?iso-2022-jp?B?GyRCRnxLXDhsGyhC?=").text, "日本語");
    }

    #[test]
    fn pathological_input_is_scanned_once() {
        let s = "=?a".repeat(200_000) + &"=?utf-8?q?".repeat(100_000);
        let d = decode(&s);
        assert_eq!(d.text.len(), s.len());
    }
}
