//! The quarantine, tracking and list queries on both backends (see [`crate::testing`]).

use crate::testing::{TestDb, store_test};
use crate::*;

store_test!(
    insert_is_idempotent_by_queue_id_and_reads_back_with_owners,
    search_scopes_filters_and_pages_newest_first,
    hostile_text_is_stored_and_matched_literally,
    a_status_change_is_claimed_once,
    retention_size_and_digest_queries,
    tracking_records_searches_and_orders_events,
    sender_lists_prefs_and_token_marks,
    ties_are_ordered_byte_wise_on_both_backends,
    subject_search_matches_whole_words_in_every_scope,
    items_stored_before_the_word_index_are_indexed_when_migrating,
    a_page_reads_every_rows_owners,
    a_users_subject_search_is_the_same_driven_by_the_word_or_the_mailbox,
);

pub(crate) async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("q.db")).await.unwrap();
    (dir, store)
}

pub(crate) fn item(n: u8, kind: QuarantineKind, owners: &[&str], received_at_ms: i64) -> ItemRow {
    let id = format!("{:A>22}", format!("id{n}"));
    ItemRow {
        id,
        queue_id: format!("{n:016x}"),
        kind,
        sender: format!("s{n}@ext.test"),
        sender_domain: "ext.test".into(),
        from_header: format!("Sender {n} <s{n}@ext.test>"),
        subject: format!("Subject {n}"),
        message_id: format!("m{n}@ext.test"),
        score: f64::from(n),
        symbols_json: r#"[{"name":"GTUBE","score":100.0,"reason":"test string"}]"#.into(),
        received_at_ms,
        held_at_ms: received_at_ms + 5,
        size: 100 * i64::from(n),
        sha256: "0".repeat(64),
        status: ItemStatus::Held,
        status_by: None,
        status_at_ms: None,
        holder: String::new(),
        owners: owners.iter().map(|s| s.to_string()).collect(),
    }
}

fn page(limit: u32) -> ItemFilter {
    ItemFilter { limit, ..Default::default() }
}

fn ids(items: &[ItemRow]) -> Vec<String> {
    items.iter().map(|i| i.queue_id.clone()).collect()
}

async fn insert_is_idempotent_by_queue_id_and_reads_back_with_owners(db: TestDb) {
    let store = db.store.clone();
    let a = item(1, QuarantineKind::Spam, &["b@our.test", "a@our.test"], 1000);
    assert!(store.quarantine_insert(&a).await.unwrap());
    let mut again = a.clone();
    again.id = format!("{:B>22}", "other");
    assert!(!store.quarantine_insert(&again).await.unwrap(), "same queue id: indexed once");
    let got = store.quarantine_get(&a.id).await.unwrap().unwrap();
    assert_eq!(got.owners, ["a@our.test", "b@our.test"]);
    assert_eq!(got.subject, a.subject);
    assert_eq!(store.quarantine_by_queue_id(&a.queue_id).await.unwrap().unwrap().id, a.id);
    assert!(store.quarantine_get(&again.id).await.unwrap().is_none());
    assert_eq!(store.quarantine_held_queue_ids().await.unwrap(), vec![a.queue_id.clone()]);
}

