//! The gateway's answers to the SMTP server's questions: verdicts and hand-off to the relay.

use checks::{Action, Context, Engine, Verdict};
use config::Config;
use relay::Relay;
use smtp_server::{Disposition, Gatekeeper, Judgement, Peer};
use smtp_session::{Reply, replies};
use spool::{Envelope, Queue, QueueId};
use std::sync::{Arc, RwLock};

pub(crate) struct Gate {
    relay: Relay,
    engine: Option<Engine>,
    config: RwLock<Arc<Config>>,
}

impl Gate {
    pub(crate) fn new(relay: Relay, engine: Option<Engine>, config: Arc<Config>) -> Gate {
        Gate { relay, engine, config: RwLock::new(config) }
    }

    pub(crate) fn reload(&self, config: Arc<Config>) {
        *self.config.write().expect("config lock") = config;
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

impl Gatekeeper for Gate {
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
        let verdict = engine.judge(content, &ctx).await;
        let headers: Vec<u8> =
            engine.headers(&verdict).iter().flat_map(|h| h.to_line().into_bytes()).collect();
        let disposition = match verdict.action {
            Action::Accept | Action::Tag => Disposition::Deliver,
            Action::Quarantine => Disposition::Quarantine,
            Action::Reject => Disposition::Reject(refusal(&verdict, true)),
            Action::Tempfail => Disposition::Tempfail(refusal(&verdict, false)),
        };
        Judgement { disposition, headers, summary: summary(&verdict) }
    }

    fn queued(&self, id: &QueueId, queue: Queue, _envelope: &Envelope, _judgement: &Judgement) {
        if queue == Queue::Active {
            self.relay.enqueue(id.clone());
        }
    }
}
