//! Nodes, quarantined bodies and the release queue on both backends (see [`crate::testing`]).

use crate::quarantine::tests::item;
use crate::testing::{TestDb, store_test};
use crate::*;
use std::collections::BTreeSet;

store_test!(
    heartbeats_are_upserted_listed_by_name_and_forgotten,
    bodies_are_kept_once_per_indexed_item,
    release_requests_are_claimed_once_until_stale,
    two_nodes_claiming_at_once_never_share_a_request,
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
    store.node_heartbeat(&beat("mx2", 5)).await.unwrap();
    store.node_heartbeat(&beat("mx1", 5)).await.unwrap();
    store.node_heartbeat(&NodeBeat { queue_depth: 0, ..beat("mx2", 9) }).await.unwrap();
    let nodes = store.nodes().await.unwrap();
    assert_eq!(nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["mx1", "mx2"]);
    assert_eq!(nodes[1], NodeRow { queue_depth: 0, ..beat("mx2", 9) });
    assert!(store.node_forget("mx1").await.unwrap());
    assert!(!store.node_forget("mx1").await.unwrap());
    assert_eq!(store.nodes().await.unwrap().len(), 1);
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
