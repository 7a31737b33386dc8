//! DKIM (RFC 6376): every signature in the message, relaxed or simple canonicalisation. One finding per
//! signature: `DKIM_ALLOW` (verified), `DKIM_REJECT` (bad signature or body hash, expired),
//! `DKIM_PERMFAIL` (no usable key, malformed signature), `DKIM_TEMPFAIL` (DNS); `DKIM_NA` when the
//! message has no signature. A signature with a body length tag (`l=`) also gets `DKIM_BODY_LENGTH`, and
//! `DKIM_UNSIGNED_CONTENT` when the body goes on past the signed length: content added after signing
//! would still verify. Run by the `auth` driver, which hands the results to DMARC.

use crate::auth_results::reason;
use crate::dns::Dns;
use mail_auth::common::headers::{Writable, Writer};
use mail_auth::dkim::{Canonicalization, DkimError, Signature};
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult, Error};
use verdict::Finding;

/// Verify every DKIM signature of `msg`.
pub(crate) async fn check<'x>(dns: &'x Dns, msg: &'x AuthenticatedMessage<'x>) -> Vec<DkimOutput<'x>> {
    dns.authenticator().verify_dkim(dns.params(msg)).await
}

/// The findings for the verified signatures of `msg`.
pub(crate) fn findings(outputs: &[DkimOutput<'_>], msg: &AuthenticatedMessage<'_>, out: &mut Vec<Finding>) {
    if outputs.is_empty() {
        out.push(Finding::new("DKIM_NA", reason(&[], "no DKIM signature")));
        return;
    }
    for o in outputs {
        let (symbol, comment) = classify(o.result());
        let props = o.signature().map(signature_props).unwrap_or_default();
        let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let detail =
            o.signature().map(|s| format!(", c={}/{}", canon(s.ch), canon(s.cb))).unwrap_or_default();
        out.push(Finding::new(symbol, reason(&props, &format!("{comment}{detail}"))));
        if let Some(s) = o.signature().filter(|s| s.l > 0) {
            body_length(s, msg, out);
        }
    }
}

/// The symbol and words for one signature's result.
fn classify(r: &DkimResult) -> (&'static str, String) {
    match r {
        DkimResult::Pass => ("DKIM_ALLOW", "signature verified".into()),
        DkimResult::Fail(e) => ("DKIM_REJECT", format!("signature does not verify: {e}")),
        DkimResult::Neutral(
            e @ Error::Dkim(DkimError::FailedBodyHashMatch | DkimError::SignatureExpired),
        ) => ("DKIM_REJECT", format!("signature does not verify: {e}")),
        DkimResult::Neutral(e) | DkimResult::PermError(e) => {
            ("DKIM_PERMFAIL", format!("unusable signature: {e}"))
        }
        DkimResult::TempError(e) => ("DKIM_TEMPFAIL", format!("could not be checked: {e}")),
        DkimResult::None => ("DKIM_NA", "no DKIM signature".into()),
    }
}

/// `header.d`, `header.s` and `header.b` (the first 8 characters of the signature, to tell several
/// apart, RFC 6008).
fn signature_props(s: &Signature) -> Vec<(&'static str, String)> {
    vec![("header.d", s.d.clone()), ("header.s", s.s.clone()), ("header.b", b64_prefix(&s.b))]
}

fn canon(c: Canonicalization) -> &'static str {
    match c {
        Canonicalization::Relaxed => "relaxed",
        Canonicalization::Simple => "simple",
    }
}

/// `DKIM_BODY_LENGTH` for a signature with `l=`, and `DKIM_UNSIGNED_CONTENT` when the canonical body
/// is longer than what was signed.
fn body_length(s: &Signature, msg: &AuthenticatedMessage<'_>, out: &mut Vec<Finding>) {
    let body = msg.raw_message.get(msg.body_offset as usize..).unwrap_or_default();
    let mut counted = Counter(0);
    s.cb.canonical_body(body, 0).write(&mut counted);
    let d = &s.d;
    out.push(Finding::new(
        "DKIM_BODY_LENGTH",
        format!("signature of {d} covers only the first {} body bytes (l=)", s.l),
    ));
    if counted.0 > s.l {
        let extra = counted.0 - s.l;
        out.push(Finding::new(
            "DKIM_UNSIGNED_CONTENT",
            format!("{extra} body bytes after the {} signed by {d} are not covered by its signature", s.l),
        ));
    }
}

/// Counts canonical body bytes.
struct Counter(u64);

impl Writer for Counter {
    fn write(&mut self, buf: &[u8]) {
        self.0 += buf.len() as u64;
    }
}

/// The first 8 base64 characters of `b` (its first 6 bytes).
fn b64_prefix(b: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let Some(six) = b.get(..6) else { return String::new() };
    six.chunks(3)
        .flat_map(|c| {
            let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
            [18, 12, 6, 0].map(|shift| char::from(ALPHABET[((n >> shift) & 63) as usize]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_prefix() {
        assert_eq!(b64_prefix(b"foobar and more"), "Zm9vYmFy");
        assert_eq!(b64_prefix(b"short"), "");
    }

    #[test]
    fn results_map_to_symbols() {
        assert_eq!(classify(&DkimResult::Pass).0, "DKIM_ALLOW");
        let bh = Error::Dkim(DkimError::FailedBodyHashMatch);
        assert_eq!(classify(&DkimResult::Neutral(bh)).0, "DKIM_REJECT");
        assert_eq!(classify(&DkimResult::Neutral(Error::ParseError)).0, "DKIM_PERMFAIL");
        assert_eq!(classify(&DkimResult::TempError(Error::ParseError)).0, "DKIM_TEMPFAIL");
    }
}
