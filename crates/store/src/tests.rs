//! The store on both backends (see [`crate::testing`]): opening, migrations, learning.

use super::*;
use crate::testing::{TestDb, store_test};

store_test!(
    migrations_are_applied_once_and_reported,
    learning_twice_counts_once_and_relearning_moves_the_totals,
    a_batch_sees_its_own_earlier_items_and_totals_never_go_negative,
    two_handles_on_one_database_do_not_count_a_message_twice,
    the_newest_messages_of_each_class_keep_their_features,
    another_feature_version_is_refused_until_a_reset_clears_the_model,
);

/// The feature version the tests learn in.
const VERSION: u32 = 3;

fn item(fp: u8, class: Class) -> LearnItem {
    LearnItem { fingerprint: [fp; 32], class, features: vec![u32::from(fp), 1000 + u32::from(fp)] }
}

/// Learn `items`, each Added or Moved item adding `delta` to the weights `at`.
async fn learn(store: &Store, items: &[LearnItem], at: &[u32], delta: f32) -> Vec<LearnOutcome> {
    store
        .classifier_learn(items, 7, 100, VERSION, |outcomes, _| {
            let n = outcomes.iter().filter(|o| **o != LearnOutcome::AlreadyLearned).count();
            at.iter().map(|&i| (i, delta * n as f32)).collect()
        })
        .await
        .unwrap()
}

