//! The relay against small SMTP receivers written here, on loopback, with timings made short by config.

use config::{Config, OutboundTls};
use relay::{DeliveryEvent, DeliveryObserver, Relay};
use spool::{Envelope, Queue, QueueId, RcptStatus, Spool};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

// ---------------------------------------------------------------------------------------------
// A small SMTP receiver whose behaviour the test changes while it runs.

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

#[derive(Clone, Default)]
struct Behaviour {
    /// Replaces `220 sink ESMTP`; a 4xx/5xx greeting closes the connection after it.
    greeting: Option<&'static str>,
    /// Accept the connection and never say anything.
    stall_greeting: bool,
    pipelining: bool,
    starttls: Option<TlsAcceptor>,
    size: Option<u64>,
    smtputf8: bool,
    /// Recipient → reply to its RCPT.
    reject: Vec<(&'static str, &'static str)>,
    /// Replaces the final `250` after the content.
    final_reply: Option<&'static str>,
    /// Read the content, then never answer.
    stall_after_data: bool,
    /// Recipients accepted per transaction; more get 452 4.5.3.
    max_rcpts: Option<usize>,
    /// Offer STARTTLS, say 220, then hang up instead of a handshake.
    broken_tls: bool,
    /// Hang up (without a word) after each message.
    close_after_message: bool,
}

#[derive(Debug, Clone)]
struct Received {
    from: String,
    rcpts: Vec<String>,
    data: Vec<u8>,
    connection: usize,
    tls: bool,
    /// The RCPTs and DATA had arrived together with MAIL.
    pipelined: bool,
}

#[derive(Default)]
struct SinkState {
    behaviour: Mutex<Behaviour>,
    received: Mutex<Vec<Received>>,
    connections: AtomicUsize,
}

struct Sink {
    port: u16,
    state: Arc<SinkState>,
    _accept: JoinHandle<()>,
}

impl Sink {
    async fn start(behaviour: Behaviour) -> Sink {
        Sink::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), behaviour)
    }

    fn start_on(listener: TcpListener, behaviour: Behaviour) -> Sink {
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(SinkState::default());
        *state.behaviour.lock().unwrap() = behaviour;
        let s = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let _ = tcp.set_nodelay(true);
                let n = s.connections.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(session(s.clone(), tcp, n));
            }
        });
        Sink { port, state, _accept: accept }
    }

    fn hop(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
    fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
    }
    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
    fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

async fn read_line(io: &mut BufReader<Box<dyn Stream>>) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    match io.read_until(b'\n', &mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line),
    }
}

async fn reply(io: &mut BufReader<Box<dyn Stream>>, text: &str) {
    let _ = io.get_mut().write_all(text.as_bytes()).await;
}

fn path_of(line: &str) -> String {
    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
    let end = line.find('>').unwrap_or(line.len());
    line[start..end].to_string()
}

