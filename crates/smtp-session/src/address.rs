//! Envelope addresses: parsing `<...>` paths strictly and canonicalising them.
//!
//! The canonical form is what every later stage uses (relay policy, routing, spool, mailbox names), so
//! the address that policy checked is the address mail is routed to. Anything that could make two
//! programs disagree about where a message goes (source routes, `%` and `!` hacks, a second `@`,
//! quoted local parts that are not plain atoms) is refused rather than interpreted.

use std::fmt;

/// Longest local part (RFC 5321 4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain (RFC 5321 4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest path including the angle brackets (RFC 5321 4.5.3.1.3).
pub const MAX_PATH: usize = 256;

/// A canonical mailbox: local part as sent (case preserved), domain lower-case without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: String,
}

impl Address {
    pub fn local(&self) -> &str {
        &self.local
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// Whether either part needs SMTPUTF8.
    pub fn is_utf8(&self) -> bool {
        !self.local.is_ascii() || !self.domain.is_ascii()
    }
    /// Parse a bare `local@domain` (as stored in the spool), with the same rules as a path.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        parse_mailbox(s.as_bytes(), true)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// Not an address at all.
    Syntax(&'static str),
    /// Over one of the RFC 5321 length limits.
    TooLong(&'static str),
    /// An address that tries to route through this gateway to somewhere else.
    RelayTrick(&'static str),
    /// A character we never accept in a local part (shell and expansion metacharacters).
    Forbidden(char),
    /// Non-ASCII without SMTPUTF8.
    NeedsUtf8,
}

impl AddressError {
    pub fn describe(&self) -> String {
        match self {
            AddressError::Syntax(w) | AddressError::TooLong(w) | AddressError::RelayTrick(w) => w.to_string(),
            AddressError::Forbidden(c) => format!("character {c:?} not allowed in a local part"),
            AddressError::NeedsUtf8 => "non-ASCII address without SMTPUTF8".into(),
        }
    }
}

/// Characters RFC 5322 allows in an atom that Portcullis still refuses in a local part: they have no
/// business in a mailbox name and are how shell and expansion injections (OpenSMTPD, Exim) start.
const FORBIDDEN_IN_LOCAL: &[u8] = b"`$|&{};<>()\\\"";

/// Split `<path> params` from the text after `MAIL FROM:` / `RCPT TO:`; returns the path's inside and the rest.
pub fn split_path(arg: &[u8]) -> Option<(&[u8], &[u8])> {
    let arg = trim_start(arg);
    let inner = arg.strip_prefix(b"<")?;
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in inner.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some((&inner[..i], &inner[i + 1..])),
            _ => {}
        }
    }
    None
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| **b == b' ').count();
    &s[n..]
}

/// Parse the inside of a path (without `<>`). `Ok(None)` is the null path `<>`.
pub fn parse_path(inner: &[u8], utf8_allowed: bool) -> Result<Option<Address>, AddressError> {
    if inner.len() + 2 > MAX_PATH {
        return Err(AddressError::TooLong("path longer than 256 octets"));
    }
    if inner.is_empty() {
        return Ok(None);
    }
    // A source route (`@a,@b:user@dom`) is obsolete; RFC 5321 says to ignore it, and the address is what follows.
    let mailbox = if inner.first() == Some(&b'@') {
        let colon = inner.iter().position(|&b| b == b':').ok_or(AddressError::Syntax("bad source route"))?;
        let route = &inner[..colon];
        let route_ok = route.split(|&b| b == b',').all(|hop| {
            hop.strip_prefix(b"@")
                .is_some_and(|d| !d.is_empty() && std::str::from_utf8(d).is_ok_and(valid_domain))
        });
        if !route_ok {
            return Err(AddressError::Syntax("bad source route"));
        }
        &inner[colon + 1..]
    } else {
        inner
    };
    parse_mailbox(mailbox, utf8_allowed).map(Some)
}

fn parse_mailbox(m: &[u8], utf8_allowed: bool) -> Result<Address, AddressError> {
    if m.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(AddressError::Syntax("control character in address"));
    }
    let text = std::str::from_utf8(m).map_err(|_| AddressError::Syntax("address is not valid UTF-8"))?;
    if !text.is_ascii() && !utf8_allowed {
        return Err(AddressError::NeedsUtf8);
    }
    let (local, domain) = if let Some(rest) = text.strip_prefix('"') {
        let (content, after) = unquote(rest)?;
        // A quoted local part is accepted only when it says the same as an unquoted one would.
        if content.contains(['@', '%', '!']) {
            return Err(AddressError::RelayTrick("routing characters in a quoted local part"));
        }
        let domain = after.strip_prefix('@').ok_or(AddressError::Syntax("missing @domain"))?;
        if !valid_dot_atom(&content) {
            return Err(AddressError::Syntax("quoted local part is not a plain mailbox name"));
        }
        (content, domain)
    } else {
        let at = text.rfind('@').ok_or(AddressError::Syntax("missing @domain"))?;
        let (local, domain) = (&text[..at], &text[at + 1..]);
        if local.contains('@') {
            return Err(AddressError::RelayTrick("more than one @ in an address"));
        }
        if local.contains(['%', '!']) {
            return Err(AddressError::RelayTrick("% or ! routing in a local part"));
        }
        (local.to_string(), domain)
    };
    if local.is_empty() {
        return Err(AddressError::Syntax("empty local part"));
    }
    if local.len() > MAX_LOCAL_PART {
        return Err(AddressError::TooLong("local part longer than 64 octets"));
    }
    if let Some(&b) = local.as_bytes().iter().find(|b| FORBIDDEN_IN_LOCAL.contains(b)) {
        return Err(AddressError::Forbidden(b as char));
    }
    if !valid_dot_atom(&local) {
        return Err(AddressError::Syntax("local part is not a valid atom"));
    }
    if domain.len() > MAX_DOMAIN {
        return Err(AddressError::TooLong("domain longer than 255 octets"));
    }
    let domain = canonical_domain(domain).ok_or(AddressError::Syntax("invalid domain"))?;
    Ok(Address { local, domain })
}

