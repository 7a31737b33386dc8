//! The store against real SQLite files in a temporary directory.

use super::*;

fn item(fp: u8, class: Class) -> LearnItem {
    LearnItem { fingerprint: [fp; 32], class, features: vec![u32::from(fp), 1000 + u32::from(fp)] }
}

/// Learn `items`, each Added or Moved item adding `delta` to the weights `at`.
async fn learn(store: &Store, items: &[LearnItem], at: &[u32], delta: f32) -> Vec<LearnOutcome> {
    store
        .classifier_learn(items, 7, 100, |outcomes, _| {
            let n = outcomes.iter().filter(|o| **o != LearnOutcome::AlreadyLearned).count();
            at.iter().map(|&i| (i, delta * n as f32)).collect()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn opens_in_the_data_directory_with_wal_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data, &config::StoreConfig::default()).await.unwrap();
    learn(&store, &[item(1, Class::Spam)], &[0, 7, weights::WEIGHTS as u32 - 1], 0.5).await;
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(store.pool()).await.unwrap();
    assert_eq!(mode, "wal");
    store.close().await;
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&data), mode(&data.join(SQLITE_FILE))), (0o700, 0o600));

    let again = Store::open(&data, &config::StoreConfig::default()).await.unwrap();
    assert_eq!(again.classifier_totals().await.unwrap(), Totals { spam: 1, ham: 0 });
    let w = again.classifier_weights().await.unwrap();
    assert_eq!(w.len(), weights::WEIGHTS);
    assert_eq!((w[0], w[7], w[weights::WEIGHTS - 1], w[8]), (0.5, 0.5, 0.5, 0.0), "first and last bucket");
    assert_eq!(again.classifier_learned(&[1; 32]).await.unwrap(), Some(Class::Spam));
    assert_eq!(again.classifier_learned(&[2; 32]).await.unwrap(), None);
}

#[tokio::test]
async fn unknown_backend_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let settings = config::StoreConfig { backend: "oracle".into() };
    let err = Store::open(dir.path(), &settings).await.unwrap_err();
    assert!(err.to_string().contains("oracle"), "{err}");
}

#[tokio::test]
async fn learning_twice_counts_once_and_relearning_moves_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("t.db")).await.unwrap();
    let spam = item(1, Class::Spam);
    assert_eq!(learn(&store, std::slice::from_ref(&spam), &[10, 11], 1.0).await, [LearnOutcome::Added]);
    assert_eq!(learn(&store, &[spam], &[10, 11], 1.0).await, [LearnOutcome::AlreadyLearned]);
    learn(&store, &[item(2, Class::Ham)], &[11, 12], -0.25).await;
    let w = store.classifier_weights().await.unwrap();
    assert_eq!((w[10], w[11], w[12]), (1.0, 0.75, -0.25), "changes add up");

    // The spam was a mistake: learn it as ham.
    assert_eq!(learn(&store, &[item(1, Class::Ham)], &[10], -2.0).await, [LearnOutcome::Moved]);
    assert_eq!(store.classifier_totals().await.unwrap(), Totals { spam: 0, ham: 2 });
    assert_eq!(store.classifier_weights().await.unwrap()[10], -1.0);
    assert_eq!(store.classifier_learned(&[1; 32]).await.unwrap(), Some(Class::Ham));
}

#[tokio::test]
async fn a_batch_sees_its_own_earlier_items_and_totals_never_go_negative() {
    let store = Store::in_memory().await.unwrap();
    let batch = [item(1, Class::Spam), item(1, Class::Spam), item(1, Class::Ham)];
    let out = learn(&store, &batch, &[], 0.0).await;
    assert_eq!(out, [LearnOutcome::Added, LearnOutcome::AlreadyLearned, LearnOutcome::Moved]);
    assert_eq!(store.classifier_totals().await.unwrap(), Totals { spam: 0, ham: 1 });
    // Changes out of range or not finite are dropped, not stored.
    let out = store
        .classifier_learn(&[item(2, Class::Ham)], 0, 100, |_, _| vec![(u32::MAX, 1.0), (3, f32::NAN)])
        .await
        .unwrap();
    assert_eq!(out, [LearnOutcome::Added]);
    assert!(store.classifier_weights().await.unwrap().iter().all(|w| *w == 0.0));
}

#[tokio::test]
async fn two_handles_on_one_file_do_not_count_a_message_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = Store::open_sqlite(&path).await.unwrap();
    let b = Store::open_sqlite(&path).await.unwrap();
    let batch: Vec<LearnItem> = (0..50).map(|i| item(i, Class::Spam)).collect();
    let (ra, rb) = tokio::join!(learn(&a, &batch, &[1000], 0.5), learn(&b, &batch, &[1000], 0.5));
    let added = ra.into_iter().chain(rb).filter(|o| *o == LearnOutcome::Added).count();
    assert_eq!(added, 50);
    assert_eq!(a.classifier_totals().await.unwrap().spam, 50);
    assert_eq!(a.classifier_weights().await.unwrap()[1000], 25.0, "each message's change once");
}

#[tokio::test]
async fn the_newest_messages_of_each_class_keep_their_features() {
    let store = Store::in_memory().await.unwrap();
    let kept_now = |store: &Store, items: Vec<LearnItem>, now: i64| {
        let store = store.clone();
        async move {
            let mut seen = Vec::new();
            store
                .classifier_learn(&items, now, 2, |_, kept| {
                    seen = kept.to_vec();
                    Vec::new()
                })
                .await
                .unwrap();
            seen
        }
    };
    assert!(kept_now(&store, vec![item(1, Class::Spam), item(2, Class::Spam)], 1).await.is_empty());
    kept_now(&store, vec![item(3, Class::Spam), item(4, Class::Ham)], 2).await;
    let mut kept = kept_now(&store, vec![item(5, Class::Ham)], 3).await;
    kept.sort_by_key(|k| k.fingerprint);
    // Spam 1 was the oldest of three: forgotten (but still learned).
    let fps: Vec<u8> = kept.iter().map(|k| k.fingerprint[0]).collect();
    assert_eq!(fps, [2, 3, 4]);
    assert_eq!(kept[0], Kept { fingerprint: [2; 32], class: Class::Spam, features: vec![2, 1002] });
    assert_eq!(store.classifier_learned(&[1; 32]).await.unwrap(), Some(Class::Spam));
    // A batch of messages already learned reads nothing and changes nothing.
    assert!(kept_now(&store, vec![item(5, Class::Ham)], 4).await.is_empty());
}
