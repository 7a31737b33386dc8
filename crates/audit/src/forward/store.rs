//! The cluster's audit trail in the shared store: each record's line copied under this node's name,
//! its checkpoint key registered on the first copy, and its latest signed checkpoint copied once the
//! records it covers are there (so a store cut short of a signed head is seen by
//! [`crate::verify_store`]).

use super::Sink;
use crate::checkpoint::Checkpoint;
use crate::log::last_line;
use crate::record::Record;
use std::fs::File;
use std::path::PathBuf;

pub(crate) struct StoreSink {
    store: store::Store,
    node: String,
    public_key: String,
    checkpoints: PathBuf,
    registered: bool,
    /// The seq of the last checkpoint copied.
    checkpoint_seq: u64,
}

impl StoreSink {
    pub fn new(store: store::Store, node: &str, public_key: &str, checkpoints: PathBuf) -> StoreSink {
        StoreSink {
            store,
            node: node.to_string(),
            public_key: public_key.to_string(),
            checkpoints,
            registered: false,
            checkpoint_seq: 0,
        }
    }

    /// Record this node's checkpoint key unless the store has one for it; a different one is reported
    /// (this node's checkpoints will then not verify in the store) but does not stop the copy.
    async fn register(&mut self) -> Result<(), String> {
        if self.registered {
            return Ok(());
        }
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let held = self
            .store
            .audit_register_key(&self.node, &self.public_key, now_ms)
            .await
            .map_err(|e| e.to_string())?;
        if held != self.public_key {
            tracing::error!(
                node = %self.node,
                registered = %held,
                ours = %self.public_key,
                "the store has another audit checkpoint key for this node name (two nodes with one \
                 cluster.node_name, or a rebuilt node); its checkpoints will not verify in the store"
            );
        }
        self.registered = true;
        Ok(())
    }
}

impl Sink for StoreSink {
    const NAME: &'static str = "shared store";

    async fn send(&mut self, lines: &[Vec<u8>]) -> Result<(), String> {
        self.register().await?;
        let mut rows = Vec::with_capacity(lines.len());
        for line in lines {
            match Record::parse_line(line) {
                Ok(r) => rows.push(store::AuditRow {
                    node: self.node.clone(),
                    seq: i64::try_from(r.seq).map_err(|_| format!("seq {} out of range", r.seq))?,
                    time: r.time,
                    hash: r.hash,
                    line: String::from_utf8_lossy(line).into_owned(),
                }),
                // A damaged line cannot be keyed; `audit verify` names it in the log, and the store's
                // copy shows the gap.
                Err(why) => {
                    tracing::error!(error = %why, "an audit log line is not a record; not copied to the store")
                }
            }
        }
        match self.store.audit_copy(&rows).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(held) => Err(format!(
                "the store holds a different record for node {} seq {} (hash {}); run `portcullis audit verify --store`",
                held.node, held.seq, held.hash
            )),
        }
    }

    async fn caught_up(&mut self, seq: u64) -> Result<(), String> {
        self.register().await?;
        let path = self.checkpoints.clone();
        let last = tokio::task::spawn_blocking(move || {
            let file = File::open(&path).ok()?;
            let len = file.metadata().ok()?.len();
            let line = last_line(&file, len, &path).ok()??;
            let cp = Checkpoint::parse_line(&line).ok()?;
            Some((cp.seq, String::from_utf8(line).ok()?))
        })
        .await
        .map_err(|e| e.to_string())?;
        let Some((cp_seq, line)) = last else { return Ok(()) };
        if cp_seq <= self.checkpoint_seq || cp_seq > seq {
            return Ok(());
        }
        let at = i64::try_from(cp_seq).map_err(|_| format!("seq {cp_seq} out of range"))?;
        self.store.audit_checkpoint_copy(&self.node, at, &line).await.map_err(|e| e.to_string())?;
        self.checkpoint_seq = cp_seq;
        Ok(())
    }

    fn reset(&mut self) {}
}
