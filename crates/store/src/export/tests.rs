//! Export and import on both backends and across them (see [`crate::testing`]).

use super::tables::TABLES;
use super::*;
use crate::quarantine::tests::item;
use crate::testing::{TestDb, store_test};
use crate::*;
use config::StoreBackend;
use std::collections::BTreeSet;

store_test!(
    the_export_list_is_every_table_and_column_of_the_schema,
    every_table_round_trips_onto_both_backends,
    an_export_is_one_snapshot_while_writes_go_on,
    a_tampered_export_is_refused_and_changes_nothing,
    only_an_empty_store_is_imported_into,
);

/// A body larger than one read buffer, every byte value.
fn body() -> Vec<u8> {
    (0..=255u8).cycle().take(300_000).collect()
}

/// Put rows in every table through the store's own methods.
async fn fill(store: &Store) {
    let learn =
        |fp: u8, class| LearnItem { fingerprint: [fp; 32], class, features: vec![u32::from(fp), 70_000] };
    store
        .classifier_learn(&[learn(1, Class::Spam), learn(2, Class::Ham)], 1_700_000_000, 10, 1, |_, _| {
            vec![(3, 0.25), (300_000, -1.5)]
        })
        .await
        .unwrap();
    let addresses = ["alice@our.test".to_string()];
    let new = NewAccount {
        name: "alice",
        role: Role::Admin,
        password_hash: "$argon2id$v=19$x",
        addresses: &addresses,
    };
    let alice = store.create_account(&new, 100).await.unwrap().unwrap();
    let bob = NewAccount { name: "bob", role: Role::User, password_hash: "", addresses: &[] };
    store.create_account(&bob, 101).await.unwrap().unwrap();
    store.set_account_totp(alice, Some("JBSWY3DPEHPK3PXP"), 102).await.unwrap();
    store.create_api_token(alice, "ci", &"c".repeat(64), 103).await.unwrap();
    store.use_api_token(&"c".repeat(64), 104).await.unwrap().unwrap();
    let session = WebSession {
        id_hash: "d".repeat(64),
        account_id: alice,
        csrf_token: "csrf".into(),
        second_factor_due: true,
        created_at: 105,
        last_seen_at: 106,
        absolute_expires_at: 9_999,
    };
    store.create_web_session(&session).await.unwrap();
    store.throttle_fail(ThrottleScope::Address, "192.0.2.1", 107, 900).await.unwrap();
    let mut held = item(1, QuarantineKind::Spam, &["alice@our.test", "b@our.test"], 1_000);
    held.score = 0.1 + 0.2; // not exactly representable in decimal: must survive exactly
    held.subject = "Ünïcode \"quotes\" \\ and \u{1} control".into();
    held.holder = "mx1".into();
    store.quarantine_insert_with_body(&held, Some((&"e".repeat(64), &body()))).await.unwrap();
    let released = item(2, QuarantineKind::Virus, &["alice@our.test"], 2_000);
    store.quarantine_insert(&released).await.unwrap();
    assert!(store.quarantine_release_queued(&released.id, "alice", 2_500).await.unwrap());
    let tracked = TrackedMessage {
        queue_id: "0123456789abcdef".into(),
        received_at_ms: 3_000,
        sender: "s@ext.test".into(),
        recipients: vec!["alice@our.test".into()],
        subject: "Hello".into(),
        message_id: "m@ext.test".into(),
        client_ip: "192.0.2.7".into(),
        verdict: "accept".into(),
        score: -0.5,
    };
    store.tracking_record_message(&tracked).await.unwrap();
    let event = |at_ms, kind: &str| TrackingEventRow {
        queue_id: tracked.queue_id.clone(),
        at_ms,
        kind: kind.into(),
        actor: "relay".into(),
        details_json: r#"{"reply":"250 ok"}"#.into(),
    };
    store.tracking_add_events(&[event(3_001, "received"), event(3_002, "delivered")]).await.unwrap();
    let listed = SenderListEntry {
        owner: "alice@our.test".into(),
        list: SenderList::Safe,
        sender: "friend.test".into(),
        created_at_ms: 4_000,
        created_by: "alice".into(),
    };
    store.sender_list_add(&listed).await.unwrap();
    store.digest_set_enabled("alice@our.test", false).await.unwrap();
    store.digest_token_use("ab12", 5_000, 6_000).await.unwrap();
    let beat = NodeBeat {
        name: "mx1".into(),
        version: "0.1.0".into(),
        started_at_ms: 1,
        heartbeat_ms: 2,
        queue_depth: 3,
        smtp_listen: "0.0.0.0:25".into(),
        portal_listen: String::new(),
    };
    assert_eq!(store.node_claim_tag(&beat).await.unwrap(), 0);
    let record = AuditRow {
        node: "mx1".into(),
        seq: 1,
        time: "2026-11-27T11:00:00.000Z".into(),
        hash: "a".repeat(64),
        line: r#"{"seq":1,"action":"gateway.start"}"#.into(),
    };
    assert!(store.audit_copy(&[record]).await.unwrap().is_none());
    store.audit_register_key("mx1", &"b".repeat(64), 7_000).await.unwrap();
    store.audit_checkpoint_copy("mx1", 1, r#"{"seq":1,"sig":"x"}"#).await.unwrap();
}

async fn export(store: &Store) -> (ExportSummary, Vec<u8>) {
    store.export(Vec::new()).await.unwrap()
}

/// A fresh store of each backend (PostgreSQL unless skipped).
async fn fresh_stores() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().await];
    dbs.extend(TestDb::postgres().await);
    dbs
}

