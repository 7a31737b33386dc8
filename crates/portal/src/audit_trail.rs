//! What the admin console and the API show of the audit trail: the latest records, the node that wrote
//! each, and whether each node's chain is intact.
//!
//! On SQLite (one node) that is this node's log: its tail, read from the end of `audit.log` (bounded
//! by [`TAIL_BYTES`]), and what `audit verify` says of it. On a shared PostgreSQL store it is the
//! cluster's trail the nodes copy into the store: the latest records of every node, newest first, and
//! each node's chain verified there ([`audit::verify_store`]), beside this node's own log verified.
//! Verifying a chain reads all of it, so a verification is reused for `audit.console_verify_interval`
//! ([`Verifications`]): one at a time, however many admins load the page, and the page says when it
//! was made. The records shown are read on every request (a bounded tail or query).
//! Must not touch: the log and the store's rows, which are only read here; comparing this node's log
//! with its copy row by row is `portcullis audit verify --store`'s (it reads the whole log).

use crate::state::{AppState, format_time, now};
use config::StoreBackend;
use std::time::Instant;

/// Most recent records shown.
pub const ROWS: u32 = 200;
/// Most bytes read from the end of the local log to find them (SQLite).
pub const TAIL_BYTES: u64 = 256 * 1024;

/// One node's chain: intact or not, in one sentence.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NodeState {
    pub node: String,
    pub intact: bool,
    pub state: String,
}

/// The trail as shown.
#[derive(Debug, Clone)]
pub struct Trail {
    /// Every chain shown is intact.
    pub intact: bool,
    /// One sentence about the whole trail.
    pub state: String,
    pub nodes: Vec<NodeState>,
    /// The latest records, newest first, each with the node that wrote it.
    pub records: Vec<(String, audit::Record)>,
}

/// The last verification of the chain(s), reused for `audit.console_verify_interval`.
#[derive(Default)]
pub struct Verifications(tokio::sync::Mutex<Option<Verified>>);

/// What one verification found.
#[derive(Clone)]
struct Verified {
    made: Instant,
    /// Unix seconds, for people.
    made_at: i64,
    /// This node's log: intact or not, in one sentence.
    local: (bool, String),
    /// On a shared store: each node's chain there, or why the store could not be read.
    store: Option<Result<Vec<NodeState>, String>>,
}

/// The trail of this node (SQLite) or of the cluster (a shared store).
pub async fn load(state: &AppState) -> Trail {
    let verified = verified(state).await;
    let when = format!("Verified {}.", format_time(verified.made_at));
    let node = state.config.cluster.node_name.clone();
    let (local_ok, local) = verified.local;
    let Some(store) = verified.store else {
        let s = state.clone();
        let tail = tokio::task::spawn_blocking(move || local_tail(&s)).await.unwrap_or_default();
        let nodes = vec![NodeState { node: node.clone(), intact: local_ok, state: local.clone() }];
        let records = tail.into_iter().map(|r| (node.clone(), r)).collect();
        return Trail { intact: local_ok, state: format!("{local} {when}"), nodes, records };
    };
    let read = async {
        let nodes = store?;
        let rows = state.store.audit_recent(None, ROWS).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((nodes, rows))
    };
    let (nodes, rows) = match read.await {
        Ok(read) => read,
        Err(e) => {
            let state = format!("This node's log: {local} The audit trail in the store cannot be read: {e}");
            return Trail { intact: false, state, nodes: Vec::new(), records: Vec::new() };
        }
    };
    let broken = nodes.iter().filter(|n| !n.intact).count();
    let store_state = match broken {
        0 => format!("The store's trail is intact for all {} nodes.", nodes.len()),
        n => format!("The store's trail is broken for {n} of {} nodes.", nodes.len()),
    };
    let records = rows
        .into_iter()
        .filter_map(|row| audit::Record::parse_line(row.line.as_bytes()).ok().map(|r| (row.node, r)))
        .collect();
    Trail {
        intact: local_ok && broken == 0,
        state: format!("This node's log: {local} {store_state} {when}"),
        nodes,
        records,
    }
}

/// The last verification while it is younger than `audit.console_verify_interval`, else a new one
/// (made by one request while the others wait for it).
async fn verified(state: &AppState) -> Verified {
    let mut last = state.audit_verifications.0.lock().await;
    let max_age = state.config.audit.console_verify_interval.get();
    if let Some(v) = last.as_ref().filter(|v| v.made.elapsed() < max_age) {
        return v.clone();
    }
    let s = state.clone();
    let local = tokio::task::spawn_blocking(move || local_state(&s))
        .await
        .unwrap_or_else(|e| (false, format!("The audit trail cannot be read: {e}")));
    let store = match state.config.store.backend {
        StoreBackend::Sqlite => None,
        StoreBackend::Postgres => Some(
            audit::verify_store(&state.store, None)
                .await
                .map(|report| report.nodes.iter().map(node_state).collect())
                .map_err(|e| e.to_string()),
        ),
    };
    let v = Verified { made: Instant::now(), made_at: now(), local, store };
    *last = Some(v.clone());
    v
}

fn node_state(n: &audit::NodeReport) -> NodeState {
    let checkpoint = n.last_checkpoint_seq.map_or("none".to_string(), |s| s.to_string());
    let state = match &n.problem {
        None => format!(
            "Chain intact in the store: {} records, last signed checkpoint at seq {checkpoint}.",
            n.records
        ),
        Some(p) => format!(
            "The chain is broken in the store at seq {}: {}",
            p.seq.map_or("?".to_string(), |s| s.to_string()),
            p.message
        ),
    };
    NodeState { node: n.node.clone(), intact: n.ok, state }
}

/// What `audit verify` says of this node's log, in one sentence, and whether the chain is intact.
fn local_state(state: &AppState) -> (bool, String) {
    match audit::verify(&audit::AuditPaths::new(&state.config.data_dir), None) {
        Ok(r) if r.ok => {
            (true, format!("Chain intact: {} records, {} not yet signed.", r.records, r.unsigned_records))
        }
        Ok(r) => (
            false,
            r.problem.map_or_else(
                || "The chain is broken.".into(),
                |p| {
                    format!(
                        "The chain is broken in {}{}: {}",
                        p.file,
                        p.line.map_or(String::new(), |l| format!(" at line {l}")),
                        p.message
                    )
                },
            ),
        ),
        Err(e) => (false, format!("The audit trail cannot be read: {e}")),
    }
}

/// The last records of this node's log, newest first (bounded read from its end).
fn local_tail(state: &AppState) -> Vec<audit::Record> {
    use std::io::{Read, Seek, SeekFrom};
    let path = audit::AuditPaths::new(&state.config.data_dir).log();
    let Ok(mut file) = std::fs::File::open(&path) else { return Vec::new() };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_BYTES);
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.take(TAIL_BYTES).read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let lines = buf.split(|b| *b == b'\n').skip(usize::from(start > 0));
    let mut records: Vec<audit::Record> = lines.filter_map(|l| audit::Record::parse_line(l).ok()).collect();
    records.reverse();
    records.truncate(ROWS as usize);
    records
}
