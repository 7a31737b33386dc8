//! Drives one session: reads bytes into the session machine, acts on its events, writes its replies,
//! and applies the deadlines the machine cannot (it has no clock).

use crate::Shared;
use crate::conn::Conn;
use crate::gatekeeper::{Delivered, Disposition, Gatekeeper, Peer};
use crate::received::received_header;
use config::Config;
use smtp_session::{BodyType, Deadline, Decision, Event, Reply, Session, SessionConfig, replies};
use spool::{Envelope, Incoming, Queue, SpoolError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until, timeout};

const READ_BUFFER: usize = 64 * 1024;

pub(crate) fn session_config(cfg: &Config, tls_available: bool) -> SessionConfig {
    let s = &cfg.smtp;
    SessionConfig {
        hostname: cfg.hostname.clone(),
        accepted_domains: s.accepted_domains.iter().map(|d| d.as_str().to_string()).collect(),
        valid_recipients: s.recipients.iter().map(|r| r.trim().to_lowercase()).collect(),
        max_message_size: s.max_message_size.0,
        max_recipients: s.max_recipients,
        max_line_length: s.max_line_length,
        max_errors: s.max_errors,
        max_messages: s.max_messages_per_session,
        starttls: s.starttls && tls_available,
        require_tls: s.require_tls,
    }
}

/// The message being received.
struct Receiving {
    incoming: Option<Incoming>,
    envelope: Envelope,
    failure: Option<SpoolError>,
}

struct Driver<S, G> {
    shared: Arc<Shared<G>>,
    cfg: Arc<Config>,
    conn: Conn<S>,
    session: Session,
    peer: Peer,
    receiving: Option<Receiving>,
}

