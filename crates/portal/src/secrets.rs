//! Secrets made and checked here: passwords (Argon2id), API tokens and session ids (random, kept as
//! SHA-256), constant-time comparison. ring supplies the randomness and the digests.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use ring::rand::SecureRandom;

/// The prefix of every API token, so a leaked one is easy to recognise (and to scan for).
pub const TOKEN_PREFIX: &str = "pcl_";
/// Longest password accepted (Argon2 takes any length; this bounds the work per attempt).
pub const MAX_PASSWORD: usize = 1024;
/// Shortest password a person may set.
pub const MIN_PASSWORD: usize = 12;

/// A hash of a random password, verified instead when an account is unknown, disabled or has no
/// password, so those answers take as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

/// `N` random bytes from the system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut out).expect("the system random generator works");
    out
}

/// 32 random bytes, base64url without padding (43 characters): session ids, CSRF tokens.
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// SHA-256 of `data`, lower-case hex: how tokens and session ids are kept.
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality that takes the same time wherever the first difference is.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new API token: the secret to show once, and the hash to keep.
pub fn new_api_token() -> (String, String) {
    let secret = format!("{TOKEN_PREFIX}{}", random_token());
    let hash = sha256_hex(secret.as_bytes());
    (secret, hash)
}

/// A generated password: 20 characters from an alphabet without look-alikes (about 110 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    random_bytes::<40>()
        .iter()
        .filter(|b| usize::from(**b) < 256 - 256 % ALPHABET.len())
        .take(20)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Why a password cannot be set.
pub fn password_problem(password: &str) -> Option<&'static str> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        Some("the password must have at least 12 characters")
    } else if password.len() > MAX_PASSWORD {
        Some("the password is too long")
    } else if password.chars().any(char::is_control) {
        Some("the password must not contain control characters")
    } else {
        None
    }
}

/// The Argon2id PHC string of `password` (default parameters, 16 random bytes of salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = random_bytes::<16>();
    argon2::Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// Whether `password` matches `phc`. An empty or unparseable hash never matches, but costs the same.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let password = &password.as_bytes()[..password.len().min(MAX_PASSWORD)];
    let usable = !phc.is_empty();
    let target = if usable { phc } else { dummy_hash() };
    let ok = argon2::Argon2::default().verify_password(password, target).is_ok();
    ok && usable
}

/// Spend the time of one verification (for an unknown account name).
pub fn verify_nothing(password: &str) {
    let _ = verify_password(password, "");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("", ""));
        assert!(!verify_password("x", "not a hash"));
        assert_ne!(h, hash_password("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn tokens_and_generated_passwords() {
        let (secret, hash) = new_api_token();
        assert!(secret.starts_with(TOKEN_PREFIX) && secret.len() == 47);
        assert_eq!(hash, sha256_hex(secret.as_bytes()));
        assert_ne!(random_token(), random_token());
        let p = generate_password();
        assert_eq!(p.len(), 20);
        assert!(password_problem(&p).is_none());
        assert!(password_problem("short").is_some());
        assert!(password_problem("twelve chars\n").is_some());
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"abc", b"ab"));
    }
}
