//! The HTML bodies of a message, decoded (base64 and quoted-printable), for checks that need the
//! markup itself (forms), which the MIME view renders away. Multiparts are walked with an explicit
//! stack under a part and depth bound; enclosed messages are not entered.

use crate::strip::{header_block, split};
use message::params;
use std::ops::Range;

/// Deepest multipart nesting and most parts walked.
const MAX_DEPTH: usize = 20;
const MAX_PARTS: usize = 500;

/// The decoded `text/html` parts of `raw`, at most `max_bytes` in total.
pub fn html_parts(raw: &[u8], max_bytes: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut total = 0;
    let mut stack: Vec<(Range<usize>, usize)> = vec![(0..raw.len(), 0)];
    let mut seen = 0;
    while let Some((range, depth)) = stack.pop() {
        seen += 1;
        if seen > MAX_PARTS || total >= max_bytes {
            break;
        }
        let (fields, body) = header_block(raw, range.clone());
        let field =
            |name: &str| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        let ctype = params::parse(field("content-type").unwrap_or("text/plain"));
        if ctype.value.starts_with("multipart/") && depth < MAX_DEPTH {
            if let Some(b) = ctype.get("boundary").filter(|b| !b.is_empty()) {
                let (parts, _) = split(raw, body..range.end, b.as_bytes());
                stack.extend(parts.into_iter().rev().map(|p| (p, depth + 1)));
            }
            continue;
        }
        if ctype.value != "text/html" {
            continue;
        }
        let data = &raw[body.min(range.end)..range.end];
        let data = &data[..data.len().min(max_bytes - total)];
        let decoded =
            match field("content-transfer-encoding").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
                Some("base64") => base64(data),
                Some("quoted-printable") => quoted_printable(data),
                _ => data.to_vec(),
            };
        total += decoded.len();
        out.push(String::from_utf8_lossy(&decoded).into_owned());
    }
    out
}

/// Lenient base64: characters outside the alphabet are skipped.
fn base64(d: &[u8]) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(d.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in d.iter().filter_map(|&c| value(c)) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Quoted-printable: `=XX` decoded, soft line breaks removed, anything else kept.
fn quoted_printable(d: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(d.len());
    let mut i = 0;
    while i < d.len() {
        if d[i] == b'=' {
            if d[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if d[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            if let (Some(h), Some(l)) =
                (d.get(i + 1).and_then(|&b| hex(b)), d.get(i + 2).and_then(|&b| hex(b)))
            {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(d[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_bodies_decoded() {
        let raw = "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGZvcm0gYWN0aW9uPSJodHRwczovL2V2aWwudGVzdC9wIj4=\r\n--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<form action=3D\"https://qp.test/=\r\nx\">\r\n--b--\r\n";
        let parts = html_parts(raw.as_bytes(), 1 << 20);
        assert_eq!(parts, ["<form action=\"https://evil.test/p\">", "<form action=\"https://qp.test/x\">"]);
        assert!(html_parts(b"Subject: x\r\n\r\nplain", 100).is_empty());
    }
}
