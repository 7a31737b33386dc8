//! PDF risk markers: names that run script or programs, act on open, or carry files. Names are
//! read from the raw bytes and from inside compressed object streams (which hide dictionaries),
//! with `#xx` escapes decoded (`/J#61vaScript` is `/JavaScript`).
//!
//! # Which streams are inflated
//! A name only acts where a reader parses it as part of an object: in the file's own bytes or in an
//! object stream. Every reader finds an object stream's objects through its header, a list of
//! integers at the very start of the decoded data (after white space or comments), whatever its
//! dictionary says (the dictionary can be malformed, escaped or hidden from a simple scan, so it is
//! not trusted). So each Flate stream is inflated only until its first token shows: a number, a
//! sign, a dot or a comment (`%`) means it may hold objects, and it is inflated whole (up to the
//! limits); anything else (`BT`, `q`, `/F1`, binary image or font data) cannot, and the rest is not
//! inflated, unless its dictionary says `/ObjStm`, `/N` or `/First` (then it is inflated whole
//! anyway: the dictionary may only ever add work, never save it). The one exception keeps what the whole-file scan used to see inside attached files:
//! when the document names an embedded file (`/EF`, `/EmbeddedFile`, `/EmbeddedFiles`,
//! `/FileAttachment`), every stream is inflated whole, so script in an attached PDF still counts.

use crate::inflate::{Inflater, Step};
use memchr::memmem;
use std::borrow::Cow;

/// Most bytes inflated from one stream, from all streams, and most streams tried.
const MAX_STREAM_BYTES: usize = 4 << 20;
const MAX_INFLATED_TOTAL: usize = 32 << 20;
const MAX_STREAMS: usize = 2000;
/// Bytes inflated first from a stream to see its first token (more while it is all white space).
const FIRST_LOOK: usize = 256;
/// Bytes before a `stream` keyword searched for its dictionary's names.
const DICTIONARY_WINDOW: usize = 4096;
/// PDF names are at most 127 bytes.
const MAX_NAME: usize = 127;

/// The risky names found in one PDF.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdfFacts {
    pub javascript: bool,
    pub launch: bool,
    /// `/OpenAction` or `/AA`.
    pub auto_action: bool,
    pub embedded_file: bool,
    /// A risky name was written with `#xx` escapes.
    pub obfuscated: bool,
}

/// Scan a PDF's bytes and its inflated object streams (bounded).
pub fn scan(data: &[u8]) -> PdfFacts {
    let mut facts = PdfFacts::default();
    let mut embeds = names(data, &mut facts);
    let mut z = Inflater::zlib(&[]);
    let mut left = MAX_INFLATED_TOTAL;
    // Streams whose first token rules out objects, with the bytes already inflated from them.
    let mut passed_over: Vec<(&[u8], usize)> = Vec::new();
    for (at, body) in flate_streams(data) {
        if left == 0 {
            break;
        }
        let how = if dictionary_names_objects(data, at) { Inflate::Whole } else { Inflate::ObjectStreams };
        let (out, whole) = inflate(&mut z, body, left.min(MAX_STREAM_BYTES), how);
        left -= out.len();
        if whole {
            embeds |= names(&out, &mut facts);
        } else {
            passed_over.push((body, out.len()));
        }
    }
    if embeds {
        for (body, charged) in passed_over {
            if left == 0 {
                break;
            }
            let (out, _) = inflate(&mut z, body, (left + charged).min(MAX_STREAM_BYTES), Inflate::Whole);
            left = (left + charged).saturating_sub(out.len());
            names(&out, &mut facts);
        }
    }
    facts
}

/// Where each `stream` keyword is and the data after it, for every stream that starts with a zlib
/// header (FlateDecode), in file order, among the first [`MAX_STREAMS`] `stream` keywords (the data
/// runs to the end of the file: inflation stops where the zlib stream does).
fn flate_streams(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    memmem::find_iter(data, b"stream").take(MAX_STREAMS).filter_map(move |at| {
        if at >= 3 && &data[at - 3..at] == b"end" {
            return None;
        }
        let mut start = at + 6;
        if data.get(start) == Some(&b'\r') {
            start += 1;
        }
        if data.get(start) == Some(&b'\n') {
            start += 1;
        }
        let body = &data[start..];
        body.first().is_some_and(|b| b & 0x0f == 8).then_some((at, body))
    })
}

