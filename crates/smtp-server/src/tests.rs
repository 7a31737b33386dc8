//! The server over in-memory pipes: what reaches the spool, and when 250 is sent.

use super::*;
use smtp_session::replies;
use spool::{Envelope, Queue, QueueId};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

#[derive(Default)]
struct TestGate {
    queued: Mutex<Vec<(QueueId, Queue)>>,
}

impl Gatekeeper for TestGate {
    async fn judge(&self, _peer: &Peer, _env: &Envelope, content: &[u8]) -> Judgement {
        let has = |s: &[u8]| content.windows(s.len()).any(|w| w == s);
        let disposition = if has(b"REJECTME") {
            Disposition::Reject(replies::rejected("test"))
        } else if has(b"HOLDME") {
            Disposition::Quarantine
        } else {
            Disposition::Deliver
        };
        let delivered = if has(b"STRIPME") {
            Delivered::Stripped(b"Subject: stripped\r\n\r\nnotice\r\n".to_vec())
        } else if has(b"REWRITEME") {
            Delivered::Rewritten(b"Subject: [T] rewritten\r\n\r\nREWRITEME\r\n".to_vec())
        } else {
            Delivered::AsReceived
        };
        Judgement { disposition, headers: b"X-Test: judged\r\n".to_vec(), summary: String::new(), delivered }
    }
    fn queued(&self, id: &QueueId, queue: Queue, _env: &Envelope, _j: &Judgement) {
        self.queued.lock().unwrap().push((id.clone(), queue));
    }
}

fn setup() -> (tempfile::TempDir, SmtpServer<TestGate>, Arc<TestGate>, Spool, watch::Sender<bool>) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg =
        Config { data_dir: dir.path().to_path_buf(), hostname: "mx.our.test".into(), ..Default::default() };
    cfg.smtp.accepted_domains = config::OneOrMany(vec!["our.test".parse().unwrap()]);
    cfg.smtp.starttls = false;
    let (spool, _) = Spool::open(&dir.path().join("spool")).unwrap();
    let gate = Arc::new(TestGate::default());
    let (tx, rx) = watch::channel(false);
    let server = SmtpServer::new(Arc::new(cfg), spool.clone(), gate.clone(), rx).unwrap();
    (dir, server, gate, spool, tx)
}

/// Run a session with `input` sent in one go; return everything the server wrote.
async fn converse(server: &SmtpServer<TestGate>, input: &[u8]) -> String {
    let (mut client, srv): (DuplexStream, DuplexStream) = tokio::io::duplex(1 << 20);
    let s = server.clone();
    let task = tokio::spawn(async move { s.handle(srv, "192.0.2.7".parse().unwrap()).await });
    client.write_all(input).await.unwrap();
    client.shutdown().await.unwrap();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    task.await.unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn pipelined_transactions_reach_the_spool_before_250() {
    let (_d, server, gate, spool, _tx) = setup();
    let out = converse(
        &server,
        b"EHLO c.test\r\nMAIL FROM:<a@ext.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\nSubject: 1\r\n\r\nhello\r\n.\r\n\
          MAIL FROM:<a@ext.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\nHOLDME\r\n.\r\n\
          MAIL FROM:<a@ext.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\nREJECTME\r\n.\r\nQUIT\r\n",
    )
    .await;
    let finals: Vec<&str> =
        out.lines().filter(|l| l.starts_with("250 2.0.0 OK queued") || l.starts_with("550")).collect();
    assert_eq!(finals.len(), 3, "{out}");
    assert!(finals[2].starts_with("550 5.7.1"), "{out}");
    let queued = gate.queued.lock().unwrap().clone();
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[0].1, Queue::Active);
    assert_eq!(queued[1].1, Queue::Quarantine);
    // Each 250 names a file that is already in its queue.
    assert!(out.contains(&format!("queued as {}", queued[0].0)));
    let m = spool.load(Queue::Active, &queued[0].0).unwrap();
    let content = String::from_utf8(spool.read_content(&m).unwrap()).unwrap();
    assert!(
        content.starts_with(
            "Received: from c.test ([192.0.2.7])\r\n\tby mx.our.test (Portcullis) with ESMTP id "
        )
    );
    assert!(content.ends_with("X-Test: judged\r\nSubject: 1\r\n\r\nhello\r\n"), "{content}");
    assert!(spool.load(Queue::Quarantine, &queued[1].0).is_ok());
    assert!(spool.list(Queue::Incoming).unwrap().is_empty(), "rejected message left nothing behind");
}