async fn search_scopes_filters_and_pages_newest_first(db: TestDb) {
    let store = db.store.clone();
    for n in 1..=6u8 {
        let kind = if n == 3 { QuarantineKind::Virus } else { QuarantineKind::Spam };
        let owners: &[&str] = if n % 2 == 0 { &["even@our.test"] } else { &["odd@our.test"] };
        store.quarantine_insert(&item(n, kind, owners, 1000 * i64::from(n))).await.unwrap();
    }
    let all = store.quarantine_search(&ItemScope::All, &page(10)).await.unwrap();
    assert_eq!(
        ids(&all),
        [
            "0000000000000006",
            "0000000000000005",
            "0000000000000004",
            "0000000000000003",
            "0000000000000002",
            "0000000000000001"
        ]
    );
    let odd = store.quarantine_search(&ItemScope::Owner("odd@our.test".into()), &page(10)).await.unwrap();
    assert_eq!(ids(&odd), ["0000000000000005", "0000000000000003", "0000000000000001"]);
    let no_virus = ItemFilter { exclude_virus: true, ..page(10) };
    let odd = store.quarantine_search(&ItemScope::Owner("odd@our.test".into()), &no_virus).await.unwrap();
    assert_eq!(ids(&odd), ["0000000000000005", "0000000000000001"]);
    let s = store.quarantine_search(&ItemScope::Sender("s4@ext.test".into()), &page(10)).await.unwrap();
    assert_eq!(ids(&s), ["0000000000000004"]);
    let d = store.quarantine_search(&ItemScope::SenderDomain("ext.test".into()), &page(2)).await.unwrap();
    assert_eq!(ids(&d), ["0000000000000006", "0000000000000005"]);
    // Keyset paging: the next page starts after the last item of this one.
    let last = d.last().unwrap();
    let next = ItemFilter { before: Some((last.received_at_ms, last.id.clone())), ..page(2) };
    let d2 = store.quarantine_search(&ItemScope::SenderDomain("ext.test".into()), &next).await.unwrap();
    assert_eq!(ids(&d2), ["0000000000000004", "0000000000000003"]);
    let odd_next = store.quarantine_search(&ItemScope::Owner("odd@our.test".into()), &next).await.unwrap();
    assert_eq!(ids(&odd_next), ["0000000000000003", "0000000000000001"]);
    let window = ItemFilter { received_from_ms: Some(2000), received_before_ms: Some(4000), ..page(10) };
    assert_eq!(
        ids(&store.quarantine_search(&ItemScope::All, &window).await.unwrap()),
        ["0000000000000003", "0000000000000002"]
    );
    let virus = ItemFilter { kind: Some(QuarantineKind::Virus), ..page(10) };
    assert_eq!(ids(&store.quarantine_search(&ItemScope::All, &virus).await.unwrap()), ["0000000000000003"]);
    let subject = ItemFilter { subject_contains: Some("subject 2".into()), ..page(10) };
    assert_eq!(ids(&store.quarantine_search(&ItemScope::All, &subject).await.unwrap()), ["0000000000000002"]);
    // Case is ignored the same way on both databases, beyond ASCII too.
    let upper = ItemFilter { subject_contains: Some("SUBJECT 2".into()), ..page(10) };
    assert_eq!(ids(&store.quarantine_search(&ItemScope::All, &upper).await.unwrap()), ["0000000000000002"]);
    let mut umlaut = item(9, QuarantineKind::Spam, &["odd@our.test"], 9000);
    umlaut.subject = "Grüße aus ÜBERSEE".into();
    store.quarantine_insert(&umlaut).await.unwrap();
    let folded = ItemFilter { subject_contains: Some("üBERsee".into()), ..page(10) };
    assert_eq!(ids(&store.quarantine_search(&ItemScope::All, &folded).await.unwrap()), ["0000000000000009"]);
}

async fn ties_are_ordered_byte_wise_on_both_backends(db: TestDb) {
    let store = db.store.clone();
    // Same time, ids differing in case: byte order puts "a..." above "B..." (newest first is DESC).
    let mut lower = item(1, QuarantineKind::Spam, &["a@our.test"], 1000);
    lower.id = format!("{:a>22}", "x");
    let mut upper = item(2, QuarantineKind::Spam, &["a@our.test"], 1000);
    upper.id = format!("{:B>22}", "x");
    store.quarantine_insert(&upper).await.unwrap();
    store.quarantine_insert(&lower).await.unwrap();
    for scope in [ItemScope::All, ItemScope::Owner("a@our.test".into())] {
        let got = store.quarantine_search(&scope, &page(10)).await.unwrap();
        assert_eq!(ids(&got), ["0000000000000001", "0000000000000002"], "{scope:?}");
        let next = ItemFilter { before: Some((1000, lower.id.clone())), ..page(10) };
        assert_eq!(ids(&store.quarantine_search(&scope, &next).await.unwrap()), ["0000000000000002"]);
    }
}

