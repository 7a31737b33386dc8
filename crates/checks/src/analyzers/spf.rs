//! SPF (RFC 7208): may the client's address send for the envelope sender's domain? For the null sender
//! the HELO name is checked instead (RFC 7208 section 2.4). One of `SPF_PASS`, `SPF_FAIL`,
//! `SPF_SOFTFAIL`, `SPF_NEUTRAL`, `SPF_NONE`, `SPF_TEMPERROR`, `SPF_PERMERROR`. Run by the `auth`
//! driver, which hands the outcome to DMARC; not run when the client address is unknown (offline scans).

use crate::Context;
use crate::auth_results::reason;
use crate::dns::Dns;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{SpfOutput, SpfResult};
use std::net::IpAddr;
use verdict::Finding;

/// Which identity was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// The envelope sender (`MAIL FROM`).
    MailFrom(String),
    /// The HELO name (for the null sender).
    Helo(String),
}

impl Identity {
    fn of(ctx: &Context<'_>) -> Identity {
        match ctx.envelope_sender.trim() {
            "" => Identity::Helo(ctx.helo.trim().to_string()),
            s => Identity::MailFrom(s.to_string()),
        }
    }

    /// The domain DMARC aligns SPF with (RFC 7489 section 3.1.2: HELO for the null sender).
    pub(crate) fn domain(&self) -> String {
        let d = match self {
            Identity::MailFrom(s) => s.rsplit_once('@').map_or(s.as_str(), |(_, d)| d),
            Identity::Helo(h) => h,
        };
        d.trim_end_matches('.').to_ascii_lowercase()
    }
}

/// An SPF check's outcome and the identity it was for.
pub(crate) struct Outcome {
    pub(crate) output: SpfOutput,
    pub(crate) identity: Identity,
    pub(crate) ip: IpAddr,
}

/// Check SPF for the session in `ctx`; `None` when there is no client address to check.
pub(crate) async fn check(dns: &Dns, ctx: &Context<'_>) -> Option<Outcome> {
    let ip = ctx.client_ip?;
    let identity = Identity::of(ctx);
    let params = match &identity {
        Identity::MailFrom(sender) => SpfParameters::verify_mail_from(ip, ctx.helo, ctx.hostname, sender),
        Identity::Helo(helo) => SpfParameters::verify_ehlo(ip, helo, ctx.hostname),
    };
    let output = dns.authenticator().verify_spf(dns.params(params)).await;
    Some(Outcome { output, identity, ip })
}

/// What the driver reports when SPF did not finish in time.
pub(crate) fn timed_out(ctx: &Context<'_>) -> Option<Outcome> {
    let ip = ctx.client_ip?;
    let identity = Identity::of(ctx);
    let output = SpfOutput::new(identity.domain()).with_result(SpfResult::TempError);
    Some(Outcome { output, identity, ip })
}

/// The symbol for an outcome.
pub(crate) fn findings(o: &Outcome, out: &mut Vec<Finding>) {
    let (symbol, words) = match o.output.result() {
        SpfResult::Pass => ("SPF_PASS", "is permitted to send for"),
        SpfResult::Fail => ("SPF_FAIL", "is not permitted to send for"),
        SpfResult::SoftFail => ("SPF_SOFTFAIL", "is probably not permitted to send for"),
        SpfResult::Neutral => ("SPF_NEUTRAL", "is neither permitted nor denied by"),
        SpfResult::None => ("SPF_NONE", "is not covered: no SPF record for"),
        SpfResult::TempError => ("SPF_TEMPERROR", "could not be checked (temporary DNS error) for"),
        SpfResult::PermError => ("SPF_PERMERROR", "could not be checked (invalid SPF record) for"),
    };
    let (prop, value) = match &o.identity {
        Identity::MailFrom(s) => ("smtp.mailfrom", s.as_str()),
        Identity::Helo(h) => ("smtp.helo", h.as_str()),
    };
    let comment = format!("{} {words} {}", o.ip, o.identity.domain());
    out.push(Finding::new(symbol, reason(&[(prop, value)], &comment)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_sender_checks_the_helo_name() {
        let ctx = Context { helo: "mail.example.org", envelope_sender: "", ..Default::default() };
        assert_eq!(Identity::of(&ctx), Identity::Helo("mail.example.org".into()));
        let ctx = Context { helo: "h.example", envelope_sender: "a@Example.ORG", ..Default::default() };
        assert_eq!(Identity::of(&ctx).domain(), "example.org");
    }
}
