//! The gateway's answers to the SMTP server's questions: verdicts and hand-off to the relay.

use relay::Relay;
use smtp_server::{Gatekeeper, Judgement, Peer};
use spool::{Envelope, Queue, QueueId};

pub(crate) struct Gate {
    relay: Relay,
}

impl Gate {
    pub(crate) fn new(relay: Relay) -> Gate {
        Gate { relay }
    }
}

impl Gatekeeper for Gate {
    async fn judge(&self, _peer: &Peer, _envelope: &Envelope, _content: &[u8]) -> Judgement {
        Judgement::deliver()
    }

    fn queued(&self, id: &QueueId, queue: Queue, _envelope: &Envelope, _judgement: &Judgement) {
        if queue == Queue::Active {
            self.relay.enqueue(id.clone());
        }
    }
}
