//! The node in the store: at start, before its spool opens, the mail plane registers under
//! `cluster.node_name` and gets its queue-id tag ([`register`]: the tag it held before, or a free one; see
//! `store::cluster`), which its spool puts in every queue id it mints. A single gateway does the same through
//! its own store, where it is the only node. Then, every `cluster.heartbeat_interval`, it records who it is,
//! the version it runs, when it started, its delivery queue depth and its listeners, for the admin console's
//! Nodes page and `GET /api/v1/nodes` ([`run`]). A failed heartbeat is logged once per change of state and
//! tried again at the next beat; nothing else waits on it, except one failure: a heartbeat that finds this
//! node's tag held by another node (this one was forgotten while it ran and a new node claimed the tag) ends
//! [`run`] with that error, and `serve` stops the gateway (draining, exit status 2, as for any error) rather
//! than mint queue ids another node mints too; started again, it claims a free tag. At start, a live
//! heartbeat already under this node's name (another node configured with the same `cluster.node_name`, which
//! would make both take each other's quarantined items for their own, and share a tag) is logged as an error,
//! and a live node without a tag (a version from before store-given tags, still minting ids under a hash of
//! its name) as a warning.

use anyhow::Context;
use config::Config;
use std::sync::Arc;
use tokio::sync::watch;

// The store hands out exactly the tags a queue id has room for.
const _: () = assert!(store::NODE_TAGS as u32 == 1 << spool::NODE_TAG_BITS);

/// This node as registered at start: its queue-id tag, and what its heartbeats report that never changes.
pub(crate) struct Registration {
    pub(crate) tag: spool::NodeTag,
    identity: Identity,
}

/// What a node's heartbeats report that never changes while it runs.
struct Identity {
    started_at_ms: i64,
    smtp_listen: String,
    portal_listen: String,
}

impl Identity {
    fn beat(&self, config: &Config, queue_depth: usize) -> store::NodeBeat {
        store::NodeBeat {
            name: config.cluster.node_name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at_ms: self.started_at_ms,
            heartbeat_ms: now_ms(),
            queue_depth: i64::try_from(queue_depth).unwrap_or(i64::MAX),
            smtp_listen: self.smtp_listen.clone(),
            portal_listen: self.portal_listen.clone(),
        }
    }
}

/// Register this node and claim its queue-id tag. Fails when the store cannot be written or every tag
/// is held by another node (the error says to forget the nodes that are gone).
pub(crate) async fn register(
    store: &store::Store,
    config: &Config,
    serves_portal: bool,
) -> anyhow::Result<Registration> {
    warn_about_live_nodes(store, config).await;
    let identity = Identity {
        started_at_ms: now_ms(),
        smtp_listen: config.smtp.listen.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
        portal_listen: if serves_portal { config.portal.listen.to_string() } else { String::new() },
    };
    let tag = store
        .node_claim_tag(&identity.beat(config, 0))
        .await
        .context("registering this node and claiming its queue-id tag")?;
    tracing::info!(node = %config.cluster.node_name, tag, "registered; queue ids minted here carry this tag");
    let tag = spool::NodeTag::new(tag).context("the store gave a queue-id tag out of range")?;
    Ok(Registration { tag, identity })
}

/// Record this node's heartbeat until `stopped` turns true; returns early only with
/// [`store::StoreError::NodeTagTaken`] (the gateway must stop).
pub(crate) async fn run(
    store: store::Store,
    config: Arc<Config>,
    registration: Registration,
    relay: relay::Relay,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), store::StoreError> {
    let mut failing = false;
    loop {
        let beat = registration.identity.beat(&config, relay.queue_depth());
        match store.node_heartbeat(&beat, registration.tag.get()).await {
            Err(e @ store::StoreError::NodeTagTaken { .. }) => return Err(e),
            Ok(()) if failing => {
                failing = false;
                tracing::info!(node = %beat.name, "node heartbeat recorded again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::error!(node = %beat.name, error = %e, "could not record the node heartbeat");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(config.cluster.heartbeat_interval.get()) => {}
            _ = stopped.changed() => return Ok(()),
        }
    }
}

/// Of the nodes that sent a heartbeat within `cluster.node_stale_after`: log an error for one under this
/// name (a restart of this same node looks the same, hence the hedged message), and a warning for each
/// other one without a queue-id tag (it runs a version from before store-given tags; until it is
/// upgraded, an id it mints can match one of this node's, 1 in 1,024 per pair).
async fn warn_about_live_nodes(store: &store::Store, config: &Config) {
    let name = &config.cluster.node_name;
    let stale_after = i64::try_from(config.cluster.node_stale_after.get().as_millis()).unwrap_or(i64::MAX);
    let Ok(nodes) = store.nodes().await else { return };
    for store::NodeRow { beat: n, tag } in
        nodes.iter().filter(|n| now_ms() - n.beat.heartbeat_ms < stale_after)
    {
        if &n.name == name {
            tracing::error!(node = %name, last_heartbeat_ms = n.heartbeat_ms, smtp_listen = %n.smtp_listen,
                "a node under this name sent a heartbeat moments ago: unless this node just restarted, give \
                 each node its own cluster.node_name");
        } else if tag.is_none() {
            tracing::warn!(node = %n.name, version = %n.version,
                "a live node has no queue-id tag: it runs a version from before store-given tags and mints \
                 ids under a hash of its name, which can match this node's; upgrade it (or stop it) soon");
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
