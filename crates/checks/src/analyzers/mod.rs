//! The analyzers: one per file, one signature. The engine runs them in [`standard`]'s order.

use crate::Context;
use message::MessageView;
use std::future::Future;
use std::pin::Pin;
use verdict::Finding;

pub mod encoding;
pub mod gtube;
pub mod headers;
pub mod lists;
pub mod mime;
pub mod received;
pub mod rules;

/// A synchronous check: reads the view and the envelope, appends what it saw. It must be bounded by
/// the view's limits (no unbounded loops over content) and must not block on I/O.
pub trait Analyzer: Send + Sync {
    /// A short name, used in reasons (e.g. which check the deadline skipped).
    fn name(&self) -> &'static str;
    fn analyze(&self, msg: &MessageView, ctx: &Context<'_>, out: &mut Vec<Finding>);
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
/// 5. `encoding`: 8-bit and RFC 2047 problems in header fields;
/// 6. `lists`: sender safelists and blocklists;
/// 7. `rules`: the header, body, raw and URL rules from the rules files.
pub fn standard(rules: rules::RulesAnalyzer, lists: lists::ListsAnalyzer) -> Vec<Box<dyn Analyzer>> {
    vec![
        Box::new(mime::Mime),
        Box::new(gtube::Gtube),
        Box::new(headers::Headers),
        Box::new(received::Received),
        Box::new(encoding::Encoding),
        Box::new(lists),
        Box::new(rules),
    ]
}
