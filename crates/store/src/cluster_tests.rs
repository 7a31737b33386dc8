//! Nodes, quarantined bodies and the release queue on both backends (see [`crate::testing`]).

use crate::quarantine::tests::item;
use crate::testing::{TestDb, store_test};
use crate::*;
use std::collections::BTreeSet;

store_test!(
    heartbeats_are_upserted_listed_by_name_and_forgotten,
    a_node_keeps_its_tag_across_restarts_and_forgetting_it_frees_the_tag,
    nodes_claiming_tags_at_once_never_get_the_same_one,
    a_new_node_is_refused_when_every_tag_is_held,
    a_node_forgotten_while_it_runs_takes_its_tag_back_with_its_heartbeat,
    bodies_are_kept_once_per_indexed_item,
    release_requests_are_claimed_once_until_stale,
    two_nodes_claiming_at_once_never_share_a_request,
    each_node_lists_only_the_items_it_holds,
    a_release_is_queued_once_with_its_request_and_finished_with_its_body,
    a_digest_is_claimed_by_one_node,
);

fn beat(name: &str, at: i64) -> NodeBeat {
    NodeBeat {
        name: name.into(),
        version: "0.1.0".into(),
        started_at_ms: 1_000,
        heartbeat_ms: at,
        queue_depth: 3,
        smtp_listen: "0.0.0.0:25".into(),
        portal_listen: String::new(),
    }
}

/// Index `n` quarantine items (ids of `item(n)`), returning their ids.
async fn held(store: &Store, n: u8) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 1..=n {
        let it = item(i, QuarantineKind::Spam, &["a@our.test"], 1000 + i64::from(i));
        store.quarantine_insert(&it).await.unwrap();
        ids.push(it.id);
    }
    ids
}

async fn heartbeats_are_upserted_listed_by_name_and_forgotten(db: TestDb) {
    let store = db.store.clone();
    store.node_heartbeat(&beat("mx2", 5), 1).await.unwrap();
    store.node_heartbeat(&beat("mx1", 5), 0).await.unwrap();
    store.node_heartbeat(&NodeBeat { queue_depth: 0, ..beat("mx2", 9) }, 1).await.unwrap();
    let nodes = store.nodes().await.unwrap();
    assert_eq!(nodes.iter().map(|n| n.beat.name.as_str()).collect::<Vec<_>>(), ["mx1", "mx2"]);
    assert_eq!(nodes[1], NodeRow { beat: NodeBeat { queue_depth: 0, ..beat("mx2", 9) }, tag: Some(1) });
    assert!(store.node_forget("mx1").await.unwrap());
    assert!(!store.node_forget("mx1").await.unwrap());
    assert_eq!(store.nodes().await.unwrap().len(), 1);
}

/// The tag the store records for node `name` (`None`: none, or no such node).
async fn tag_of(store: &Store, name: &str) -> Option<i64> {
    let row: Option<(Option<i64>,)> = on_pool!(store, |pool| {
        sqlx::query_as("SELECT tag FROM nodes WHERE name = $1").bind(name).fetch_optional(pool).await
    })
    .unwrap();
    row.and_then(|(tag,)| tag)
}