async fn hostile_text_is_stored_and_matched_literally(db: TestDb) {
    let store = db.store.clone();
    let mut a = item(1, QuarantineKind::Spam, &["a@our.test"], 1000);
    a.subject = "x' UNION SELECT id, queue_id FROM quarantine_items -- 100%_off".into();
    a.from_header = "\"<script>alert(1)</script>\" <'; DROP TABLE quarantine_items; --@ext.test>".into();
    store.quarantine_insert(&a).await.unwrap();
    store.quarantine_insert(&item(2, QuarantineKind::Spam, &["a@our.test"], 2000)).await.unwrap();
    let got = store.quarantine_get(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (got.subject.as_str(), got.from_header.as_str()),
        (a.subject.as_str(), a.from_header.as_str())
    );
    let f = |s: &str| ItemFilter { subject_contains: Some(s.into()), ..page(10) };
    let hits = store.quarantine_search(&ItemScope::All, &f("union select")).await.unwrap();
    assert_eq!(ids(&hits), ["0000000000000001"]);
    assert_eq!(hits[0].subject, a.subject);
    // `%` and `_` are literal, not wildcards: "subject%" matches nothing, "100%_" matches item 1 only.
    assert!(store.quarantine_search(&ItemScope::All, &f("subject%")).await.unwrap().is_empty());
    assert_eq!(
        ids(&store.quarantine_search(&ItemScope::All, &f("100%_")).await.unwrap()),
        ["0000000000000001"]
    );
    let quote =
        store.quarantine_search(&ItemScope::Owner("a@our.test' OR '1'='1".into()), &page(10)).await.unwrap();
    assert!(quote.is_empty());
    assert_eq!(
        store.quarantine_search(&ItemScope::All, &page(10)).await.unwrap().len(),
        2,
        "nothing dropped"
    );
}

async fn a_status_change_is_claimed_once(db: TestDb) {
    let store = db.store.clone();
    let a = item(1, QuarantineKind::Spam, &["a@our.test"], 1000);
    store.quarantine_insert(&a).await.unwrap();
    let (one, two) = tokio::join!(
        store.quarantine_set_status(&a.id, ItemStatus::Held, ItemStatus::Released, Some("alice"), 5),
        store.quarantine_set_status(&a.id, ItemStatus::Held, ItemStatus::Deleted, Some("bob"), 6),
    );
    assert!(one.unwrap() ^ two.unwrap(), "exactly one wins");
    let got = store.quarantine_get(&a.id).await.unwrap().unwrap();
    assert!(got.status_by.is_some() && got.status_at_ms.is_some());
    assert!(store.quarantine_held_queue_ids().await.unwrap().is_empty());
    // Back to held (a failed release is undone): who and when are cleared.
    assert!(store.quarantine_set_status(&a.id, got.status, ItemStatus::Held, None, 7).await.unwrap());
    let got = store.quarantine_get(&a.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.status_by, got.status_at_ms), (ItemStatus::Held, None, None));
}

