//! The gateway's answers to the SMTP server's questions: the host access table at connection and
//! `MAIL FROM`, verdicts (with `Authentication-Results:`, stripped attachments and the subject prefix
//! of tagged mail), and hand-off to the relay.
//!
//! Throttled sender groups are counted in the Redis that nodes share (`[cache]`) when there is one,
//! so a limit holds across every node; while it cannot be reached, `cache.on_unavailable` says
//! whether to count on this node alone (`local`) or to ask throttled clients to come back
//! (`tempfail`), and the next call after `cache.retry_after` tries Redis again.

use checks::analyzers::attachments::{Attachments, STRIPPED};
use checks::dns::Dns;
use checks::sender_groups::{Admission, HostAccessTable, Policy, RateCheck, RateLimiter, Stage};
use checks::{Action, Context, Engine, Finding, Verdict};
use config::{CacheFallback, Config};
use relay::Relay;
use smtp_server::{Delivered, Disposition, Gatekeeper, Judgement, Peer};
use smtp_session::{Address, Decision, Reply, replies};
use spool::{Envelope, Queue, QueueId};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

pub(crate) struct Gate {
    relay: Relay,
    engine: Option<Engine>,
    config: RwLock<Arc<Config>>,
    access: RwLock<Arc<HostAccessTable>>,
    limiter: RateLimiter,
    cache: Option<cache::Cache>,
    intake: Option<Arc<crate::quarantine_wiring::IntakeHook>>,
    dns: Option<Arc<Dns>>,
}

impl Gate {
    pub(crate) fn new(relay: Relay, engine: Option<Engine>, config: Arc<Config>) -> Gate {
        let dns = engine.as_ref().and_then(|e| e.dns().cloned()).or_else(|| groups_dns(&config));
        let access = RwLock::new(Arc::new(access_table(&config)));
        Gate {
            relay,
            engine,
            config: RwLock::new(config),
            access,
            limiter: RateLimiter::default(),
            cache: None,
            dns,
            intake: None,
        }
    }

    /// Record intake in message tracking and index quarantined mail through `hook`.
    pub(crate) fn with_intake(mut self, hook: Arc<crate::quarantine_wiring::IntakeHook>) -> Gate {
        self.intake = Some(hook);
        self
    }

    /// Count throttled sender groups in the Redis nodes share.
    pub(crate) fn with_cache(mut self, cache: Option<cache::Cache>) -> Gate {
        self.cache = cache;
        self
    }

    pub(crate) fn reload(&self, config: Arc<Config>) {
        if let Some(hook) = &self.intake {
            hook.reload(&config);
        }
        *self.access.write().expect("access table lock") = Arc::new(access_table(&config));
        *self.config.write().expect("config lock") = config;
    }

    /// The host access table's answer for `peer` now (DNS facts only as the groups need them).
    async fn admission(&self, peer: &Peer, stage: Stage) -> Admission {
        let table = self.access.read().expect("access table lock").clone();
        if table.is_empty() {
            return Admission::Accept { group: None };
        }
        let facts = table.facts(self.dns.as_deref(), peer.ip).await;
        let group = table.classify(&facts).map(|(i, _)| i);
        let admission = match table.policy(group, stage) {
            Policy::Decided(admission) => admission,
            Policy::Count(check) => self.count(check, peer.ip, stage).await,
        };
        if !matches!(admission, Admission::Accept { .. }) {
            tracing::info!(session = peer.session, ip = %peer.ip, ?stage, ?admission, rdns = ?facts.confirmed_name,
                listed = ?facts.listed_in, "sender group policy");
        }
        admission
    }

    /// Count one connection or message of a throttled group: in Redis when there is one and it
    /// answers, else as `cache.on_unavailable` says.
    async fn count(&self, check: RateCheck, ip: IpAddr, stage: Stage) -> Admission {
        if let Some(cache) = &self.cache {
            match cache.hit(&check.key(ip, stage), check.limit, check.window).await {
                Ok(allowed) => return check.admission(allowed),
                Err(e) => {
                    tracing::debug!(error = %e, group = check.group, "shared rate counter unavailable");
                    if self.config().cache.on_unavailable == CacheFallback::Tempfail {
                        return Admission::Unavailable { group: check.group };
                    }
                }
            }
        }
        let allowed = self.limiter.hit(&check.group, ip, stage, check.limit, check.window, Instant::now());
        check.admission(allowed)
    }

    fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }
}

/// The summary logged for a verdict: action, score and every symbol.
pub(crate) fn summary(v: &Verdict) -> String {
    let symbols: Vec<String> = v.symbols.iter().map(|s| format!("{}({:.2})", s.name, s.score)).collect();
    format!("{} score={:.2} [{}]", action_name(v.action), v.score, symbols.join(" "))
}

pub(crate) fn action_name(a: Action) -> &'static str {
    match a {
        Action::Accept => "accept",
        Action::Tag => "tag",
        Action::Quarantine => "quarantine",
        Action::Reject => "reject",
        Action::Tempfail => "tempfail",
    }
}

fn refusal(v: &Verdict, permanent: bool) -> Reply {
    // The client learns the class of the reason, never the rule details.
    let top = v.symbols.iter().filter(|s| s.score > 0.0).max_by(|a, b| a.score.total_cmp(&b.score));
    let why = top.map_or("content policy", |s| s.name.as_str());
    if permanent { replies::rejected(why) } else { replies::content_tempfail(why) }
}