async fn a_node_keeps_its_tag_across_restarts_and_forgetting_it_frees_the_tag(db: TestDb) {
    let store = db.store.clone();
    assert_eq!(store.node_claim_tag(&beat("mx1", 5)).await.unwrap(), 0);
    assert_eq!(store.node_claim_tag(&beat("mx2", 5)).await.unwrap(), 1);
    assert_eq!(
        store.nodes().await.unwrap()[1],
        NodeRow { beat: beat("mx2", 5), tag: Some(1) },
        "a new node's row is its first beat, with its tag"
    );
    // mx1 restarts (after heartbeats): the same tag, and its row keeps its last heartbeat.
    store.node_heartbeat(&beat("mx1", 7), 0).await.unwrap();
    assert_eq!(store.node_claim_tag(&beat("mx1", 9)).await.unwrap(), 0);
    assert_eq!(store.nodes().await.unwrap()[0], NodeRow { beat: beat("mx1", 7), tag: Some(0) });
    // Retired: its tag goes to the next new node, and it comes back with another.
    assert!(store.node_forget("mx1").await.unwrap());
    assert_eq!(tag_of(&store, "mx1").await, None);
    assert_eq!(store.node_claim_tag(&beat("mx3", 10)).await.unwrap(), 0);
    assert_eq!(store.node_claim_tag(&beat("mx1", 11)).await.unwrap(), 2);
    // The lowest free tag, even below a held one.
    assert!(store.node_forget("mx2").await.unwrap());
    assert_eq!(store.node_claim_tag(&beat("mx4", 12)).await.unwrap(), 1);
    assert_eq!(store.node_claim_tag(&beat("mx5", 12)).await.unwrap(), 3);
}

/// Four stores are four nodes' pools: 32 nodes starting at once through them each get a tag of their
/// own (on PostgreSQL the claims' transactions overlap; on SQLite they queue for the write lock).
async fn nodes_claiming_tags_at_once_never_get_the_same_one(db: TestDb) {
    let mut stores = vec![db.store.clone()];
    for _ in 1..4 {
        stores.push(db.open().await);
    }
    let claims = (0..32).map(|n| {
        let store = stores[n % stores.len()].clone();
        async move { store.node_claim_tag(&beat(&format!("mx{n}"), 5)).await.unwrap() }
    });
    let tags = futures_util::future::join_all(claims).await;
    let distinct: BTreeSet<u16> = tags.iter().copied().collect();
    assert_eq!(distinct, (0..32).collect(), "every node its own tag: {tags:?}");
    for (n, tag) in tags.iter().enumerate() {
        assert_eq!(tag_of(&db.store, &format!("mx{n}")).await, Some(i64::from(*tag)));
    }
}

