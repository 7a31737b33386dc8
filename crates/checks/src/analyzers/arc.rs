//! ARC (RFC 8617): is the chain of `ARC-Seal` / `ARC-Message-Signature` / `ARC-Authentication-Results`
//! sets intact? `ARC_ALLOW` (verified chain), `ARC_REJECT` (broken or failing chain), `ARC_DNSFAIL`
//! (temporary), `ARC_NA` (no ARC sets). Reported only: no intermediary is trusted to override DMARC.
//! Run by the `auth` driver.

use crate::auth_results::reason;
use crate::dns::Dns;
use mail_auth::{ArcOutput, AuthenticatedMessage, DkimResult};
use verdict::Finding;

/// Verify the ARC chain of `msg`.
pub(crate) async fn check<'x>(dns: &'x Dns, msg: &'x AuthenticatedMessage<'x>) -> ArcOutput<'x> {
    dns.authenticator().verify_arc(dns.params(msg)).await
}

/// The finding for an ARC outcome.
pub(crate) fn findings(o: &ArcOutput<'_>, out: &mut Vec<Finding>) {
    let sets = o.sets().len();
    let (symbol, comment) = match o.result() {
        DkimResult::Pass => ("ARC_ALLOW", format!("chain of {sets} set(s) verified")),
        DkimResult::None => ("ARC_NA", "no ARC sets".to_string()),
        DkimResult::TempError(e) => ("ARC_DNSFAIL", format!("could not be checked: {e}")),
        DkimResult::Fail(e) | DkimResult::Neutral(e) | DkimResult::PermError(e) => {
            ("ARC_REJECT", format!("chain does not verify: {e}"))
        }
    };
    let comment = match o.sets().last() {
        Some(latest) => format!("{comment}; latest sealer {}", latest.seal.header.d),
        None => comment,
    };
    out.push(Finding::new(symbol, reason(&[], &comment)));
}
