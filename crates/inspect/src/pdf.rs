//! PDF risk markers: names that run script or programs, act on open, or carry files. Names are
//! read from the raw bytes and from inside compressed streams (object streams hide dictionaries),
//! with `#xx` escapes decoded (`/J#61vaScript` is `/JavaScript`).

use flate2::read::ZlibDecoder;
use memchr::memmem;
use std::borrow::Cow;
use std::io::Read;

/// Most bytes inflated from one stream, from all streams, and most streams tried.
const MAX_STREAM_BYTES: u64 = 4 << 20;
const MAX_INFLATED_TOTAL: u64 = 32 << 20;
const MAX_STREAMS: usize = 2000;
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

/// Scan a PDF's bytes (and its inflated streams, bounded).
pub fn scan(data: &[u8]) -> PdfFacts {
    let mut facts = PdfFacts::default();
    names(data, &mut facts);
    let mut inflated_total = 0u64;
    for (n, at) in memmem::find_iter(data, b"stream").enumerate() {
        if n >= MAX_STREAMS || inflated_total >= MAX_INFLATED_TOTAL {
            break;
        }
        if at >= 3 && &data[at - 3..at] == b"end" {
            continue;
        }
        let mut start = at + 6;
        if data.get(start) == Some(&b'\r') {
            start += 1;
        }
        if data.get(start) == Some(&b'\n') {
            start += 1;
        }
        let Some(body) = data.get(start..) else { break };
        if body.first().is_none_or(|b| b & 0x0f != 8) {
            continue; // not a zlib header (FlateDecode streams start with one)
        }
        let budget = MAX_STREAM_BYTES.min(MAX_INFLATED_TOTAL - inflated_total);
        let mut out = Vec::new();
        let _ = ZlibDecoder::new(body).take(budget).read_to_end(&mut out);
        inflated_total += out.len() as u64;
        names(&out, &mut facts);
    }
    facts
}

/// Every `/Name` token in `d`, decoded, checked against the risky set.
fn names(d: &[u8], facts: &mut PdfFacts) {
    for at in memchr::memchr_iter(b'/', d) {
        let raw: &[u8] = &d[at + 1..];
        let len = raw
            .iter()
            .take(MAX_NAME * 3)
            .position(|&b| is_delimiter(b))
            .unwrap_or(raw.len().min(MAX_NAME * 3));
        let raw = &raw[..len];
        if raw.is_empty() || raw.len() > MAX_NAME * 3 {
            continue;
        }
        let escaped = raw.contains(&b'#');
        let name = if escaped { Cow::Owned(decode(raw)) } else { Cow::Borrowed(raw) };
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
                true
            }
            _ => false,
        };
        if hit && escaped {
            facts.obfuscated = true;
        }
    }
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
}
