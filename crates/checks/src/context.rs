//! What the SMTP session knew about a message: the envelope and the connection.

use std::net::IpAddr;

/// The envelope and connection facts a check may use besides the message itself.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// The client's address (`None` for offline scans).
    pub client_ip: Option<IpAddr>,
    /// The name the client gave in HELO/EHLO.
    pub helo: &'a str,
    /// The envelope sender (`MAIL FROM`), empty for the null sender `<>`.
    pub envelope_sender: &'a str,
    /// The envelope recipients (`RCPT TO`), canonical `local@domain`.
    pub recipients: &'a [String],
    /// The session used TLS.
    pub tls: bool,
    /// The client asked for SMTPUTF8 (8-bit header fields are then allowed).
    pub smtputf8: bool,
    /// Domains this gateway accepts mail for (lower-case).
    pub accepted_domains: &'a [String],
    /// This gateway's host name, as it writes it in `Received:`.
    pub hostname: &'a str,
    /// How many `Received:` fields at the top of the message this gateway added itself (0 when the
    /// message is judged before its own `Received:` is prepended).
    pub own_received: usize,
    /// The raw message, exactly as received (signatures are verified over these bytes). The engine
    /// sets it for the analyzers; callers leave it empty.
    pub raw: &'a [u8],
}

impl Context<'_> {
    /// Whether `domain` is one of ours (or a subdomain of one).
    pub fn is_our_domain(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        self.accepted_domains.iter().any(|a| d == *a || d.ends_with(&format!(".{a}")))
    }

    /// The domain of the envelope sender, lower-case (`None` for the null sender).
    pub fn sender_domain(&self) -> Option<String> {
        domain_of(self.envelope_sender)
    }
}

/// The domain of an address, lower-case, without a trailing dot.
pub(crate) fn domain_of(address: &str) -> Option<String> {
    let (_, d) = address.trim().trim_matches(['<', '>']).rsplit_once('@')?;
    let d = d.trim_end_matches('.');
    (!d.is_empty()).then(|| d.to_ascii_lowercase())
}

/// Whether two domains belong together: equal, one a subdomain of the other, or sharing their last
/// two labels. That last rule over-matches under public suffixes like `co.uk` (a missed mismatch, never
/// a false one); DMARC alignment with the public suffix list comes with the authentication checks.
pub(crate) fn related_domains(a: &str, b: &str) -> bool {
    let tail = |d: &str| {
        let labels: Vec<&str> = d.rsplitn(3, '.').collect();
        labels.iter().take(2).rev().copied().collect::<Vec<_>>().join(".")
    };
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}")) || tail(a) == tail(b)
}
