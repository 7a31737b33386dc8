//! The driver: parse once, run the analyzers in order under the deadline, score.

use crate::analyzers::{self, Analyzer, AsyncAnalyzer, lists::ListsAnalyzer, rules::RulesAnalyzer};
use crate::dns::{Dns, DnsSetupError};
use crate::rules_dir::{self, RulesError};
use crate::{Context, StaticLists};
use message::{MessageLimits, MessageView};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use verdict::render::{self, HeaderField};
use verdict::{Finding, Policy, Thresholds, Verdict};

/// Why the engine could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid configuration: {key}: {message}")]
    Setting { key: &'static str, message: String },
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(transparent)]
    Dns(#[from] DnsSetupError),
}

/// The verdict engine: limits, analyzers, policy and deadline. Build once, share (`judge` takes `&self`).
pub struct Engine {
    limits: MessageLimits,
    analyzers: Vec<Box<dyn Analyzer>>,
    async_analyzers: Vec<Box<dyn AsyncAnalyzer>>,
    policy: Policy,
    deadline: Duration,
    dns: Option<Arc<Dns>>,
}

impl Engine {
    /// The engine `config` describes: the standard analyzers, the rules from the rules directory
    /// (see [`rules_dir::load`]), lists from `[verdict]`, thresholds from `[actions]`.
    pub fn from_config(config: &config::Config) -> Result<Engine, EngineError> {
        let v = &config.verdict;
        v.check().map_err(|(key, message)| EngineError::Setting { key, message })?;
        let loaded = rules_dir::load(&v.rules_dir, &config.data_dir)?;
        let a = &config.actions;
        let thresholds =
            Thresholds { tag: a.tag.get(), quarantine: a.quarantine.get(), reject: a.reject.get() };
        for checked in [
            config.auth.check(),
            config.reputation.check(),
            config.attachments.check(),
            config.antivirus.check(),
        ] {
            checked.map_err(|(key, message)| EngineError::Setting { key, message })?;
        }
        let policy = loaded
            .policy
            .layer("[auth] and [reputation] settings", &analyzers::settings_layer(config))
            .thresholds(thresholds)
            .build()
            .map_err(RulesError::from)?;
        let rules = RulesAnalyzer::compile(&loaded.rules)?;
        let lists = ListsAnalyzer::new(Arc::new(StaticLists::from_config(v)));
        let mut engine = Engine::new(limits_from(v), policy, v.deadline.get());
        engine.analyzers = analyzers::standard(rules, lists);
        engine.analyzers.extend(analyzers::content(config));
        if config.antivirus.enabled {
            let av = analyzers::antivirus::Antivirus::from_config(&config.antivirus)
                .map_err(|message| EngineError::Setting { key: "antivirus.address", message })?;
            engine.async_analyzers.push(Box::new(av));
        }
        if analyzers::wants_network(config) {
            let dns = Arc::new(Dns::from_config(&config.dns)?);
            engine.async_analyzers.extend(analyzers::network(config, &dns));
            engine.dns = Some(dns);
        }
        Ok(engine)
    }

    /// An engine with no analyzers (add them with [`Engine::with_analyzer`]).
    pub fn new(limits: MessageLimits, policy: Policy, deadline: Duration) -> Engine {
        Engine { limits, analyzers: Vec::new(), async_analyzers: Vec::new(), policy, deadline, dns: None }
    }

    /// Add a synchronous analyzer after the ones already there.
    pub fn with_analyzer(mut self, a: Box<dyn Analyzer>) -> Self {
        self.analyzers.push(a);
        self
    }