/// Content of a quoted string (after the opening quote) and what follows its closing quote.
fn unquote(rest: &str) -> Result<(String, &str), AddressError> {
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next().ok_or(AddressError::Syntax("unterminated quoted string"))?.1),
            '"' => return Ok((out, &rest[i + 1..])),
            _ => out.push(c),
        }
    }
    Err(AddressError::Syntax("unterminated quoted string"))
}

fn valid_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c))
        })
}

/// Lower-case, no trailing dot; `None` if not a domain or address literal.
fn canonical_domain(d: &str) -> Option<String> {
    if d.starts_with('[') {
        return valid_address_literal(d).then(|| d.to_ascii_lowercase());
    }
    let d = d.strip_suffix('.').unwrap_or(d);
    valid_domain(d).then(|| d.to_lowercase())
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= MAX_DOMAIN
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

fn valid_address_literal(d: &str) -> bool {
    let Some(inner) = d.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
        return false;
    };
    match inner.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("ipv6:") => inner[5..].parse::<std::net::Ipv6Addr>().is_ok(),
        _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Result<Option<Address>, AddressError> {
        let (inner, _) = split_path(s.as_bytes()).expect("brackets");
        parse_path(inner, true)
    }

    #[test]
    fn canonical_forms() {
        let a = path("<User.Name+tag@Example.COM.>").unwrap().unwrap();
        assert_eq!(a.to_string(), "User.Name+tag@example.com");
        assert_eq!(path("<\"plain\"@x.test>").unwrap().unwrap().to_string(), "plain@x.test");
        assert_eq!(path("<@relay.test,@b.test:v@ext.test>").unwrap().unwrap().to_string(), "v@ext.test");
        assert_eq!(path("<>").unwrap(), None);
        assert_eq!(path("<o'brien@x.test>").unwrap().unwrap().local(), "o'brien");
        assert_eq!(path("<a@[127.0.0.1]>").unwrap().unwrap().domain(), "[127.0.0.1]");
        assert_eq!(path("<ü@bücher.test>").unwrap().unwrap().domain(), "bücher.test");
    }

    #[test]
    fn relay_tricks_are_refused() {
        for p in [
            "<v%ext.test@our.test>",
            "<ext.test!v@our.test>",
            "<v@ext.test@our.test>",
            "<\"v@ext.test\"@our.test>",
            "<\"v@ext.test\">",
        ] {
            assert!(matches!(path(p), Err(AddressError::RelayTrick(_))), "{p}: {:?}", path(p));
        }
    }

    #[test]
    fn injections_are_refused() {
        for p in [
            "<;touch /tmp/x;>",
            "<`id`@a.test>",
            "<$(id)@a.test>",
            "<${run{/bin/sh -c id}}@local.test>",
            "<a|b@x.test>",
            "<\"a b\"@x.test>",
            "<a..b@x.test>",
            "<.a@x.test>",
            "<a@-x.test>",
            "<a@x_y.test>",
            "<a@>",
            "<@x.test>",
        ] {
            assert!(path(p).is_err(), "{p} accepted as {:?}", path(p));
        }
    }

    #[test]
    fn lengths() {
        let long_local = format!("<{}@x.test>", "a".repeat(65));
        assert!(matches!(path(&long_local), Err(AddressError::TooLong(_))));
        let long_domain = format!("<a@{}.test>", "b".repeat(300));
        assert!(matches!(path(&long_domain), Err(AddressError::TooLong(_))));
    }

    #[test]
    fn utf8_needs_permission() {
        let (inner, _) = split_path("<ü@x.test>".as_bytes()).unwrap();
        assert_eq!(parse_path(inner, false), Err(AddressError::NeedsUtf8));
        assert!(parse_path(b"a@\xff.test", true).is_err());
    }

    #[test]
    fn split_path_handles_quotes_and_params() {
        let (inner, rest) = split_path(b" <\"a>b\"@x.test> SIZE=10").unwrap();
        assert_eq!(inner, b"\"a>b\"@x.test");
        assert_eq!(rest, b" SIZE=10");
        assert!(split_path(b"a@x.test").is_none());
        assert!(split_path(b"<a@x.test").is_none());
    }
}