/// SQLite only: the file, its permissions, its journal mode and its memory mapping.
#[tokio::test]
async fn opens_in_the_data_directory_with_wal_and_survives_reopening() {
    use std::os::unix::fs::PermissionsExt;
    // The gateway's umask: the store's modes must not depend on a looser one.
    rustix_umask_0077();
    let mode_of = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data, &config::StoreConfig::default()).await.unwrap();
    learn(&store, &[item(1, Class::Spam)], &[0, 7, weights::WEIGHTS as u32 - 1], 0.5).await;
    // SQLite makes the write-ahead log and its index with the database file's mode, shared with the
    // portal's group like it.
    let file = data.join(SQLITE_DIR).join(SQLITE_FILE);
    for side in ["-wal", "-shm"] {
        assert_eq!(mode_of(&PathBuf::from(format!("{}{side}", file.display()))), 0o660, "{side}");
    }
    let pool = store.sqlite_pool().unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(pool).await.unwrap();
    assert_eq!(mode, "wal");
    let (mmap,): (i64,) = sqlx::query_as("PRAGMA mmap_size").fetch_one(pool).await.unwrap();
    assert_eq!(mmap as u64, SQLITE_MMAP_SIZE, "the file is read through a shared mapping");
    store.close().await;
    assert_eq!((mode_of(&data), mode_of(&data.join(SQLITE_DIR)), mode_of(&file)), (0o710, 0o2770, 0o660));
    assert_eq!(sqlite_path(&data), file);

    let again = Store::open(&data, &config::StoreConfig::default()).await.unwrap();
    assert_eq!(again.classifier_totals().await.unwrap(), Totals { spam: 1, ham: 0 });
    let w = again.classifier_weights().await.unwrap();
    assert_eq!(w.len(), weights::WEIGHTS);
    assert_eq!((w[0], w[7], w[weights::WEIGHTS - 1], w[8]), (0.5, 0.5, 0.5, 0.0), "first and last bucket");
    assert_eq!(again.classifier_learned(&[1; 32]).await.unwrap(), Some(Class::Spam));
    assert_eq!(again.classifier_learned(&[2; 32]).await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_postgres_fails_promptly_naming_it_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let settings = config::StoreConfig {
        backend: config::StoreBackend::Postgres,
        // Port 1 on loopback: nothing listens there.
        url: "postgres://gw:s3cret@127.0.0.1:1/test".into(),
        connect_timeout: config::HumanDuration::secs(5),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let err = Store::open(dir.path(), &settings).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("postgres://gw:***@127.0.0.1:1/test"), "{text}");
    assert!(!text.contains("s3cret") && !format!("{err:?}").contains("s3cret"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let err = Store::migrate(dir.path(), &settings).await.unwrap_err();
    assert!(matches!(err, StoreError::Open { .. } | StoreError::Unreachable { .. }), "{err}");
}

/// PostgreSQL: nodes starting together on a new schema take turns migrating it (sqlx's migrator holds
/// an advisory lock), so every one opens and each migration is applied once.
#[tokio::test]
async fn nodes_opening_a_new_schema_at_once_migrate_it_once() {
    let Some((db, stores)) = TestDb::postgres_opened_by(4).await else { return };
    assert_eq!(stores.len(), 4);
    let versions: Vec<(i64,)> = on_pool!(db.store, |pool| {
        sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version").fetch_all(pool).await
    })
    .unwrap();
    assert_eq!(versions.len(), SQLITE_MIGRATIONS.iter().count(), "{versions:?}");
    for store in &stores {
        assert!(store.apply_migrations().await.unwrap().is_empty());
        assert_eq!(store.classifier_totals().await.unwrap(), Totals::default());
    }
}

/// PostgreSQL: migrating a new schema leaves the searched tables analysed (whether or not the server
/// runs autovacuum), `doctor`'s autovacuum question gets an answer, and the connections run with `jit`
/// off; SQLite has no such questions.
#[tokio::test]
async fn migrations_leave_postgres_statistics_fresh() {
    let sqlite = TestDb::sqlite().await;
    assert_eq!(
        Store::autovacuum_off(std::path::Path::new("/nonexistent"), sqlite.settings()).await.unwrap(),
        None
    );
    sqlite.store.refresh_statistics().await.unwrap();
    let Some(db) = TestDb::postgres().await else { return };
    assert!(
        Store::autovacuum_off(std::path::Path::new("/nonexistent"), db.settings()).await.unwrap().is_some()
    );
    let analysed: Vec<(String,)> = on_pool!(db.store, |pool| {
        sqlx::query_as(
            "SELECT relname::text FROM pg_stat_user_tables WHERE schemaname = current_schema() \
             AND last_analyze IS NOT NULL ORDER BY relname",
        )
        .fetch_all(pool)
        .await
    })
    .unwrap();
    let analysed: Vec<&str> = analysed.iter().map(|(t,)| t.as_str()).collect();
    for table in ["quarantine_items", "quarantine_owners", "quarantine_words", "tracking_messages"] {
        assert!(analysed.contains(&table), "{table} not analysed: {analysed:?}");
    }
    let (jit,): (String,) =
        on_pool!(db.store, |pool| sqlx::query_as("SHOW jit").fetch_one(pool).await).unwrap();
    assert_eq!(jit, "off", "the store's connections never JIT-compile a plan");
}

/// PostgreSQL over TLS: rustls with ring (`sslmode=require`), against the test server's certificate.
#[tokio::test]
async fn postgres_over_tls_works() {
    let Some(db) = TestDb::postgres_over_tls().await else { return };
    let (tls,): (bool,) = on_pool!(db.store, |pool| {
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(pool).await
    })
    .unwrap();
    assert!(tls, "the connection is encrypted");
    db.store.classifier_totals().await.unwrap();
}

async fn migrations_are_applied_once_and_reported(db: TestDb) {
    let again = db.store.apply_migrations().await.unwrap();
    assert!(again.is_empty(), "opening applied everything: {again:?}");
    // A second node opening the same database finds it up to date.
    let other = db.open().await;
    assert!(other.apply_migrations().await.unwrap().is_empty());
    assert!(
        Store::exists(std::path::Path::new("/nonexistent"), db.settings())
            == (db.backend() == config::StoreBackend::Postgres)
    );
}

async fn learning_twice_counts_once_and_relearning_moves_the_totals(db: TestDb) {
    let store = db.store.clone();
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

async fn a_batch_sees_its_own_earlier_items_and_totals_never_go_negative(db: TestDb) {
    let store = db.store.clone();
    let batch = [item(1, Class::Spam), item(1, Class::Spam), item(1, Class::Ham)];
    let out = learn(&store, &batch, &[], 0.0).await;
    assert_eq!(out, [LearnOutcome::Added, LearnOutcome::AlreadyLearned, LearnOutcome::Moved]);
    assert_eq!(store.classifier_totals().await.unwrap(), Totals { spam: 0, ham: 1 });
    // Changes out of range or not finite are dropped, not stored.
    let out = store
        .classifier_learn(&[item(2, Class::Ham)], 0, 100, VERSION, |_, _| {
            vec![(u32::MAX, 1.0), (3, f32::NAN)]
        })
        .await
        .unwrap();
    assert_eq!(out, [LearnOutcome::Added]);
    assert!(store.classifier_weights().await.unwrap().iter().all(|w| *w == 0.0));
}

/// Two handles are two processes (SQLite) or two nodes (PostgreSQL) learning the same batch at once,
/// for a few rounds (without the learning lock, PostgreSQL counts a message twice in most rounds).
async fn two_handles_on_one_database_do_not_count_a_message_twice(db: TestDb) {
    let a = db.store.clone();
    let b = db.open().await;
    // Both connected before they race (a pool connects lazily).
    assert_eq!(a.classifier_totals().await.unwrap(), b.classifier_totals().await.unwrap());
    for round in 1..=4u8 {
        let batch: Vec<LearnItem> = (0..50).map(|i| item(round * 50 + i, Class::Spam)).collect();
        let (ra, rb) = tokio::join!(learn(&a, &batch, &[1000], 0.5), learn(&b, &batch, &[1000], 0.5));
        let added = ra.into_iter().chain(rb).filter(|o| *o == LearnOutcome::Added).count();
        assert_eq!(added, 50, "round {round}");
        assert_eq!(a.classifier_totals().await.unwrap().spam, 50 * u64::from(round));
        let w = a.classifier_weights().await.unwrap()[1000];
        assert_eq!(w, 25.0 * f32::from(round), "each message's change once");
    }
}

async fn the_newest_messages_of_each_class_keep_their_features(db: TestDb) {
    let store = db.store.clone();
    let kept_now = |store: &Store, items: Vec<LearnItem>, now: i64| {
        let store = store.clone();
        async move {
            let mut seen = Vec::new();
            store
                .classifier_learn(&items, now, 2, VERSION, |_, kept| {
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

#[tokio::test]
async fn a_store_at_the_old_place_in_the_data_directory_is_still_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let old = Store::open_sqlite(&data.join(SQLITE_FILE)).await.unwrap();
    learn(&old, &[item(1, Class::Spam)], &[0], 0.5).await;
    old.close().await;
    assert_eq!(sqlite_path(&data), data.join(SQLITE_FILE));
    let store = Store::open(&data, &config::StoreConfig::default()).await.unwrap();
    assert_eq!(store.classifier_totals().await.unwrap(), Totals { spam: 1, ham: 0 });
    assert!(!data.join(SQLITE_DIR).exists(), "no second, empty store beside the old one");
}

/// The umask `main` sets (0077), for tests of the modes the store gives its files.
fn rustix_umask_0077() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

#[tokio::test]
async fn a_store_at_the_old_place_moves_into_its_directory_whole_when_nothing_else_has_it_open() {
    use relocate::{Relocation, move_legacy_sqlite};
    use std::os::unix::fs::PermissionsExt;
    rustix_umask_0077();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let old_path = data.join(SQLITE_FILE);
    let new_path = data.join(SQLITE_DIR).join(SQLITE_FILE);
    let old = Store::open_sqlite(&old_path).await.unwrap();
    learn(&old, &[item(1, Class::Spam)], &[0], 0.5).await;
    // Another process (a portal started before) has it open: left where it is, still the store.
    assert_eq!(move_legacy_sqlite(&data).await.unwrap(), Relocation::Busy { path: old_path.clone() });
    assert!(old_path.is_file() && !new_path.exists());
    assert_eq!(old.classifier_totals().await.unwrap(), Totals { spam: 1, ham: 0 });

    // What a crash leaves: the database and a write-ahead log holding the last transactions.
    let crashed = dir.path().join("crashed");
    std::fs::create_dir(&crashed).unwrap();
    for f in ["", "-wal", "-shm"] {
        std::fs::copy(
            format!("{}{f}", old_path.display()),
            format!("{}{f}", crashed.join(SQLITE_FILE).display()),
        )
        .unwrap();
    }
    assert!(std::fs::metadata(format!("{}-wal", crashed.join(SQLITE_FILE).display())).unwrap().len() > 0);
    old.close().await;
    for data in [&data, &crashed] {
        let moved = move_legacy_sqlite(data).await.unwrap();
        let (from, to) = (data.join(SQLITE_FILE), data.join(SQLITE_DIR).join(SQLITE_FILE));
        assert_eq!(moved, Relocation::Moved { from: from.clone(), to: to.clone() });
        for side in ["", "-wal", "-shm", "-journal"] {
            assert!(!PathBuf::from(format!("{}{side}", from.display())).exists(), "{side} left behind");
        }
        assert_eq!(std::fs::metadata(&to).unwrap().permissions().mode() & 0o777, 0o660);
        assert_eq!(sqlite_path(data), to);
        let store = Store::open(data, &config::StoreConfig::default()).await.unwrap();
        assert_eq!(
            store.classifier_totals().await.unwrap(),
            Totals { spam: 1, ham: 0 },
            "{}",
            data.display()
        );
        let (mode,): (String,) =
            sqlx::query_as("PRAGMA journal_mode").fetch_one(store.sqlite_pool().unwrap()).await.unwrap();
        assert_eq!(mode, "wal", "back in WAL mode at the new place");
        store.close().await;
        assert_eq!(move_legacy_sqlite(data).await.unwrap(), Relocation::NotNeeded);
    }
}

/// The pool keeps `min_connections` open without being asked (so a search does not wait for one); 5 is
/// more than opening and migrating leaves open by itself.
#[tokio::test]
async fn the_pool_keeps_its_minimum_of_connections_open() {
    let dir = tempfile::tempdir().unwrap();
    let settings = config::StoreConfig { min_connections: 5, ..Default::default() };
    let store = Store::open(&dir.path().join("data"), &settings).await.unwrap();
    let pool = store.sqlite_pool().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pool.size() < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(pool.size() >= 5, "{} connections open", pool.size());
    store.close().await;
}

/// A link planted beside the database (or in its place) while the store is closed is refused by
/// name, and nothing is written through it.
#[tokio::test]
async fn a_link_in_place_of_the_database_or_its_log_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Store::open(&data, &config::StoreConfig::default()).await.unwrap().close().await;
    let file = data.join(SQLITE_DIR).join(SQLITE_FILE);
    let elsewhere = dir.path().join("a queue file");
    std::fs::write(&elsewhere, b"mail").unwrap();
    for side in ["-wal", "-shm", "-journal"] {
        let link = PathBuf::from(format!("{}{side}", file.display()));
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let err = Store::open(&data, &config::StoreConfig::default()).await.err().unwrap();
        assert!(matches!(err, StoreError::Link { ref path } if *path == link), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::remove_file(&link).unwrap();
    }
    assert_eq!(std::fs::read(&elsewhere).unwrap(), b"mail");
    let moved = dir.path().join("the real database");
    std::fs::rename(&file, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &file).unwrap();
    let err = Store::open(&data, &config::StoreConfig::default()).await.err().unwrap();
    assert!(matches!(err, StoreError::Link { ref path } if *path == file), "{err}");
    std::fs::remove_file(&file).unwrap();
    std::fs::rename(&moved, &file).unwrap();
    Store::open(&data, &config::StoreConfig::default()).await.unwrap().close().await;
}

#[tokio::test]
async fn a_store_at_both_places_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Store::open(&data, &config::StoreConfig::default()).await.unwrap().close().await;
    Store::open_sqlite(&data.join(SQLITE_FILE)).await.unwrap().close().await;
    let err = relocate::move_legacy_sqlite(&data).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::TwoStores { .. }), "{text}");
    assert!(
        text.contains(&data.join(SQLITE_FILE).display().to_string()) && text.contains("store/portcullis.db")
    );
    assert!(data.join(SQLITE_FILE).is_file() && data.join(SQLITE_DIR).join(SQLITE_FILE).is_file());
}

async fn another_feature_version_is_refused_until_a_reset_clears_the_model(db: TestDb) {
    let store = db.store.clone();
    assert_eq!(store.classifier_feature_version().await.unwrap(), None, "nothing learned yet");
    learn(&store, &[item(1, Class::Spam), item(2, Class::Ham)], &[10], 0.5).await;
    assert_eq!(
        store.classifier_feature_version().await.unwrap(),
        Some(VERSION),
        "the first learning records it"
    );

    // A build with other features: refused before anything is read or written.
    let refused = store
        .classifier_learn(&[item(3, Class::Spam)], 8, 100, VERSION + 1, |_, _| {
            panic!("no changes are asked for")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::FeatureVersion { stored: VERSION, expected } if expected == VERSION + 1)
    );
    assert_eq!(store.classifier_totals().await.unwrap(), Totals { spam: 1, ham: 1 });
    assert_eq!(store.classifier_learned(&[3; 32]).await.unwrap(), None);
    assert_eq!(store.classifier_weights().await.unwrap()[10], 1.0);

    let cleared = store.classifier_reset(VERSION + 1).await.unwrap();
    assert_eq!(
        cleared,
        Cleared { totals: Totals { spam: 1, ham: 1 }, learned: 2, feature_version: Some(VERSION) }
    );
    assert_eq!(store.classifier_feature_version().await.unwrap(), Some(VERSION + 1));
    assert_eq!(store.classifier_totals().await.unwrap(), Totals::default());
    assert!(store.classifier_weights().await.unwrap().iter().all(|w| *w == 0.0));
    assert_eq!(store.classifier_learned(&[1; 32]).await.unwrap(), None, "learned messages are forgotten");

    // Learning starts over in the new version: a message learned before is new again, nothing is kept.
    let outcomes = store
        .classifier_learn(&[item(1, Class::Spam)], 9, 100, VERSION + 1, |_, kept| {
            assert!(kept.is_empty(), "no features of the old space are kept");
            vec![(10, 0.25)]
        })
        .await
        .unwrap();
    assert_eq!(outcomes, [LearnOutcome::Added]);
    assert_eq!(store.classifier_weights().await.unwrap()[10], 0.25);
}

/// What migration 0304 makes of stores made before it: a model with anything learned counts as
/// feature version 0 (refused until reset), a store that learned nothing as having no model yet.
async fn stores_from_before_feature_versions(learned: TestDb, empty: TestDb) {
    on_pool!(learned.store, |pool| {
        sqlx::query(
            "INSERT INTO classifier_learned (fingerprint, class, learned_at, features) VALUES ($1, 1, 7, NULL)",
        )
        .bind(&[1u8; 32][..])
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("UPDATE classifier_totals SET spam = 1 WHERE id = 1").execute(pool).await.unwrap();
    });
    for db in [&learned, &empty] {
        assert!(!db.store.apply_migrations().await.unwrap().is_empty(), "0304 and later applied now");
    }
    assert_eq!(empty.store.classifier_feature_version().await.unwrap(), None);
    assert_eq!(learned.store.classifier_feature_version().await.unwrap(), Some(0));
    let err = learned
        .store
        .classifier_learn(&[item(2, Class::Ham)], 8, 100, VERSION, |_, _| Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FeatureVersion { stored: 0, expected: VERSION }), "{err}");
    let cleared = learned.store.classifier_reset(VERSION).await.unwrap();
    assert_eq!(cleared, Cleared { totals: Totals { spam: 1, ham: 0 }, learned: 1, feature_version: Some(0) });
    assert_eq!(learn(&learned.store, &[item(1, Class::Spam)], &[], 0.0).await, [LearnOutcome::Added]);
    assert_eq!(learn(&empty.store, &[item(1, Class::Spam)], &[], 0.0).await, [LearnOutcome::Added]);
}

/// The last migration before feature versions.
const BEFORE_FEATURE_VERSIONS: i64 = 303;

#[tokio::test]
async fn stores_from_before_feature_versions_sqlite() {
    let until = Some(BEFORE_FEATURE_VERSIONS);
    stores_from_before_feature_versions(TestDb::sqlite_until(until).await, TestDb::sqlite_until(until).await)
        .await;
}

#[tokio::test]
async fn stores_from_before_feature_versions_postgres() {
    let until = Some(BEFORE_FEATURE_VERSIONS);
    if let (Some(learned), Some(empty)) =
        (TestDb::postgres_until(until).await, TestDb::postgres_until(until).await)
    {
        stores_from_before_feature_versions(learned, empty).await;
    }
}
