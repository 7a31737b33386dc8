//! Strip-and-deliver: a copy of a message with some attachments replaced by a short text notice,
//! for delivery while the original goes to quarantine.
//!
//! Parts are found by the paths the MIME view gives them (`2`, `1.3`), walking multiparts only.
//! Anything ambiguous (no such part, a part inside an enclosed message, two `Content-Type` fields,
//! a multipart without its closing delimiter) gives `None`: the caller then holds the whole message
//! instead. Callers strip only messages without MIME defects, where this walk and the view's agree.

use message::params;
use std::ops::Range;

/// One attachment to remove.
#[derive(Debug, Clone)]
pub struct Removal<'a> {
    /// Its MIME path, as in `message::Attachment::path`.
    pub path: &'a str,
    /// Its display name (sanitised; made ASCII here).
    pub name: &'a str,
    /// Why it was removed, in words.
    pub why: &'a str,
}

/// Most path components followed (the MIME view's depth limit is lower).
const MAX_PATH: usize = 64;

/// The message with each removal's part replaced by a notice, and a header field saying so on top.
pub fn strip(raw: &[u8], removals: &[Removal<'_>]) -> Option<Vec<u8>> {
    let mut ranges: Vec<(Range<usize>, &Removal<'_>)> = Vec::new();
    for r in removals {
        ranges.push((locate(raw, r.path)?, r));
    }
    ranges.sort_by_key(|(range, _)| range.start);
    if ranges.windows(2).any(|w| w[0].0.end > w[1].0.start) || ranges.is_empty() {
        return None;
    }
    let eol: &[u8] = if raw.windows(2).any(|w| w == b"\r\n") { b"\r\n" } else { b"\n" };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(
        format!("X-Portcullis-Stripped: {} attachment(s) removed by policy", ranges.len()).as_bytes(),
    );
    out.extend_from_slice(eol);
    let mut at = 0;
    for (range, r) in &ranges {
        out.extend_from_slice(&raw[at..range.start]);
        out.extend_from_slice(&notice(r, eol));
        at = range.end;
    }
    out.extend_from_slice(&raw[at..]);
    Some(out)
}

fn notice(r: &Removal<'_>, eol: &[u8]) -> Vec<u8> {
    let ascii = |s: &str| -> String {
        s.chars().take(200).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
    };
    let lines = [
        "Content-Type: text/plain; charset=us-ascii".to_string(),
        "Content-Disposition: inline".to_string(),
        "Content-Transfer-Encoding: 7bit".to_string(),
        String::new(),
        format!("An attachment was removed from this message: {}", ascii(r.name)),
        format!("Reason: {}", ascii(r.why)),
        "The original message is held in quarantine; ask your administrator if you need it.".to_string(),
    ];
    lines.join(std::str::from_utf8(eol).unwrap_or("\r\n")).into_bytes()
}

/// The byte range (header and body) of the part at `path`.
fn locate(raw: &[u8], path: &str) -> Option<Range<usize>> {
    if path.is_empty() {
        return None;
    }
    let mut range = 0..raw.len();
    for component in path.split('.').take(MAX_PATH + 1).enumerate().map(|(i, c)| (i < MAX_PATH).then_some(c))
    {
        let n: usize = component?.parse().ok()?;
        let (fields, body) = header_block(raw, range.clone());
        let types: Vec<&String> =
            fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-type")).map(|(_, v)| v).collect();
        let [ctype] = types.as_slice() else { return None };
        let ctype = params::parse(ctype);
        if !ctype.value.starts_with("multipart/") || !ctype.duplicated.is_empty() {
            return None;
        }
        let boundary = ctype.get("boundary").filter(|b| !b.is_empty())?;
        let (parts, closed) = split(raw, body..range.end, boundary.as_bytes());
        if !closed {
            return None;
        }
        range = parts.get(n.checked_sub(1)?)?.clone();
    }
    Some(range)
}

/// The unfolded fields of the header block at the start of `range`, and where the body starts.
pub(crate) fn header_block(raw: &[u8], range: Range<usize>) -> (Vec<(String, String)>, usize) {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut pos = range.start;
    while pos < range.end {
        let end = memchr::memchr(b'\n', &raw[pos..range.end]).map_or(range.end, |i| pos + i + 1);
        let line = &raw[pos..end];
        pos = end;
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        if text.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(text.trim());
            }
        } else if let Some((n, v)) = text.split_once(':') {
            fields.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    (fields, pos)
}

/// Cut a multipart body at its delimiter lines (as the MIME view does); whether it was closed.
/// The body is searched for `--boundary` (one substring search, not a pass per line), and an
/// occurrence counts where it starts a line and only white space (after an optional closing `--`)
/// follows it on that line.
pub(crate) fn split(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> (Vec<Range<usize>>, bool) {
    let delimiter = [b"--", boundary].concat();
    let finder = memchr::memmem::Finder::new(&delimiter);
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut from = body.start;
    while let Some(at) = finder.find(&raw[from..body.end]).map(|i| from + i) {
        let line_end = memchr::memchr(b'\n', &raw[at..body.end]).map_or(body.end, |i| at + i + 1);
        // No delimiter starts later on this line.
        from = line_end;
        let rest = &raw[at + delimiter.len()..line_end];
        let starts_line = at == body.start || raw[at - 1] == b'\n';
        if !starts_line || !rest.strip_prefix(b"--").unwrap_or(rest).iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Some(start) = current.take() {
            parts.push(part_ending_at(raw, start, at));
        }
        if rest.starts_with(b"--") {
            return (parts, true);
        }
        current = Some(line_end);
    }
    (parts, false)
}

/// The part from `start` up to the delimiter line at `at`, without the line break before that line.
fn part_ending_at(raw: &[u8], start: usize, at: usize) -> Range<usize> {
    let mut end = at;
    if end > start && raw[end - 1] == b'\n' {
        end -= 1;
    }
    if end > start && raw[end - 1] == b'\r' {
        end -= 1;
    }
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "From: a@b.test\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nHello\r\n--b1\r\nContent-Type: application/octet-stream; name=\"x.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\ninner\r\n--b2\r\nContent-Type: application/x-msdownload; name=y.scr\r\n\r\nMZ\r\n--b2--\r\n--b1--\r\n";

    #[test]
    fn strips_parts_by_path_and_keeps_the_rest() {
        let rm = [
            Removal { path: "2", name: "x.exe", why: "blocked type exe" },
            Removal { path: "3.2", name: "y.scr", why: "blocked type scr" },
        ];
        let out = String::from_utf8(strip(MSG.as_bytes(), &rm).unwrap()).unwrap();
        assert!(out.starts_with("X-Portcullis-Stripped: 2 attachment(s)"));
        assert!(!out.contains("TVqQ") && !out.contains("\r\nMZ\r\n"));
        assert!(
            out.contains("Hello")
                && out.contains("inner")
                && out.contains("removed from this message: x.exe")
        );
        let view = message::parse(out.as_bytes(), &message::MessageLimits::default());
        assert!(view.attachments.iter().all(|a| a.filename.is_none()));
        assert!(view.parts.iter().all(|p| p.defects.is_empty()));
    }

    /// The line-by-line walk [`split`] replaced.
    fn split_by_lines(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> (Vec<Range<usize>>, bool) {
        let mut parts = Vec::new();
        let mut current: Option<usize> = None;
        let mut pos = body.start;
        while pos < body.end {
            let line_end = memchr::memchr(b'\n', &raw[pos..body.end]).map_or(body.end, |i| pos + i + 1);
            let line = &raw[pos..line_end];
            let rest = line.strip_prefix(b"--").and_then(|l| l.strip_prefix(boundary)).filter(|r| {
                let r = r.strip_prefix(b"--").unwrap_or(r);
                r.iter().all(u8::is_ascii_whitespace)
            });
            if let Some(rest) = rest {
                if let Some(start) = current.take() {
                    parts.push(part_ending_at(raw, start, pos));
                }
                if rest.starts_with(b"--") {
                    return (parts, true);
                }
                current = Some(line_end);
            }
            pos = line_end;
        }
        (parts, false)
    }

    #[test]
    fn split_finds_the_same_delimiters_as_a_walk_by_lines() {
        // Bodies made of pieces that make and break delimiter lines: the boundary inside a line,
        // at a line's start with text or white space after it, closing, doubled, CRLF or LF.
        let pieces: &[&[u8]] =
            &[b"--b", b"--", b"b", b"\r\n", b"\n", b" ", b"\t", b"x", b"--bb", b"-", b"\r", b"--b--"];
        let mut next = crate::xorshift(0x2545_f491);
        for n in 0..3000 {
            let mut raw = Vec::new();
            for _ in 0..n % 30 {
                raw.extend_from_slice(pieces[next() as usize % pieces.len()]);
            }
            for start in [0, raw.len().min(3)] {
                for end in [raw.len(), raw.len().saturating_sub(2).max(start)] {
                    for boundary in [&b"b"[..], b"bb", b"-b"] {
                        assert_eq!(
                            split(&raw, start..end, boundary),
                            split_by_lines(&raw, start..end, boundary),
                            "{:?} {start}..{end} {boundary:?}",
                            String::from_utf8_lossy(&raw)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let rm = |path| [Removal { path, name: "x", why: "y" }];
        assert!(strip(MSG.as_bytes(), &rm("9")).is_none());
        assert!(strip(MSG.as_bytes(), &rm("")).is_none());
        assert!(strip(MSG.as_bytes(), &rm("1.1")).is_none());
        let unclosed = MSG.replace("--b1--", "");
        assert!(strip(unclosed.as_bytes(), &rm("2")).is_none());
    }
}
