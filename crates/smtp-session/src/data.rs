//! Message content framing: the DATA decoder (dot-unstuffing, end-of-data detection) and the BDAT
//! line-ending check.
//!
//! Only `<CRLF>.<CRLF>` ends DATA, and a bare CR or bare LF anywhere is an error, so no sequence of bytes
//! can be read as "end of message" here and as something else by the next hop (SMTP smuggling,
//! CVE-2023-51764/5/6). The same line-ending rule holds for BDAT content, because it is relayed onward
//! with DATA.

use memchr::memchr2;

/// What [`DataDecoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum DataStatus {
    /// Everything usable was consumed; more input is needed.
    NeedMore,
    /// `<CRLF>.<CRLF>` was found; `consumed` counts through its last byte.
    End,
    /// A bare CR or LF was found; the message must be refused.
    BadLineEnding,
}

/// Decodes DATA content incrementally. The leading CRLF of the terminator belongs to the message.
#[derive(Debug)]
pub struct DataDecoder {
    at_line_start: bool,
}

impl Default for DataDecoder {
    fn default() -> Self {
        DataDecoder { at_line_start: true }
    }
}

impl DataDecoder {
    /// Decode from `input`, appending message bytes to `out`. Returns the status and how many input bytes
    /// were consumed; unconsumed bytes (a trailing CR, or a dot line not yet complete) must be offered again
    /// with more input after them.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> (DataStatus, usize) {
        let mut pos = 0;
        loop {
            if self.at_line_start && input.get(pos) == Some(&b'.') {
                match (input.get(pos + 1), input.get(pos + 2)) {
                    (Some(b'\r'), Some(b'\n')) => return (DataStatus::End, pos + 3),
                    (Some(b'\r'), Some(_)) | (Some(b'\n'), _) => return (DataStatus::BadLineEnding, pos),
                    (None, _) | (Some(b'\r'), None) => return (DataStatus::NeedMore, pos),
                    // A leading dot is transparency stuffing: drop it and keep the rest of the line.
                    (Some(_), _) => pos += 1,
                }
            }
            let rest = &input[pos..];
            if rest.is_empty() {
                return (DataStatus::NeedMore, pos);
            }
            self.at_line_start = false;
            match memchr2(b'\r', b'\n', rest) {
                None => {
                    out.extend_from_slice(rest);
                    return (DataStatus::NeedMore, input.len());
                }
                Some(i) if rest[i] == b'\n' => return (DataStatus::BadLineEnding, pos + i),
                Some(i) => match rest.get(i + 1) {
                    None => {
                        out.extend_from_slice(&rest[..i]);
                        return (DataStatus::NeedMore, pos + i);
                    }
                    Some(b'\n') => {
                        out.extend_from_slice(&rest[..i + 2]);
                        pos += i + 2;
                        self.at_line_start = true;
                    }
                    Some(_) => return (DataStatus::BadLineEnding, pos + i),
                },
            }
        }
    }
}

/// Checks that BDAT content uses only CRLF line endings, across chunk boundaries.
#[derive(Debug, Default)]
pub struct LineEndingCheck {
    pending_cr: bool,
    bad: bool,
}

impl LineEndingCheck {
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.bad || chunk.is_empty() {
            return;
        }
        if self.pending_cr && chunk[0] != b'\n' {
            self.bad = true;
            return;
        }
        let mut prev_cr = self.pending_cr;
        for &b in chunk {
            match b {
                b'\n' if !prev_cr => {
                    self.bad = true;
                    return;
                }
                _ if prev_cr && b != b'\n' => {
                    self.bad = true;
                    return;
                }
                _ => prev_cr = b == b'\r',
            }
        }
        self.pending_cr = prev_cr;
    }

    /// Whether the content so far is clean; `finished` says no more bytes follow.
    pub fn is_clean(&self, finished: bool) -> bool {
        !(self.bad || finished && self.pending_cr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> (DataStatus, Vec<u8>, usize) {
        let mut d = DataDecoder::default();
        let mut out = Vec::new();
        let (s, n) = d.decode(input, &mut out);
        (s, out, n)
    }

    #[test]
    fn unstuffs_and_ends() {
        let (s, out, n) = decode_all(b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n");
        assert_eq!(s, DataStatus::End);
        assert_eq!(out, b"Subject: x\r\n\r\n.dot\r\nbody\r\n");
        assert_eq!(n, b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\n".len());
    }

    #[test]
    fn empty_message() {
        let (s, out, n) = decode_all(b".\r\n");
        assert_eq!((s, out.len(), n), (DataStatus::End, 0, 3));
    }

    #[test]
    fn smuggling_variants_are_refused() {
        for payload in [
            &b"a\n.\nMAIL FROM:<x@y>\r\n"[..],
            b"a\r\n.\nMAIL",
            b"a\n.\r\nMAIL",
            b"a\r.\r\nMAIL",
            b"a\r\n.\rMAIL",
            b"a\r.\rMAIL",
            b"a\nb\r\n.\r\n",
        ] {
            let (s, _, _) = decode_all(payload);
            assert_eq!(s, DataStatus::BadLineEnding, "{payload:?}");
        }
        // A NUL before the dot does not make it a terminator: the line is content.
        let (s, out, _) = decode_all(b"a\r\n\x00.\r\nQUIT\r\n");
        assert_eq!(s, DataStatus::NeedMore);
        assert_eq!(out, b"a\r\n\x00.\r\nQUIT\r\n");
    }

    #[test]
    fn split_anywhere_gives_the_same_result() {
        let input = b"l1\r\n..l2\r\n.x\r\n\r\n.\r\n";
        let expected = decode_all(input);
        for cut in 0..input.len() {
            let mut d = DataDecoder::default();
            let mut out = Vec::new();
            let mut buf = input[..cut].to_vec();
            let (s, n) = d.decode(&buf, &mut out);
            assert_eq!(s, DataStatus::NeedMore, "cut {cut}");
            buf.drain(..n);
            buf.extend_from_slice(&input[cut..]);
            let (s, _) = d.decode(&buf, &mut out);
            assert_eq!((s, &out), (DataStatus::End, &expected.1), "cut {cut}");
        }
    }

    #[test]
    fn bdat_line_endings() {
        let mut c = LineEndingCheck::default();
        c.feed(b"a\r");
        c.feed(b"\nb\r\n");
        assert!(c.is_clean(true));
        let mut c = LineEndingCheck::default();
        c.feed(b"a\r");
        assert!(!c.is_clean(true));
        let mut c = LineEndingCheck::default();
        c.feed(b"a\nb");
        assert!(!c.is_clean(false));
        let mut c = LineEndingCheck::default();
        c.feed(b"a\r");
        c.feed(b"b");
        assert!(!c.is_clean(false));
    }
}