/// Whether the dictionary before the `stream` keyword at `at` (back to the last `obj` keyword, at
/// most [`DICTIONARY_WINDOW`] bytes) names an object stream's type or keys (`/ObjStm`, `/N`,
/// `/First`, escaped or not). Only ever a reason to inflate more: a stream is also inflated whole
/// when its data starts like an object stream's header, whatever this finds.
fn dictionary_names_objects(data: &[u8], at: usize) -> bool {
    let window = &data[at.saturating_sub(DICTIONARY_WINDOW)..at];
    let dictionary = memmem::rfind(window, b"obj").map_or(window, |i| &window[i + 3..]);
    name_tokens(dictionary, b"ONF").any(|(name, _)| matches!(&*name, b"ObjStm" | b"N" | b"First"))
}

/// How much of a stream [`inflate`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Inflate {
    /// Up to the limit.
    Whole,
    /// Only as far as the first token, unless that token can start an object stream's header.
    ObjectStreams,
}

/// Inflate a zlib stream, at most `limit` bytes; what came out, and whether it was read whole
/// (to the limit, its end, or a fault) rather than passed over after its first token.
fn inflate<'d>(z: &mut Inflater<'d>, body: &'d [u8], limit: usize, mut how: Inflate) -> (Vec<u8>, bool) {
    z.restart_zlib(body);
    let mut out = Vec::with_capacity(FIRST_LOOK.min(limit));
    let mut blank = 0; // leading bytes of `out` known to be white space
    loop {
        let step = z.step(&mut out, limit);
        if how == Inflate::ObjectStreams {
            blank += out[blank..].iter().take_while(|&&b| is_whitespace(b)).count();
            match out.get(blank) {
                Some(&first) if !may_start_objects(first) => return (out, false),
                Some(_) => how = Inflate::Whole,
                None => {}
            }
        }
        if step != Step::Full || out.len() >= limit {
            return (out, true);
        }
    }
}

/// Whether a decoded stream whose first token starts with `b` may be an object stream: its header
/// is integers (`+`, `-` and `.` start numbers too), and readers skip comments before it.
fn may_start_objects(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'%')
}

/// PDF white space (ISO 32000 7.2.2): NUL, tab, LF, FF, CR, space.
fn is_whitespace(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

/// The first letters of every name [`names`] matches.
const RISKY_INITIALS: &[u8] = b"JLOAEF";

/// Every `/Name` token in `d`, decoded, checked against the risky set; whether one of them names an
/// embedded file (including `/EF` and `/FileAttachment`, which are not findings by themselves).
fn names(d: &[u8], facts: &mut PdfFacts) -> bool {
    let mut embeds = false;
    for (name, escaped) in name_tokens(d, RISKY_INITIALS) {
        let hit = match &*name {
            b"JavaScript" | b"JS" => {
                facts.javascript = true;
                true
            }
            b"Launch" => {
                facts.launch = true;
                true
            }
            b"OpenAction" | b"AA" => {
                facts.auto_action = true;
                true
            }
            b"EmbeddedFile" | b"EmbeddedFiles" => {
                facts.embedded_file = true;
                embeds = true;
                true
            }
            b"EF" | b"FileAttachment" => {
                embeds = true;
                false
            }
            _ => false,
        };
        if hit && escaped {
            facts.obfuscated = true;
        }
    }
    embeds
}

/// Every `/Name` token in `d` that can start with one of `initials` (at most [`MAX_NAME`]
/// characters of it, counting an escape as three), decoded, and whether it was written with `#xx`
/// escapes. A name whose first byte is neither one of `initials` nor an escape cannot decode to a
/// name starting with one, so it is skipped unread (most slashes in a PDF's binary data are).
fn name_tokens<'d>(d: &'d [u8], initials: &'static [u8]) -> impl Iterator<Item = (Cow<'d, [u8]>, bool)> {
    memchr::memchr_iter(b'/', d).filter_map(move |at| {
        let raw: &[u8] = &d[at + 1..];
        if raw.first().is_none_or(|b| *b != b'#' && !initials.contains(b)) {
            return None;
        }
        let len = raw
            .iter()
            .take(MAX_NAME * 3)
            .position(|&b| is_delimiter(b))
            .unwrap_or(raw.len().min(MAX_NAME * 3));
        let raw = &raw[..len];
        if raw.is_empty() {
            return None;
        }
        let escaped = raw.contains(&b'#');
        Some((if escaped { Cow::Owned(decode(raw)) } else { Cow::Borrowed(raw) }, escaped))
    })
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace()
        || b == 0
        || matches!(b, b'/' | b'[' | b']' | b'<' | b'>' | b'(' | b')' | b'{' | b'}' | b'%')
}

