//! Two nodes sharing one PostgreSQL schema: two spools, two quarantines, one store
//! (`store::testing`; skipped with the store's tests when `PORTCULLIS_TEST_POSTGRES=skip`).

use super::*;
use crate::tests::local;
use store::testing::TestDb;

/// One node: its own data directory and spool, the shared schema.
struct Node {
    _dir: tempfile::TempDir,
    q: Quarantine,
    spool: Spool,
}

async fn node(db: &TestDb, name: &str, tag: u16, tweak: impl FnOnce(&mut config::Config)) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.store = db.settings().clone();
    c.cluster.node_name = name.into();
    tweak(&mut c);
    let tag = spool::NodeTag::new(tag).unwrap();
    let (spool, _) = Spool::open_as(&c.data_dir.join("spool"), tag, spool::Recycling::default()).unwrap();
    let store = store::Store::open(&c.data_dir, &c.store).await.unwrap();
    let q = Quarantine::new(store, local(&spool), Arc::new(c), Arc::new(MemAudit::default()), None);
    Node { _dir: dir, q, spool }
}

/// A fresh schema and nodes `a` and `b` on it; `None` when PostgreSQL tests are skipped.
async fn two_nodes() -> Option<(TestDb, Node, Node)> {
    let db = TestDb::postgres().await?;
    let (a, b) = (node(&db, "a", 0, |_| {}).await, node(&db, "b", 1, |_| {}).await);
    Some((db, a, b))
}

impl Node {
    async fn held(&self, subject: &str) -> (ItemId, QueueId) {
        let qid = commit(&self.spool, "s@ext.test", &["a@our.test"], &message(subject), Queue::Quarantine);
        let id = self
            .q
            .hold(&Hold { queue_id: qid.clone(), score: 10.0, symbols: vec![sym("GTUBE")] })
            .await
            .unwrap();
        (id, qid)
    }

    fn queue(&self, q: Queue) -> Vec<QueueId> {
        self.spool.list(q).unwrap()
    }

    async fn status(&self, id: &ItemId) -> &'static str {
        self.q.get(&admin(), id.as_str()).await.unwrap().item.status
    }
}

#[tokio::test]
async fn held_on_a_released_on_b_is_delivered_once_and_a_drops_its_copy() {
    let Some((_db, a, b)) = two_nodes().await else { return };
    let (id, qid) = a.held("cross").await;
    let original = a.q.raw(&admin(), id.as_str()).await.unwrap().bytes;
    // B shows, downloads and searches what A holds, from the store.
    let seen = b.q.get(&admin(), id.as_str()).await.unwrap();
    assert!(seen.checksum_ok && seen.text.contains("buy now"), "{seen:?}");
    assert_eq!(b.q.raw(&admin(), id.as_str()).await.unwrap().bytes, original);
    let alice = user("alice", "a@our.test");
    assert_eq!(b.q.search(&alice, &SearchQuery::default()).await.unwrap().items.len(), 1);

    assert_eq!(
        b.q.release(&alice, id.as_str(), ReleaseOptions::default()).await.unwrap(),
        ActionOutcome::Done
    );
    assert!(matches!(
        a.q.release(&alice, id.as_str(), ReleaseOptions::default()).await.unwrap(),
        ActionOutcome::AlreadyDone { status: "released", .. }
    ));
    assert_eq!(b.q.deliver_released().await.unwrap(), 1);
    assert_eq!(a.q.deliver_released().await.unwrap(), 0, "claimed and finished by B");
    assert_eq!(b.q.deliver_released().await.unwrap(), 0);
    assert_eq!(b.queue(Queue::Active), vec![qid.clone()], "in B's delivery queue once, same queue id");
    let msg = b.spool.load(Queue::Active, &qid).unwrap();
    assert_eq!(b.spool.read_content(&msg).unwrap(), original);
    assert_eq!(msg.envelope.recipients, ["a@our.test"]);
    assert!(b.spool.take_request(spool::ControlRequest::Rescan), "B's gateway is told");

    // A still has its copy; its reconcile removes it without delivering it or marking anything.
    assert_eq!(a.queue(Queue::Quarantine), vec![qid.clone()]);
    let r = a.q.reconcile().await.unwrap();
    assert_eq!((r.indexed, r.finished, r.missing), (0, 1, 0));
    assert!(a.queue(Queue::Quarantine).is_empty() && a.queue(Queue::Active).is_empty());
    assert_eq!(b.q.reconcile().await.unwrap(), ReconcileReport::default());
    assert_eq!(a.status(&id).await, "released");
    assert!(a.q.store().body_get(id.as_str()).await.unwrap().is_none(), "the body goes once delivered");
}

