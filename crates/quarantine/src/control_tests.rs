//! The control socket end to end: the mail plane's [`control::server`] over an in-memory pipe and a
//! real Unix socket, and a portal-side quarantine ([`MailPlane::Remote`]) asking it.

use super::*;
use crate::control::server::{Limits, serve_connection};
use crate::control::{Caller, ErrorKind, Op, Request, Response, decode_response, encode};
use crate::delivery_queue::MAX_LISTED_RECIPIENTS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMITS: Limits =
    Limits { max_request: 4096, max_response: 1 << 20, timeout: std::time::Duration::from_secs(5) };

async fn account(q: &Quarantine, name: &str, role: store::Role, addresses: &[&str]) {
    let addresses: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    let new = store::NewAccount { name, role, password_hash: "", addresses: &addresses };
    q.store().create_account(&new, 1).await.unwrap().unwrap();
}

/// Send `bytes` as one connection and read everything the server answers until it closes.
async fn exchange(q: &Quarantine, bytes: &[u8]) -> Vec<u8> {
    exchange_under(q, bytes, LIMITS).await
}

async fn exchange_under(q: &Quarantine, bytes: &[u8], limits: Limits) -> Vec<u8> {
    let (mut portal, mail) = tokio::io::duplex(1 << 16);
    let serving = serve_connection(q, mail, limits);
    let talking = async {
        portal.write_all(bytes).await.unwrap();
        let mut answer = Vec::new();
        portal.read_to_end(&mut answer).await.unwrap();
        answer
    };
    tokio::join!(serving, talking).1
}

async fn ask(q: &Quarantine, request: &Request) -> Response {
    let answer = exchange(q, &encode(request)).await;
    assert_eq!(answer.last(), Some(&b'\n'));
    decode_response(&answer[..answer.len() - 1]).unwrap()
}

fn by(name: &str, op: Op, item: &ItemId) -> Request {
    let caller = Caller::Account { name: name.into(), token_id: None };
    Request { op, caller, item: item.as_str().into(), learn_ham: false, safelist_sender: false }
}

fn error_kind(r: &Response) -> Option<ErrorKind> {
    match r {
        Response::Error { kind, .. } => Some(*kind),
        _ => None,
    }
}

#[tokio::test]
async fn the_mail_plane_acts_as_the_account_the_store_knows_and_only_on_its_items() {
    let e = env().await;
    account(&e.q, "alice", store::Role::User, &["a@our.test"]).await;
    account(&e.q, "bob", store::Role::User, &["b@our.test"]).await;
    let (item, qid) = e.held(&["a@our.test"], "pills", "GTUBE").await;
    let (virus, _) = e.held(&["a@our.test"], "invoice", "VIRUS_FOUND").await;

    // Someone else's item, an item of a kind users never see, an account the store does not know:
    // refused, and nothing happens.
    assert_eq!(error_kind(&ask(&e.q, &by("bob", Op::Release, &item)).await), Some(ErrorKind::NotFound));
    assert_eq!(error_kind(&ask(&e.q, &by("bob", Op::Show, &item)).await), Some(ErrorKind::NotFound));
    assert_eq!(error_kind(&ask(&e.q, &by("alice", Op::Delete, &virus)).await), Some(ErrorKind::NotFound));
    assert_eq!(error_kind(&ask(&e.q, &by("mallory", Op::Delete, &item)).await), Some(ErrorKind::Forbidden));
    let id = e.q.store().account_by_name("bob").await.unwrap().unwrap().id;
    e.q.store().set_account_addresses(id, &["a@our.test".to_string()], 2).await.unwrap();
    e.q.store().set_account_disabled(id, true, 2).await.unwrap();
    assert_eq!(error_kind(&ask(&e.q, &by("bob", Op::Show, &item)).await), Some(ErrorKind::Forbidden));
    let link = Caller::DigestLink { token: "forged".into() };
    let forged = Request { caller: link, ..by("alice", Op::Release, &item) };
    assert_eq!(error_kind(&ask(&e.q, &forged).await), Some(ErrorKind::Forbidden));
    assert!(e.audit.actions().is_empty(), "{:?}", e.audit.actions());
    assert!(e.spool.load(Queue::Quarantine, &qid).is_ok());

    // The owner: shown, learned, released; the audit record names her.
    let Response::Message { .. } = ask(&e.q, &by("alice", Op::Show, &item)).await else {
        panic!("no message")
    };
    assert_eq!(ask(&e.q, &by("alice", Op::Release, &item)).await, Response::Done);
    assert!(e.spool.load(Queue::Active, &qid).is_ok(), "released into active/");
    let again = ask(&e.q, &by("alice", Op::Release, &item)).await;
    assert!(matches!(again, Response::AlreadyDone { ref status, .. } if status == "released"), "{again:?}");
    let records = e.audit.0.lock().unwrap();
    let release = records.iter().find(|r| r.action() == "quarantine.release").unwrap();
    assert!(format!("{release:?}").contains("user:alice"), "{release:?}");
}