async fn session(state: Arc<SinkState>, tcp: TcpStream, connection: usize) {
    let b = state.behaviour.lock().unwrap().clone();
    if b.stall_greeting {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(tcp);
        return;
    }
    let mut io: BufReader<Box<dyn Stream>> = BufReader::new(Box::new(tcp));
    let greeting = b.greeting.unwrap_or("220 sink ESMTP");
    reply(&mut io, &format!("{greeting}\r\n")).await;
    if !greeting.starts_with('2') {
        return;
    }
    let (mut tls, mut from, mut rcpts, mut pipelined) = (false, String::new(), Vec::new(), false);
    while let Some(line) = read_line(&mut io).await {
        let b = state.behaviour.lock().unwrap().clone();
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            let mut caps = vec!["sink".to_string(), "8BITMIME".into()];
            if b.pipelining {
                caps.push("PIPELINING".into());
            }
            if let Some(n) = b.size {
                caps.push(format!("SIZE {n}"));
            }
            if b.smtputf8 {
                caps.push("SMTPUTF8".into());
            }
            if (b.starttls.is_some() || b.broken_tls) && !tls {
                caps.push("STARTTLS".into());
            }
            let last = caps.len() - 1;
            let text: String = caps
                .iter()
                .enumerate()
                .map(|(i, c)| format!("250{}{c}\r\n", if i == last { ' ' } else { '-' }))
                .collect();
            reply(&mut io, &text).await;
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            reply(&mut io, "250 ok\r\n").await;
        } else if upper == "STARTTLS" && b.broken_tls {
            reply(&mut io, "220 2.0.0 go ahead\r\n").await;
            return;
        } else if upper == "STARTTLS" && !tls && b.starttls.is_some() {
            reply(&mut io, "220 2.0.0 go ahead\r\n").await;
            let plain = io.into_inner();
            let Ok(secure) = b.starttls.clone().unwrap().accept(plain).await else { return };
            io = BufReader::new(Box::new(secure));
            tls = true;
        } else if upper.starts_with("MAIL FROM:") {
            pipelined = !io.buffer().is_empty();
            from = path_of(&line);
            rcpts.clear();
            reply(&mut io, "250 2.1.0 ok\r\n").await;
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = path_of(&line);
            match b.reject.iter().find(|(r, _)| *r == rcpt) {
                Some((_, text)) => reply(&mut io, &format!("{text}\r\n")).await,
                None if b.max_rcpts.is_some_and(|max| rcpts.len() >= max) => {
                    reply(&mut io, "452 4.5.3 too many recipients\r\n").await
                }
                None => {
                    rcpts.push(rcpt);
                    reply(&mut io, "250 2.1.5 ok\r\n").await;
                }
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                reply(&mut io, "554 5.5.1 no valid recipients\r\n").await;
                continue;
            }
            reply(&mut io, "354 go on\r\n").await;
            let mut data = Vec::new();
            loop {
                let Some(l) = read_line(&mut io).await else { return };
                if l == b".\r\n" {
                    break;
                }
                data.extend_from_slice(l.strip_prefix(b".").unwrap_or(&l));
            }
            if b.stall_after_data {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            let last = b.final_reply.unwrap_or("250 2.0.0 queued");
            if last.starts_with('2') {
                let rcpts = std::mem::take(&mut rcpts);
                let r = Received { from: from.clone(), rcpts, data, connection, tls, pipelined };
                state.received.lock().unwrap().push(r);
            }
            reply(&mut io, &format!("{last}\r\n")).await;
            rcpts.clear();
            if b.close_after_message {
                return;
            }
        } else if upper == "RSET" {
            rcpts.clear();
            reply(&mut io, "250 ok\r\n").await;
        } else if upper == "QUIT" {
            reply(&mut io, "221 bye\r\n").await;
            return;
        } else {
            reply(&mut io, "500 5.5.1 what\r\n").await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway side: a spool, a relay running in a task, and the events it reports.

#[derive(Default)]
struct Events(Mutex<Vec<(QueueId, DeliveryEvent)>>);

impl DeliveryObserver for Events {
    fn event(&self, id: &QueueId, event: &DeliveryEvent) {
        self.0.lock().unwrap().push((id.clone(), event.clone()));
    }
}

impl Events {
    fn all(&self) -> Vec<(QueueId, DeliveryEvent)> {
        self.0.lock().unwrap().clone()
    }
    fn delivered(&self) -> Vec<String> {
        let all = self.all();
        all.iter()
            .filter_map(|(_, e)| match e {
                DeliveryEvent::Delivered { recipient, .. } => Some(recipient.clone()),
                _ => None,
            })
            .collect()
    }
    fn deferred(&self) -> Vec<String> {
        let all = self.all();
        all.iter()
            .filter_map(|(_, e)| match e {
                DeliveryEvent::Deferred { reply_or_error, .. } => Some(reply_or_error.clone()),
                _ => None,
            })
            .collect()
    }
    fn bounced(&self) -> Vec<(String, String)> {
        let all = self.all();
        all.iter()
            .filter_map(|(_, e)| match e {
                DeliveryEvent::Bounced { recipient, reply_or_reason } => {
                    Some((recipient.clone(), reply_or_reason.clone()))
                }
                _ => None,
            })
            .collect()
    }
    fn dsns(&self) -> Vec<QueueId> {
        let all = self.all();
        all.iter()
            .filter_map(|(_, e)| match e {
                DeliveryEvent::DsnQueued { dsn_id } => Some(dsn_id.clone()),
                _ => None,
            })
            .collect()
    }
}

fn config(data_dir: &Path, next_hop: &str) -> Config {
    let mut c = Config { data_dir: data_dir.to_path_buf(), hostname: "gw.test".into(), ..Default::default() };
    c.relay.next_hop = next_hop.parse().unwrap();
    c.relay.tls = OutboundTls::None;
    c.relay.retry_min = "100ms".parse().unwrap();
    c.relay.retry_max = "400ms".parse().unwrap();
    c.relay.connect_timeout = "2s".parse().unwrap();
    c.relay.command_timeout = "2s".parse().unwrap();
    c.smtp.drain_timeout = "1s".parse().unwrap();
    c
}

struct Gateway {
    spool: Spool,
    relay: Relay,
    events: Arc<Events>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Gateway {
    fn start(config: Config) -> Gateway {
        let (spool, _) = Spool::open(&config.data_dir.join("spool")).unwrap();
        let events = Arc::new(Events::default());
        let relay = Relay::with_observer(Arc::new(config), spool.clone(), events.clone()).unwrap();
        let (stop, stopped) = watch::channel(false);
        let r = relay.clone();
        let task = tokio::spawn(async move { r.run(stopped).await });
        Gateway { spool, relay, events, stop, task }
    }

    fn commit(&self, envelope: &Envelope, content: &[u8]) -> QueueId {
        let mut incoming = self.spool.create(envelope).unwrap();
        incoming.write(content).unwrap();
        incoming.commit(b"", Queue::Active).unwrap()
    }

    fn submit(&self, sender: &str, rcpts: &[&str], content: &[u8]) -> QueueId {
        let id = self.commit(&envelope(sender, rcpts), content);
        self.relay.enqueue(id.clone());
        id
    }

    fn active(&self) -> Vec<QueueId> {
        self.spool.list(Queue::Active).unwrap()
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.unwrap().unwrap();
    }
}

fn envelope(sender: &str, rcpts: &[&str]) -> Envelope {
    Envelope {
        sender: sender.into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        received_at: now_ms(),
        ..Default::default()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Wait (at most 10 s) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Let the relay run a little longer, to catch anything sent twice.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_delivery_is_byte_identical_and_reuses_one_connection() {
    let sink = Sink::start(Behaviour { pipelining: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &sink.hop());
    c.relay.max_concurrency_per_destination = 1;
    let gw = Gateway::start(c);
    let contents: Vec<Vec<u8>> = vec![
        b"Subject: one\r\n\r\nplain body\r\n".to_vec(),
        b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlone dot above\r\n".to_vec(),
        b"Subject: no final newline\r\n\r\nlast line".to_vec(),
        b".\r\n".to_vec(),
        b"Subject: x\r\n\r\n\r\n.\r\n\r\n..\r\n".to_vec(),
    ];
    let rcpts = ["a@remote.test", "b@remote.test", "c@remote.test"];
    let ids: Vec<QueueId> = contents.iter().map(|c| gw.submit("s@origin.test", &rcpts, c)).collect();

    eventually("all delivered", || sink.received().len() == contents.len() && gw.active().is_empty()).await;
    settle().await;
    let got = sink.received();
    assert_eq!(got.len(), contents.len(), "each message exactly once");
    for content in &contents {
        let mut expected = content.clone();
        if !expected.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        let r =
            got.iter().find(|r| r.data == expected).unwrap_or_else(|| panic!("missing {}", text(content)));
        assert_eq!(r.rcpts, rcpts);
        assert_eq!(r.from, "s@origin.test");
        assert!(r.pipelined, "MAIL, RCPT and DATA went out in one write");
    }
    assert_eq!(sink.connections(), 1, "one connection carried every message");
    assert_eq!(gw.events.delivered().len(), 15);
    assert!(gw.events.deferred().is_empty() && gw.events.bounced().is_empty());
    assert_eq!(gw.relay.queue_depth(), 0);
    assert!(ids.iter().all(|id| !gw.active().contains(id)));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pipelining_and_with_a_message_cap_per_connection() {
    let sink = Sink::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &sink.hop());
    c.relay.max_concurrency = 1;
    c.relay.max_messages_per_connection = 2;
    let gw = Gateway::start(c);
    for i in 0..5 {
        gw.submit(
            "s@origin.test",
            &["a@remote.test", "b@remote.test"],
            format!("Subject: {i}\r\n\r\nx\r\n").as_bytes(),
        );
    }
    eventually("all delivered", || sink.received().len() == 5 && gw.active().is_empty()).await;
    settle().await;
    let got = sink.received();
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|r| !r.pipelined && r.rcpts.len() == 2));
    assert_eq!(sink.connections(), 3, "2 + 2 + 1 messages");
    let mut per_conn = std::collections::HashMap::new();
    for r in &got {
        *per_conn.entry(r.connection).or_insert(0) += 1;
    }
    assert!(per_conn.values().all(|&n| n <= 2));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_recipient_bounces_alone_with_a_dsn() {
    let sink = Sink::start(Behaviour {
        pipelining: true,
        reject: vec![("bad@remote.test", "550 5.1.1 <bad@remote.test>: no such user")],
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(config(dir.path(), &sink.hop()));
    let content = b"From: s@origin.test\r\nSubject: quarterly report\r\n\r\nbody\r\n";
    let id = gw.submit("s@origin.test", &["ok1@remote.test", "bad@remote.test", "ok2@remote.test"], content);

    eventually("message and DSN delivered", || sink.received().len() == 2 && gw.active().is_empty()).await;
    settle().await;
    let got = sink.received();
    assert_eq!(got.len(), 2, "{got:?}");
    let original = got.iter().find(|r| r.from == "s@origin.test").unwrap();
    assert_eq!(original.rcpts, vec!["ok1@remote.test", "ok2@remote.test"]);
    assert_eq!(original.data, content);

    let dsn = got.iter().find(|r| r.from.is_empty()).expect("DSN sent with the null sender");
    assert_eq!(dsn.rcpts, vec!["s@origin.test"]);
    let d = text(&dsn.data);
    for needle in [
        "From: Mail Delivery System <MAILER-DAEMON@gw.test>\r\n",
        "To: <s@origin.test>\r\n",
        "Auto-Submitted: auto-replied\r\n",
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Content-Type: message/delivery-status\r\n",
        "Reporting-MTA: dns; gw.test\r\n",
        "Arrival-Date: ",
        "Final-Recipient: rfc822; bad@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n",
        "Remote-MTA: dns; 127.0.0.1\r\n",
        "Diagnostic-Code: smtp; 550 5.1.1 <bad@remote.test>: no such user\r\n",
        "Content-Type: text/rfc822-headers\r\n\r\nFrom: s@origin.test\r\nSubject: quarterly report\r\n",
    ] {
        assert!(d.contains(needle), "DSN lacks {needle:?}:\n{d}");
    }
    assert!(
        !d.contains("ok1@remote.test") && !d.contains("body\r\n"),
        "only the failed recipient, headers only"
    );
    let boundary = d.split("boundary=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(d.matches(&format!("--{boundary}\r\n")).count(), 3);
    assert!(d.ends_with(&format!("--{boundary}--\r\n")));

    let all = gw.events.all();
    let dsn_id = gw.events.dsns();
    assert_eq!(dsn_id.len(), 1);
    assert!(all.iter().any(|(i, e)| *i == id && matches!(e, DeliveryEvent::DsnQueued { .. })));
    assert_eq!(
        gw.events.bounced(),
        vec![("bad@remote.test".to_string(), "550 5.1.1 <bad@remote.test>: no such user".to_string())]
    );
    assert_eq!(gw.events.delivered().len(), 3, "ok1, ok2 and the DSN's recipient");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_421_defers_and_the_retry_delivers_once() {
    let sink =
        Sink::start(Behaviour { greeting: Some("421 4.3.2 service busy, try later"), ..Default::default() })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(config(dir.path(), &sink.hop()));
    let id = gw.submit("s@origin.test", &["a@remote.test"], b"Subject: x\r\n\r\ny\r\n");

    eventually("deferred twice", || gw.events.deferred().len() >= 2).await;
    assert!(gw.events.deferred()[0].contains("421 4.3.2 service busy"), "{:?}", gw.events.deferred());
    let on_disk = gw.spool.load(Queue::Active, &id).unwrap();
    assert!(on_disk.attempts >= 1 && on_disk.next_attempt_ms > on_disk.envelope.received_at);
    assert!(sink.received().is_empty());

    sink.set(|b| b.greeting = None);
    eventually("delivered", || sink.received().len() == 1 && gw.active().is_empty()).await;
    settle().await;
    assert_eq!(sink.received().len(), 1);
    assert_eq!(gw.events.delivered(), vec!["a@remote.test"]);
    let deferrals = gw.events.all();
    let next = deferrals.iter().find_map(|(_, e)| match e {
        DeliveryEvent::Deferred { next_attempt, recipients, .. } => Some((*next_attempt, recipients.clone())),
        _ => None,
    });
    let (next, recipients) = next.unwrap();
    assert_eq!(recipients, vec!["a@remote.test"]);
    assert!(next > std::time::SystemTime::UNIX_EPOCH);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_then_the_next_hop_comes_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nothing listens: connections are refused
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(config(dir.path(), &format!("smtp://127.0.0.1:{port}")));
    gw.submit("s@origin.test", &["a@remote.test", "b@remote.test"], b"Subject: x\r\n\r\ny\r\n");
    eventually("deferred", || gw.events.deferred().len() >= 2).await;
    assert!(gw.events.deferred()[0].contains("cannot connect"), "{:?}", gw.events.deferred());

    let sink = Sink::start_on(TcpListener::bind(("127.0.0.1", port)).await.unwrap(), Behaviour::default());
    eventually("delivered", || sink.received().len() == 1 && gw.active().is_empty()).await;
    settle().await;
    assert_eq!(sink.received().len(), 1);
    assert_eq!(sink.received()[0].rcpts, vec!["a@remote.test", "b@remote.test"]);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_next_hop_times_out_and_is_retried() {
    let sink = Sink::start(Behaviour { stall_after_data: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &sink.hop());
    c.relay.command_timeout = "300ms".parse().unwrap();
    let gw = Gateway::start(c);
    gw.submit("s@origin.test", &["a@remote.test"], b"Subject: x\r\n\r\ny\r\n");
    eventually("deferred", || !gw.events.deferred().is_empty()).await;
    assert!(
        gw.events.deferred()[0].contains("timed out after the message content"),
        "{:?}",
        gw.events.deferred()
    );
    sink.set(|b| b.stall_after_data = false);
    eventually("delivered", || sink.received().len() == 1 && gw.active().is_empty()).await;
    settle().await;
    assert_eq!(sink.received().len(), 1);

    // A next hop that never greets is bounded by connect_timeout.
    let silent = Sink::start(Behaviour { stall_greeting: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &silent.hop());
    c.relay.connect_timeout = "300ms".parse().unwrap();
    let gw2 = Gateway::start(c);
    gw2.submit("s@origin.test", &["a@remote.test"], b"x\r\n");
    eventually("deferred", || !gw2.events.deferred().is_empty()).await;
    assert!(gw2.events.deferred()[0].contains("timed out connecting"), "{:?}", gw2.events.deferred());
    gw.stop().await;
    gw2.stop().await;
}

// ---------------------------------------------------------------------------------------------
// STARTTLS

fn acceptor(cert_pem: &str, key_pem: &str) -> TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// A CA (PEM) and a TLS acceptor whose certificate for 127.0.0.1 that CA signed.
fn ca_and_acceptor() -> (String, TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Portcullis test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
    (ca_cert.pem(), acceptor(&leaf.pem(), &leaf_key.serialize_pem()))
}

fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opportunistic_starttls_with_a_self_signed_certificate() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls = acceptor(&made.cert.pem(), &made.signing_key.serialize_pem());
    let sink = Sink::start(Behaviour { starttls: Some(tls), pipelining: true, ..Default::default() }).await;
    let plain = Sink::start(Behaviour::default()).await;
    let broken = Sink::start(Behaviour { broken_tls: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &sink.hop());
    c.relay.tls = OutboundTls::Opportunistic;
    c.relay.route = vec![
        config::Route { domain: "plain.test".into(), next_hop: plain.hop().parse().unwrap() },
        config::Route { domain: "broken.test".into(), next_hop: broken.hop().parse().unwrap() },
    ];
    let gw = Gateway::start(c);
    gw.submit(
        "s@origin.test",
        &["a@remote.test", "b@plain.test", "c@broken.test"],
        b"Subject: tls\r\n\r\nsecret\r\n",
    );
    eventually("delivered", || {
        sink.received().len() == 1 && plain.received().len() == 1 && broken.received().len() == 1
    })
    .await;
    assert!(sink.received()[0].tls, "TLS used when offered");
    assert!(!plain.received()[0].tls, "plain text when not offered");
    assert!(!broken.received()[0].tls, "a failed handshake falls back to plain text");
    assert_eq!(broken.connections(), 2);
    assert!(gw.events.deferred().is_empty());
    assert_eq!(sink.received()[0].data, b"Subject: tls\r\n\r\nsecret\r\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_starttls_verifies_or_defers() {
    let (ca_pem, tls) = ca_and_acceptor();
    let (other_ca_pem, _) = ca_and_acceptor();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", &ca_pem);
    let other_ca_file = write_file(dir.path(), "other-ca.pem", &other_ca_pem);

    // Verified against the CA: delivered over TLS.
    let sink = Sink::start(Behaviour { starttls: Some(tls.clone()), ..Default::default() }).await;
    let mut c = config(&dir.path().join("a"), &sink.hop());
    c.relay.tls = OutboundTls::Required;
    c.relay.tls_ca_file = ca_file;
    let gw = Gateway::start(c);
    gw.submit("s@origin.test", &["a@remote.test"], b"x\r\n");
    eventually("delivered over TLS", || sink.received().len() == 1).await;
    assert!(sink.received()[0].tls);
    gw.stop().await;

    // A certificate from another CA: the handshake fails, delivery defers.
    let sink = Sink::start(Behaviour { starttls: Some(tls), ..Default::default() }).await;
    let mut c = config(&dir.path().join("b"), &sink.hop());
    c.relay.tls = OutboundTls::Required;
    c.relay.tls_ca_file = other_ca_file;
    let gw = Gateway::start(c);
    gw.submit("s@origin.test", &["a@remote.test"], b"x\r\n");
    eventually("deferred", || !gw.events.deferred().is_empty()).await;
    assert!(gw.events.deferred()[0].contains("TLS handshake"), "{:?}", gw.events.deferred());
    assert!(sink.received().is_empty());
    gw.stop().await;

    // No STARTTLS offered: defers, nothing sent in plain text.
    let sink = Sink::start(Behaviour::default()).await;
    let mut c = config(&dir.path().join("c"), &sink.hop());
    c.relay.tls = OutboundTls::Required;
    let gw = Gateway::start(c);
    gw.submit("s@origin.test", &["a@remote.test"], b"x\r\n");
    eventually("deferred", || !gw.events.deferred().is_empty()).await;
    assert!(gw.events.deferred()[0].contains("does not offer STARTTLS"), "{:?}", gw.events.deferred());
    assert!(sink.received().is_empty());
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Lifetimes, bounces, local delivery

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_message_bounces_with_the_last_error() {
    let sink = Sink::start(Behaviour {
        reject: vec![("a@remote.test", "451 4.2.0 mailbox busy")],
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &sink.hop());
    c.relay.max_queue_lifetime = "1s".parse().unwrap();
    c.smtp.accepted_domains = config::OneOrMany(vec!["origin.test".parse().unwrap()]);
    c.relay.route = vec![config::Route { domain: "origin.test".into(), next_hop: config::NextHop::Local }];
    let gw = Gateway::start(c);
    let mut env = envelope("s@origin.test", &["a@remote.test"]);
    env.received_at = now_ms() - 10_000;
    let id = gw.commit(&env, b"Subject: old news\r\n\r\nbody\r\n");
    gw.relay.enqueue(id);

    eventually("bounced and DSN delivered locally", || {
        gw.active().is_empty() && gw.events.delivered().len() == 1
    })
    .await;
    let bounced = gw.events.bounced();
    assert_eq!(bounced.len(), 1);
    assert_eq!(bounced[0].1, "delivery time expired; last error: 451 4.2.0 mailbox busy");
    let new = dir.path().join("mailboxes/s@origin.test/new");
    let files: Vec<_> = std::fs::read_dir(&new).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let d = text(&std::fs::read(&files[0]).unwrap());
    assert!(d.contains("Status: 4.4.7\r\n"), "{d}");
    assert!(d.contains("Diagnostic-Code: smtp; 451 4.2.0 mailbox busy\r\n"), "{d}");
    assert!(d.contains("delivery time expired"), "{d}");
    assert!(d.contains("Subject: old news\r\n"), "{d}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dsn_to_the_null_sender_or_about_a_bounce() {
    let sink = Sink::start(Behaviour {
        reject: vec![("bad@remote.test", "550 5.1.1 no such user")],
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(config(dir.path(), &sink.hop()));
    gw.submit("", &["bad@remote.test"], b"Subject: a bounce from elsewhere\r\n\r\nx\r\n");
    let mut env = envelope("someone@origin.test", &["bad@remote.test"]);
    env.is_bounce = true;
    let id = gw.commit(&env, b"Subject: our own DSN\r\n\r\nx\r\n");
    gw.relay.enqueue(id);
    eventually("both bounced", || gw.events.bounced().len() == 2 && gw.active().is_empty()).await;
    settle().await;
    assert!(gw.events.dsns().is_empty());
    assert!(sink.received().is_empty());
    assert!(gw.active().is_empty());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_maildir_delivery_and_non_accepted_domains() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), "local");
    c.smtp.accepted_domains = config::OneOrMany(vec!["localhost".parse().unwrap()]);
    let gw = Gateway::start(c);
    let content = b"Subject: hello\r\n\r\n.dot stays\r\n";
    gw.submit("me@localhost", &["You@LocalHost", "x@elsewhere.test"], content);
    eventually("delivered and bounced", || gw.active().is_empty() && gw.events.delivered().len() == 2).await;
    let mailbox = |name: &str| -> Vec<Vec<u8>> {
        let new = dir.path().join("mailboxes").join(name).join("new");
        std::fs::read_dir(new).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect()
    };
    assert_eq!(mailbox("You@localhost"), vec![content.to_vec()]);
    let bounced = gw.events.bounced();
    assert_eq!(bounced.len(), 1);
    assert!(bounced[0].1.contains("not an accepted domain"), "{bounced:?}");
    let dsn = mailbox("me@localhost");
    assert_eq!(dsn.len(), 1);
    assert!(text(&dsn[0]).contains("Final-Recipient: rfc822; x@elsewhere.test\r\n"));
    assert!(text(&dsn[0]).contains("Diagnostic-Code: X-Portcullis; local delivery refused"));
    assert!(!dir.path().join("mailboxes/x@elsewhere.test").exists());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_hop_limits_size_and_smtputf8() {
    let sink = Sink::start(Behaviour { size: Some(100), pipelining: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(config(dir.path(), &sink.hop()));
    gw.submit("", &["big@remote.test"], &[b'x'; 500]);
    gw.submit("", &["jörg@remote.test"], b"small\r\n");
    gw.submit("", &["fine@remote.test"], b"small\r\n");
    eventually("settled", || gw.active().is_empty()).await;
    let mut bounced = gw.events.bounced();
    bounced.sort();
    assert_eq!(bounced.len(), 2, "{bounced:?}");
    assert_eq!(bounced[0].0, "big@remote.test");
    assert!(bounced[0].1.contains("exceeds the next hop's limit of 100 bytes"), "{bounced:?}");
    assert_eq!(bounced[1].0, "jörg@remote.test");
    assert!(bounced[1].1.contains("SMTPUTF8"), "{bounced:?}");
    assert_eq!(sink.received().len(), 1);
    assert_eq!(sink.received()[0].rcpts, vec!["fine@remote.test"]);
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Crash safety and control requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_relay_never_resends_to_recipients_crossed_off() {
    let a = Sink::start(Behaviour::default()).await;
    let b = Sink::start(Behaviour { stall_greeting: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &a.hop());
    c.relay.connect_timeout = "30s".parse().unwrap();
    c.relay.route = vec![config::Route { domain: "b.test".into(), next_hop: b.hop().parse().unwrap() }];
    let gw = Gateway::start(c.clone());
    let id = gw.submit("s@origin.test", &["one@a.test", "two@b.test"], b"Subject: x\r\n\r\ny\r\n");
    let crossed_off = || gw.spool.load(Queue::Active, &id).unwrap().status[0] == RcptStatus::Delivered;
    eventually("first recipient delivered and crossed off", || a.received().len() == 1 && crossed_off())
        .await;
    eventually("second group stuck at the greeting", || b.connections() == 1).await;

    // Kill: the run future is dropped mid-attempt, as if the process died.
    gw.task.abort();
    let _ = gw.task.await;
    drop(gw.relay);
    b.set(|b| b.stall_greeting = false);

    let gw = Gateway::start(c);
    eventually("second recipient delivered", || b.received().len() == 1 && gw.active().is_empty()).await;
    settle().await;
    assert_eq!(a.received().len(), 1, "the crossed-off recipient is not sent again");
    assert_eq!(b.received()[0].rcpts, vec!["two@b.test"]);
    assert_eq!(a.connections(), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_and_rescan_requests() {
    let sink = Sink::start(Behaviour { greeting: Some("421 4.3.2 not now"), ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &sink.hop());
    c.relay.retry_min = "1h".parse().unwrap();
    c.relay.retry_max = "2h".parse().unwrap();
    let gw = Gateway::start(c);
    gw.submit("s@origin.test", &["a@remote.test"], b"x\r\n");
    eventually("deferred for an hour", || !gw.events.deferred().is_empty()).await;
    sink.set(|b| b.greeting = None);

    // An operator's flush: the next hop, marked down for an hour, is tried at once.
    gw.spool.request(spool::ControlRequest::Flush).unwrap();
    eventually("flushed message delivered", || sink.received().len() == 1 && gw.active().is_empty()).await;

    // Added behind the relay's back (as a release from quarantine would): found only by a rescan.
    let hidden = gw.commit(&envelope("s@origin.test", &["b@remote.test"]), b"y\r\n");
    settle().await;
    assert_eq!(sink.received().len(), 1);
    gw.spool.request(spool::ControlRequest::Rescan).unwrap();
    eventually("rescanned message delivered", || sink.received().len() == 2 && gw.active().is_empty()).await;
    assert!(!gw.active().contains(&hidden));
    // The depth gauge is lowered just after the file leaves active/: wait for it, do not race it.
    eventually("queue depth back to zero", || gw.relay.queue_depth() == 0).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_loads_the_queue_and_honours_retry_times() {
    let sink = Sink::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), &sink.hop());
    let (spool, _) = Spool::open(&dir.path().join("spool")).unwrap();
    let mut ids = Vec::new();
    for rcpt in ["now@remote.test", "later@remote.test"] {
        let mut inc = spool.create(&envelope("s@origin.test", &[rcpt])).unwrap();
        inc.write(b"x\r\n").unwrap();
        ids.push(inc.commit(b"", Queue::Active).unwrap());
    }
    let later = spool.load(Queue::Active, &ids[1]).unwrap();
    spool.set_retry(&later, 3, now_ms() + 3_600_000).unwrap();
    drop(spool);

    let gw = Gateway::start(c);
    eventually("due message delivered", || sink.received().len() == 1).await;
    settle().await;
    assert_eq!(sink.received()[0].rcpts, vec!["now@remote.test"]);
    assert_eq!(gw.active(), vec![ids[1].clone()]);
    assert_eq!(gw.relay.queue_depth(), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_over_the_next_hops_limit_go_in_further_transactions() {
    let sink = Sink::start(Behaviour { max_rcpts: Some(2), pipelining: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(config(dir.path(), &sink.hop()));
    let rcpts = ["1@r.test", "2@r.test", "3@r.test", "4@r.test", "5@r.test"];
    gw.submit("s@origin.test", &rcpts, b"x\r\n");
    eventually("delivered", || gw.active().is_empty()).await;
    let got: Vec<Vec<String>> = sink.received().into_iter().map(|r| r.rcpts).collect();
    assert_eq!(got, vec![vec!["1@r.test", "2@r.test"], vec!["3@r.test", "4@r.test"], vec!["5@r.test"]]);
    assert!(gw.events.deferred().is_empty(), "no retry wait: {:?}", gw.events.deferred());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_the_next_hop_closed_are_not_used() {
    let sink =
        Sink::start(Behaviour { close_after_message: true, pipelining: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &sink.hop());
    c.relay.max_concurrency_per_destination = 1;
    let gw = Gateway::start(c);
    for i in 0..4 {
        gw.submit("s@origin.test", &["a@remote.test"], format!("m{i}\r\n").as_bytes());
    }
    eventually("delivered", || sink.received().len() == 4 && gw.active().is_empty()).await;
    assert!(gw.events.deferred().is_empty(), "{:?}", gw.events.deferred());
    assert_eq!(sink.connections(), 4);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_routes_for_new_attempts() {
    let old = Sink::start(Behaviour { greeting: Some("421 4.3.2 going away"), ..Default::default() }).await;
    let new = Sink::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), &old.hop());
    let gw = Gateway::start(c.clone());
    gw.submit("s@origin.test", &["a@remote.test"], b"x\r\n");
    eventually("deferred", || !gw.events.deferred().is_empty()).await;
    let mut reloaded = c;
    reloaded.relay.next_hop = new.hop().parse().unwrap();
    gw.relay.reload(Arc::new(reloaded));
    eventually("delivered to the new next hop", || new.received().len() == 1 && gw.active().is_empty()).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_next_hop_costs_one_timeout_not_one_per_message() {
    let silent = Sink::start(Behaviour { stall_greeting: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &silent.hop());
    c.relay.connect_timeout = "300ms".parse().unwrap();
    c.relay.retry_min = "5s".parse().unwrap();
    c.relay.retry_max = "5s".parse().unwrap();
    c.relay.max_concurrency_per_destination = 1;
    let gw = Gateway::start(c);
    for i in 0..5 {
        gw.submit("s@origin.test", &[&format!("{i}@remote.test")], b"x\r\n");
    }
    eventually("all deferred", || gw.events.deferred().len() == 5).await;
    assert_eq!(silent.connections(), 1, "one timeout marked the next hop down");
    assert!(gw.events.deferred().iter().all(|d| d.contains("timed out connecting")));
    assert_eq!(gw.active().len(), 5);
    gw.stop().await;
}

/// Not a timed test: prints how fast the relay drains 2,000 queued 5 KB messages to a loopback sink.
/// `cargo test -p relay --release --test delivery throughput_probe -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_probe() {
    let sink = Sink::start(Behaviour { pipelining: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), &sink.hop());
    let (spool, _) = Spool::open(&dir.path().join("spool")).unwrap();
    let body = vec![b'x'; 5000];
    let n = 2000;
    for i in 0..n {
        let mut inc = spool.create(&envelope("s@origin.test", &[&format!("{i}@remote.test")])).unwrap();
        inc.write(&body).unwrap();
        inc.commit(b"", Queue::Active).unwrap();
    }
    let start = std::time::Instant::now();
    let gw = Gateway::start(c);
    eventually("all delivered", || sink.received().len() == n).await;
    let took = start.elapsed();
    let rate = n as f64 / took.as_secs_f64();
    println!("{n} messages in {took:?}: {rate:.0}/s over {} connections", sink.connections());
    gw.stop().await;
}

/// Bytes on disk that are not the message's own (a damaged file, or a name a crash left on another
/// message's file) fail the commit's checksum: set aside in corrupt/, never delivered nor retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_failing_its_checksum_is_set_aside_not_delivered() {
    let sink =
        Sink::start(Behaviour { greeting: Some("421 4.3.2 service busy, try later"), ..Default::default() })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(config(dir.path(), &sink.hop()));
    let damaged = gw.submit("s@origin.test", &["a@remote.test"], b"Subject: x\r\n\r\nwire 100 EUR\r\n");
    gw.submit("s@origin.test", &["a@remote.test"], b"Subject: y\r\n\r\nintact\r\n");
    eventually("both deferred", || gw.events.deferred().len() >= 2).await;
    let path = gw.spool.root().join("active").join(damaged.as_str());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(3).position(|w| w == b"100").unwrap();
    bytes[at..at + 3].copy_from_slice(b"900");
    std::fs::write(&path, &bytes).unwrap();

    sink.set(|b| b.greeting = None);
    eventually("the intact one delivered", || sink.received().len() == 1 && gw.active().is_empty()).await;
    settle().await;
    assert!(text(&sink.received()[0].data).contains("intact"));
    assert_eq!(gw.spool.list(Queue::Corrupt).unwrap(), vec![damaged]);
    assert!(gw.spool.list(Queue::Active).unwrap().is_empty());
    gw.stop().await;
}

/// Intake's flow control: the backlog counts messages handed over until their attempt finishes (a
/// deferred one leaves it), and a waiter is let through by a finished attempt, not by its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_holds_intake_back_until_attempts_finish() {
    let silent = Sink::start(Behaviour { stall_greeting: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &silent.hop());
    c.relay.connect_timeout = "2s".parse().unwrap();
    let gw = Gateway::start(c);
    for _ in 0..3 {
        gw.submit("s@origin.test", &["a@remote.test"], b"x\r\n");
    }
    assert_eq!(gw.relay.backlog(), 3);
    assert!(gw.relay.wait_for_room(4, Duration::from_secs(5)).await, "room at once under the limit");
    let t = std::time::Instant::now();
    assert!(!gw.relay.wait_for_room(3, Duration::from_millis(100)).await, "full: waits out its time");
    assert!(t.elapsed() >= Duration::from_millis(100));
    let t = std::time::Instant::now();
    assert!(gw.relay.wait_for_room(3, Duration::from_secs(20)).await);
    assert!(t.elapsed() < Duration::from_secs(10), "woken by an attempt finishing, not the deadline");
    // Deferred messages wait for their time outside the backlog (the events come before the attempt
    // has returned to the scheduler, so wait for that too).
    eventually("all deferred, out of the backlog", || {
        gw.events.deferred().len() >= 3 && gw.relay.backlog() == 0
    })
    .await;
    assert_eq!(gw.relay.queue_depth(), 3);
    gw.stop().await;
}
