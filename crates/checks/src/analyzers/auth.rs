//! The sender authentication driver: SPF, DKIM and ARC at the same time, then DMARC on their results,
//! all within `[auth] timeout` (and the message's deadline). Each check's symbols are described in its
//! own file (`spf.rs`, `dkim.rs`, `dmarc.rs`, `arc.rs`); their reasons carry what
//! [`crate::auth_results::header`] needs to write `Authentication-Results:`.
//!
//! A message with more DKIM and ARC signatures than `[auth] max_dkim_signatures` gets
//! `DKIM_TOO_MANY_SIGNATURES` and none is verified: each costs a body hash, a DNS lookup and a
//! public-key operation, and the count is the sender's to choose.

use super::{arc, dkim, dmarc, spf};
use crate::dns::Dns;
use crate::{AsyncAnalyzer, BoxFuture, Context};
use mail_auth::{AuthenticatedMessage, DkimResult};
use message::MessageView;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::timeout;
use verdict::Finding;

/// The settings of `[auth]` the driver uses.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub timeout: Duration,
    pub allow_length_tag: bool,
    pub max_signatures: usize,
}

impl AuthSettings {
    pub fn from_config(c: &config::AuthConfig) -> Self {
        AuthSettings {
            timeout: c.timeout.get(),
            allow_length_tag: c.dkim_allow_length_tag,
            max_signatures: c.max_dkim_signatures,
        }
    }
}

pub struct SenderAuth {
    dns: Arc<Dns>,
    settings: AuthSettings,
}

impl SenderAuth {
    pub fn new(dns: Arc<Dns>, settings: AuthSettings) -> Self {
        SenderAuth { dns, settings }
    }

    async fn run(&self, ctx: &Context<'_>) -> Vec<Finding> {
        let started = Instant::now();
        let mut out = Vec::new();
        let parsed = self.parse(ctx, &mut out);
        let dns = &*self.dns;
        let limit = self.settings.timeout;
        let (spf, dkim, arc) = tokio::join!(
            bounded(limit, spf::check(dns, ctx)),
            bounded(limit, async {
                match &parsed {
                    Some(m) => dkim::check(dns, m).await,
                    None => Vec::new(),
                }
            }),
            bounded(limit, async {
                match &parsed {
                    Some(m) => Some(arc::check(dns, m).await),
                    None => None,
                }
            }),
        );
        let spf_late = spf.is_none();
        let spf = spf.unwrap_or_else(|| spf::timed_out(ctx));
        if let Some(o) = &spf {
            spf::findings(o, &mut out);
        }
        let dkim_late = dkim.is_none();
        let dkim = dkim.unwrap_or_default();
        match (&parsed, dkim_late) {
            (_, true) => out.push(Finding::new("DKIM_TEMPFAIL", "DKIM checks did not finish in time")),
            (Some(m), false) => dkim::findings(&dkim, m, &mut out),
            (None, false) => {}
        }
        match arc {
            Some(Some(o)) => arc::findings(&o, &mut out),
            Some(None) => {}
            None => out.push(Finding::new("ARC_DNSFAIL", "ARC checks did not finish in time")),
        }
        let Some(m) = &parsed else { return out };
        let spf_output = spf.as_ref().map(|o| o.output.clone()).unwrap_or_default();
        let mail_from = spf.as_ref().map(|o| o.identity.domain()).unwrap_or_default();
        let left = limit.saturating_sub(started.elapsed());
        let incomplete = spf_late || dkim_late || any_temperror(&dkim);
        match bounded(left, dmarc::check(dns, m, &dkim, &mail_from, &spf_output)).await {
            Some(o) => dmarc::findings(&o, incomplete, &mut out),
            None => out.push(Finding::new("DMARC_DNSFAIL", "DMARC check did not finish in time")),
        }
        out
    }

    /// The message as mail-auth reads it, unless it has too many signatures to verify.
    fn parse<'x>(&self, ctx: &Context<'x>, out: &mut Vec<Finding>) -> Option<AuthenticatedMessage<'x>> {
        let signatures = count_signatures(ctx.raw);
        if signatures > self.settings.max_signatures {
            out.push(Finding::new(
                "DKIM_TOO_MANY_SIGNATURES",
                format!(
                    "{signatures} DKIM and ARC signatures (at most {} are verified)",
                    self.settings.max_signatures
                ),
            ));
            return None;
        }
        let parsed = AuthenticatedMessage::parse_with_opts(ctx.raw, None, !self.settings.allow_length_tag);
        if parsed.is_none() {
            out.push(Finding::new("DKIM_PERMFAIL", "the message has no header to verify"));
        }
        parsed
    }
}

/// The `DKIM-Signature:` and `ARC-Message-Signature:` fields in the header of `raw`, counted on the
/// raw bytes (mail-auth reads every field, not only those the bounded view kept).
fn count_signatures(raw: &[u8]) -> usize {
    let mut count = 0;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let starts = |name: &[u8]| line.len() >= name.len() && line[..name.len()].eq_ignore_ascii_case(name);
        if starts(b"dkim-signature:") || starts(b"arc-message-signature:") {
            count += 1;
        }
    }
    count
}

/// A DKIM signature that could not be checked may have been the aligned one.
fn any_temperror(dkim: &[mail_auth::DkimOutput<'_>]) -> bool {
    dkim.iter().any(|o| matches!(o.result(), DkimResult::TempError(_)))
}

async fn bounded<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    timeout(limit, f).await.ok()
}

impl AsyncAnalyzer for SenderAuth {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn analyze<'a>(&'a self, _msg: &'a MessageView, ctx: &'a Context<'a>) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(self.run(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_counted_in_the_header_only() {
        let raw =
            b"DKIM-Signature: a\r\n\tb\r\nArc-Message-Signature: c\r\nFrom: x\r\n\r\nDKIM-Signature: d\r\n";
        assert_eq!(count_signatures(raw), 2);
        assert_eq!(count_signatures(b""), 0);
    }
}