#[tokio::test]
async fn an_answer_longer_than_the_limit_is_not_sent() {
    let e = env().await;
    account(&e.q, "alice", store::Role::User, &["a@our.test"]).await;
    let (item, _) = e.held(&["a@our.test"], "pills", "GTUBE").await;
    let small = Limits { max_response: 100, ..LIMITS };
    let answer = exchange_under(&e.q, &encode(&by("alice", Op::Show, &item)), small).await;
    let r = decode_response(&answer[..answer.len() - 1]).unwrap();
    assert!(
        matches!(r, Response::Error { kind: ErrorKind::Failed, ref message } if message.contains("longer")),
        "{r:?}"
    );
}

#[tokio::test]
async fn an_oversized_or_garbled_request_gets_an_error_and_the_connection_closes() {
    let e = env().await;
    let long = vec![b'x'; LIMITS.max_request + 1];
    for (bytes, why) in [
        (long, "longer than 4096 bytes"),
        (b"{\"op\":\"show\"}\n".to_vec(), "missing field"),
        (b"\xff\xff garbage\n".to_vec(), "not a valid control line"),
    ] {
        let answer = exchange(&e.q, &bytes).await;
        let line = String::from_utf8(answer).unwrap();
        assert_eq!(line.matches('\n').count(), 1, "one answer, then closed: {line}");
        let r = decode_response(line.trim_end().as_bytes()).unwrap();
        assert_eq!(error_kind(&r), Some(ErrorKind::BadRequest), "{line}");
        assert!(line.contains(why), "{line}");
    }
    // A peer that sends half a line and goes away gets nothing and costs nothing.
    assert!(exchange(&e.q, b"{\"op\"").await.is_empty());
}

/// A portal-side quarantine of its own ([`MailPlane::Remote`]) asking `e`'s mail plane through a real
/// Unix socket named `socket` in `e`'s directory, its records going to `audit`; with the serving task,
/// to abort, and the configuration the portal runs with.
async fn split_portal(
    e: &Env,
    socket: &str,
    audit: Arc<MemAudit>,
) -> (Quarantine, tokio::task::JoinHandle<()>, config::Config) {
    let mut c = e.q.config().as_ref().clone();
    c.control.socket = e._dir.path().join(socket);
    let listener = tokio::net::UnixListener::bind(&c.control.socket).unwrap();
    let mail = e.q.clone();
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            serve_connection(&mail, stream, LIMITS).await;
        }
    });
    let store = store::Store::open(&c.data_dir, &c.store).await.unwrap();
    let plane = MailPlane::Remote(control::client::Client::from_config(&c));
    (Quarantine::new(store, plane, Arc::new(c.clone()), audit, None), server, c)
}