#[tokio::test]
async fn disconnect_mid_data_leaves_nothing() {
    let (_d, server, gate, spool, _tx) = setup();
    let out = converse(
        &server,
        b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\npartial line\r\nmore",
    )
    .await;
    assert!(out.contains("354"));
    assert!(gate.queued.lock().unwrap().is_empty());
    assert!(spool.list(Queue::Incoming).unwrap().is_empty());
    assert!(spool.list(Queue::Active).unwrap().is_empty());
}

#[tokio::test]
async fn shutdown_closes_idle_sessions_with_421() {
    let (_d, server, _gate, _spool, tx) = setup();
    let (mut client, srv) = tokio::io::duplex(1 << 16);
    let s = server.clone();
    let task = tokio::spawn(async move { s.handle(srv, "192.0.2.7".parse().unwrap()).await });
    let mut buf = [0u8; 256];
    let n = client.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"220 "));
    tx.send(true).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(String::from_utf8_lossy(&rest).starts_with("421 4.3.2"), "{rest:?}");
    task.await.unwrap();
}

#[tokio::test]
async fn strip_and_deliver_quarantines_the_original_and_queues_the_copy() {
    let (_d, server, gate, spool, _tx) = setup();
    let out = converse(
        &server,
        b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\nSubject: s\r\n\r\nSTRIPME\r\n.\r\nQUIT\r\n",
    )
    .await;
    let queued = gate.queued.lock().unwrap().clone();
    assert_eq!(queued.iter().map(|q| q.1).collect::<Vec<_>>(), [Queue::Quarantine, Queue::Active], "{out}");
    assert!(out.contains(&format!("queued as {}", queued[1].0)), "{out}");
    let held = spool.load(Queue::Quarantine, &queued[0].0).unwrap();
    let held = String::from_utf8(spool.read_content(&held).unwrap()).unwrap();
    assert!(held.ends_with("X-Test: judged\r\nSubject: s\r\n\r\nSTRIPME\r\n"), "{held}");
    let sent = spool.load(Queue::Active, &queued[1].0).unwrap();
    assert_eq!(sent.envelope.recipients, ["b@our.test"]);
    let sent = String::from_utf8(spool.read_content(&sent).unwrap()).unwrap();
    assert!(
        sent.starts_with("Received: ")
            && sent.ends_with("X-Test: judged\r\nSubject: stripped\r\n\r\nnotice\r\n"),
        "{sent}"
    );
    assert!(spool.list(Queue::Incoming).unwrap().is_empty());
}

#[tokio::test]
async fn a_rewritten_message_replaces_the_received_one_before_250() {
    let (_d, server, gate, spool, _tx) = setup();
    let out = converse(
        &server,
        b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\nSubject: s\r\n\r\nREWRITEME\r\n.\r\nQUIT\r\n",
    )
    .await;
    let queued = gate.queued.lock().unwrap().clone();
    assert_eq!(queued.iter().map(|q| q.1).collect::<Vec<_>>(), [Queue::Active], "{out}");
    assert!(out.contains(&format!("queued as {}", queued[0].0)), "{out}");
    let sent = spool.load(Queue::Active, &queued[0].0).unwrap();
    let sent = String::from_utf8(spool.read_content(&sent).unwrap()).unwrap();
    assert!(sent.contains(&format!(" id {}", queued[0].0)), "Received: names the queued file: {sent}");
    assert!(sent.ends_with("X-Test: judged\r\nSubject: [T] rewritten\r\n\r\nREWRITEME\r\n"), "{sent}");
    assert!(spool.list(Queue::Quarantine).unwrap().is_empty(), "nothing held");
    assert!(spool.list(Queue::Incoming).unwrap().is_empty(), "the received file is gone");
}
