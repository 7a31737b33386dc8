//! The quarantine against a real spool and SQLite store in a temporary directory.

use super::*;
use spool::{Envelope, Queue, QueueId, Spool};
use std::sync::Mutex;

/// Audit records kept in memory.
#[derive(Default)]
struct MemAudit(Mutex<Vec<audit::Event>>);

impl AuditSink for MemAudit {
    fn record(&self, event: audit::Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl MemAudit {
    fn actions(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().iter().map(|e| e.action()).collect()
    }
}

struct Env {
    _dir: tempfile::TempDir,
    q: Quarantine,
    spool: Spool,
    audit: Arc<MemAudit>,
}

/// The spool as this process's own, releases left for a gateway's rescan.
pub(crate) fn local(spool: &Spool) -> MailPlane {
    MailPlane::Local { spool: spool.clone(), wake: Wake::Rescan }
}

fn config(dir: &std::path::Path) -> config::Config {
    let mut c =
        config::Config { data_dir: dir.join("data"), hostname: "mx.our.test".into(), ..Default::default() };
    c.digest.portal_url = "https://portal.test/q/".into();
    c
}

async fn env_with(tweak: impl FnOnce(&mut config::Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    tweak(&mut c);
    let (spool, _) = Spool::open(&c.data_dir.join("spool")).unwrap();
    let store = store::Store::open(&c.data_dir, &c.store).await.unwrap();
    let audit = Arc::new(MemAudit::default());
    let q = Quarantine::new(store, local(&spool), Arc::new(c), audit.clone(), None);
    Env { _dir: dir, q, spool, audit }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

const GTUBE_HEADER: &[u8] = b"X-Portcullis-Verdict: quarantine; score=1000.00; GTUBE(1000.00)\r\n";

fn commit(spool: &Spool, sender: &str, rcpts: &[&str], content: &[u8], queue: Queue) -> QueueId {
    let envelope = Envelope {
        sender: sender.into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        received_at: u64::try_from(now_ms()).unwrap(),
        ..Default::default()
    };
    let mut incoming = spool.create(&envelope).unwrap();
    incoming.write(content).unwrap();
    incoming.commit(GTUBE_HEADER, queue).unwrap()
}

fn message(subject: &str) -> Vec<u8> {
    format!("From: Spammer <s@ext.test>\r\nTo: a@our.test\r\nSubject: {subject}\r\nMessage-ID: <m1@ext.test>\r\n\r\nbuy now\r\n")
        .into_bytes()
}

fn sym(name: &str) -> Symbol {
    Symbol { name: name.into(), score: 10.0, reason: format!("because {name}") }
}

impl Env {
    async fn held(&self, rcpts: &[&str], subject: &str, symbol: &str) -> (ItemId, QueueId) {
        let qid = commit(&self.spool, "S@Ext.test", rcpts, &message(subject), Queue::Quarantine);
        let id = self
            .q
            .hold(&Hold { queue_id: qid.clone(), score: 10.0, symbols: vec![sym(symbol)] })
            .await
            .unwrap();
        (id, qid)
    }
}

fn user(name: &str, addr: &str) -> Actor {
    Actor::new(name, Role::User, vec![addr.to_string()])
}

fn admin() -> Actor {
    Actor::new("root", Role::Admin, vec![])
}

fn helpdesk() -> Actor {
    Actor::new("desk", Role::Helpdesk, vec![])
}

fn not_found<T: std::fmt::Debug>(r: Result<T, QuarantineError>) -> bool {
    matches!(r, Err(QuarantineError::NotFound))
}

#[tokio::test]
async fn hold_indexes_once_with_kind_owners_checksum_and_symbols() {
    let e = env().await;
    let (id, qid) = e.held(&["A@our.test", "b@our.test"], "hello", "GTUBE").await;
    let again = e.q.hold(&Hold { queue_id: qid.clone(), score: 1.0, symbols: vec![] }).await.unwrap();
    assert_eq!(again, id, "holding twice gives the same item");
    assert_ne!(id.as_str(), qid.as_str());
    let d = e.q.get(&admin(), id.as_str()).await.unwrap();
    assert_eq!(d.item.recipients, ["a@our.test", "b@our.test"]);
    assert_eq!(
        (d.item.kind, d.item.sender.as_str(), d.item.subject.as_str()),
        ("spam", "s@ext.test", "hello")
    );
    assert_eq!(d.item.symbols, vec![sym("GTUBE")]);
    assert!(d.checksum_ok);
    assert!(d.text.contains("buy now"));
    assert!(d.headers.iter().any(|(n, v)| n == "Subject" && v == "hello"));
    assert_eq!(kind_of(["X", "ATTACH_POLICY_QUARANTINE"]), Kind::Policy);
    assert_eq!(kind_of(["ARCHIVE_ENCRYPTED", "VIRUS_FOUND"]), Kind::Virus);
    assert_eq!(kind_of(["BAYES_SPAM"]), Kind::Spam);
}

#[tokio::test]
async fn other_users_items_are_not_found_for_every_operation() {
    let e = env().await;
    let (id, qid) = e.held(&["a@our.test"], "for a", "GTUBE").await;
    let bob = user("bob", "b@our.test");
    let id = id.as_str();
    assert!(not_found(e.q.get(&bob, id).await));
    assert!(not_found(e.q.raw(&bob, id).await));
    assert!(not_found(e.q.release(&bob, id, ReleaseOptions::default()).await));
    assert!(not_found(e.q.delete(&bob, id).await));
    assert!(not_found(e.q.learn_spam(&bob, id).await));
    assert!(not_found(e.q.safelist_sender(&bob, id).await));
    let page =
        e.q.search(&bob, &SearchQuery { recipient: Some("a@our.test".into()), ..Default::default() })
            .await
            .unwrap();
    assert!(page.items.is_empty(), "a recipient filter does not widen a user's view");
    assert_eq!(e.spool.list(Queue::Quarantine).unwrap(), vec![qid.clone()], "a's message unchanged");
    for bad in ["../../etc/passwd", "%2e%2e%2f", "", qid.as_str(), "AAAAAAAAAAAAAAAAAAAAA\0", "ÀÀÀÀÀÀÀÀÀÀÀ"]
    {
        assert!(not_found(e.q.get(&admin(), bad).await), "{bad:?}");
    }
    let alice = user("alice", "A@OUR.TEST");
    assert_eq!(
        e.q.get(&alice, id).await.unwrap().item.subject,
        "for a",
        "addresses compare case-insensitively"
    );
    assert_eq!(e.q.search(&alice, &SearchQuery::default()).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn virus_items_are_for_admins_and_policy_release_follows_the_setting() {
    let e = env().await;
    let (virus, vq) = e.held(&["a@our.test"], "invoice", "VIRUS_FOUND").await;
    let (policy, _) = e.held(&["a@our.test"], "archive", "ARCHIVE_ENCRYPTED").await;
    let alice = user("alice", "a@our.test");
    for actor in [&alice, &helpdesk()] {
        assert!(not_found(e.q.get(actor, virus.as_str()).await));
        assert!(not_found(e.q.release(actor, virus.as_str(), ReleaseOptions::default()).await));
        let page = e.q.search(actor, &SearchQuery::default()).await.unwrap();
        assert_eq!(page.items.iter().map(|i| i.kind).collect::<Vec<_>>(), ["policy"]);
    }
    let forbidden = e.q.release(&alice, policy.as_str(), ReleaseOptions::default()).await;
    assert!(matches!(forbidden, Err(QuarantineError::Forbidden(_))), "{forbidden:?}");
    assert_eq!(
        e.q.release(&helpdesk(), policy.as_str(), ReleaseOptions::default()).await.unwrap(),
        ActionOutcome::Done
    );
    assert_eq!(
        e.q.release(&admin(), virus.as_str(), ReleaseOptions::default()).await.unwrap(),
        ActionOutcome::Done
    );
    assert!(e.spool.load(Queue::Active, &vq).is_ok());
    let virus_release = {
        let records = e.audit.0.lock().unwrap();
        let r = records
            .iter()
            .find(|r| r.action() == "quarantine.release" && format!("{r:?}").contains(virus.as_str()));
        format!("{:?}", r.unwrap())
    };
    assert!(virus_release.contains("released by an administrator"), "{virus_release}");
    let e = env_with(|c| c.quarantine.policy_release = config::ReleaseRole::User).await;
    let (policy, _) = e.held(&["a@our.test"], "archive", "ATTACH_POLICY_QUARANTINE").await;
    assert_eq!(
        e.q.release(&alice, policy.as_str(), ReleaseOptions::default()).await.unwrap(),
        ActionOutcome::Done
    );
}

#[tokio::test]
async fn release_is_idempotent_and_other_owners_see_who_did_it() {
    let e = env().await;
    let (id, qid) = e.held(&["a@our.test", "shared@our.test"], "hi", "GTUBE").await;
    let alice = user("alice", "a@our.test");
    let carol = user("carol", "shared@our.test");
    let (one, two) = tokio::join!(
        e.q.release(&alice, id.as_str(), ReleaseOptions::default()),
        e.q.release(&carol, id.as_str(), ReleaseOptions::default())
    );
    let outcomes = [one.unwrap(), two.unwrap()];
    assert_eq!(outcomes.iter().filter(|o| **o == ActionOutcome::Done).count(), 1, "{outcomes:?}");
    assert_eq!(e.spool.list(Queue::Active).unwrap(), vec![qid.clone()], "moved to active once");
    assert!(e.spool.list(Queue::Quarantine).unwrap().is_empty());
    assert!(
        e.spool.take_request(spool::ControlRequest::Rescan),
        "the running gateway is asked to pick it up"
    );
    let again = e.q.release(&alice, id.as_str(), ReleaseOptions::default()).await.unwrap();
    assert!(matches!(again, ActionOutcome::AlreadyDone { status: "released", .. }), "{again:?}");
    let seen = e.q.get(&carol, id.as_str()).await.unwrap().item;
    assert_eq!(seen.status, "released");
    assert!(matches!(seen.status_by.as_deref(), Some("alice" | "carol")));
    assert!(seen.status_at_ms.is_some());
    let deleted = e.q.delete(&carol, id.as_str()).await.unwrap();
    assert!(matches!(deleted, ActionOutcome::AlreadyDone { status: "released", .. }));
    assert_eq!(e.audit.actions().iter().filter(|a| **a == "quarantine.release").count(), 1);
}

#[tokio::test]
async fn delete_removes_the_file_once_and_raw_is_the_stored_bytes() {
    let e = env().await;
    let (id, qid) = e.held(&["a@our.test"], "bye", "GTUBE").await;
    let alice = user("alice", "a@our.test");
    let raw = e.q.raw(&alice, id.as_str()).await.unwrap();
    assert_eq!(raw.file_name, format!("{id}.eml"));
    assert!(raw.bytes.starts_with(GTUBE_HEADER) && raw.bytes.ends_with(b"buy now\r\n"));
    assert_eq!(e.q.delete(&alice, id.as_str()).await.unwrap(), ActionOutcome::Done);
    assert!(e.spool.load(Queue::Quarantine, &qid).is_err());
    assert!(matches!(
        e.q.delete(&alice, id.as_str()).await.unwrap(),
        ActionOutcome::AlreadyDone { status: "deleted", .. }
    ));
    let released = e.q.release(&alice, id.as_str(), ReleaseOptions::default()).await.unwrap();
    assert!(matches!(released, ActionOutcome::AlreadyDone { status: "deleted", .. }));
    assert!(e.spool.list(Queue::Active).unwrap().is_empty(), "a deleted item is never delivered");
    assert!(matches!(e.q.raw(&alice, id.as_str()).await, Err(QuarantineError::MissingFile)));
}

#[tokio::test]
async fn safelisting_adds_the_sender_for_the_actors_own_addresses() {
    let e = env().await;
    let (id, _) = e.held(&["a@our.test", "other@our.test"], "hi", "GTUBE").await;
    let alice = user("alice", "a@our.test");
    let opts = ReleaseOptions { learn_ham: false, safelist_sender: true };
    assert_eq!(e.q.release(&alice, id.as_str(), opts).await.unwrap(), ActionOutcome::Done);
    let mine = e.q.sender_lists(&alice).await.unwrap();
    assert_eq!(
        mine.iter().map(|x| (x.owner.as_str(), x.sender.as_str())).collect::<Vec<_>>(),
        [("a@our.test", "s@ext.test")]
    );
    assert!(e.q.sender_lists(&user("o", "other@our.test")).await.unwrap().is_empty());
    let bob = user("bob", "b@our.test");
    assert!(not_found(e.q.add_sender_list_entry(&bob, "a@our.test", SenderList::Block, "x.test").await));
    assert!(e.q.add_sender_list_entry(&bob, "b@our.test", SenderList::Block, "x.test").await.unwrap());
}

#[tokio::test]
async fn hostile_text_comes_back_literally_from_search_and_the_digest() {
    let e = env().await;
    let payload = "x' UNION SELECT id, queue_id FROM quarantine_items -- <img src=x onerror=alert(1)>";
    let (id, _) = e.held(&["a@our.test"], payload, "GTUBE").await;
    let alice = user("alice", "a@our.test");
    let q = SearchQuery { subject: Some("union select".into()), ..Default::default() };
    let page = e.q.search(&alice, &q).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].subject, payload);
    assert_eq!(page.items[0].id, id);
    // A stored per-user setting with the same text is data too.
    e.q.add_sender_list_entry(&alice, "a@our.test", SenderList::Safe, "x'UNION_SELECT_1--@ext.test")
        .await
        .unwrap();
    assert_eq!(e.q.sender_lists(&alice).await.unwrap()[0].sender, "x'union_select_1--@ext.test");
    assert_eq!(e.q.send_digests().await.unwrap(), DigestReport { sent: 1, items: 1 });
    let (text, html) = digest_parts(&e);
    assert!(text.contains(payload), "{text}");
    assert!(
        html.contains(
            "x&#39; UNION SELECT id, queue_id FROM quarantine_items -- &lt;img src=x onerror=alert(1)&gt;"
        ),
        "{html}"
    );
    assert!(!html.contains("<img"));
}

/// The text and HTML parts of the one digest in `active/` (decoded with the message crate).
fn digest_parts(e: &Env) -> (String, String) {
    let ids = e.spool.list(Queue::Active).unwrap();
    let msg = e.spool.load(Queue::Active, ids.last().unwrap()).unwrap();
    let raw = e.spool.read_content(&msg).unwrap();
    let head =
        String::from_utf8_lossy(&raw[..raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap()]).to_string();
    assert!(head.contains("multipart/alternative"), "{head}");
    assert!(head.contains("Auto-Submitted: auto-generated"), "{head}");
    assert_eq!(msg.envelope.sender, "", "digests use the null sender");
    let view = message::parse(&raw, &message::MessageLimits::default());
    let text = view.texts.iter().find(|t| !t.html).map(|t| t.text.clone()).unwrap();
    let html_part = view.parts.iter().any(|p| p.content_type == "text/html");
    assert!(html_part);
    // The HTML as sent (decoded): find it raw in the message's decoded parts via a second parse path.
    let html = decoded_html(&raw);
    (text, html)
}

/// The decoded HTML body of a message (mail-builder may base64 or quoted-printable encode it).
fn decoded_html(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw).to_string();
    let start = s.find("Content-Type: text/html").expect("an HTML part");
    let part = &s[start..];
    let body_at = part.find("\r\n\r\n").unwrap() + 4;
    let header = &part[..body_at];
    let end = part[body_at..].find("\r\n--").map_or(part.len(), |e| body_at + e);
    let body = &part[body_at..end];
    if header.contains("base64") {
        use base64::Engine as _;
        let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(clean).unwrap()).unwrap()
    } else if header.contains("quoted-printable") {
        qp_decode(body)
    } else {
        body.to_string()
    }
}

fn qp_decode(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

/// The digest links, in order, from the text part.
fn links(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.trim().split_once(": https://portal.test/q/digest/"))
        .map(|(label, token)| (label.to_string(), token.trim().to_string()))
        .collect()
}

#[tokio::test]
async fn digests_list_new_items_with_working_single_use_links() {
    let e = env().await;
    let (spam, spam_q) = e.held(&["a@our.test"], "cheap pills", "GTUBE").await;
    let (_virus, _) = e.held(&["a@our.test"], "virus", "VIRUS_FOUND").await;
    let (policy, _) = e.held(&["a@our.test"], "encrypted", "ARCHIVE_ENCRYPTED").await;
    assert_eq!(
        e.q.send_digests().await.unwrap(),
        DigestReport { sent: 1, items: 2 },
        "virus items are not listed"
    );
    let (text, html) = digest_parts(&e);
    assert!(text.contains("cheap pills") && text.contains("encrypted") && !text.contains("virus"));
    let links = links(&text);
    let labels: Vec<&str> = links.iter().map(|(l, _)| l.as_str()).collect();
    // Newest first: the policy item (delete only: users may not release policy items by default), then spam.
    assert_eq!(labels, ["Delete", "Release", "Release and safelist sender", "Delete"], "{text}");
    for (_, token) in &links {
        assert!(html.contains(token.as_str()), "the HTML part carries the same links");
    }
    let claims = e.q.peek(&links[1].1).unwrap();
    assert_eq!(
        (claims.action, claims.item.clone(), claims.recipient.as_str()),
        (DigestAction::Release, spam.clone(), "a@our.test")
    );
    assert_eq!(e.q.peek(&links[0].1).unwrap().item, policy);
    let redeemed = e.q.redeem(&links[1].1).await.unwrap();
    assert_eq!(redeemed.outcome, ActionOutcome::Done);
    assert!(e.spool.load(Queue::Active, &spam_q).is_ok(), "released");
    assert_eq!(e.q.redeem(&links[1].1).await.unwrap_err(), TokenError::AlreadyUsed);
    // The other link for the same item is its own token; the item is already released.
    let other = e.q.redeem(&links[2].1).await.unwrap();
    assert!(matches!(other.outcome, ActionOutcome::AlreadyDone { status: "released", .. }));
    let item = e.q.get(&admin(), spam.as_str()).await.unwrap().item;
    assert_eq!(item.status_by.as_deref(), Some("digest:a@our.test"));
    assert!(e.audit.actions().contains(&"quarantine.digest_release"));
    // Nothing new: no digest.
    assert_eq!(e.q.send_digests().await.unwrap(), DigestReport::default());
    // Digests off for this address: none even with new items.
    e.q.set_digest_enabled(&user("alice", "a@our.test"), "a@our.test", false).await.unwrap();
    e.held(&["a@our.test"], "later", "GTUBE").await;
    assert_eq!(e.q.send_digests().await.unwrap(), DigestReport::default());
}

#[test]
fn tokens_are_bound_expiring_and_tamper_evident() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let key = token::DigestKey::from_bytes(&[7; 32]);
    let item = ItemId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    let claims = TokenClaims {
        action: DigestAction::Release,
        item: item.clone(),
        recipient: "a@our.test".into(),
        expires_at: 2_000,
        nonce: [9; 16],
    };
    let t = key.sign(&claims);
    assert_eq!(key.verify(&t, 1_999).unwrap(), claims);
    assert_eq!(key.verify(&t, 2_000).unwrap_err(), TokenError::Expired);
    assert_eq!(key.verify(&t[..t.len() - 1], 0).unwrap_err(), TokenError::Invalid, "truncated");
    assert_eq!(key.verify(&t[..10], 0).unwrap_err(), TokenError::Invalid, "truncated hard");
    assert_eq!(key.verify(&format!("{t}AA"), 0).unwrap_err(), TokenError::Invalid, "extended");
    assert_eq!(key.verify("", 0).unwrap_err(), TokenError::Invalid);
    assert_eq!(key.verify(&"A".repeat(5000), 0).unwrap_err(), TokenError::Invalid);
    assert_eq!(
        token::DigestKey::from_bytes(&[8; 32]).verify(&t, 0).unwrap_err(),
        TokenError::Invalid,
        "other key"
    );
    // Any single byte changed anywhere (action, expiry, nonce, item, recipient, tag) is refused.
    let raw = b64.decode(&t).unwrap();
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 0x01;
        assert_eq!(key.verify(&b64.encode(&bad), 0).unwrap_err(), TokenError::Invalid, "byte {i}");
    }
    // Re-signing a changed claim needs the key: a changed action, item or recipient with the old tag fails.
    for other in [
        TokenClaims { action: DigestAction::Delete, ..claims.clone() },
        TokenClaims { item: ItemId::parse("BBBBBBBBBBBBBBBBBBBBBB").unwrap(), ..claims.clone() },
        TokenClaims { recipient: "b@our.test".into(), ..claims.clone() },
    ] {
        let forged = b64.decode(key.sign(&other)).unwrap();
        let tag = &raw[raw.len() - 32..];
        let spliced = [&forged[..forged.len() - 32], tag].concat();
        assert_eq!(key.verify(&b64.encode(spliced), 0).unwrap_err(), TokenError::Invalid);
    }
    // Appending to the payload before the tag (length extension style) fails too.
    let extended = [&raw[..raw.len() - 32], b"x", &raw[raw.len() - 32..]].concat();
    assert_eq!(key.verify(&b64.encode(extended), 0).unwrap_err(), TokenError::Invalid);
}