async fn retention_size_and_digest_queries(db: TestDb) {
    let store = db.store.clone();
    for n in 1..=4u8 {
        let kind = if n == 4 { QuarantineKind::Virus } else { QuarantineKind::Spam };
        store
            .quarantine_insert(&item(n, kind, &["a@our.test", "b@our.test"], 1000 * i64::from(n)))
            .await
            .unwrap();
    }
    let old = store.quarantine_held_before(QuarantineKind::Spam, 2500, 10).await.unwrap();
    assert_eq!(
        old.iter().map(|(_, q)| q.as_str()).collect::<Vec<_>>(),
        ["0000000000000001", "0000000000000002"]
    );
    let (total, oldest) = store.quarantine_held_sizes(QuarantineKind::Spam, 2).await.unwrap();
    assert_eq!(total, 100 + 200 + 300);
    assert_eq!(oldest.iter().map(|(_, _, s)| *s).collect::<Vec<_>>(), [100, 200]);
    assert_eq!(store.quarantine_held_sizes(QuarantineKind::Policy, 2).await.unwrap(), (0, vec![]));
    // Held at received + 5: items 2 and 3 are new after 2000; the virus item never goes in a digest.
    assert_eq!(store.quarantine_digest_addresses(2000, 10_000).await.unwrap(), ["a@our.test", "b@our.test"]);
    let (items, count) = store.quarantine_digest_items("a@our.test", 2000, 10_000, 1).await.unwrap();
    assert_eq!((ids(&items), count), (vec!["0000000000000003".to_string()], 2));
    assert!(store.quarantine_digest_addresses(3005, 10_000).await.unwrap().is_empty());
}

async fn tracking_records_searches_and_orders_events(db: TestDb) {
    let store = db.store.clone();
    let m = |n: u8, at: i64| TrackedMessage {
        queue_id: format!("{n:016x}"),
        received_at_ms: at,
        sender: format!("s{n}@ext.test"),
        recipients: vec!["b@our.test".into(), format!("r{n}@our.test")],
        subject: format!("Hello {n} x' UNION SELECT 1 --"),
        message_id: format!("m{n}@ext.test"),
        client_ip: "192.0.2.7".into(),
        verdict: if n == 1 { "quarantine".into() } else { "accept".into() },
        score: 1.5,
    };
    assert!(store.tracking_record_message(&m(1, 1000)).await.unwrap());
    assert!(!store.tracking_record_message(&m(1, 1000)).await.unwrap());
    store.tracking_record_message(&m(2, 2000)).await.unwrap();
    let ev = |kind: &str, at: i64| TrackingEventRow {
        queue_id: m(1, 0).queue_id,
        at_ms: at,
        kind: kind.into(),
        actor: "system".into(),
        details_json: "{}".into(),
    };
    store
        .tracking_add_events(&[ev("received", 1000), ev("verdict", 1000), ev("quarantined", 1001)])
        .await
        .unwrap();
    store.tracking_add_events(&[ev("released", 1500)]).await.unwrap();
    let kinds: Vec<String> =
        store.tracking_events(&m(1, 0).queue_id).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["received", "verdict", "quarantined", "released"]);
    let f = TrackingFilter { limit: 10, ..Default::default() };
    let q = |s: TrackingScope| {
        let (store, f) = (store.clone(), f.clone());
        async move {
            store.tracking_search(&s, &f).await.unwrap().into_iter().map(|m| m.queue_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(q(TrackingScope::Recipient("b@our.test".into())).await, [m(2, 0).queue_id, m(1, 0).queue_id]);
    assert_eq!(q(TrackingScope::Recipient("r1@our.test".into())).await, [m(1, 0).queue_id]);
    assert_eq!(q(TrackingScope::Sender("s2@ext.test".into())).await, [m(2, 0).queue_id]);
    assert_eq!(q(TrackingScope::MessageId("m1@ext.test".into())).await, [m(1, 0).queue_id]);
    assert_eq!(q(TrackingScope::ClientIp("192.0.2.7".into())).await.len(), 2);
    assert_eq!(q(TrackingScope::Verdict("quarantine".into())).await, [m(1, 0).queue_id]);
    assert_eq!(q(TrackingScope::QueueId(m(2, 0).queue_id)).await, [m(2, 0).queue_id]);
    let subj = TrackingFilter { subject_contains: Some("hello 2 x' union".into()), ..f.clone() };
    let found = store.tracking_search(&TrackingScope::All, &subj).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].subject, "Hello 2 x' UNION SELECT 1 --");
    assert_eq!(found[0].recipients, ["b@our.test", "r2@our.test"]);
    assert_eq!(store.tracking_purge(1500).await.unwrap(), 1);
    assert!(store.tracking_events(&m(1, 0).queue_id).await.unwrap().is_empty());
    assert_eq!(q(TrackingScope::All).await, [m(2, 0).queue_id]);
}

