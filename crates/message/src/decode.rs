//! Content-Transfer-Encoding decoding: lenient (mail clients show what they can), but a defect is noted.

use crate::view::Defect;

/// Decode a part body. Returns the bytes and the defect, if the encoding was broken or unknown.
pub(crate) fn body(bytes: &[u8], transfer_encoding: &str) -> (Vec<u8>, Option<Defect>) {
    match transfer_encoding {
        "base64" => base64(bytes),
        "quoted-printable" => match mail_parser::decoders::quoted_printable::quoted_printable_decode(bytes) {
            Some(v) => (v, None),
            None => (bytes.to_vec(), Some(Defect::BadTransferEncoding)),
        },
        "" | "7bit" | "8bit" | "binary" => (bytes.to_vec(), None),
        _ => (bytes.to_vec(), Some(Defect::UnknownTransferEncoding)),
    }
}

/// Base64 that skips line breaks and stops at padding; any other byte outside the alphabet is
/// skipped and reported, as mail clients skip it too.
fn base64(bytes: &[u8]) -> (Vec<u8>, Option<Defect>) {
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 3);
    let (mut acc, mut n, mut bad, mut padded) = (0u32, 0u8, false, false);
    for &b in bytes {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padded = true;
                continue;
            }
            b'\r' | b'\n' | b' ' | b'\t' => continue,
            _ => {
                bad = true;
                continue;
            }
        };
        if padded {
            // Data after padding: a second view of the content that some decoders show.
            bad = true;
        }
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            (acc, n) = (0, 0);
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        1 => bad = true,
        _ => {}
    }
    (out, bad.then_some(Defect::BadTransferEncoding))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lenient() {
        assert_eq!(body(b"SGVs\r\nbG8=\r\n", "base64"), (b"Hello".to_vec(), None));
        let (v, d) = body(b"SGV*sbG8=", "base64");
        assert_eq!((v.as_slice(), d), (&b"Hello"[..], Some(Defect::BadTransferEncoding)));
    }

    #[test]
    fn quoted_printable_and_unknown() {
        assert_eq!(body(b"caf=C3=A9=\r\n!", "quoted-printable").0, "café!".as_bytes());
        assert_eq!(body(b"x", "x-uue").1, Some(Defect::UnknownTransferEncoding));
    }
}