/// Serve one client connection to its end.
pub(crate) async fn run<S, G>(stream: S, peer: Peer, shared: Arc<Shared<G>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    G: Gatekeeper,
{
    let cfg = shared.config();
    let session = Session::new(session_config(&cfg, shared.tls.is_some()));
    let mut d = Driver { shared, cfg, conn: Conn::Plain(stream), session, peer, receiving: None };
    d.serve().await;
    d.conn.shutdown().await;
}

impl<S, G> Driver<S, G>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    G: Gatekeeper,
{
    async fn serve(&mut self) {
        let mut buf = vec![0u8; READ_BUFFER];
        if !self.greet(&mut buf).await {
            return;
        }
        let mut shutdown = self.shared.shutdown.clone();
        let mut kind = self.session.deadline();
        let mut deadline = Instant::now() + self.timeout_for(kind);
        let mut drain_until: Option<Instant> = None;
        loop {
            if !self.handle_events().await {
                return;
            }
            let progressed = self.session.has_output();
            if !self.flush().await {
                return;
            }
            let now_kind = self.session.deadline();
            if progressed || now_kind != kind {
                kind = now_kind;
                deadline = Instant::now() + self.timeout_for(kind);
            }
            if *shutdown.borrow() {
                let until =
                    *drain_until.get_or_insert_with(|| Instant::now() + self.cfg.smtp.drain_timeout.get());
                if self.session.is_idle() || Instant::now() >= until {
                    self.session.shutdown();
                    continue;
                }
                deadline = deadline.min(until);
            }
            tokio::select! {
                r = self.conn.read(&mut buf) => match r {
                    Ok(0) | Err(_) => self.session.eof(),
                    Ok(n) => self.session.feed(&buf[..n]),
                },
                _ = sleep_until(deadline) => {
                    if !*shutdown.borrow() {
                        tracing::info!(session = self.peer.session, "deadline exceeded");
                    }
                    if drain_until.is_none() { self.session.timed_out() }
                },
                _ = shutdown.changed(), if drain_until.is_none() => {}
            }
        }
    }

    fn timeout_for(&self, kind: Deadline) -> Duration {
        match kind {
            Deadline::Command => self.cfg.smtp.command_timeout.get(),
            Deadline::Data => self.cfg.smtp.data_timeout.get(),
            // The gateway itself is busy; its own deadlines apply.
            Deadline::None => Duration::from_secs(3600),
        }
    }

    /// Send the greeting, after refusing a client that talks first. `false` if the connection is over.
    async fn greet(&mut self, buf: &mut [u8]) -> bool {
        let delay = self.cfg.smtp.greeting_delay.get();
        if !delay.is_zero() {
            match timeout(delay, self.conn.read(buf)).await {
                Err(_) => self.session.greet(),
                Ok(Ok(n)) if n > 0 => {
                    tracing::info!(session = self.peer.session, ip = %self.peer.ip, "early talker refused");
                    metrics::counter!("portcullis_smtp_early_talkers_total").increment(1);
                    self.session.refuse_early_talker();
                }
                Ok(_) => return false,
            }
        } else {
            self.session.greet();
        }
        true
    }

    async fn flush(&mut self) -> bool {
        if !self.session.has_output() {
            return true;
        }
        let out = self.session.take_output();
        self.conn.write_all(&out).await.is_ok()
    }

    /// Act on every pending event. `false` when the connection must end now.
    async fn handle_events(&mut self) -> bool {
        while let Some(event) = self.session.poll() {
            match event {
                Event::CheckSender => {
                    let sender = self.session.transaction().and_then(|t| t.sender.clone());
                    self.refresh_peer();
                    let d = self.shared.gatekeeper.check_sender(&self.peer, sender.as_ref()).await;
                    self.session.decide(d);
                }
                Event::CheckRecipient(rcpt) => {
                    let d = self.shared.gatekeeper.check_recipient(&self.peer, &rcpt).await;
                    self.session.decide(d);
                }
                Event::DataStart => {
                    let d = self.open_spool_file().await;
                    self.session.decide(d);
                }
                Event::Data(chunk) => self.write_content(&chunk),
                Event::MessageEnd => {
                    let reply = self.finish_message().await;
                    self.session.finish_message(reply);
                }
                Event::DataAborted => self.receiving = None,
                Event::StartTls => {
                    if !self.flush().await || !self.start_tls().await {
                        return false;
                    }
                }
                Event::Close => {
                    self.flush().await;
                    return false;
                }
            }
        }
        true
    }

    fn refresh_peer(&mut self) {
        self.peer.helo = self.session.helo().map(str::to_string);
        self.peer.tls = self.session.is_tls();
    }

    async fn start_tls(&mut self) -> bool {
        let Some(acceptor) = self.shared.tls.clone() else {
            return false;
        };
        let handshake = timeout(self.cfg.smtp.command_timeout.get(), self.conn.start_tls(&acceptor));
        match handshake.await {
            Ok(Ok(())) => {
                self.session.tls_started();
                self.refresh_peer();
                true
            }
            Ok(Err(e)) => {
                tracing::info!(session = self.peer.session, error = %e, "TLS handshake failed");
                false
            }
            Err(_) => false,
        }
    }

    async fn open_spool_file(&mut self) -> Decision {
        let txn = self.session.transaction().expect("DataStart has a transaction");
        let envelope = Envelope {
            sender: txn.sender.as_ref().map(|a| a.to_string()).unwrap_or_default(),
            recipients: txn.recipients.iter().map(|a| a.to_string()).collect(),
            received_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            client_ip: Some(self.peer.ip),
            helo: self.session.helo().map(str::to_string),
            tls: self.session.is_tls(),
            smtputf8: txn.smtputf8,
            eight_bit: txn.body == BodyType::EightBitMime,
            is_bounce: false,
        };
        // Off the runtime's threads: a file's creation waits on its directory's lock, which hundreds
        // of sessions creating files at once hold in turn.
        let spool = self.shared.spool.clone();
        let created = tokio::task::spawn_blocking(move || (spool.create(&envelope), envelope)).await;
        let (created, envelope) = match created {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(session = self.peer.session, error = %e, "spool file task failed");
                return Decision::Refuse(replies::local_error());
            }
        };
        match created {
            Ok(incoming) => {
                // The file's directory entry is made durable while the data arrives, so the commit
                // waits for the file's own fsync only. A failure here is the commit's to report.
                let spool = self.shared.spool.clone();
                tokio::task::spawn_blocking(move || spool.sync_incoming());
                self.receiving = Some(Receiving { incoming: Some(incoming), envelope, failure: None });
                Decision::Accept
            }
            Err(e) => {
                tracing::error!(session = self.peer.session, error = %e, "cannot create a spool file");
                Decision::Refuse(storage_reply(&e))
            }
        }
    }

    fn write_content(&mut self, chunk: &[u8]) {
        let Some(r) = self.receiving.as_mut() else { return };
        if let Some(incoming) = r.incoming.as_mut()
            && let Err(e) = incoming.write(chunk)
        {
            // Keep reading to the end of the data, then refuse: nothing half-accepted.
            r.incoming = None;
            r.failure = Some(e);
        }
    }

    async fn finish_message(&mut self) -> Reply {
        let Some(r) = self.receiving.take() else {
            return replies::local_error();
        };
        let Receiving { incoming, envelope, failure } = r;
        let mut incoming = match (incoming, failure) {
            (Some(i), None) => i,
            (_, Some(e)) => return self.spool_failed(&e),
            (None, None) => return replies::local_error(),
        };
        let id = incoming.id().to_string();
        let content = match incoming.content() {
            Ok(c) => c,
            Err(e) => return self.spool_failed(&e),
        };
        let judgement = self.shared.gatekeeper.judge(&self.peer, &envelope, &content).await;
        drop(content);
        // The file committed first (and its queue), and the stripped copy queued after it.
        let (first, queue, copy) = match (&judgement.disposition, &judgement.delivered) {
            (Disposition::Deliver, Delivered::AsReceived) => (incoming, Queue::Active, None),
            (Disposition::Deliver, Delivered::Rewritten(bytes)) => {
                // Nothing is kept of the received file: a rewrite that cannot be stored is refused
                // like any other storage failure.
                drop(incoming);
                match self.spool_copy(&envelope, bytes) {
                    Ok(rewritten) => (rewritten, Queue::Active, None),
                    Err(e) => return self.spool_failed(&e),
                }
            }
            // Strip-and-deliver: the original is held, a copy is delivered. Without the copy the
            // original is still held: never delivered with what the verdict removed.
            (Disposition::Deliver, Delivered::Stripped(bytes)) => {
                let copy = self.spool_copy(&envelope, bytes).inspect_err(|e| {
                    tracing::error!(session = self.peer.session, queue_id = %id, error = %e, "cannot write the stripped copy; the original is held in quarantine");
                });
                (incoming, Queue::Quarantine, copy.ok())
            }
            (Disposition::Quarantine, _) => (incoming, Queue::Quarantine, None),
            (Disposition::Reject(reply) | Disposition::Tempfail(reply), _) => {
                let outcome = if reply.is_permanent() { "rejected" } else { "tempfailed" };
                tracing::info!(session = self.peer.session, queue_id = %id, outcome, verdict = %judgement.summary, "message refused");
                metrics::counter!("portcullis_messages_received_total", "outcome" => outcome).increment(1);
                return reply.clone();
            }
        };
        let single = (envelope.recipients.len() == 1).then(|| envelope.recipients[0].as_str());
        let mut prepend = received_header(
            self.session.helo(),
            self.peer.ip,
            &self.cfg.hostname,
            self.session.is_esmtp(),
            self.session.is_tls(),
            envelope.smtputf8,
            first.id().as_str(),
            single,
            time::OffsetDateTime::now_utc(),
        )
        .into_bytes();
        prepend.extend_from_slice(&judgement.headers);
        // A held original first: once it is durable, a failure of the copy loses nothing.
        let committed = tokio::task::spawn_blocking(move || {
            let first = first.commit(&prepend, queue)?;
            Ok::<_, SpoolError>((first, copy.map(|c| c.commit(&prepend, Queue::Active))))
        })
        .await;
        match committed {
            Ok(Ok((qid, copy))) => {
                self.accepted(&qid, queue, &envelope, &judgement);
                match copy {
                    Some(Ok(sent)) => {
                        self.accepted(&sent, Queue::Active, &envelope, &judgement);
                        replies::queued(sent.as_str())
                    }
                    Some(Err(e)) => {
                        tracing::error!(session = self.peer.session, queue_id = %qid, error = %e, "the stripped copy could not be queued; the original is held in quarantine");
                        replies::queued(qid.as_str())
                    }
                    None => replies::queued(qid.as_str()),
                }
            }
            Ok(Err(e)) => self.spool_failed(&e),
            Err(e) => {
                tracing::error!(session = self.peer.session, queue_id = %id, error = %e, "commit task failed");
                replies::local_error()
            }
        }
    }

    /// A second spool file holding `content` for the same envelope (strip-and-deliver, rewrites).
    fn spool_copy(&self, envelope: &Envelope, content: &[u8]) -> Result<Incoming, SpoolError> {
        self.shared.spool.create(envelope).and_then(|mut copy| copy.write(content).map(|()| copy))
    }

    /// A message is committed to `queue`: tell the gatekeeper, log and count it.
    fn accepted(
        &self,
        qid: &spool::QueueId,
        queue: Queue,
        envelope: &Envelope,
        judgement: &crate::Judgement,
    ) {
        self.shared.gatekeeper.queued(qid, queue, envelope, judgement);
        let outcome = if queue == Queue::Active { "queued" } else { "quarantined" };
        tracing::info!(
            session = self.peer.session, queue_id = %qid, outcome,
            from = %envelope.sender, rcpts = envelope.recipients.len(), verdict = %judgement.summary,
            "message accepted"
        );
        metrics::counter!("portcullis_messages_received_total", "outcome" => outcome).increment(1);
    }

    fn spool_failed(&self, e: &SpoolError) -> Reply {
        tracing::error!(session = self.peer.session, error = %e, "spool write failed; message refused");
        metrics::counter!("portcullis_messages_received_total", "outcome" => "spool_error").increment(1);
        storage_reply(e)
    }
}

/// Any failure to store a message is answered the same way: 452 4.3.1, and the client retries.
fn storage_reply(e: &SpoolError) -> Reply {
    if !e.is_storage_full() {
        tracing::warn!(error = %e, "spool failure that is not a full disk");
    }
    replies::insufficient_storage()
}