async fn sender_lists_prefs_and_token_marks(db: TestDb) {
    let store = db.store.clone();
    let e = |sender: &str, list| SenderListEntry {
        owner: "a@our.test".into(),
        list,
        sender: sender.into(),
        created_at_ms: 1,
        created_by: "alice".into(),
    };
    assert!(store.sender_list_add(&e("friend@ext.test", SenderList::Safe)).await.unwrap());
    assert!(!store.sender_list_add(&e("friend@ext.test", SenderList::Safe)).await.unwrap());
    store.sender_list_add(&e("spam.test", SenderList::Block)).await.unwrap();
    let find = |l, s: &'static str, o: &'static str| {
        let store = store.clone();
        async move { store.sender_list_find(l, s, o).await.unwrap().map(|e| e.sender) }
    };
    assert_eq!(
        find(SenderList::Safe, "friend@ext.test", "a@our.test").await.as_deref(),
        Some("friend@ext.test")
    );
    assert_eq!(find(SenderList::Safe, "friend@ext.test", "b@our.test").await, None);
    assert_eq!(find(SenderList::Block, "x@spam.test", "a@our.test").await.as_deref(), Some("spam.test"));
    assert_eq!(find(SenderList::Safe, "x@spam.test", "a@our.test").await, None);
    assert_eq!(store.sender_list_entries("a@our.test").await.unwrap().len(), 2);
    assert_eq!(store.sender_list_all().await.unwrap().len(), 2);
    assert!(store.sender_list_remove("a@our.test", SenderList::Block, "spam.test").await.unwrap());
    assert!(!store.sender_list_remove("a@our.test", SenderList::Block, "spam.test").await.unwrap());

    assert_eq!(store.digest_prefs("a@our.test").await.unwrap(), DigestPrefs::default());
    store.digest_mark_sent("a@our.test", 77).await.unwrap();
    store.digest_set_enabled("a@our.test", false).await.unwrap();
    assert_eq!(
        store.digest_prefs("a@our.test").await.unwrap(),
        DigestPrefs { enabled: false, last_digest_ms: 77 }
    );

    let (one, two) =
        tokio::join!(store.digest_token_use("n1", 10, 100), store.digest_token_use("n1", 10, 100));
    assert!(one.unwrap() ^ two.unwrap(), "a token is used once");
    store.digest_token_unuse("n1").await.unwrap();
    assert!(store.digest_token_use("n1", 11, 100).await.unwrap());
    assert_eq!(store.digest_tokens_purge(101).await.unwrap(), 1);
}

/// SQLite only: its query plans.
#[tokio::test]
async fn every_search_reads_its_page_off_an_index_without_sorting() {
    let (_d, store) = temp_store().await;
    let searches = [
        super::SEARCH_OWNER,
        super::SEARCH_SENDER,
        super::SEARCH_DOMAIN,
        super::SEARCH_ALL,
        super::SEARCH_WORD,
        super::SEARCH_WORD_OWNER,
        crate::tracking::BY_RECIPIENT,
        crate::tracking::BY_SENDER,
        crate::tracking::BY_MESSAGE_ID,
        crate::tracking::BY_CLIENT,
        crate::tracking::BY_QUEUE_ID,
        crate::tracking::BY_VERDICT,
        crate::tracking::ALL,
    ];
    for sql in searches {
        // Test-only: the statement is one of our constants.
        let explain = sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"));
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(explain).fetch_all(store.sqlite_pool().unwrap()).await.unwrap();
        let steps: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
        assert!(!steps.iter().any(|s| s.contains("TEMP B-TREE")), "{sql}\n{steps:?}");
        assert!(steps.iter().all(|s| !s.starts_with("SCAN") || s.contains("INDEX")), "{sql}\n{steps:?}");
    }
}