/// `#xx` hexadecimal escapes decoded (PDF 1.2+ names).
fn decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        let escape = (raw[i] == b'#')
            .then(|| (raw.get(i + 1).and_then(|&b| hex(b)), raw.get(i + 2).and_then(|&b| hex(b))));
        if let Some((Some(h), Some(l))) = escape {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::ZlibEncoder;
    use std::io::Write;

    #[test]
    fn markers_plain_escaped_and_compressed() {
        let plain = b"%PDF-1.7\n1 0 obj<</Type/Catalog/OpenAction 2 0 R>>endobj\n2 0 obj<</S/JavaScript/JS(app.alert(1))>>endobj";
        let f = scan(plain);
        assert!(f.javascript && f.auto_action && !f.launch && !f.obfuscated);
        let escaped = b"%PDF-1.4\n<</S/L#61unch/F(cmd.exe)>>";
        let f = scan(escaped);
        assert!(f.launch && f.obfuscated);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(b"<</Type/EmbeddedFile>> <</S /JavaScript>>").unwrap();
        let mut hidden = b"%PDF-1.5\n5 0 obj<</Type/ObjStm/Filter/FlateDecode>>stream\r\n".to_vec();
        hidden.extend(z.finish().unwrap());
        hidden.extend_from_slice(b"\r\nendstream endobj");
        let f = scan(&hidden);
        assert!(f.embedded_file && f.javascript);
        assert_eq!(scan(b"%PDF-1.4\n<</Type/Page/Contents 4 0 R>>"), PdfFacts::default());
    }

    #[test]
    fn every_risky_name_is_read_plain_and_escaped() {
        for (name, is) in [
            ("JavaScript", (|f: &PdfFacts| f.javascript) as fn(&PdfFacts) -> bool),
            ("JS", |f| f.javascript),
            ("Launch", |f| f.launch),
            ("OpenAction", |f| f.auto_action),
            ("AA", |f| f.auto_action),
            ("EmbeddedFile", |f| f.embedded_file),
            ("EmbeddedFiles", |f| f.embedded_file),
        ] {
            assert!(RISKY_INITIALS.contains(&name.as_bytes()[0]), "{name}");
            assert!(is(&scan(format!("<</{name} 1>>").as_bytes())), "{name}");
            let escaped = format!("<</#{:02x}{}>>", name.as_bytes()[0], &name[1..]);
            let f = scan(escaped.as_bytes());
            assert!(is(&f) && f.obfuscated, "{escaped}");
        }
        let mut f = PdfFacts::default();
        assert!(names(b"/EF /FileAttachment", &mut f) && f == PdfFacts::default());
        assert!(!names(b"/Effect /Files /Xembeddedfile", &mut f));
    }

    /// `prefix`, then object 5: a Flate stream with `dictionary` holding `content`.
    fn pdf_with_stream(prefix: &str, dictionary: &str, content: &[u8]) -> Vec<u8> {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(content).unwrap();
        let mut pdf = format!("%PDF-1.5\n{prefix}\n5 0 obj\n{dictionary}\nstream\r\n").into_bytes();
        pdf.extend(z.finish().unwrap());
        pdf.extend_from_slice(b"\r\nendstream\nendobj\n");
        pdf
    }

    #[test]
    fn object_streams_are_inflated_however_they_are_marked() {
        let objects = b"1 0 2 31 <</S/JavaScript/JS(app.alert(1))>> <</Type/Catalog/OpenAction 1 0 R>>";
        let f = scan(&pdf_with_stream("", "<</Type/ObjStm/N 2/First 10/Filter/FlateDecode>>", objects));
        assert!(f.javascript && f.auto_action, "{f:?}");
        // Readers find an object stream through the cross-reference table, not its /Type: a
        // dictionary without it (or a broken, hidden one) does not hide the objects, whose header
        // of numbers shows (after white space or a comment).
        let f = scan(&pdf_with_stream("", "<</Length 90/Filter/FlateDecode>>", objects));
        assert!(f.javascript && f.auto_action, "{f:?}");
        let commented = b" \r\n% objects\n1 0 <</S/Launch/F(cmd.exe)>>";
        assert!(scan(&pdf_with_stream("", "<</Filter/FlateDecode>>", commented)).launch);
        let hidden = "<</N 1/First 4 % ) obj\n/Filter/FlateDecode>>";
        assert!(scan(&pdf_with_stream("", hidden, b"1 0 <</JS(x)>>")).javascript);
        // The dictionary only ever adds streams: an escaped /Type/Obj#53tm (or /#4E, /F#69rst) is
        // inflated whole even when its data does not start like a header.
        let headless = b"<</S/JavaScript/JS(x)>>";
        for dictionary in [
            "<</Type/Obj#53tm/Filter/FlateDecode>>",
            "<</#4E 1/Filter/FlateDecode>>",
            "<</F#69rst 4/Filter/FlateDecode>>",
        ] {
            let f = scan(&pdf_with_stream("", dictionary, headless));
            assert!(f.javascript && !f.obfuscated, "{dictionary}: {f:?}");
        }
    }

    #[test]
    fn page_content_is_not_inflated_but_attached_files_are() {
        // Page text naming /JavaScript is not an action: content streams are passed over.
        let page = b"BT /F1 12 Tf 72 712 Td (how /JavaScript /Launch and /OpenAction work) Tj ET";
        let content = "<</Length 80/Filter/FlateDecode>>";
        assert_eq!(scan(&pdf_with_stream("", content, page)), PdfFacts::default());
        // An attached file is read whole, as it always was: script in an attached PDF (here with
        // bytes before its header, as readers allow) still counts.
        let attached = b"MZ\x90\x00 junk %PDF-1.4 1 0 obj <</S/JavaScript/JS(x)>> endobj";
        assert!(!scan(&pdf_with_stream("", content, attached)).javascript);
        let filespec = "4 0 obj <</Type/Filespec/F(a.pdf)/EF<</F 5 0 R>>>> endobj";
        assert!(scan(&pdf_with_stream(filespec, content, attached)).javascript);
        let annotation = "4 0 obj <</Subtype/FileAttachment/FS 6 0 R>> endobj";
        assert!(scan(&pdf_with_stream(annotation, content, attached)).javascript);
    }

    #[test]
    fn inflation_is_bounded() {
        // White space says nothing, so 16 MiB of zeros is inflated, but only to the stream limit.
        let zeros = vec![0u8; 16 << 20];
        let pdf = pdf_with_stream("", "<<>>", &zeros);
        let at = memmem::find(&pdf, b"stream\r\n").unwrap() + 8;
        let mut z = Inflater::zlib(&[]);
        let (out, whole) = inflate(&mut z, &pdf[at..], MAX_STREAM_BYTES, Inflate::ObjectStreams);
        assert!(whole && out.len() == MAX_STREAM_BYTES, "{}", out.len());
        let (out, whole) = inflate(&mut z, &pdf[at..], 100, Inflate::Whole);
        assert!(whole && out.len() == 100);
    }
}
