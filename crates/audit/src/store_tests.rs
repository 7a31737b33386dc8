//! The cluster's trail in the store: nodes copying as they write, verification of every node's chain
//! there, tampering named by node and seq, and catching up after an outage.

use crate::forward::{Limits, Sink, StoreSink};
use crate::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use store::testing::{AuditTamper, TestDb};

/// One node: its data directory and its running trail.
struct Node {
    name: &'static str,
    paths: AuditPaths,
    audit: Audit,
    _dir: tempfile::TempDir,
}

fn event(i: usize) -> Event {
    Event::new(Action::QueueDelete, Actor::Cli { uid: 0 })
        .target(format!("id{i}"))
        .detail("word", format!("w{i}"))
}

fn start(name: &'static str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::start(dir.path(), &config::AuditConfig::default(), name).unwrap();
    Node { name, paths: AuditPaths::new(dir.path()), audit, _dir: dir }
}

/// Write `n` records and sign the head.
async fn write(node: &Node, n: usize) {
    for i in 0..n {
        node.audit.record_durable(event(i)).await.unwrap();
    }
    node.audit.checkpoint().await;
}

/// Wait (at most 20 s) until the store's trail verifies and holds each node's log whole.
async fn until_copied(store: &store::Store, nodes: &[&Node]) -> StoreReport {
    let mut last = None;
    for _ in 0..200 {
        let mut whole = true;
        for node in nodes {
            let r = verify_store(store, Some((node.name, &node.paths))).await.unwrap();
            let local = r.local.clone().unwrap();
            let signed =
                r.nodes.iter().any(|n| n.node == node.name && n.last_checkpoint_seq == Some(local.compared));
            whole &= r.ok && local.not_yet_copied == 0 && signed;
            last = Some(r);
        }
        if whole {
            return verify_store(store, None).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store never held every node's trail: {last:?}");
}

/// Two nodes copying into one store, each with `n` records copied and signed.
async fn cluster(db: &TestDb, n: usize) -> (Node, Node) {
    let (a, b) = (start("mx1"), start("mx2"));
    a.audit.copy_to_store(db.store.clone(), a.name);
    b.audit.copy_to_store(db.open().await, b.name);
    tokio::join!(write(&a, n), write(&b, n));
    let report = until_copied(&db.store, &[&a, &b]).await;
    let heads: Vec<_> = report.nodes.iter().map(|n| (n.node.as_str(), n.head_seq, n.ok)).collect();
    assert_eq!(heads, [("mx1", n as u64, true), ("mx2", n as u64, true)]);
    (a, b)
}

/// The first problem verification finds for `node`, checking that the other nodes still verify.
async fn problem_of(db: &TestDb, node: &Node) -> Problem {
    let report = verify_store(&db.store, Some((node.name, &node.paths))).await.unwrap();
    assert!(!report.ok);
    for n in &report.nodes {
        assert_eq!(n.ok, n.node != node.name, "{n:?}");
    }
    let local = report.local.unwrap();
    assert!(!local.ok, "the store's copy differs from the node's log: {local:?}");
    report.nodes.into_iter().find(|n| n.node == node.name).unwrap().problem.unwrap()
}

async fn line_of(db: &TestDb, node: &str, seq: i64) -> String {
    db.store.audit_chain(node, seq - 1, 1).await.unwrap().pop().unwrap().line
}

#[tokio::test]
async fn two_nodes_share_one_store_trail_on_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    let (a, b) = cluster(&db, 6).await;
    let recent = db.store.audit_recent(None, 100).await.unwrap();
    assert_eq!(recent.len(), 12);
    assert!(recent.windows(2).all(|w| w[0].time >= w[1].time), "newest first");
    let keys: Vec<_> = db.store.audit_nodes().await.unwrap().into_iter().map(|(_, k)| k).collect();
    assert_eq!(keys, [Some(a.audit.public_key().to_string()), Some(b.audit.public_key().to_string())]);
}

#[tokio::test]
async fn one_node_copies_on_sqlite_too() {
    let db = TestDb::sqlite().await;
    let a = start("mx1");
    a.audit.copy_to_store(db.store.clone(), a.name);
    write(&a, 3).await;
    until_copied(&db.store, &[&a]).await;
}

#[tokio::test]
async fn a_modified_row_is_named_by_node_and_seq() {
    let Some(db) = TestDb::postgres().await else { return };
    let (a, _b) = cluster(&db, 6).await;
    let changed = line_of(&db, "mx1", 3).await.replace("\"w2\"", "\"w9\"");
    db.tamper_audit(AuditTamper::SetLine { node: "mx1", seq: 3, line: &changed }).await;
    let p = problem_of(&db, &a).await;
    assert_eq!((p.kind, p.file, p.seq), (ProblemKind::Modified, "store", Some(3)), "{p:?}");
}

#[tokio::test]
async fn a_deleted_row_is_named_by_node_and_seq() {
    let Some(db) = TestDb::postgres().await else { return };
    let (_a, b) = cluster(&db, 6).await;
    db.tamper_audit(AuditTamper::Delete { node: "mx2", seq: 4 }).await;
    let p = problem_of(&db, &b).await;
    assert_eq!((p.kind, p.seq), (ProblemKind::Sequence, Some(5)), "{p:?}");
    assert!(p.message.contains("missing"), "{}", p.message);
}

#[tokio::test]
async fn reordered_rows_are_named_by_node_and_seq() {
    let Some(db) = TestDb::postgres().await else { return };
    let (a, _b) = cluster(&db, 6).await;
    let (two, three) = (line_of(&db, "mx1", 2).await, line_of(&db, "mx1", 3).await);
    db.tamper_audit(AuditTamper::SetLine { node: "mx1", seq: 2, line: &three }).await;
    db.tamper_audit(AuditTamper::SetLine { node: "mx1", seq: 3, line: &two }).await;
    let p = problem_of(&db, &a).await;
    assert_eq!((p.kind, p.seq), (ProblemKind::Sequence, Some(2)), "{p:?}");
    assert!(p.message.contains("reordered"), "{}", p.message);
}

#[tokio::test]
async fn a_store_cut_short_of_its_signed_head_is_caught() {
    let Some(db) = TestDb::postgres().await else { return };
    let (_a, b) = cluster(&db, 6).await;
    db.tamper_audit(AuditTamper::DeleteFrom { node: "mx2", seq: 5 }).await;
    let report = verify_store(&db.store, None).await.unwrap();
    let p = report.nodes[1].problem.clone().unwrap();
    assert_eq!(
        (report.nodes[1].node.as_str(), p.kind, p.seq),
        ("mx2", ProblemKind::Truncated, Some(5)),
        "{p:?}"
    );
    // The node itself knows it sent them: its cursor is past the store's end.
    let local = verify_store(&db.store, Some((b.name, &b.paths))).await.unwrap().local.unwrap();
    assert_eq!((local.compared, local.not_yet_copied), (4, 2));
    let p = local.problem.unwrap();
    assert_eq!((p.kind, p.seq), (ProblemKind::Truncated, Some(5)), "{p:?}");
}

/// A store sink that fails while `down` is set, counting its failures.
struct Flaky {
    inner: StoreSink,
    down: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
}

impl Flaky {
    fn check(&self) -> Result<(), String> {
        if self.down.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err("store down (test)".into());
        }
        Ok(())
    }
}