/// PostgreSQL: with sequential scans and sorts priced out, every search still plans without a sort, so
/// an index hands out each page in order there too (the same indexes as SQLite's, on "C" text).
#[tokio::test]
async fn every_search_plans_without_sorting_on_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    let crate::Pools::Postgres(pool) = &db.store.pools else { unreachable!("a PostgreSQL test store") };
    let mut conn = pool.acquire().await.unwrap();
    for setting in ["SET enable_seqscan = off", "SET enable_sort = off"] {
        sqlx::query(setting).execute(&mut *conn).await.unwrap();
    }
    let scoped = [
        (super::SEARCH_OWNER, Some("a@our.test"), Some("invoice")),
        (super::SEARCH_SENDER, Some("s@ext.test"), None),
        (super::SEARCH_DOMAIN, Some("ext.test"), Some("invoice")),
        (super::SEARCH_ALL, None, None),
        (super::SEARCH_WORD, None, Some("invoice")),
        (super::SEARCH_WORD_OWNER, Some("a@our.test"), Some("invoice")),
    ];
    for (sql, value, word) in scoped {
        // Test-only: the statement is one of our constants.
        let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
            .bind(None::<&str>)
            .bind(Some("held"))
            .bind(None::<&str>)
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind(1i64)
            .bind(Some(5_000i64))
            .bind(Some("AAAAAAAAAAAAAAAAAAAAAA"))
            .bind(50i64)
            .bind(value)
            .bind(word)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        assert_no_sort(sql, &plan);
    }
    let tracking = [
        (crate::tracking::BY_RECIPIENT, Some("a@our.test")),
        (crate::tracking::BY_SENDER, Some("s@ext.test")),
        (crate::tracking::BY_MESSAGE_ID, Some("m@ext.test")),
        (crate::tracking::BY_CLIENT, Some("192.0.2.7")),
        (crate::tracking::BY_QUEUE_ID, Some("0000000000000001")),
        (crate::tracking::BY_VERDICT, Some("accept")),
        (crate::tracking::ALL, None),
    ];
    for (sql, value) in tracking {
        let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
            .bind(Some("%x%"))
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind(Some(5_000i64))
            .bind(Some("0000000000000001"))
            .bind(50i64)
            .bind(value)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        assert_no_sort(sql, &plan);
    }
}

fn assert_no_sort(sql: &str, plan: &[(String,)]) {
    let lines: Vec<&str> = plan.iter().map(|(l,)| l.as_str()).collect();
    assert!(
        !lines.iter().any(|l| l.trim_start().trim_start_matches("-> ").contains("Sort")),
        "{sql}\n{}",
        lines.join("\n")
    );
    assert!(!lines.iter().any(|l| l.contains("Seq Scan")), "{sql}\n{}", lines.join("\n"));
}

#[test]
fn subject_words_split_at_ascii_punctuation_fold_case_and_are_bounded() {
    use crate::quarantine::{MAX_SUBJECT_WORDS, MAX_WORD_CHARS, subject_words};
    assert_eq!(subject_words("Re: INVOICE #42 re:invoice"), ["re", "invoice", "42"]);
    assert_eq!(subject_words("Grüße aus ÜBERSEE\t100%_off"), ["grüße", "aus", "übersee", "100", "off"]);
    assert!(subject_words(" -- !!! ").is_empty());
    let long = "x".repeat(MAX_WORD_CHARS + 10);
    assert_eq!(subject_words(&long), ["x".repeat(MAX_WORD_CHARS)]);
    let many = (0..MAX_SUBJECT_WORDS + 10).map(|n| format!("w{n}")).collect::<Vec<_>>().join(" ");
    let words = subject_words(&many);
    assert_eq!((words.len(), words.last().map(String::as_str)), (MAX_SUBJECT_WORDS, Some("w63")));
}