    /// Add an async analyzer (network checks, classifier); they run after all synchronous ones, all
    /// at the same time, their findings kept in the order added.
    pub fn with_async_analyzer(mut self, a: Box<dyn AsyncAnalyzer>) -> Self {
        self.async_analyzers.push(a);
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn limits(&self) -> &MessageLimits {
        &self.limits
    }

    /// The resolver the network analyzers share (`None` when none is configured).
    pub fn dns(&self) -> Option<&Arc<Dns>> {
        self.dns.as_ref()
    }

    /// Judge one message: parse it into its bounded view, run every analyzer in order while the
    /// deadline allows, and score what they found. Needs a tokio runtime with the timer enabled
    /// when async analyzers are present.
    pub async fn judge(&self, raw: &[u8], ctx: &Context<'_>) -> Verdict {
        self.decide(&self.examine(raw, ctx).await)
    }

    /// What every analyzer saw in one message, before scoring (the authentication findings also
    /// make `Authentication-Results:`, see [`crate::auth_results::header`]).
    pub async fn examine(&self, raw: &[u8], ctx: &Context<'_>) -> Vec<Finding> {
        let started = Instant::now();
        let view = message::parse(raw, &self.limits);
        let ctx = Context { raw, ..ctx.clone() };
        let mut findings = self.run_sync(&view, &ctx, started);
        self.run_async(&view, &ctx, started, &mut findings).await;
        findings
    }

    /// Score findings into a verdict.
    pub fn decide(&self, findings: &[Finding]) -> Verdict {
        verdict::decide(findings, &self.policy)
    }

    /// The synchronous analyzers over a parsed view; analyzers not started before the deadline are
    /// skipped and named in one `DEADLINE_EXCEEDED` finding.
    pub fn run_sync(&self, view: &MessageView, ctx: &Context<'_>, started: Instant) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (i, a) in self.analyzers.iter().enumerate() {
            if started.elapsed() >= self.deadline {
                let skipped = self.analyzers[i..]
                    .iter()
                    .map(|a| a.name())
                    .chain(self.async_analyzers.iter().map(|a| a.name()));
                findings.push(deadline_finding(skipped));
                return findings;
            }
            a.analyze(view, ctx, &mut findings);
        }
        findings
    }

    async fn run_async(
        &self,
        view: &MessageView,
        ctx: &Context<'_>,
        started: Instant,
        findings: &mut Vec<Finding>,
    ) {
        if findings.iter().any(|f| f.symbol == DEADLINE_EXCEEDED) {
            return;
        }
        let left = self.deadline.saturating_sub(started.elapsed());
        if left.is_zero() && !self.async_analyzers.is_empty() {
            findings.push(deadline_finding(self.async_analyzers.iter().map(|a| a.name())));
            return;
        }
        let running = self
            .async_analyzers
            .iter()
            .map(|a| Box::pin(tokio::time::timeout(left, a.analyze(view, ctx))) as Pin<Box<_>>)
            .collect();
        let mut late = Vec::new();
        for (a, result) in self.async_analyzers.iter().zip(join_all(running).await) {
            match result {
                Ok(found) => findings.extend(found),
                Err(_) => late.push(a.name()),
            }
        }
        if !late.is_empty() {
            findings.push(deadline_finding(late.into_iter()));
        }
    }

    /// The header fields to add to a delivered message for `verdict` (see [`verdict::render`]).
    pub fn headers(&self, verdict: &Verdict) -> Vec<HeaderField> {
        render::headers(verdict, self.policy.thresholds().tag.or(self.policy.thresholds().lowest()))
    }
}

/// Run `futures` at the same time; their outputs in the order given. (A small `join_all`, so the
/// checks crate needs no futures crate: each future is polled when the task is woken.)
pub(crate) async fn join_all<F: Future + Unpin>(futures: Vec<F>) -> Vec<F::Output> {
    let mut slots: Vec<(F, Option<F::Output>)> = futures.into_iter().map(|f| (f, None)).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in slots.iter_mut().filter(|(_, out)| out.is_none()) {
            match Pin::new(f).poll(cx) {
                Poll::Ready(v) => *out = Some(v),
                Poll::Pending => pending = true,
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    slots.into_iter().filter_map(|(_, out)| out).collect()
}

/// The symbol added when the deadline skipped checks.
pub const DEADLINE_EXCEEDED: &str = "DEADLINE_EXCEEDED";

fn deadline_finding<'a>(skipped: impl Iterator<Item = &'a str>) -> Finding {
    let names: Vec<&str> = skipped.collect();
    Finding::new(DEADLINE_EXCEEDED, format!("deadline passed; skipped: {}", names.join(", ")))
}

fn limits_from(v: &config::VerdictConfig) -> MessageLimits {
    let size = |b: config::ByteSize| usize::try_from(b.0).unwrap_or(usize::MAX);
    MessageLimits {
        max_depth: v.max_mime_depth,
        max_parts: v.max_mime_parts,
        max_headers: v.max_headers,
        max_header_bytes: size(v.max_header_size),
        max_part_bytes: size(v.max_part_size),
        max_decoded_bytes: size(v.max_decoded_size),
        max_urls: v.max_urls,
        max_text_bytes: size(v.max_text_size),
    }
}