/// What a delivered message carries: without its blocked attachments (`[attachments] block_action =
/// "strip"`; the original is then held) and, when tagged, with `actions.tag_subject_prefix` before its
/// subject. `None` when it must be held whole instead: it could not be stripped unambiguously.
fn delivered(verdict: &Verdict, findings: &[Finding], content: &[u8], config: &Config) -> Option<Delivered> {
    let stripped =
        if verdict.has(STRIPPED) { Some(Attachments::stripped_copy(content, findings)?) } else { None };
    let tagged = (verdict.action == Action::Tag)
        .then(|| {
            let delivered = stripped.as_deref().unwrap_or(content);
            message::with_subject_prefix(delivered, &config.actions.tag_subject_prefix)
        })
        .flatten();
    Some(match (stripped, tagged) {
        (Some(stripped), tagged) => Delivered::Stripped(tagged.unwrap_or(stripped)),
        (None, Some(tagged)) => Delivered::Rewritten(tagged),
        (None, None) => Delivered::AsReceived,
    })
}

/// The host access table of `config`; a bad one (refused when the verdict engine is built) is left empty.
fn access_table(config: &Config) -> HostAccessTable {
    HostAccessTable::from_config(&config.reputation).unwrap_or_else(|(key, message)| {
        tracing::error!(key, message, "invalid sender groups; none applied");
        HostAccessTable::default()
    })
}

/// A resolver for the sender groups when the verdict engine has none.
fn groups_dns(config: &Config) -> Option<Arc<Dns>> {
    if !config.reputation.groups_need_dns() {
        return None;
    }
    match Dns::from_config(&config.dns) {
        Ok(dns) => Some(Arc::new(dns)),
        Err(e) => {
            tracing::error!(error = %e, "no resolver: sender groups match by address only");
            None
        }
    }
}

fn connection_reply(a: &Admission) -> Decision {
    match a {
        Admission::Accept { .. } => Decision::Accept,
        Admission::Throttled { .. } => Decision::Refuse(replies::rate_limited()),
        Admission::Tempfail { .. } => Decision::Refuse(replies::policy_tempfail()),
        Admission::Reject { .. } => Decision::Refuse(replies::policy_reject()),
        // Before the greeting, 421 is the only way to say "later" (RFC 5321 3.8).
        Admission::Unavailable { .. } => Decision::Refuse(replies::policy_tempfail()),
    }
}

fn sender_reply(a: &Admission) -> Decision {
    match a {
        Admission::Accept { .. } => Decision::Accept,
        Admission::Throttled { .. } => Decision::Refuse(replies::message_rate_limited()),
        Admission::Tempfail { .. } => Decision::Refuse(replies::sender_policy_tempfail()),
        Admission::Reject { .. } => Decision::Refuse(replies::sender_policy_reject()),
        Admission::Unavailable { .. } => Decision::Refuse(replies::local_error()),
    }
}

impl Gatekeeper for Gate {
    async fn check_connection(&self, peer: &Peer) -> Decision {
        connection_reply(&self.admission(peer, Stage::Connect).await)
    }

    async fn check_sender(&self, peer: &Peer, _sender: Option<&Address>) -> Decision {
        let config = self.config();
        let smtp = &config.smtp;
        let delay = smtp.in_flow_delay.get();
        if !delay.is_zero() && !self.relay.wait_for_room(smtp.in_flow_limit, delay).await {
            tracing::debug!(
                session = peer.session,
                backlog = self.relay.backlog(),
                "delivery is behind; went on after smtp.in_flow_delay"
            );
        }
        sender_reply(&self.admission(peer, Stage::Mail).await)
    }

    async fn judge(&self, peer: &Peer, envelope: &Envelope, content: &[u8]) -> Judgement {
        let Some(engine) = &self.engine else { return Judgement::deliver() };
        let config = self.config();
        let accepted: Vec<String> =
            config.smtp.accepted_domains.iter().map(|d| d.as_str().to_string()).collect();
        let ctx = Context {
            client_ip: Some(peer.ip),
            helo: peer.helo.as_deref().unwrap_or(""),
            envelope_sender: &envelope.sender,
            recipients: &envelope.recipients,
            tls: peer.tls,
            smtputf8: envelope.smtputf8,
            accepted_domains: &accepted,
            hostname: &config.hostname,
            own_received: 0,
            raw: &[],
        };
        let findings = engine.examine(content, &ctx).await;
        let verdict = engine.decide(&findings);
        let results = checks::auth_results::header(&config.hostname, &findings);
        let headers: Vec<u8> = std::iter::once(results)
            .chain(engine.headers(&verdict))
            .flat_map(|h| h.to_line().into_bytes())
            .collect();
        let mut disposition = match verdict.action {
            Action::Accept | Action::Tag => Disposition::Deliver,
            Action::Quarantine => Disposition::Quarantine,
            Action::Reject => Disposition::Reject(refusal(&verdict, true)),
            Action::Tempfail => Disposition::Tempfail(refusal(&verdict, false)),
        };
        let mut delivered = Delivered::AsReceived;
        if disposition == Disposition::Deliver {
            match self::delivered(&verdict, &findings, content, &config) {
                Some(d) => delivered = d,
                None => disposition = Disposition::Quarantine, // could not strip: hold it whole
            }
        }
        if let Some(hook) = &self.intake {
            hook.judged(envelope, &headers, content, &delivered, &verdict, engine.limits());
        }
        Judgement { disposition, headers, summary: summary(&verdict), delivered }
    }

    fn queued(&self, id: &QueueId, queue: Queue, envelope: &Envelope, judgement: &Judgement) {
        if let Some(hook) = &self.intake {
            hook.queued(id, queue, None, envelope, judgement);
        }
        if queue == Queue::Active {
            self.relay.enqueue(id.clone());
        }
    }
}