async fn subject_search_matches_whole_words_in_every_scope(db: TestDb) {
    let store = db.store.clone();
    let subjects = ["Your INVOICE #42", "invoices attached", "Re:invoice 42 overdue", "reinvoice", "$$$ win"];
    for (n, subject) in (1u8..).zip(subjects) {
        let mut it = item(n, QuarantineKind::Spam, &["a@our.test"], 1000 * i64::from(n));
        it.subject = subject.into();
        store.quarantine_insert(&it).await.unwrap();
    }
    let f = |s: &str| ItemFilter { subject_contains: Some(s.into()), ..page(10) };
    let scopes =
        [ItemScope::All, ItemScope::Owner("a@our.test".into()), ItemScope::SenderDomain("ext.test".into())];
    for scope in &scopes {
        let found = |s: &'static str| {
            let store = store.clone();
            async move { ids(&store.quarantine_search(scope, &f(s)).await.unwrap()) }
        };
        assert_eq!(found("Invoice").await, ["0000000000000003", "0000000000000001"], "{scope:?}");
        // The longest word must be whole; the text must occur literally.
        assert_eq!(found("invoice 42").await, ["0000000000000003"], "{scope:?}");
        assert!(found("voice").await.is_empty(), "{scope:?}");
        assert!(found("ice 42").await.is_empty(), "{scope:?}");
        // No word at all: matched literally.
        assert_eq!(found("$$$").await, ["0000000000000005"], "{scope:?}");
    }
    // Keyset paging along the word index.
    let first =
        store.quarantine_search(&ItemScope::All, &ItemFilter { limit: 1, ..f("invoice") }).await.unwrap();
    let last = first.last().unwrap();
    let next = ItemFilter { before: Some((last.received_at_ms, last.id.clone())), ..f("invoice") };
    assert_eq!(ids(&store.quarantine_search(&ItemScope::All, &next).await.unwrap()), ["0000000000000001"]);
}

async fn items_stored_before_the_word_index_are_indexed_when_migrating(db: TestDb) {
    let store = db.store.clone();
    for n in 1..=3u8 {
        store
            .quarantine_insert(&item(n, QuarantineKind::Spam, &["a@our.test"], 1000 * i64::from(n)))
            .await
            .unwrap();
    }
    // As a store migrated to 0303 from an older schema: items without words, marked not indexed.
    on_pool!(store, |pool| {
        sqlx::query("DELETE FROM quarantine_words").execute(pool).await.unwrap();
        sqlx::query("UPDATE quarantine_items SET words_indexed = 0").execute(pool).await.unwrap();
    });
    let f = ItemFilter { subject_contains: Some("subject".into()), ..page(10) };
    assert!(store.quarantine_search(&ItemScope::All, &f).await.unwrap().is_empty());
    assert!(store.apply_migrations().await.unwrap().is_empty(), "no SQL migration left to apply");
    assert_eq!(store.quarantine_search(&ItemScope::All, &f).await.unwrap().len(), 3);
    assert_eq!(store.index_pending_subject_words().await.unwrap(), 0, "nothing left");
}

async fn a_page_reads_every_rows_owners(db: TestDb) {
    let store = db.store.clone();
    store
        .quarantine_insert(&item(1, QuarantineKind::Spam, &["b@our.test", "a@our.test"], 1000))
        .await
        .unwrap();
    store.quarantine_insert(&item(2, QuarantineKind::Spam, &["c@our.test"], 2000)).await.unwrap();
    store.quarantine_insert(&item(3, QuarantineKind::Spam, &[], 3000)).await.unwrap();
    let owners = |rows: Vec<ItemRow>| rows.into_iter().map(|r| r.owners).collect::<Vec<_>>();
    let expected: Vec<Vec<&str>> = vec![vec![], vec!["c@our.test"], vec!["a@our.test", "b@our.test"]];
    assert_eq!(owners(store.quarantine_search(&ItemScope::All, &page(10)).await.unwrap()), expected);
    let by_owner = store.quarantine_search(&ItemScope::Owner("a@our.test".into()), &page(10)).await.unwrap();
    assert_eq!(owners(by_owner), [["a@our.test", "b@our.test"]]);
}

