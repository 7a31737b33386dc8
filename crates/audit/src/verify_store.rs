//! `audit verify --store`: check the cluster's audit trail in the shared store, node by node, as
//! [`crate::verify()`] checks a log, and (on a node) that the store's copy of its own trail is its log.
//!
//! For each node: its copied checkpoints must verify with the key it registered and never cover more
//! than the store holds; its rows, read by seq, must each hold a record in canonical form whose seq and
//! hash are the row's, following the previous one by seq and hash, and matching any checkpoint of its
//! seq. The first problem of each node is named with the node and the seq. The local comparison reads
//! this node's log (blocking file reads) beside the store's rows: records not yet copied are counted,
//! not a problem; a record that differs, one the log does not have, or a record missing from the store
//! that this node's copier has sent (its `store.cursor` is past the store's end), is.

use crate::checkpoint::Checkpoint;
use crate::log::Head;
use crate::record::{GENESIS, Record};
use crate::verify::{Problem, ProblemKind, check_record, lines, problem};
use crate::{AuditError, AuditPaths, io_err};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use store::{AuditRow, Store};

/// The `file` of a problem found in the store.
const STORE: &str = "store";
/// Rows read from the store at once.
const PAGE: u32 = 1000;

/// One node's trail in the store.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub ok: bool,
    /// Records read before the first problem (all of them if none).
    pub records: u64,
    pub head_seq: u64,
    pub head_hash: String,
    pub checkpoints: u64,
    pub last_checkpoint_seq: Option<u64>,
    /// The key the node registered (checkpoints are verified with it).
    pub public_key: Option<String>,
    pub problem: Option<Problem>,
}

/// This node's log against the store's copy of it.
#[derive(Debug, Clone, Serialize)]
pub struct LocalReport {
    pub node: String,
    pub ok: bool,
    /// Records found the same in both.
    pub compared: u64,
    /// Records of the log the store does not have yet (the copy catches up).
    pub not_yet_copied: u64,
    pub problem: Option<Problem>,
}

/// The outcome of verifying the store's trail.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    pub ok: bool,
    pub nodes: Vec<NodeReport>,
    pub local: Option<LocalReport>,
}

/// Verify every node's trail in `store`, and with `local` (this node's name and trail) compare the
/// store's copy of this node's trail with its log.
pub async fn verify_store(
    store: &Store,
    local: Option<(&str, &AuditPaths)>,
) -> Result<StoreReport, AuditError> {
    let mut nodes = Vec::new();
    for (node, key) in store.audit_nodes().await? {
        nodes.push(verify_node(store, node, key).await?);
    }
    let local = match local {
        Some((node, paths)) => Some(compare_local(store, node, paths).await?),
        None => None,
    };
    let ok = nodes.iter().all(|n| n.ok) && local.as_ref().is_none_or(|l| l.ok);
    Ok(StoreReport { ok, nodes, local })
}

async fn verify_node(store: &Store, node: String, key: Option<String>) -> Result<NodeReport, AuditError> {
    let mut report = NodeReport {
        node,
        ok: false,
        records: 0,
        head_seq: 0,
        head_hash: GENESIS.into(),
        checkpoints: 0,
        last_checkpoint_seq: None,
        public_key: key,
        problem: None,
    };
    let found = match signed_checkpoints(store, &mut report).await? {
        Ok(signed) => walk_rows(store, &signed, &mut report).await?.or_else(|| after_rows(&signed, &report)),
        Err(p) => Some(p),
    };
    report.ok = found.is_none();
    report.problem = found;
    Ok(report)
}

/// The node's copied checkpoints by seq → hash, or the first bad one.
async fn signed_checkpoints(
    store: &Store,
    report: &mut NodeReport,
) -> Result<Result<BTreeMap<u64, String>, Problem>, AuditError> {
    let mut signed = BTreeMap::new();
    for (seq, line) in store.audit_checkpoints(&report.node).await? {
        let seq = seq as u64;
        let bad = |m: String| Ok(Err(problem(ProblemKind::BadCheckpoint, STORE, None, Some(seq), m)));
        let cp = match Checkpoint::parse_line(line.as_bytes()) {
            Ok(cp) if cp.seq == seq => cp,
            Ok(cp) => return bad(format!("the checkpoint row of seq {seq} holds one of seq {}", cp.seq)),
            Err(why) => return bad(why),
        };
        let Some(key) = &report.public_key else {
            return bad("no checkpoint key registered for this node".into());
        };
        if !cp.verify(key) {
            return bad(format!("signature for seq {seq} does not verify with the registered key {key}"));
        }
        report.checkpoints += 1;
        report.last_checkpoint_seq = Some(seq);
        signed.insert(seq, cp.hash);
    }
    Ok(Ok(signed))
}