/// Every tag held: a new node gets an error that says what to do; a node holding one still restarts;
/// forgetting a node lets the new one in, with the freed tag.
async fn a_new_node_is_refused_when_every_tag_is_held(db: TestDb) {
    let store = db.store.clone();
    on_pool!(store, |pool| {
        sqlx::query(
            "WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
             INSERT INTO nodes (name, version, started_at_ms, heartbeat_ms, queue_depth, smtp_listen, \
                                portal_listen, tag) \
             SELECT 'old' || CAST(i AS TEXT), 'x', 0, 0, 0, '', '', i + 1 FROM n",
        )
        .bind(i64::from(NODE_TAGS) - 2)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
    .unwrap();
    assert_eq!(store.node_claim_tag(&beat("mx1", 5)).await.unwrap(), 0, "the last free tag");
    let err = store.node_claim_tag(&beat("mx2", 5)).await.unwrap_err();
    assert!(matches!(&err, StoreError::NodeTagsFull { node } if node == "mx2"), "{err}");
    let says = err.to_string();
    assert!(says.contains("1024 queue-id tags") && says.contains("Forget"), "{says}");
    assert_eq!(store.nodes().await.unwrap().len(), 1024, "the refused node is not recorded");
    assert_eq!(store.node_claim_tag(&beat("mx1", 6)).await.unwrap(), 0, "a restart is not refused");
    assert!(store.node_forget("old500").await.unwrap());
    assert_eq!(store.node_claim_tag(&beat("mx2", 7)).await.unwrap(), 501);
}

/// A node forgotten by mistake while it runs takes its tag back with its next heartbeat, unless a new
/// node has claimed it meanwhile: then the heartbeat fails rather than let two nodes share it.
async fn a_node_forgotten_while_it_runs_takes_its_tag_back_with_its_heartbeat(db: TestDb) {
    let store = db.store.clone();
    assert_eq!(store.node_claim_tag(&beat("mx1", 5)).await.unwrap(), 0);
    assert!(store.node_forget("mx1").await.unwrap());
    store.node_heartbeat(&beat("mx1", 6), 0).await.unwrap();
    assert_eq!(tag_of(&store, "mx1").await, Some(0));
    assert_eq!(store.node_claim_tag(&beat("mx2", 7)).await.unwrap(), 1, "tag 0 is held again");
    assert!(store.node_forget("mx1").await.unwrap());
    assert_eq!(store.node_claim_tag(&beat("mx3", 8)).await.unwrap(), 0);
    let taken = store.node_heartbeat(&beat("mx1", 9), 0).await;
    assert!(
        matches!(&taken, Err(StoreError::NodeTagTaken { node, tag: 0 }) if node == "mx1"),
        "mx3 holds tag 0 now: {taken:?}"
    );
    assert_eq!(tag_of(&store, "mx3").await, Some(0));
}

async fn bodies_are_kept_once_per_indexed_item(db: TestDb) {
    let store = db.store.clone();
    let ids = held(&store, 1).await;
    let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let sha = "a".repeat(64);
    assert!(store.body_put(&ids[0], &sha, &body).await.unwrap());
    assert!(!store.body_put(&ids[0], &"b".repeat(64), b"other").await.unwrap(), "idempotent");
    assert_eq!(store.body_get(&ids[0]).await.unwrap(), Some((sha.clone(), body)));
    assert!(store.body_put(&format!("{:Z>22}", "unknown"), &sha, b"x").await.is_err(), "not indexed");
    assert!(store.body_delete(&ids[0]).await.unwrap());
    assert!(!store.body_delete(&ids[0]).await.unwrap());
    assert_eq!(store.body_get(&ids[0]).await.unwrap(), None);
}

async fn release_requests_are_claimed_once_until_stale(db: TestDb) {
    let store = db.store.clone();
    let ids = held(&store, 3).await;
    for (at, id) in ids.iter().enumerate() {
        assert!(store.release_request(id, 100 + at as i64).await.unwrap());
    }
    assert!(!store.release_request(&ids[0], 200).await.unwrap(), "requested once");
    // The two oldest go to mx1; mx2 gets the third, then nothing while the claims are fresh.
    assert_eq!(store.release_claim("mx1", 1_000, 500, 2).await.unwrap(), ids[..2].to_vec());
    assert_eq!(store.release_claim("mx2", 1_100, 500, 10).await.unwrap(), ids[2..].to_vec());
    assert!(store.release_claim("mx2", 1_200, 500, 10).await.unwrap().is_empty());
    // mx1 finished one and died with the other: after 500 ms its claim is stale and mx2 takes it.
    assert!(store.release_done(&ids[0]).await.unwrap());
    assert!(!store.release_done(&ids[0]).await.unwrap());
    assert!(store.release_claim("mx2", 1_499, 500, 10).await.unwrap().is_empty());
    assert_eq!(store.release_claim("mx2", 1_500, 500, 10).await.unwrap(), [ids[1].clone()]);
}

/// Two stores are two nodes (two pools): claiming at once, in small batches, they split the queue
/// between them with no request claimed twice.
async fn two_nodes_claiming_at_once_never_share_a_request(db: TestDb) {
    let a = db.store.clone();
    let b = db.open().await;
    let ids = held(&a, 60).await;
    for id in &ids {
        a.release_request(id, 10).await.unwrap();
    }
    let drain = |store: Store, node: &'static str| async move {
        let mut got = Vec::new();
        // Bounded: 60 requests in batches of 3 take at most 20 non-empty rounds. A node stops at its
        // first empty round: the other one took that batch, and goes on until none is left.
        for _ in 0..100 {
            let batch = store.release_claim(node, 1_000, 60_000, 3).await.unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch);
        }
        got
    };
    let (from_a, from_b) = tokio::join!(drain(a.clone(), "mx1"), drain(b, "mx2"));
    let set_a: BTreeSet<_> = from_a.iter().cloned().collect();
    let set_b: BTreeSet<_> = from_b.iter().cloned().collect();
    assert_eq!(set_a.len() + set_b.len(), from_a.len() + from_b.len(), "no node claimed one twice");
    assert!(
        set_a.is_disjoint(&set_b),
        "claimed by both: {:?}",
        set_a.intersection(&set_b).collect::<Vec<_>>()
    );
    let all: BTreeSet<_> = ids.into_iter().collect();
    assert_eq!(set_a.union(&set_b).cloned().collect::<BTreeSet<_>>(), all, "every request claimed");
}