#[tokio::test]
async fn a_portal_of_its_own_shows_releases_and_learns_through_the_socket_and_says_when_it_is_down() {
    let e = env().await;
    account(&e.q, "alice", store::Role::User, &["a@our.test"]).await;
    let (item, qid) = e.held(&["a@our.test"], "pills", "GTUBE").await;
    let (other, other_qid) = e.held(&["a@our.test"], "more pills", "GTUBE").await;
    let portal_audit = Arc::new(MemAudit::default());
    let (portal, server, c) = split_portal(&e, "control.sock", portal_audit.clone()).await;
    let alice = Actor::new("alice", Role::User, vec!["a@our.test".into()]);

    let d = portal.get(&alice, item.as_str()).await.unwrap();
    assert!(d.text.contains("buy now") && d.checksum_ok, "{d:?}");
    assert_eq!(
        portal.raw(&alice, item.as_str()).await.unwrap().bytes,
        e.q.raw(&admin(), item.as_str()).await.unwrap().bytes
    );
    assert_eq!(portal.delete(&alice, other.as_str()).await.unwrap(), ActionOutcome::Done);
    assert!(e.spool.load(Queue::Quarantine, &other_qid).is_err(), "the mail plane removed the file");
    let outcome = portal.release(&alice, item.as_str(), ReleaseOptions::default()).await.unwrap();
    assert_eq!(outcome, ActionOutcome::Done);
    assert!(e.spool.load(Queue::Active, &qid).is_ok());
    assert!(matches!(portal.learn_spam(&alice, item.as_str()).await, Ok(ActionOutcome::AlreadyDone { .. })));
    // The mail plane wrote the actions' records; the portal only what it showed.
    assert!(e.audit.actions().contains(&"quarantine.release"), "{:?}", e.audit.actions());
    assert_eq!(portal_audit.actions(), ["quarantine.view", "quarantine.download"]);
    assert!(portal.send_digests().await.is_err(), "digests are the mail plane's");

    server.abort();
    let _ = server.await;
    std::fs::remove_file(&c.control.socket).unwrap();
    let (held, _) = e.held(&["a@our.test"], "later", "GTUBE").await;
    let down = portal.release(&alice, held.as_str(), ReleaseOptions::default()).await;
    assert!(
        matches!(down, Err(QuarantineError::MailPlane(ref why)) if why.contains("connecting")),
        "{down:?}"
    );
    assert!(matches!(portal.get(&alice, held.as_str()).await, Err(QuarantineError::MailPlane(_))));
}

fn account_caller(name: &str) -> Caller {
    Caller::Account { name: name.into(), token_id: None }
}

/// Every admin operation, by `caller`.
fn admin_requests(caller: Caller, queued: &spool::QueueId) -> Vec<Request> {
    vec![
        Request::new(Op::QueueList, caller.clone(), ""),
        Request::new(Op::QueueRetry, caller.clone(), ""),
        Request::new(Op::QueueDelete, caller.clone(), queued.as_str()),
        Request::new(Op::SendDigests, caller, ""),
    ]
}