#[tokio::test]
async fn releasing_on_the_holder_itself_uses_the_same_queue() {
    let Some((_db, a, _b)) = two_nodes().await else { return };
    let (id, qid) = a.held("local").await;
    a.q.release(&admin(), id.as_str(), ReleaseOptions::default()).await.unwrap();
    assert_eq!(a.q.deliver_released().await.unwrap(), 1);
    assert_eq!(a.queue(Queue::Active), [qid]);
    assert!(a.queue(Queue::Quarantine).is_empty(), "the holder's copy goes as it is delivered");
    assert_eq!(a.q.reconcile().await.unwrap(), ReconcileReport::default());
}

#[tokio::test]
async fn deleted_on_b_is_gone_from_a_at_its_reconcile() {
    let Some((_db, a, b)) = two_nodes().await else { return };
    let (id, qid) = a.held("bye").await;
    assert_eq!(b.q.delete(&admin(), id.as_str()).await.unwrap(), ActionOutcome::Done);
    assert!(b.q.store().body_get(id.as_str()).await.unwrap().is_none());
    assert_eq!(a.queue(Queue::Quarantine), [qid]);
    let r = a.q.reconcile().await.unwrap();
    assert_eq!((r.finished, r.missing), (1, 0));
    assert!(a.queue(Queue::Quarantine).is_empty());
    assert_eq!(b.q.deliver_released().await.unwrap() + a.q.deliver_released().await.unwrap(), 0);
    assert!(a.queue(Queue::Active).is_empty() && b.queue(Queue::Active).is_empty(), "never delivered");
    assert_eq!(b.status(&id).await, "deleted");
}

#[tokio::test]
async fn a_release_is_delivered_while_the_holder_is_dead_and_its_copy_dropped_when_it_returns() {
    let Some((db, a, b)) = two_nodes().await else { return };
    let (id, qid) = a.held("while away").await;
    // A dies: its quarantine is gone, its spool stays on its disk.
    let Node { _dir: a_dir, q: a_q, spool: a_spool } = a;
    drop(a_q);
    b.q.release(&admin(), id.as_str(), ReleaseOptions::default()).await.unwrap();
    assert_eq!(b.q.deliver_released().await.unwrap(), 1);
    assert_eq!(b.queue(Queue::Active), vec![qid.clone()]);
    // B does not judge A's items: nothing of A's is "missing" from B's spool.
    let (other, _) = {
        let c = node(&db, "a", 0, |_| {}).await;
        let held = c.held("another of A's").await;
        drop(c);
        held
    };
    assert_eq!(b.q.reconcile().await.unwrap().missing, 0);
    assert_eq!(b.status(&other).await, "held");
    // A comes back on its spool: its copy of the released message goes, undelivered.
    let c = config(a_dir.path());
    let c = config::Config {
        store: db.settings().clone(),
        cluster: config::ClusterConfig { node_name: "a".into(), ..Default::default() },
        ..c
    };
    let store = store::Store::open(&c.data_dir, &c.store).await.unwrap();
    let back = Quarantine::new(store, local(&a_spool), Arc::new(c), Arc::new(MemAudit::default()), None);
    let r = back.reconcile().await.unwrap();
    assert_eq!((r.finished, r.missing), (1, 0));
    assert!(
        a_spool.list(Queue::Quarantine).unwrap().is_empty()
            && a_spool.list(Queue::Active).unwrap().is_empty()
    );
}