async fn each_node_lists_only_the_items_it_holds(db: TestDb) {
    let store = db.store.clone();
    for (n, holder) in [(1, "mx1"), (2, "mx2"), (3, "mx1"), (4, "")] {
        let it = ItemRow { holder: holder.into(), ..item(n, QuarantineKind::Spam, &["a@our.test"], 1000) };
        store.quarantine_insert(&it).await.unwrap();
    }
    assert!(
        store
            .quarantine_set_status(
                &item(3, QuarantineKind::Spam, &[], 0).id,
                ItemStatus::Held,
                ItemStatus::Deleted,
                None,
                5
            )
            .await
            .unwrap()
    );
    let mut mine = store.quarantine_held_by("mx1").await.unwrap();
    mine.sort();
    assert_eq!(mine, [item(1, QuarantineKind::Spam, &[], 0).queue_id]);
    assert_eq!(
        store.quarantine_held_by("mx2").await.unwrap(),
        [item(2, QuarantineKind::Spam, &[], 0).queue_id]
    );
    assert!(store.quarantine_held_by("mx3").await.unwrap().is_empty());
    let read = store.quarantine_get(&item(2, QuarantineKind::Spam, &[], 0).id).await.unwrap().unwrap();
    assert_eq!(read.holder, "mx2");
}

async fn a_release_is_queued_once_with_its_request_and_finished_with_its_body(db: TestDb) {
    let (a, b) = (db.store.clone(), db.open().await);
    let it = ItemRow { holder: "mx1".into(), ..item(1, QuarantineKind::Spam, &["a@our.test"], 1000) };
    let sha = "c".repeat(64);
    assert!(a.quarantine_insert_with_body(&it, Some((&sha, b"the queue file"))).await.unwrap());
    let again = ItemRow { id: format!("{:B>22}", "other"), ..it.clone() };
    assert!(!a.quarantine_insert_with_body(&again, Some((&sha, b"x"))).await.unwrap(), "indexed once");
    assert_eq!(b.body_get(&it.id).await.unwrap(), Some((sha.clone(), b"the queue file".to_vec())));
    // Two nodes release at once: one wins, and exactly one request exists.
    let (ra, rb) = tokio::join!(
        a.quarantine_release_queued(&it.id, "alice", 50),
        b.quarantine_release_queued(&it.id, "bob", 51)
    );
    assert!(ra.unwrap() ^ rb.unwrap(), "released once");
    let row = a.quarantine_get(&it.id).await.unwrap().unwrap();
    assert_eq!(row.status, ItemStatus::Released);
    assert!(a.quarantine_held_by("mx1").await.unwrap().is_empty());
    assert!(!a.quarantine_release_queued(&it.id, "carol", 60).await.unwrap(), "not held any more");
    assert_eq!(b.release_claim("mx2", 100, 1_000, 10).await.unwrap(), vec![it.id.clone()]);
    assert!(b.release_delivered(&it.id).await.unwrap());
    assert!(!b.release_delivered(&it.id).await.unwrap());
    assert_eq!(a.body_get(&it.id).await.unwrap(), None, "the body goes with the request");
    assert!(a.release_claim("mx1", 5_000, 1_000, 10).await.unwrap().is_empty());
    // A deleted item is never queued.
    let other = ItemRow { holder: "mx1".into(), ..item(2, QuarantineKind::Spam, &["a@our.test"], 1000) };
    a.quarantine_insert(&other).await.unwrap();
    a.quarantine_set_status(&other.id, ItemStatus::Held, ItemStatus::Deleted, Some("x"), 70).await.unwrap();
    assert!(!b.quarantine_release_queued(&other.id, "bob", 80).await.unwrap());
    assert!(a.release_claim("mx1", 5_000, 1_000, 10).await.unwrap().is_empty());
}