#[tokio::test]
async fn the_queue_and_digests_answer_only_an_enabled_admin_the_store_knows() {
    let e = env().await;
    account(&e.q, "root", store::Role::Admin, &[]).await;
    account(&e.q, "alice", store::Role::User, &["a@our.test"]).await;
    account(&e.q, "desk", store::Role::Helpdesk, &[]).await;
    account(&e.q, "former", store::Role::Admin, &[]).await;
    let id = e.q.store().account_by_name("former").await.unwrap().unwrap().id;
    e.q.store().set_account_disabled(id, true, 2).await.unwrap();
    let many: Vec<String> = (0..MAX_LISTED_RECIPIENTS + 5).map(|i| format!("r{i}@our.test")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let queued = commit(&e.spool, "", &many, b"Subject: waiting\r\n\r\nhi\r\n", Queue::Active);
    e.held(&["a@our.test"], "pills", "GTUBE").await;

    // A user, helpdesk, a disabled admin, an unknown name, a digest link: refused, nothing happens.
    let link = Caller::DigestLink { token: "forged".into() };
    for caller in ["alice", "desk", "former", "mallory"].map(account_caller).into_iter().chain([link]) {
        for request in admin_requests(caller.clone(), &queued) {
            let answer = ask(&e.q, &request).await;
            assert_eq!(error_kind(&answer), Some(ErrorKind::Forbidden), "{request:?}: {answer:?}");
        }
    }
    assert!(e.audit.actions().is_empty(), "{:?}", e.audit.actions());
    assert!(e.spool.load(Queue::Active, &queued).is_ok());
    assert!(!e.spool.take_request(spool::ControlRequest::Flush));

    // The admin: the listing (bounded recipients), a retry request, a deletion, digests.
    let Response::Queue { total, messages } =
        ask(&e.q, &Request::new(Op::QueueList, account_caller("root"), "")).await
    else {
        panic!("no listing")
    };
    assert_eq!((total, messages.len()), (1, 1));
    let m = &messages[0];
    assert_eq!((m.id.as_str(), m.sender.as_str(), m.attempts), (queued.as_str(), "", 0));
    assert_eq!((m.pending.len(), m.more_pending), (MAX_LISTED_RECIPIENTS, 5));
    let [_, retry, delete, digests] = &admin_requests(account_caller("root"), &queued)[..] else { panic!() };
    assert_eq!(ask(&e.q, retry).await, Response::Done);
    assert!(e.spool.take_request(spool::ControlRequest::Flush), "the relay is asked to retry");
    assert_eq!(ask(&e.q, delete).await, Response::Done);
    assert!(e.spool.load(Queue::Active, &queued).is_err());
    assert_eq!(error_kind(&ask(&e.q, delete).await), Some(ErrorKind::NotFound), "already gone");
    let odd = Request::new(Op::QueueDelete, account_caller("root"), "../../etc/passwd");
    assert_eq!(error_kind(&ask(&e.q, &odd).await), Some(ErrorKind::NotFound));
    assert_eq!(ask(&e.q, digests).await, Response::Digests { sent: 1, items: 1 });

    // Each change is recorded as the admin, by the mail plane.
    assert_eq!(e.audit.actions(), ["queue.flush", "queue.delete", "quarantine.digests_send"]);
    for record in e.audit.0.lock().unwrap().iter() {
        let text = format!("{record:?}");
        assert!(text.contains("user:root") && text.contains("actor_name"), "{text}");
    }
}

#[tokio::test]
async fn a_portal_of_its_own_runs_the_queue_and_digests_through_the_socket_as_the_store_says() {
    let e = env().await;
    account(&e.q, "root", store::Role::Admin, &[]).await;
    account(&e.q, "alice", store::Role::User, &["a@our.test"]).await;
    let queued = commit(&e.spool, "s@ext.test", &["x@our.test"], b"Subject: w\r\n\r\nhi\r\n", Queue::Active);
    e.held(&["a@our.test"], "pills", "GTUBE").await;
    let (portal, server, _) = split_portal(&e, "admin.sock", Arc::new(MemAudit::default())).await;
    let root = Actor::new("root", Role::Admin, vec![]);

    let listing = portal.queue_list(&root).await.unwrap();
    assert_eq!((listing.total, listing.messages[0].id.as_str()), (1, queued.as_str()));
    portal.queue_retry(&root).await.unwrap();
    portal.queue_delete(&root, queued.as_str()).await.unwrap();
    assert!(matches!(portal.queue_delete(&root, queued.as_str()).await, Err(QuarantineError::NotFound)));
    assert_eq!(portal.send_digests_now(&root).await.unwrap(), DigestReport { sent: 1, items: 1 });
    // A portal that claims alice is an admin is not believed: the mail plane asks the store.
    let claimed = Actor::new("alice", Role::Admin, vec![]);
    let refused = portal.queue_list(&claimed).await;
    assert!(matches!(refused, Err(QuarantineError::Forbidden(why)) if why == crate::reasons::ADMINS_ONLY));
    // And a portal that knows alice is not one does not ask.
    let alice = Actor::new("alice", Role::User, vec!["a@our.test".into()]);
    assert!(matches!(portal.queue_retry(&alice).await, Err(QuarantineError::Forbidden(_))));
    assert_eq!(e.audit.actions(), ["queue.flush", "queue.delete", "quarantine.digests_send"]);
    server.abort();
}

#[tokio::test]
async fn a_portal_on_a_shared_store_says_the_queue_is_a_mail_nodes() {
    let e = env().await;
    let c = e.q.config();
    let store = store::Store::open(&c.data_dir, &c.store).await.unwrap();
    let portal = Quarantine::new(store, MailPlane::StoreOnly, c, Arc::new(MemAudit::default()), None);
    let root = Actor::new("root", Role::Admin, vec![]);
    assert!(matches!(portal.queue_list(&root).await, Err(QuarantineError::MailNodeOnly(_))));
    assert!(matches!(portal.send_digests_now(&root).await, Err(QuarantineError::MailNodeOnly(_))));
}
