//! The analyzers: one per file, one signature. The engine runs them in [`standard`]'s order.

use crate::Context;
use message::MessageView;
use std::future::Future;
use std::pin::Pin;
use verdict::Finding;

pub mod antivirus;
pub mod arc;
pub mod attachments;
pub mod auth;
pub mod bayes;
pub mod dkim;
pub mod dmarc;
pub mod dnsbl;
pub mod encoding;
pub mod forged_results;
pub mod gtube;
pub mod headers;
pub mod lists;
pub mod mime;
pub mod received;
pub mod rules;
pub mod spf;
pub mod uribl;
pub mod urls;

/// A synchronous check: reads the view and the envelope, appends what it saw. It must be bounded by
/// the view's limits (no unbounded loops over content) and must not block on I/O.
pub trait Analyzer: Send + Sync {
    /// A short name, used in reasons (e.g. which check the deadline skipped).
    fn name(&self) -> &'static str;
    fn analyze(&self, msg: &MessageView, ctx: &Context<'_>, out: &mut Vec<Finding>);
}

/// Whether the message came with an SMTP envelope. An offline scan has none (no client, no sender, no
/// recipients), and checks of what the envelope or the session said must then stay silent.
pub(crate) fn has_envelope(ctx: &Context<'_>) -> bool {
    ctx.client_ip.is_some() || !ctx.envelope_sender.is_empty() || !ctx.recipients.is_empty()
}

/// A boxed future, so async analyzers can be stored as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A check that waits on something (DNS for SPF, DKIM, DMARC, blocklists; a token store for the
/// classifier). The engine awaits it under what is left of the message's deadline and drops it (so it
/// must be cancel-safe) when the deadline passes.
pub trait AsyncAnalyzer: Send + Sync {
    fn name(&self) -> &'static str;
    fn analyze<'a>(&'a self, msg: &'a MessageView, ctx: &'a Context<'a>) -> BoxFuture<'a, Vec<Finding>>;
}

/// The synchronous analyzers in the order the engine runs them: cheap structural checks first (so
/// they are never the ones a deadline skips), then sender lists, then content rules.
///
/// 1. `mime`: limits reached and MIME defects;
/// 2. `gtube`: the GTUBE test string;
/// 3. `headers`: originator fields, envelope alignment, display-name impersonation, Reply-To;
/// 4. `received`: the `Received:` chain;
/// 5. `forged_results`: incoming `Authentication-Results:` claiming to be ours;
/// 6. `encoding`: 8-bit and RFC 2047 problems in header fields;
/// 7. `lists`: sender safelists and blocklists;
/// 8. `rules`: the header, body, raw and URL rules from the rules files.
pub fn standard(rules: rules::RulesAnalyzer, lists: lists::ListsAnalyzer) -> Vec<Box<dyn Analyzer>> {
    vec![
        Box::new(mime::Mime),
        Box::new(gtube::Gtube),
        Box::new(headers::Headers),
        Box::new(received::Received),
        Box::new(forged_results::ForgedResults),
        Box::new(encoding::Encoding),
        Box::new(lists),
        Box::new(rules),
    ]
}

/// The content analyzers `config` asks for, run after [`standard`]'s: `attachments` (`[attachments]`),
/// then `urls` (`[urls]`).
pub fn content(config: &config::Config) -> Vec<Box<dyn Analyzer>> {
    let mut out: Vec<Box<dyn Analyzer>> = Vec::new();
    if config.attachments.enabled {
        out.push(Box::new(attachments::Attachments::from_config(&config.attachments)));
    }
    if config.urls.enabled {
        out.push(Box::new(urls::Urls::from_config(&config.urls)));
    }
    out
}

/// The network analyzers `config` asks for, sharing `dns`; the engine runs them at the same time.
///
/// 1. `auth`: SPF, DKIM, ARC, then DMARC (`[auth]`);
/// 2. `ip_blocklists`: the client address against `[reputation] ip_blocklists`;
/// 3. `url_blocklists`: URL hosts against `[reputation] url_blocklists`.
pub fn network(
    config: &config::Config,
    dns: &std::sync::Arc<crate::dns::Dns>,
) -> Vec<Box<dyn AsyncAnalyzer>> {
    let r = &config.reputation;
    let zones = |list: &[config::BlocklistZone], prefix| {
        list.iter().map(|z| dnsbl::Zone::from_config(z, prefix)).collect::<Vec<_>>()
    };
    let mut out: Vec<Box<dyn AsyncAnalyzer>> = Vec::new();
    if config.auth.enabled {
        let settings = auth::AuthSettings::from_config(&config.auth);
        out.push(Box::new(auth::SenderAuth::new(dns.clone(), settings)));
    }
    if !r.ip_blocklists.is_empty() {
        out.push(Box::new(dnsbl::IpBlocklists::new(dns.clone(), zones(&r.ip_blocklists, "RBL"))));
    }
    if !r.url_blocklists.is_empty() {
        let z = zones(&r.url_blocklists, "URIBL");
        out.push(Box::new(uribl::UrlBlocklists::new(dns.clone(), z, r.max_url_lookups)));
    }
    out
}

/// Whether `config` asks for any network analyzer (and so for a resolver).
pub fn wants_network(config: &config::Config) -> bool {
    config.auth.enabled
        || !config.reputation.ip_blocklists.is_empty()
        || !config.reputation.url_blocklists.is_empty()
}

/// Scores and forced actions the settings add to the rules files: each blocklist zone's score,
/// with `[auth] dmarc_enforce` the DMARC policy actions, and the `[attachments]` and `[antivirus]`
/// actions (unscannable, encrypted, blocked, virus, scanner failure).
pub fn settings_layer(config: &config::Config) -> verdict::ScoreFile {
    use verdict::Action;
    let mut layer = verdict::ScoreFile::default();
    let r = &config.reputation;
    for (list, prefix) in [(&r.ip_blocklists, "RBL"), (&r.url_blocklists, "URIBL")] {
        for z in list.iter() {
            layer.scores.insert(dnsbl::Zone::from_config(z, prefix).symbol, z.score);
        }
    }
    if config.auth.enabled && config.auth.dmarc_enforce {
        let reject = match config.auth.dmarc_reject_action {
            config::DmarcRejectAction::Reject => Action::Reject,
            config::DmarcRejectAction::Quarantine => Action::Quarantine,
        };
        layer.force_actions.insert(dmarc::REJECT.to_string(), reject);
        layer.force_actions.insert(dmarc::QUARANTINE.to_string(), Action::Quarantine);
    }
    attachments::settings_layer(&config.attachments, &mut layer);
    antivirus::settings_layer(config, &mut layer);
    layer
}