/// Check the node's rows in seq order; the first problem, if any.
async fn walk_rows(
    store: &Store,
    signed: &BTreeMap<u64, String>,
    report: &mut NodeReport,
) -> Result<Option<Problem>, AuditError> {
    let mut head = Head::genesis();
    let mut after = 0;
    loop {
        let page = store.audit_chain(&report.node, after, PAGE).await?;
        let Some(last) = page.last() else { return Ok(None) };
        after = last.seq;
        for row in &page {
            let at = |kind, m: String| Ok(Some(problem(kind, STORE, None, Some(row.seq as u64), m)));
            let r = match Record::parse_line(row.line.as_bytes()) {
                Ok(r) => r,
                Err(why) => return at(ProblemKind::Malformed, why),
            };
            if r.seq != row.seq as u64 {
                return at(
                    ProblemKind::Sequence,
                    format!("the row holds record seq {} (rows reordered?)", r.seq),
                );
            }
            if r.hash != row.hash {
                return at(ProblemKind::Modified, "the row's hash is not its record's (modified)".into());
            }
            if let Some((kind, m)) = check_record(&r, &head, signed) {
                return at(kind, m);
            }
            head = Head { seq: r.seq, hash: r.hash };
            report.records += 1;
            report.head_seq = head.seq;
            report.head_hash = head.hash.clone();
        }
    }
}

/// Problems visible once every row is read: a checkpoint past the last row, or none at all.
fn after_rows(signed: &BTreeMap<u64, String>, report: &NodeReport) -> Option<Problem> {
    if let Some((&seq, _)) = signed.iter().next_back()
        && seq > report.head_seq
    {
        let m = format!("the store ends at seq {} but a signed checkpoint covers seq {seq}", report.head_seq);
        return Some(problem(ProblemKind::Truncated, STORE, None, Some(report.head_seq + 1), m));
    }
    if report.records > 0 && signed.is_empty() {
        let m = "records but no signed checkpoint in the store".to_string();
        return Some(problem(ProblemKind::NoCheckpoint, STORE, None, None, m));
    }
    None
}

/// Walk this node's log and the store's rows of `node` side by side.
async fn compare_local(store: &Store, node: &str, paths: &AuditPaths) -> Result<LocalReport, AuditError> {
    let mut report =
        LocalReport { node: node.to_string(), ok: false, compared: 0, not_yet_copied: 0, problem: None };
    let path = paths.log();
    let mut rows: VecDeque<AuditRow> = VecDeque::new();
    let (mut after, mut store_done) = (0, false);
    let differs = |seq, m: String| Some(problem(ProblemKind::Differs, STORE, None, Some(seq), m));
    let (mut found, mut damaged) = (None, false);
    for line in lines(&path)?.into_iter().flatten() {
        let (line, complete) = line.map_err(io_err(&path))?;
        // A damaged log is `audit verify`'s to report; compare what precedes it.
        let Some(r) = complete.then(|| Record::parse_line(&line).ok()).flatten() else {
            damaged = true;
            break;
        };
        if rows.is_empty() && !store_done {
            rows = store.audit_chain(node, after, PAGE).await?.into();
            store_done = rows.is_empty();
        }
        let Some(row) = rows.pop_front() else {
            report.not_yet_copied += 1;
            continue;
        };
        after = row.seq;
        if row.seq as u64 != r.seq {
            found = differs(r.seq, format!("the store has seq {} where the log has seq {}", row.seq, r.seq));
            break;
        }
        if row.line.as_bytes() != line.as_slice() || row.hash != r.hash {
            found = differs(r.seq, "the store's record differs from this node's log".into());
            break;
        }
        report.compared += 1;
    }
    if found.is_none() && !damaged && report.not_yet_copied == 0 {
        let extra = match rows.pop_front() {
            Some(row) => Some(row),
            None => store.audit_chain(node, after, 1).await?.pop(),
        };
        if let Some(row) = extra {
            found = differs(row.seq as u64, "the store holds records past the end of this node's log".into());
        }
    }
    // Records the copier saved as sent but the store no longer has: rows removed from its end.
    let copied = crate::forward::sent_up_to(&paths.store_cursor());
    if found.is_none() && !damaged && report.not_yet_copied > 0 && copied > report.compared {
        let m = format!(
            "this node copied its records up to seq {copied} but the store's copy ends at seq {}",
            report.compared
        );
        found = Some(problem(ProblemKind::Truncated, STORE, None, Some(report.compared + 1), m));
    }
    report.ok = found.is_none();
    report.problem = found;
    Ok(report)
}