#[tokio::test]
async fn a_claim_left_by_a_dead_node_is_taken_over_after_it_goes_stale() {
    let Some(db) = TestDb::postgres().await else { return };
    let ms = |n| config::HumanDuration(std::time::Duration::from_millis(n));
    let a = node(&db, "a", 0, |_| {}).await;
    let b = node(&db, "b", 1, |c| c.cluster.node_stale_after = ms(300)).await;
    let (id, qid) = a.held("claimed then dead").await;
    a.q.store().quarantine_release_queued(id.as_str(), "admin", now_ms()).await.unwrap();
    // A claims the request and dies before putting it in its queue.
    assert_eq!(a.q.store().release_claim("a", now_ms(), 60_000, 10).await.unwrap(), [id.to_string()]);
    assert_eq!(b.q.deliver_released().await.unwrap(), 0, "A's claim is fresh");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut delivered = 0;
    while delivered == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        delivered = b.q.deliver_released().await.unwrap();
    }
    assert_eq!(delivered, 1, "B takes over once A's claim is stale");
    assert_eq!(b.queue(Queue::Active), [qid]);
}

#[tokio::test]
async fn expiry_on_one_node_and_reconcile_on_the_holder_agree() {
    let Some((_db, a, b)) = two_nodes().await else { return };
    let (id, qid) = a.held("old").await;
    let mut c = (*b.q.config()).clone();
    c.quarantine.spam_retention = config::HumanDuration(std::time::Duration::from_millis(1));
    b.q.reload(Arc::new(c));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(b.q.expire().await.unwrap().expired_by_age, 1);
    assert_eq!(a.q.expire().await.unwrap().expired_by_age, 0, "expired once");
    assert_eq!(a.queue(Queue::Quarantine), [qid]);
    let r = a.q.reconcile().await.unwrap();
    assert_eq!((r.finished, r.missing), (1, 0));
    assert!(a.queue(Queue::Quarantine).is_empty() && a.queue(Queue::Active).is_empty());
    assert_eq!(a.status(&id).await, "expired");
}

#[tokio::test]
async fn two_nodes_on_one_schedule_send_each_digest_once() {
    let Some((_db, a, b)) = two_nodes().await else { return };
    a.held("one").await;
    b.held("two").await;
    let slot = now_ms() + 1;
    let (ra, rb) = tokio::join!(a.q.send_digests_until(slot), b.q.send_digests_until(slot));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.sent + rb.sent, ra.items + rb.items), (1, 2), "{ra:?} {rb:?}");
    assert_eq!(a.queue(Queue::Active).len() + b.queue(Queue::Active).len(), 1);
    let again = a.q.send_digests_until(slot).await.unwrap();
    assert_eq!(again.sent, 0);
}

#[tokio::test]
async fn a_queue_id_another_node_holds_is_never_taken_for_its_item() {
    let Some((_db, a, b)) = two_nodes().await else { return };
    let (id, qid) = a.held("mine").await;
    // Node B happens to give out the same queue id for a message of its own.
    let bytes = a.spool.export(Queue::Quarantine, &qid).unwrap();
    assert!(b.spool.import(&qid, &bytes, Queue::Quarantine).unwrap());
    let hold = Hold { queue_id: qid.clone(), score: 1.0, symbols: vec![] };
    assert!(matches!(b.q.hold(&hold).await, Err(QuarantineError::Forbidden(_))));
    assert_eq!(b.q.reconcile().await.unwrap(), ReconcileReport::default());
    assert_eq!(b.queue(Queue::Quarantine), vec![qid], "kept, not deleted, not delivered");
    assert_eq!(a.status(&id).await, "held");
}
