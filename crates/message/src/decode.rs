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

/// What a byte means to the base64 decoder: its 6-bit value (below 64), or one of these.
const SKIP: u8 = 0xFD; // line breaks and blanks between groups
const PAD: u8 = 0xFE; // `=`
const INVALID: u8 = 0xFF; // anything else: skipped, and reported

const BASE64_TABLE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t[b'=' as usize] = PAD;
    t[b'\r' as usize] = SKIP;
    t[b'\n' as usize] = SKIP;
    t[b' ' as usize] = SKIP;
    t[b'\t' as usize] = SKIP;
    t
};

/// Base64 that skips line breaks and stops at padding; any other byte outside the alphabet is
/// skipped and reported, as mail clients skip it too. Runs of alphabet bytes (the bulk of every line)
/// are decoded eight or four at a time; the byte-at-a-time path handles line ends, padding and defects.
fn base64(bytes: &[u8]) -> (Vec<u8>, Option<Defect>) {
    // Written in place (never more than three bytes per four read, plus a tail), then cut to length.
    let mut out = vec![0u8; bytes.len() / 4 * 3 + 3];
    let mut w = 0;
    let (mut acc, mut n, mut bad, mut padded) = (0u32, 0u8, false, false);
    let mut i = 0;
    while i < bytes.len() {
        if n == 0 && !padded {
            // Eight alphabet bytes (six decoded) per step while they last, then one group of four.
            while let Some(g) = bytes.get(i..i + 8) {
                let t = |k: usize| u64::from(BASE64_TABLE[usize::from(g[k])]);
                let (a, b, c, d, e, f, h, j) = (t(0), t(1), t(2), t(3), t(4), t(5), t(6), t(7));
                if (a | b | c | d | e | f | h | j) >= 64 {
                    break;
                }
                let v = a << 42 | b << 36 | c << 30 | d << 24 | e << 18 | f << 12 | h << 6 | j;
                out[w..w + 6].copy_from_slice(&v.to_be_bytes()[2..]);
                w += 6;
                i += 8;
            }
            if let Some(g) = bytes.get(i..i + 4) {
                let t = |k: usize| u32::from(BASE64_TABLE[usize::from(g[k])]);
                let (a, b, c, d) = (t(0), t(1), t(2), t(3));
                if (a | b | c | d) < 64 {
                    let v = a << 18 | b << 12 | c << 6 | d;
                    out[w..w + 3].copy_from_slice(&v.to_be_bytes()[1..]);
                    w += 3;
                    i += 4;
                    continue;
                }
            }
            if i == bytes.len() {
                break;
            }
            // Not a whole group of alphabet bytes here: the next byte goes the slow way.
        }
        let v = BASE64_TABLE[usize::from(bytes[i])];
        i += 1;
        match v {
            SKIP => continue,
            PAD => {
                padded = true;
                continue;
            }
            INVALID => {
                bad = true;
                continue;
            }
            _ => {}
        }
        if padded {
            // Data after padding: a second view of the content that some decoders show.
            bad = true;
        }
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n == 4 {
            out[w..w + 3].copy_from_slice(&acc.to_be_bytes()[1..]);
            w += 3;
            (acc, n) = (0, 0);
        }
    }
    let tail: &[u8] = match n {
        2 => &[(acc >> 4) as u8],
        3 => &[(acc >> 10) as u8, (acc >> 2) as u8],
        1 => {
            bad = true;
            &[]
        }
        _ => &[],
    };
    out[w..w + tail.len()].copy_from_slice(tail);
    out.truncate(w + tail.len());
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

    /// The decoder as the RFC describes it, one byte at a time: the oracle for the grouped fast path.
    fn base64_oracle(bytes: &[u8]) -> (Vec<u8>, bool) {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let (mut bits, mut out, mut bad, mut padded) = (Vec::new(), Vec::new(), false, false);
        for &b in bytes {
            if let Some(v) = alphabet.iter().position(|&a| a == b) {
                bad |= padded;
                bits.push(v as u32);
            } else if b == b'=' {
                padded = true;
            } else if !matches!(b, b'\r' | b'\n' | b' ' | b'\t') {
                bad = true;
            }
        }
        for group in bits.chunks(4) {
            let v = group.iter().fold(0u32, |acc, &x| acc << 6 | x) << (6 * (4 - group.len()));
            let keep = match group.len() {
                4 => 3,
                3 => 2,
                2 => 1,
                _ => {
                    bad = true;
                    0
                }
            };
            out.extend_from_slice(&v.to_be_bytes()[1..1 + keep]);
        }
        (out, bad)
    }

    proptest::proptest! {
        #[test]
        fn base64_matches_the_oracle(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
                                     noise in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..6)) {
            use base64::Engine as _;
            let mut text = base64::engine::general_purpose::STANDARD.encode(&data).into_bytes();
            for chunk_end in (76..text.len()).step_by(78).collect::<Vec<_>>() {
                text.splice(chunk_end..chunk_end, *b"\r\n");
            }
            for (at, b) in noise {
                let at = at % (text.len() + 1);
                text.insert(at, b);
            }
            let (got, defect) = body(&text, "base64");
            let (want, bad) = base64_oracle(&text);
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(defect.is_some(), bad);
        }
    }

    #[test]
    fn quoted_printable_and_unknown() {
        assert_eq!(body(b"caf=C3=A9=\r\n!", "quoted-printable").0, "café!".as_bytes());
        assert_eq!(body(b"x", "x-uue").1, Some(Defect::UnknownTransferEncoding));
    }
}
