//! Message fingerprints: what makes learning idempotent.
//!
//! The fingerprint is a BLAKE3 hash of the message as its sender wrote it: the header fields other
//! than the trace and verdict fields relays and filters add (`Received:`, `Return-Path:`,
//! `Delivered-To:`, `Authentication-Results:`, `X-Spam-*`, ...), then the body, with line ends
//! normalised. So the copy in quarantine, the copy a user forwards back as a file and the copy in
//! a training folder fingerprint the same, while any change an author could make does not.

/// Header fields added in transit or by filters (lower case; `x-spam` and friends by prefix).
const TRANSIT: &[&str] = &[
    "received",
    "return-path",
    "delivered-to",
    "x-original-to",
    "authentication-results",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
    "received-spf",
];
const TRANSIT_PREFIX: &[&str] = &["x-spam", "x-portcullis", "x-virus", "x-bogosity", "x-rspamd"];

/// The fingerprint of a raw message.
pub fn fingerprint(raw: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    let mut in_header = true;
    let mut skipping = false;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if in_header {
            if text.is_empty() {
                in_header = false;
            } else if matches!(text[0], b' ' | b'\t') {
                if skipping {
                    continue;
                }
            } else {
                skipping = is_transit(text);
                if skipping {
                    continue;
                }
            }
        }
        hasher.update(text);
        hasher.update(b"\n");
    }
    *hasher.finalize().as_bytes()
}

fn is_transit(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else { return false };
    let name = String::from_utf8_lossy(&line[..colon]).trim().to_ascii_lowercase();
    TRANSIT.contains(&name.as_str()) || TRANSIT_PREFIX.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn transit_fields_and_line_ends_do_not_change_the_fingerprint() {
        let original = b"From: a@example.com\nSubject: hi\n\nbody\n";
        let relayed = b"Received: from x\r\n\tby y\r\nX-Spam-Status: Yes\r\nFrom: a@example.com\r\n\
                        Subject: hi\r\nReturn-Path: <a@example.com>\r\n\r\nbody\r\n";
        assert_eq!(fingerprint(original), fingerprint(relayed));
        assert_ne!(fingerprint(original), fingerprint(b"From: a@example.com\nSubject: hi!\n\nbody\n"));
        assert_ne!(fingerprint(original), fingerprint(b"From: a@example.com\nSubject: hi\n\nbody 2\n"));
        // A transit-looking line in the body is content.
        assert_ne!(fingerprint(b"Subject: a\n\nReceived: x\n"), fingerprint(b"Subject: a\n\n"));
    }
}