#[tokio::test]
async fn redeem_distinguishes_invalid_expired_and_used() {
    let e = env_with(|c| c.digest.token_lifetime = config::HumanDuration(std::time::Duration::from_secs(1)))
        .await;
    let (id, _) = e.held(&["a@our.test"], "hi", "GTUBE").await;
    let good = e.q.digest_token(DigestAction::Delete, &id, "a@our.test").unwrap();
    let foreign = e.q.digest_token(DigestAction::Delete, &id, "b@our.test").unwrap();
    assert_eq!(e.q.redeem(&foreign).await.unwrap_err(), TokenError::Invalid, "b does not own the item");
    assert_eq!(e.q.redeem("not-a-token").await.unwrap_err(), TokenError::Invalid);
    assert_eq!(e.q.redeem(&good).await.unwrap().outcome, ActionOutcome::Done);
    assert_eq!(e.q.redeem(&good).await.unwrap_err(), TokenError::AlreadyUsed);
    let late = e.q.digest_token(DigestAction::Release, &id, "a@our.test").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(e.q.redeem(&late).await.unwrap_err(), TokenError::Expired);
    let key = std::fs::read_to_string(e.q.config().data_dir.join("keys").join(token::KEY_FILE)).unwrap();
    assert_eq!(key.trim().len(), 64);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(e.q.config().data_dir.join("keys/digest.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640, "readable by a portal in the gateway's group, by no one else");
}

#[tokio::test]
async fn expiry_by_age_and_size_and_reconcile_after_a_crash() {
    let ms = |n| config::HumanDuration(std::time::Duration::from_millis(n));
    let e = env_with(|c| c.quarantine.virus_retention = ms(1)).await;
    let (virus, vq) = e.held(&["a@our.test"], "v", "VIRUS_FOUND").await;
    let (s1, _) = e.held(&["a@our.test"], "s1", "GTUBE").await;
    let (s2, _) = e.held(&["a@our.test"], "s2", "GTUBE").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let size = e.q.get(&admin(), s2.as_str()).await.unwrap().item.size;
    let mut c = (*e.q.config()).clone();
    c.quarantine.spam_max_size = config::ByteSize(u64::try_from(size).unwrap());
    e.q.reload(Arc::new(c));
    let report = e.q.expire().await.unwrap();
    assert_eq!((report.expired_by_age, report.expired_by_size), (1, 1));
    assert!(e.spool.load(Queue::Quarantine, &vq).is_err());
    let status = |id: ItemId| {
        let q = e.q.clone();
        async move { q.get(&admin(), id.as_str()).await.unwrap().item.status }
    };
    assert_eq!(
        (status(virus).await, status(s1).await, status(s2.clone()).await),
        ("expired", "expired", "held")
    );

    // A file committed but never indexed (crash before the index row) is indexed by reconcile.
    let lost = commit(&e.spool, "x@ext.test", &["a@our.test"], &message("lost"), Queue::Quarantine);
    // A release claimed in the store whose move never happened is finished by reconcile.
    let row = e.q.store().quarantine_get(s2.as_str()).await.unwrap().unwrap();
    e.q.store()
        .quarantine_set_status(&row.id, Status::Held, Status::Released, Some("alice"), now_ms())
        .await
        .unwrap();
    let r = e.q.reconcile().await.unwrap();
    assert_eq!((r.indexed, r.finished, r.missing), (1, 1, 0));
    let indexed = e.q.store().quarantine_by_queue_id(lost.as_str()).await.unwrap().unwrap();
    assert!(indexed.symbols_json.contains("GTUBE"), "symbols recovered from the verdict header");
    assert_eq!(e.spool.list(Queue::Active).unwrap(), [QueueId::parse(&row.queue_id).unwrap()]);
    // A held row whose file vanished is marked.
    e.spool.remove(Queue::Quarantine, &lost).unwrap();
    assert_eq!(e.q.reconcile().await.unwrap().missing, 1);
}

#[tokio::test]
async fn tracking_records_intake_quarantine_release_and_delivery_in_order() {
    let e = env().await;
    let tracker = Tracker::spawn(e.q.clone());
    let qid = commit(&e.spool, "s@ext.test", &["a@our.test"], &message("tracked"), Queue::Quarantine);
    tracker.intake(IntakeRecord {
        queue_id: qid.clone(),
        received_at_ms: now_ms(),
        sender: "S@ext.test".into(),
        recipients: vec!["A@our.test".into()],
        subject: "tracked".into(),
        original_subject: None,
        message_id: "M1@ext.test".into(),
        client_ip: "192.0.2.1".into(),
        helo: "client.test".into(),
        tls: false,
        size: 10,
        verdict: "quarantine".into(),
        score: 1000.0,
        symbols: vec![sym("GTUBE")],
        quarantined: true,
    });
    let item = loop {
        if let Some(r) = e.q.store().quarantine_by_queue_id(qid.as_str()).await.unwrap() {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    e.q.release(&user("alice", "a@our.test"), &item.id, ReleaseOptions::default()).await.unwrap();
    let hop: config::NextHop = "smtp://127.0.0.1:2626".parse().unwrap();
    relay::DeliveryObserver::event(
        &tracker,
        &qid,
        &relay::DeliveryEvent::Delivered {
            recipient: "a@our.test".into(),
            next_hop: hop,
            reply: "250 2.0.0 OK".into(),
        },
    );
    let timelines = loop {
        let q = TrackingQuery { message_id: Some("m1@ext.test".into()), ..Default::default() };
        let t = e.q.search_tracking(&admin(), &q).await.unwrap();
        if t.first().is_some_and(|t| t.events.len() >= 5) {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let kinds: Vec<&str> = timelines[0].events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["received", "verdict", "quarantined", "released", "delivered"]);
    assert_eq!(timelines[0].events[4].details["reply"], "250 2.0.0 OK");
    let mine = e.q.search_tracking(&user("alice", "a@our.test"), &TrackingQuery::default()).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(
        e.q.search_tracking(&user("bob", "b@our.test"), &TrackingQuery::default()).await.unwrap().is_empty()
    );
    let by_ip = TrackingQuery {
        client_ip: Some("192.0.2.1".into()),
        verdict: Some("quarantine".into()),
        ..Default::default()
    };
    assert_eq!(e.q.search_tracking(&helpdesk(), &by_ip).await.unwrap().len(), 1);
}

#[test]
fn digest_schedule_is_anchored_at_the_time_of_day() {
    let cfg = |interval: u64, at: &str| config::DigestConfig {
        interval: config::HumanDuration::secs(interval),
        at: at.into(),
        ..Default::default()
    };
    let day = 86_400;
    assert_eq!(next_digest_at(&cfg(day, "08:00"), 10 * day), 10 * day + 8 * 3600);
    assert_eq!(next_digest_at(&cfg(day, "08:00"), 10 * day + 8 * 3600), 11 * day + 8 * 3600);
    assert_eq!(next_digest_at(&cfg(3600, "00:15"), 10 * day + 100), 10 * day + 900);
    assert_eq!(next_digest_at(&cfg(2, ""), 1001), 1002);
}

#[tokio::test]
async fn search_pages_and_rejects_bad_queries() {
    let e = env().await;
    for n in 0..5 {
        e.held(&["a@our.test"], &format!("m{n}"), "GTUBE").await;
    }
    let alice = user("alice", "a@our.test");
    let mut seen = Vec::new();
    let mut q = SearchQuery { limit: Some(2), ..Default::default() };
    loop {
        let page = e.q.search(&alice, &q).await.unwrap();
        seen.extend(page.items.iter().map(|i| i.subject.clone()));
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "no item twice across pages");
    let bad = |q: SearchQuery| {
        let (q2, a) = (e.q.clone(), alice.clone());
        async move { matches!(q2.search(&a, &q).await, Err(QuarantineError::BadQuery(_))) }
    };
    assert!(bad(SearchQuery { kind: Some("worm".into()), ..Default::default() }).await);
    assert!(bad(SearchQuery { cursor: Some("1.../../x".into()), ..Default::default() }).await);
    assert!(bad(SearchQuery { subject: Some("x".repeat(100_000)), ..Default::default() }).await);
    let by_sender = SearchQuery { sender: Some("ext.test".into()), ..Default::default() };
    assert_eq!(e.q.search(&admin(), &by_sender).await.unwrap().items.len(), 5);
    let by_kind = SearchQuery { kind: Some("virus".into()), ..Default::default() };
    assert!(e.q.search(&admin(), &by_kind).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn learning_from_the_quarantine_counts_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let (spool, _) = Spool::open(&c.data_dir.join("spool")).unwrap();
    let store = store::Store::open(&c.data_dir, &c.store).await.unwrap();
    let model = classifier::load(&store, classifier::Settings::from_config(&c)).await.unwrap();
    let learner = classifier::Learner::new(store.clone(), Arc::new(model));
    let audit = Arc::new(MemAudit::default());
    let q = Quarantine::new(store.clone(), local(&spool), Arc::new(c), audit.clone(), Some(learner));
    let e = Env { _dir: dir, q, spool, audit };
    let alice = user("alice", "a@our.test");
    let (spam, _) = e.held(&["a@our.test"], "pills", "GTUBE").await;
    assert_eq!(e.q.learn_spam(&alice, spam.as_str()).await.unwrap(), ActionOutcome::Done);
    assert_eq!(e.q.learn_spam(&alice, spam.as_str()).await.unwrap(), ActionOutcome::Done);
    let (ham, _) = e.held(&["a@our.test"], "lunch", "GTUBE").await;
    let opts = ReleaseOptions { learn_ham: true, safelist_sender: false };
    assert_eq!(e.q.release(&alice, ham.as_str(), opts).await.unwrap(), ActionOutcome::Done);
    let totals = store.classifier_totals().await.unwrap();
    assert_eq!((totals.spam, totals.ham), (1, 1), "each message learned once");
    assert_eq!(e.audit.actions().iter().filter(|a| **a == "quarantine.learn").count(), 2);
}

#[path = "cluster_tests.rs"]
mod cluster_tests;

#[path = "control_tests.rs"]
mod control_tests;