/// The tables and columns a freshly migrated store has, read from the database's catalog (tests only:
/// the export never reads names from the database): `(table, column, type, NOT NULL)`.
async fn catalog(db: &TestDb) -> BTreeSet<(String, String, String, bool)> {
    let rows: Vec<(String, String, String, bool)> = match &db.store.pools {
        Pools::Sqlite(pool) => sqlx::query_as(
            "SELECT m.name, c.name, c.type, c.\"notnull\" <> 0 OR c.pk > 0 \
             FROM sqlite_master m, pragma_table_info(m.name) c \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Pools::Postgres(pool) => sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable = 'NO' \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    rows.into_iter()
        .map(|(t, c, ty, not_null)| {
            let ty = match ty.to_ascii_lowercase().as_str() {
                "integer" | "bigint" => "Int",
                "real" | "double precision" => "Real",
                "text" => "Text",
                "blob" | "bytea" => "Blob",
                other => panic!("column {t}.{c} has a type the export does not know: {other}"),
            };
            (t, c, ty.to_string(), not_null)
        })
        .collect()
}

async fn the_export_list_is_every_table_and_column_of_the_schema(db: TestDb) {
    let listed: BTreeSet<(String, String, String, bool)> = TABLES
        .iter()
        .flat_map(|t| {
            t.columns.iter().map(|c| {
                let ty = match c.kind {
                    Kind::Int => "Int",
                    Kind::Real => "Real",
                    Kind::Text(_) => "Text",
                    Kind::Blob(_) => "Blob",
                };
                (t.name.to_string(), c.name.to_string(), ty.to_string(), !c.nullable)
            })
        })
        .collect();
    let schema = catalog(&db).await;
    assert_eq!(
        schema.difference(&listed).collect::<Vec<_>>(),
        Vec::<&(String, String, String, bool)>::new(),
        "in the schema but not exported as such: add it to export/tables.rs"
    );
    assert_eq!(listed.difference(&schema).collect::<Vec<_>>(), Vec::<&(String, String, String, bool)>::new());
}

async fn every_table_round_trips_onto_both_backends(db: TestDb) {
    fill(&db.store).await;
    let (summary, bytes) = export(&db.store).await;
    assert_eq!(summary.schema_version, schema_version());
    assert_eq!(summary.tables.len(), TABLES.len());
    for (table, rows) in &summary.tables {
        assert!(*rows > 0, "{table} has no rows: fill() must put rows in every table");
    }
    assert_eq!(verify_export(&bytes[..]).unwrap(), summary);
    for target in fresh_stores().await {
        let imported = target.store.import(&bytes[..]).await.unwrap();
        assert_eq!(imported, summary);
        // Every row of every table, byte for byte (both exports are ordered by primary key).
        let (again, again_bytes) = export(&target.store).await;
        assert_eq!(again, summary, "{:?} -> {:?}", db.backend(), target.backend());
        assert!(again_bytes == bytes, "{:?} -> {:?}: the exports differ", db.backend(), target.backend());
        // And the store's own methods read it back.
        let alice = target.store.account_by_name("alice").await.unwrap().unwrap();
        assert_eq!(alice.totp_secret.as_deref(), Some("JBSWY3DPEHPK3PXP"));
        assert_eq!(target.store.account_addresses(alice.id).await.unwrap(), ["alice@our.test"]);
        let held = target.store.quarantine_by_queue_id(&format!("{:016x}", 1)).await.unwrap().unwrap();
        assert_eq!(held.score, 0.1 + 0.2);
        assert_eq!(target.store.body_get(&held.id).await.unwrap().unwrap().1, body());
        assert_eq!(target.store.classifier_totals().await.unwrap(), Totals { spam: 1, ham: 1 });
        assert_eq!(target.store.classifier_feature_version().await.unwrap(), Some(1), "the model's version");
        assert_eq!(
            target.store.classifier_weights().await.unwrap(),
            db.store.classifier_weights().await.unwrap()
        );
        // New ids continue past the imported ones (identity sequences on PostgreSQL).
        let carol = NewAccount { name: "carol", role: Role::User, password_hash: "", addresses: &[] };
        assert!(target.store.create_account(&carol, 200).await.unwrap().unwrap() > alice.id + 1);
        let events = target.store.tracking_events("0123456789abcdef").await.unwrap();
        assert_eq!(events.len(), 2);
        let extra = TrackingEventRow { at_ms: 3_003, ..events[1].clone() };
        target.store.tracking_add_events(&[extra]).await.unwrap();
        let token = target.store.create_api_token(alice.id, "new", &"f".repeat(64), 201).await.unwrap();
        assert!(token > 1);
    }
}

async fn an_export_is_one_snapshot_while_writes_go_on(db: TestDb) {
    fill(&db.store).await;
    let writer = db.open().await;
    let (summary, bytes) = {
        // The writer adds tracked messages while the export runs; the export's counts match its rows
        // (verified) whatever it saw, and importing it gives a store whose export is the same bytes.
        let writes = async {
            for n in 0..40u32 {
                let m = TrackedMessage {
                    queue_id: format!("{n:016x}"),
                    received_at_ms: 10_000 + i64::from(n),
                    sender: String::new(),
                    recipients: vec![format!("r{n}@our.test")],
                    subject: String::new(),
                    message_id: String::new(),
                    client_ip: String::new(),
                    verdict: "accept".into(),
                    score: 0.0,
                };
                writer.tracking_record_message(&m).await.unwrap();
            }
        };
        let (exported, ()) = tokio::join!(export(&db.store), writes);
        exported
    };
    let counts: std::collections::BTreeMap<_, _> = summary.tables.iter().cloned().collect();
    assert_eq!(
        counts["tracking_messages"], counts["tracking_recipients"],
        "messages and their recipients together"
    );
    verify_export(&bytes[..]).unwrap();
}

/// Lines of `bytes`, each with its newline.
fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

/// `lines` joined, with the end line's checksum and counts made right again, so only the change itself
/// can be why the export is refused.
fn resealed(mut lines: Vec<Vec<u8>>) -> Vec<u8> {
    let end = lines.pop().unwrap();
    let mut end: serde_json::Value = serde_json::from_slice(&end).unwrap();
    let body: Vec<u8> = lines.concat();
    let mut counts: Vec<(String, u64)> = Vec::new();
    for line in &lines {
        if line.starts_with(b"{\"line\":\"table\"") {
            let marker: serde_json::Value = serde_json::from_slice(line).unwrap();
            counts.push((marker["name"].as_str().unwrap().to_string(), 0));
        } else if line.starts_with(b"[") {
            counts.last_mut().unwrap().1 += 1;
        }
    }
    end["rows"] = serde_json::json!(counts);
    end["sha256"] =
        serde_json::json!(format::hex(ring::digest::digest(&ring::digest::SHA256, &body).as_ref()));
    let mut out = body;
    out.extend_from_slice(&serde_json::to_vec(&end).unwrap());
    out.push(b'\n');
    out
}

/// The index of the first row line of `table`.
fn first_row(lines: &[Vec<u8>], table: &str) -> usize {
    let marker = format!("{{\"line\":\"table\",\"name\":\"{table}\"");
    lines.iter().position(|l| l.starts_with(marker.as_bytes())).unwrap() + 1
}

fn replace(lines: &[Vec<u8>], at: usize, with: &str) -> Vec<Vec<u8>> {
    let mut out = lines.to_vec();
    out[at] = format!("{with}\n").into_bytes();
    out
}

async fn a_tampered_export_is_refused_and_changes_nothing(db: TestDb) {
    fill(&db.store).await;
    let (_, bytes) = export(&db.store).await;
    let all = lines(&bytes);
    let account = first_row(&all, "accounts");
    let learned = first_row(&all, "classifier_learned");
    let weights = first_row(&all, "classifier_weights");
    let nodes = first_row(&all, "nodes");
    let version =
        format!("{{\"line\":\"store\",\"format\":\"portcullis-store\",\"version\":1,\"schema\":{}}}", 1);
    let mut with_trigger = all.clone();
    with_trigger.insert(
        nodes - 1,
        b"{\"line\":\"table\",\"name\":\"sqlite_master\",\"columns\":[\"type\",\"name\",\"sql\"]}\n".to_vec(),
    );
    with_trigger.insert(nodes, b"[\"trigger\",\"t\",\"CREATE TRIGGER t AFTER INSERT ON accounts BEGIN DELETE FROM accounts; END\"]\n".to_vec());
    let mut extra_column = all.clone();
    extra_column[nodes - 1] = String::from_utf8(all[nodes - 1].clone())
        .unwrap()
        .replace("\"tag\"]", "\"tag\",\"sql\"]")
        .into_bytes();
    let mut truncated = bytes.clone();
    truncated.truncate(bytes.len() / 2);
    let mut wrong_sum = bytes.clone();
    let at = wrong_sum.len() - 5;
    wrong_sum[at] = if wrong_sum[at] == b'0' { b'1' } else { b'0' };
    let mut tampered_unsealed = all.clone();
    tampered_unsealed[account] =
        String::from_utf8(all[account].clone()).unwrap().replace("alice", "mallory").into_bytes();
    let oversize = format!(
        "[\"{}\",1,1,null]",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0u8; 33])
    );
    let last = TABLES.last().unwrap().name;
    let without_last = resealed([&all[..first_row(&all, last) - 1], &all[all.len() - 1..]].concat());
    let missing = format!("missing {last}");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a trigger as a table", resealed(with_trigger), "unknown table \"sqlite_master\""),
        ("an unknown column", resealed(extra_column), "unknown column \"sql\" in table nodes"),
        (
            "a string for an integer",
            resealed(replace(&all, weights, "[\"0\",\"AAAA\"]")),
            "a string where an integer belongs",
        ),
        ("SQL text for a blob", resealed(replace(&all, weights, "[0,\"DROP TABLE x;\"]")), "not base64"),
        ("an oversize fingerprint", resealed(replace(&all, learned, &oversize)), "over the 32"),
        (
            "NULL where not allowed",
            resealed(replace(&all, learned, "[null,1,1,null]")),
            "NULL in a NOT NULL column",
        ),
        ("a missing value", resealed(replace(&all, weights, "[0]")), "1 values for 2 columns"),
        ("a float for an integer", resealed(replace(&all, weights, "[0.5,\"AAAA\"]")), "floating point"),
        (
            "a check the database enforces",
            resealed(replace(&all, learned, "[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",7,1,null]")),
            "refused the row for table classifier_learned",
        ),
        (
            "a line over its table's bound",
            resealed(replace(&all, nodes, &format!("[{}]", " ".repeat(200_000)))),
            "bytes allowed here",
        ),
        ("truncated", truncated, "truncated"),
        ("a wrong checksum", wrong_sum, "checksum"),
        ("altered without resealing", tampered_unsealed.concat(), "checksum"),
        ("another schema version", resealed(replace(&all, 0, &version)), "schema version 1"),
        ("the last table missing", without_last, &missing),
        ("data after the end", [bytes.clone(), b"[1]\n".to_vec()].concat(), "after the end line"),
    ];
    let target = fresh_stores().await;
    let (_, empty) = export(&target[0].store).await;
    for (name, archive, why) in cases {
        if name != "a check the database enforces" {
            let refused = verify_export(&archive[..]).expect_err(name).to_string();
            assert!(refused.contains(why), "{name}: {refused}");
        }
        for t in &target {
            let refused = t.store.import(&archive[..]).await.expect_err(name);
            let message = format!("{refused}");
            assert!(message.contains(why), "{name} on {:?}: {message}", t.backend());
            assert!(export(&t.store).await.1 == empty, "{name}: the target changed on {:?}", t.backend());
        }
    }
    // And the untouched export still imports.
    for t in &target {
        t.store.import(&bytes[..]).await.unwrap();
    }
}