async fn a_digest_is_claimed_by_one_node(db: TestDb) {
    let (a, b) = (db.store.clone(), db.open().await);
    // No preferences yet (last digest 0): two nodes claim the same slot at once, one wins.
    let (ra, rb) =
        tokio::join!(a.digest_claim("x@our.test", 0, 1_000), b.digest_claim("x@our.test", 0, 1_000));
    assert!(ra.unwrap() ^ rb.unwrap(), "claimed once");
    assert_eq!(a.digest_prefs("x@our.test").await.unwrap().last_digest_ms, 1_000);
    assert!(!b.digest_claim("x@our.test", 0, 1_500).await.unwrap(), "read before the other claim: stale");
    assert!(b.digest_claim("x@our.test", 1_000, 2_000).await.unwrap());
    assert_eq!(b.digest_prefs("x@our.test").await.unwrap().last_digest_ms, 2_000);
    a.digest_set_enabled("y@our.test", false).await.unwrap();
    assert!(a.digest_claim("y@our.test", 0, 3_000).await.unwrap());
    assert!(!a.digest_prefs("y@our.test").await.unwrap().enabled, "a claim keeps the preference");
}

/// What migration 0305 makes of a store whose nodes ran before tags: they keep their rows, hold no tag,
/// and each claims one on its next start.
async fn nodes_from_before_tags_claim_one_on_their_next_start(db: TestDb) {
    let store = db.store.clone();
    for name in ["mx1", "mx2"] {
        on_pool!(store, |pool| {
            sqlx::query(
                "INSERT INTO nodes (name, version, started_at_ms, heartbeat_ms, queue_depth, smtp_listen, \
                 portal_listen) VALUES ($1, '0.1.0', 1000, 5, 3, '0.0.0.0:25', '')",
            )
            .bind(name)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .unwrap();
    }
    assert!(!store.apply_migrations().await.unwrap().is_empty(), "0305 and later applied now");
    let beats = |rows: Vec<NodeRow>| rows.into_iter().map(|r| (r.beat, r.tag)).collect::<Vec<_>>();
    assert_eq!(beats(store.nodes().await.unwrap()), [(beat("mx1", 5), None), (beat("mx2", 5), None)]);
    assert_eq!((tag_of(&store, "mx1").await, tag_of(&store, "mx2").await), (None, None));
    assert_eq!(store.node_claim_tag(&beat("mx2", 9)).await.unwrap(), 0);
    assert_eq!(store.node_claim_tag(&beat("mx1", 9)).await.unwrap(), 1);
    assert_eq!(
        beats(store.nodes().await.unwrap()),
        [(beat("mx1", 5), Some(1)), (beat("mx2", 5), Some(0))],
        "rows kept, with their tags"
    );
}

/// The last migration before node tags.
const BEFORE_NODE_TAGS: i64 = 304;

#[tokio::test]
async fn nodes_from_before_tags_sqlite() {
    nodes_from_before_tags_claim_one_on_their_next_start(TestDb::sqlite_until(Some(BEFORE_NODE_TAGS)).await)
        .await;
}

#[tokio::test]
async fn nodes_from_before_tags_postgres() {
    if let Some(db) = TestDb::postgres_until(Some(BEFORE_NODE_TAGS)).await {
        nodes_from_before_tags_claim_one_on_their_next_start(db).await;
    }
}
