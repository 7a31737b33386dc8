//! DMARC: does an SPF or DKIM pass align with the `From:` domain, and what does that domain ask for when
//! neither does? The organisational domain comes from the DNS tree walk (RFC 9989) as mail-auth does
//! it. `DMARC_POLICY_ALLOW` (aligned pass), `DMARC_POLICY_REJECT` / `DMARC_POLICY_QUARANTINE` /
//! `DMARC_POLICY_SOFTFAIL` (failure under `p=reject` / `p=quarantine` / `p=none`, after `sp=`, `np=`
//! and `t=y`), `DMARC_NA` (no single `From:` domain, or no policy), `DMARC_DNSFAIL` (temporary),
//! `DMARC_BAD_POLICY` (permanent error). With `[auth] dmarc_enforce` the engine gives the reject and
//! quarantine symbols forced actions. Run by the `auth` driver after SPF and DKIM.

use crate::auth_results::reason;
use crate::dns::Dns;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{AuthenticatedMessage, DkimOutput, DmarcOutput, DmarcResult, SpfOutput};
use verdict::Finding;

/// The symbols whose presence `[auth] dmarc_enforce` turns into forced actions.
pub const REJECT: &str = "DMARC_POLICY_REJECT";
pub const QUARANTINE: &str = "DMARC_POLICY_QUARANTINE";

/// Evaluate DMARC for `msg` given the SPF outcome (for `mail_from_domain`) and the DKIM results.
pub(crate) async fn check<'x>(
    dns: &'x Dns,
    msg: &'x AuthenticatedMessage<'x>,
    dkim: &'x [DkimOutput<'x>],
    mail_from_domain: &'x str,
    spf: &'x SpfOutput,
) -> DmarcOutput {
    let params = DmarcParameters::new(msg, dkim, mail_from_domain, spf);
    dns.authenticator().verify_dmarc(dns.params(params)).await
}

/// The finding for a DMARC outcome. `incomplete`: SPF or DKIM did not finish, so a failure is only
/// a temporary error.
pub(crate) fn findings(o: &DmarcOutput, incomplete: bool, out: &mut Vec<Finding>) {
    let domain = o.domain();
    let policy = o.policy().to_string();
    let props = [("header.from", domain), ("policy.dmarc", policy.as_str())];
    let why = format!("spf {}, dkim {}", brief(o.spf_result()), brief(o.dkim_result()));
    let (symbol, comment) = match o.result() {
        _ if domain.is_empty() => ("DMARC_NA", "no single From: domain to check".to_string()),
        DmarcResult::None => ("DMARC_NA", format!("no DMARC policy for {domain}")),
        DmarcResult::Pass => ("DMARC_POLICY_ALLOW", format!("aligned pass ({why})")),
        DmarcResult::TempError(e) => ("DMARC_DNSFAIL", format!("could not be checked: {e}")),
        DmarcResult::Fail(_) if incomplete => ("DMARC_DNSFAIL", "SPF or DKIM did not finish in time".into()),
        DmarcResult::PermError(e) => ("DMARC_BAD_POLICY", format!("could not be checked: {e}")),
        DmarcResult::Fail(_) => match o.policy() {
            Policy::Reject => (REJECT, format!("not aligned ({why}) and {domain} asks to reject")),
            Policy::Quarantine => {
                (QUARANTINE, format!("not aligned ({why}) and {domain} asks to quarantine"))
            }
            Policy::None | Policy::Unspecified => {
                ("DMARC_POLICY_SOFTFAIL", format!("not aligned ({why}); {domain} asks for no action"))
            }
        },
    };
    let props: &[(&str, &str)] = if domain.is_empty() { &[] } else { &props };
    out.push(Finding::new(symbol, reason(props, &comment)));
}

fn brief(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "aligned pass",
        DmarcResult::Fail(_) => "pass not aligned",
        DmarcResult::TempError(_) => "temporary error",
        DmarcResult::PermError(_) => "permanent error",
        DmarcResult::None => "no pass",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_from_domain_is_not_applicable() {
        let mut out = Vec::new();
        findings(&DmarcOutput::default(), false, &mut out);
        assert_eq!(out[0].symbol, "DMARC_NA");
        let mut out = Vec::new();
        findings(&DmarcOutput::new("example.org".into()), false, &mut out);
        assert_eq!(out[0].symbol, "DMARC_NA");
        assert!(
            out[0].reason.starts_with("header.from=example.org policy.dmarc=none: "),
            "{}",
            out[0].reason
        );
    }
}
