//! The store against real SQLite files in a temporary directory.

use super::*;
use std::collections::HashMap;

fn item(fp: u8, class: Class, tokens: &[u64]) -> LearnItem {
    LearnItem { fingerprint: [fp; 32], class, tokens: tokens.to_vec() }
}

async fn counts(store: &Store) -> HashMap<u64, (u32, u32)> {
    let mut all = HashMap::new();
    store
        .bayes_tokens(|t| {
            all.insert(t.token, (t.spam, t.ham));
        })
        .await
        .unwrap();
    all
}

#[tokio::test]
async fn opens_in_the_data_directory_with_wal_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data, &config::StoreConfig::default()).await.unwrap();
    store.bayes_learn(&[item(1, Class::Spam, &[u64::MAX, 7])], 100).await.unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(store.pool()).await.unwrap();
    assert_eq!(mode, "wal");
    store.close().await;
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&data), mode(&data.join(SQLITE_FILE))), (0o700, 0o600));

    let again = Store::open(&data, &config::StoreConfig::default()).await.unwrap();
    assert_eq!(again.bayes_totals().await.unwrap(), Totals { spam: 1, ham: 0 });
    let all = counts(&again).await;
    assert_eq!(all[&u64::MAX], (1, 0), "the top bucket and the full 64 bits round-trip");
    assert_eq!(again.bayes_learned(&[1; 32]).await.unwrap(), Some(Class::Spam));
    assert_eq!(again.bayes_learned(&[2; 32]).await.unwrap(), None);
}

#[tokio::test]
async fn unknown_backend_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let settings = config::StoreConfig { backend: "oracle".into() };
    let err = Store::open(dir.path(), &settings).await.unwrap_err();
    assert!(err.to_string().contains("oracle"), "{err}");
}

#[tokio::test]
async fn learning_twice_counts_once_and_relearning_moves_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("t.db")).await.unwrap();
    let spam = item(1, Class::Spam, &[10, 11]);
    assert_eq!(store.bayes_learn(std::slice::from_ref(&spam), 1).await.unwrap(), [LearnOutcome::Added]);
    assert_eq!(store.bayes_learn(&[spam], 2).await.unwrap(), [LearnOutcome::AlreadyLearned]);
    store.bayes_learn(&[item(2, Class::Ham, &[11, 12])], 3).await.unwrap();
    assert_eq!(counts(&store).await, HashMap::from([(10, (1, 0)), (11, (1, 1)), (12, (0, 1))]));

    // The spam was a mistake: learn it as ham.
    let out = store.bayes_learn(&[item(1, Class::Ham, &[10, 11])], 4).await.unwrap();
    assert_eq!(out, [LearnOutcome::Moved]);
    assert_eq!(store.bayes_totals().await.unwrap(), Totals { spam: 0, ham: 2 });
    assert_eq!(counts(&store).await, HashMap::from([(10, (0, 1)), (11, (0, 2)), (12, (0, 1))]));
    assert_eq!(store.bayes_learned(&[1; 32]).await.unwrap(), Some(Class::Ham));
}

#[tokio::test]
async fn a_batch_sees_its_own_earlier_items_and_counts_never_go_negative() {
    let store = Store::in_memory().await.unwrap();
    let out = store
        .bayes_learn(
            &[item(1, Class::Spam, &[1]), item(1, Class::Spam, &[1]), item(1, Class::Ham, &[1, 2])],
            0,
        )
        .await
        .unwrap();
    assert_eq!(out, [LearnOutcome::Added, LearnOutcome::AlreadyLearned, LearnOutcome::Moved]);
    // Token 2 was never counted as spam; moving cannot take it below zero.
    assert_eq!(counts(&store).await, HashMap::from([(1, (0, 1)), (2, (0, 1))]));
    assert_eq!(store.bayes_totals().await.unwrap(), Totals { spam: 0, ham: 1 });
}

#[tokio::test]
async fn two_handles_on_one_file_do_not_count_a_message_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = Store::open_sqlite(&path).await.unwrap();
    let b = Store::open_sqlite(&path).await.unwrap();
    let batch: Vec<LearnItem> = (0..50).map(|i| item(i, Class::Spam, &[u64::from(i), 1000])).collect();
    let (ra, rb) = tokio::join!(a.bayes_learn(&batch, 0), b.bayes_learn(&batch, 0));
    let added = ra.unwrap().into_iter().chain(rb.unwrap()).filter(|o| *o == LearnOutcome::Added).count();
    assert_eq!(added, 50);
    assert_eq!(a.bayes_totals().await.unwrap().spam, 50);
    assert_eq!(counts(&a).await[&1000], (50, 0));
}