async fn only_an_empty_store_is_imported_into(db: TestDb) {
    fill(&db.store).await;
    let (_, bytes) = export(&db.store).await;
    let refused = db.store.import(&bytes[..]).await.unwrap_err();
    assert!(matches!(refused, ExportError::NotEmpty { table: "classifier_weights" }), "{refused}");
    let target = if db.backend() == StoreBackend::Sqlite {
        TestDb::sqlite().await
    } else {
        TestDb::postgres().await.unwrap()
    };
    target
        .store
        .node_heartbeat(
            &NodeBeat {
                name: "late".into(),
                version: "x".into(),
                started_at_ms: 0,
                heartbeat_ms: 0,
                queue_depth: 0,
                smtp_listen: String::new(),
                portal_listen: String::new(),
            },
            0,
        )
        .await
        .unwrap();
    let refused = target.store.import(&bytes[..]).await.unwrap_err().to_string();
    assert!(refused.contains("table nodes holds data"), "{refused}");
}

/// The export's schema version is one number for both backends: their migrations must have the same
/// versions.
#[test]
fn both_backends_have_the_same_migration_versions() {
    let versions = |m: &sqlx::migrate::Migrator| m.iter().map(|m| m.version).collect::<Vec<_>>();
    assert_eq!(versions(&crate::SQLITE_MIGRATIONS), versions(&crate::POSTGRES_MIGRATIONS));
    assert_eq!(schema_version(), *versions(&crate::POSTGRES_MIGRATIONS).iter().max().unwrap());
}
