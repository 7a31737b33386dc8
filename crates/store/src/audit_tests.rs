//! The copied audit trail on both backends (see [`crate::testing`]).

use crate::testing::{AuditTamper, TestDb, store_test};
use crate::*;

store_test!(
    records_are_copied_once_and_a_different_copy_is_refused,
    recent_records_are_newest_first_across_nodes_in_pages,
    keys_are_registered_once_and_checkpoints_kept,
    tampering_changes_what_is_read,
);

fn row(node: &str, seq: i64, time: &str) -> AuditRow {
    AuditRow {
        node: node.into(),
        seq,
        time: time.into(),
        hash: format!("{seq:064x}"),
        line: format!("{{\"seq\":{seq},\"node\":\"{node}\"}}"),
    }
}

async fn records_are_copied_once_and_a_different_copy_is_refused(db: TestDb) {
    let store = db.store.clone();
    let t = "2026-01-01T00:00:00.000Z";
    let batch: Vec<AuditRow> = (1..=3).map(|s| row("mx1", s, t)).collect();
    assert_eq!(store.audit_copy(&batch).await.unwrap(), None);
    // Sent again after a failure (overlapping the next batch): skipped, the new one added.
    let again: Vec<AuditRow> = (2..=4).map(|s| row("mx1", s, t)).collect();
    assert_eq!(store.audit_copy(&again).await.unwrap(), None);
    assert_eq!(store.audit_head("mx1").await.unwrap(), Some(row("mx1", 4, t)));
    assert_eq!(store.audit_head("mx2").await.unwrap(), None);
    // A different record under a seq the store holds: refused, nothing of its batch kept.
    let other = AuditRow { hash: "f".repeat(64), ..row("mx1", 4, t) };
    let batch = vec![row("mx1", 5, t), other];
    assert_eq!(store.audit_copy(&batch).await.unwrap(), Some(row("mx1", 4, t)));
    assert_eq!(store.audit_head("mx1").await.unwrap().unwrap().seq, 4);
    let chain = store.audit_chain("mx1", 1, 2).await.unwrap();
    assert_eq!(chain, vec![row("mx1", 2, t), row("mx1", 3, t)]);
    assert!(store.audit_chain("mx1", 4, 10).await.unwrap().is_empty());
}

async fn recent_records_are_newest_first_across_nodes_in_pages(db: TestDb) {
    let store = db.store.clone();
    let at = |s: u32| format!("2026-01-01T00:00:{s:02}.000Z");
    store.audit_copy(&[row("mx1", 1, &at(1)), row("mx1", 2, &at(3)), row("mx1", 3, &at(3))]).await.unwrap();
    store.audit_copy(&[row("mx2", 1, &at(2)), row("mx2", 2, &at(3))]).await.unwrap();
    let order = |rows: &[AuditRow]| rows.iter().map(|r| (r.node.clone(), r.seq)).collect::<Vec<_>>();
    let first = store.audit_recent(None, 3).await.unwrap();
    assert_eq!(order(&first), [("mx2".into(), 2), ("mx1".into(), 3), ("mx1".into(), 2)]);
    let last = &first[2];
    let cursor = AuditCursor { time: last.time.clone(), node: last.node.clone(), seq: last.seq };
    let rest = store.audit_recent(Some(&cursor), 10).await.unwrap();
    assert_eq!(order(&rest), [("mx2".into(), 1), ("mx1".into(), 1)]);
    store.audit_register_key("mx3", &"c".repeat(64), 1).await.unwrap();
    let nodes = store.audit_nodes().await.unwrap();
    assert_eq!(
        nodes,
        [("mx1".to_string(), None), ("mx2".to_string(), None), ("mx3".to_string(), Some("c".repeat(64)))]
    );
}

async fn keys_are_registered_once_and_checkpoints_kept(db: TestDb) {
    let store = db.store.clone();
    assert_eq!(store.audit_register_key("mx1", &"a".repeat(64), 1).await.unwrap(), "a".repeat(64));
    assert_eq!(
        store.audit_register_key("mx1", &"b".repeat(64), 2).await.unwrap(),
        "a".repeat(64),
        "first kept"
    );
    assert!(store.audit_checkpoint_copy("mx1", 7, "{\"seq\":7}").await.unwrap());
    assert!(!store.audit_checkpoint_copy("mx1", 7, "{\"seq\":7,\"x\":1}").await.unwrap());
    assert!(store.audit_checkpoint_copy("mx1", 3, "{\"seq\":3}").await.unwrap());
    assert_eq!(
        store.audit_checkpoints("mx1").await.unwrap(),
        [(3, "{\"seq\":3}".to_string()), (7, "{\"seq\":7}".to_string())]
    );
    assert!(store.audit_checkpoints("mx2").await.unwrap().is_empty());
}

async fn tampering_changes_what_is_read(db: TestDb) {
    let store = db.store.clone();
    let t = "2026-01-01T00:00:00.000Z";
    store.audit_copy(&(1..=5).map(|s| row("mx1", s, t)).collect::<Vec<_>>()).await.unwrap();
    db.tamper_audit(AuditTamper::SetLine { node: "mx1", seq: 2, line: "x" }).await;
    db.tamper_audit(AuditTamper::Delete { node: "mx1", seq: 3 }).await;
    db.tamper_audit(AuditTamper::DeleteFrom { node: "mx1", seq: 5 }).await;
    let chain = store.audit_chain("mx1", 0, 10).await.unwrap();
    assert_eq!(
        chain.iter().map(|r| (r.seq, r.line.as_str())).collect::<Vec<_>>()[..2],
        [(1, row("mx1", 1, t).line.as_str()), (2, "x")]
    );
    assert_eq!(chain.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 4]);
}
