//! Time-based one-time passwords (RFC 6238 over RFC 4226): 30-second steps, six digits, HMAC-SHA1,
//! secrets written in base32 (RFC 4648, as authenticator apps expect). One step either side of now is
//! accepted for clock drift.

use crate::secrets::{ct_eq, random_bytes};
use ring::hmac;

const STEP: u64 = 30;
const DIGITS: u32 = 6;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new secret of 20 random bytes, base32 (32 characters).
pub fn generate_secret() -> String {
    encode_base32(&random_bytes::<20>())
}

/// Whether `code` is the one for `secret` at `unix_time` (or one step before or after).
pub fn verify(secret: &str, code: &str, unix_time: u64) -> bool {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Some(key) = decode_base32(secret) else { return false };
    let step = unix_time / STEP;
    let mut ok = false;
    for counter in [step.saturating_sub(1), step, step + 1] {
        let expected = format!("{:06}", hotp(&key, counter));
        ok |= ct_eq(expected.as_bytes(), code.as_bytes());
    }
    ok
}

/// The `otpauth://` URI an authenticator app takes for `secret` (shown as text; no QR code is drawn).
pub fn uri(issuer: &str, account: &str, secret: &str) -> String {
    let clean =
        |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric() || "._-@".contains(*c)).collect::<String>();
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&digits=6&period=30",
        clean(issuer),
        clean(account),
        clean(issuer)
    )
}

/// RFC 4226: the dynamically truncated HMAC-SHA1 of the counter, modulo 10^6.
fn hotp(key: &[u8], counter: u64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin =
        u32::from_be_bytes([mac[offset], mac[offset + 1], mac[offset + 2], mac[offset + 3]]) & 0x7fff_ffff;
    bin % 10u32.pow(DIGITS)
}

fn encode_base32(data: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(BASE32[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Base32 without padding, case and spaces ignored; `None` if any other character appears.
fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !matches!(c, b' ' | b'=')) {
        let v = BASE32.iter().position(|&x| x == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
        buffer &= (1 << bits) - 1;
    }
    (!out.is_empty() && out.len() <= 64).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, truncated to six digits.
    #[test]
    fn rfc6238_vectors() {
        let secret = encode_base32(b"12345678901234567890");
        for (time, code) in [
            (59u64, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert!(verify(&secret, code, time), "{time}");
        }
        assert!(verify(&secret, "287082", 59 + 30), "one step of drift");
        assert!(!verify(&secret, "287082", 59 + 90));
        assert!(!verify(&secret, "28708", 59));
        assert!(!verify(&secret, "28708a", 59));
        assert!(!verify("not base32!", "287082", 59));
    }

    #[test]
    fn base32_round_trips() {
        let s = generate_secret();
        assert_eq!(s.len(), 32);
        assert_eq!(decode_base32(&s).unwrap().len(), 20);
        assert_eq!(encode_base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(decode_base32("mzxw 6ytb oi").unwrap(), b"foobar");
        assert!(uri("Portcullis", "admin", &s).starts_with("otpauth://totp/Portcullis:admin?secret="));
    }
}