/// Every page of `filter` in owner `a`'s scope through statement `sql`, following the keyset cursor.
async fn all_pages(store: &Store, sql: &'static str, owner: &str, filter: &ItemFilter) -> Vec<String> {
    let (mut found, mut filter) = (Vec::new(), filter.clone());
    loop {
        let rows = store.search_with(sql, Some(owner), &filter).await.unwrap();
        found.extend(ids(&rows));
        match rows.last() {
            Some(last) if rows.len() == filter.limit as usize => {
                filter.before = Some((last.received_at_ms, last.id.clone()))
            }
            _ => return found,
        }
    }
}

async fn a_users_subject_search_is_the_same_driven_by_the_word_or_the_mailbox(db: TestDb) {
    let store = db.store.clone();
    // a@ owns 1-20 ("common" in every subject, "rare" in 3, 9 and 15); b@ owns 12-24 ("rare" in 21);
    // items 8 and 9 have the same time (ties go by id); 6 is a virus, 15 released.
    for n in 1..=24u8 {
        let owners: &[&str] = match n {
            1..=11 => &["a@our.test"],
            12..=20 => &["a@our.test", "b@our.test"],
            _ => &["b@our.test"],
        };
        let kind = if n == 6 { QuarantineKind::Virus } else { QuarantineKind::Spam };
        let at = if n == 9 { 8_000 } else { 1000 * i64::from(n) };
        let mut it = item(n, kind, owners, at);
        it.subject = if n % 6 == 3 { format!("Common RARE thing {n}") } else { format!("common {n}") };
        if n == 15 {
            it.status = ItemStatus::Released;
        }
        store.quarantine_insert(&it).await.unwrap();
    }
    assert!(store.word_is_rarer_than_mailbox("rare", "a@our.test").await.unwrap());
    assert!(store.word_is_rarer_than_mailbox("9", "a@our.test").await.unwrap());
    assert!(!store.word_is_rarer_than_mailbox("common", "a@our.test").await.unwrap());
    assert!(!store.word_is_rarer_than_mailbox("rare", "nobody@our.test").await.unwrap());

    let f = |text: &str| ItemFilter { subject_contains: Some(text.into()), ..page(2) };
    let hex = |ns: &[u8]| ns.iter().map(|n| format!("{n:016x}")).collect::<Vec<_>>();
    let cases = [
        (f("rare"), hex(&[15, 9, 3])),
        (f("Rare thing"), hex(&[15, 9, 3])),
        (f("rare thing 9"), hex(&[9])),
        (ItemFilter { status: Some(ItemStatus::Held), ..f("rare") }, hex(&[9, 3])),
        (f("common"), (1..=20).rev().map(|n| format!("{n:016x}")).collect()),
        (
            ItemFilter { exclude_virus: true, ..f("common") },
            hex(&[20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 5, 4, 3, 2, 1]),
        ),
        (
            ItemFilter { received_from_ms: Some(8_000), received_before_ms: Some(12_000), ..f("common") },
            hex(&[11, 10, 9, 8]),
        ),
        (f("nowhere"), vec![]),
    ];
    for (filter, expected) in cases {
        let by_mailbox = all_pages(&store, super::SEARCH_OWNER, "a@our.test", &filter).await;
        let by_word = all_pages(&store, super::SEARCH_WORD_OWNER, "a@our.test", &filter).await;
        assert_eq!(by_mailbox, expected, "{filter:?}");
        assert_eq!(by_word, expected, "{filter:?}");
        let first = store.quarantine_search(&ItemScope::Owner("a@our.test".into()), &filter).await.unwrap();
        assert_eq!(ids(&first), expected[..expected.len().min(2)], "{filter:?}");
    }
}