impl Sink for Flaky {
    const NAME: &'static str = "flaky store";

    async fn send(&mut self, lines: &[Vec<u8>]) -> Result<(), String> {
        self.check()?;
        self.inner.send(lines).await
    }

    async fn caught_up(&mut self, seq: u64) -> Result<(), String> {
        self.check()?;
        self.inner.caught_up(seq).await
    }

    fn reset(&mut self) {}
}

#[tokio::test]
async fn a_store_outage_is_caught_up_without_a_gap() {
    let Some(db) = TestDb::postgres().await else { return };
    let a = start("mx1");
    let (down, failures) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let sink = Flaky {
        inner: StoreSink::new(db.store.clone(), a.name, a.audit.public_key(), a.paths.checkpoints()),
        down: down.clone(),
        failures: failures.clone(),
    };
    let limits = Limits { batch: 2, alert_backlog: 3, retry_max: Duration::from_millis(200) };
    a.audit.forward(sink, a.paths.store_cursor(), limits);
    write(&a, 3).await;
    until_copied(&db.store, &[&a]).await;
    down.store(true, Ordering::SeqCst);
    write(&a, 5).await;
    // The outage is seen and, past alert_backlog unsent records, recorded in the log.
    let alerted = || std::fs::read_to_string(a.paths.log()).unwrap().contains("audit.forward_backlog");
    for _ in 0..200 {
        if failures.load(Ordering::SeqCst) >= 2 && alerted() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failures.load(Ordering::SeqCst) >= 2 && alerted(), "the outage was seen and recorded");
    assert_eq!(db.store.audit_head("mx1").await.unwrap().unwrap().seq, 3, "nothing copied while down");
    down.store(false, Ordering::SeqCst);
    a.audit.checkpoint().await;
    let report = until_copied(&db.store, &[&a]).await;
    // 3 + 5 records, and the backlog alert the outage caused (written to the log, copied too).
    assert!(report.nodes[0].head_seq >= 8, "{report:?}");
    let actions: Vec<String> =
        db.store.audit_chain("mx1", 0, 100).await.unwrap().into_iter().map(|r| r.line).collect();
    assert!(actions.iter().any(|l| l.contains("audit.forward_backlog")), "{actions:?}");
}
