//! The node's heartbeat: every `cluster.heartbeat_interval` a serving mail plane records in the store
//! who it is (`cluster.node_name`), the version it runs, when it started, its delivery queue depth and
//! its listeners, for the admin console's Nodes page and `GET /api/v1/nodes`. A failed write is logged
//! once per change of state and tried again at the next beat; nothing else waits on it. At start, a live
//! heartbeat already under this node's name (another node configured with the same `cluster.node_name`,
//! which would make both take each other's quarantined items for their own) is logged as an error, and
//! so is another known node whose name gives the same queue-id tag ([`spool::node_tag`]: the two could
//! mint the same queue id).

use config::Config;
use std::sync::Arc;
use tokio::sync::watch;

/// Record this node's heartbeat until `stopped` turns true.
pub(crate) async fn run(
    store: store::Store,
    config: Arc<Config>,
    relay: relay::Relay,
    serves_portal: bool,
    mut stopped: watch::Receiver<bool>,
) {
    let started_at_ms = now_ms();
    let smtp_listen = config.smtp.listen.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
    let portal_listen = if serves_portal { config.portal.listen.to_string() } else { String::new() };
    warn_if_name_taken(&store, &config).await;
    let mut failing = false;
    loop {
        let beat = store::NodeBeat {
            name: config.cluster.node_name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at_ms,
            heartbeat_ms: now_ms(),
            queue_depth: i64::try_from(relay.queue_depth()).unwrap_or(i64::MAX),
            smtp_listen: smtp_listen.clone(),
            portal_listen: portal_listen.clone(),
        };
        match store.node_heartbeat(&beat).await {
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
            _ = stopped.changed() => return,
        }
    }
}

/// Log an error when a node under this name sent a heartbeat within `cluster.node_stale_after` (a
/// restart of this same node looks the same, hence the hedged message).
async fn warn_if_name_taken(store: &store::Store, config: &Config) {
    let name = &config.cluster.node_name;
    let stale_after = i64::try_from(config.cluster.node_stale_after.get().as_millis()).unwrap_or(i64::MAX);
    let Ok(nodes) = store.nodes().await else { return };
    if let Some(n) = nodes.iter().find(|n| &n.name == name && now_ms() - n.heartbeat_ms < stale_after) {
        tracing::error!(node = %name, last_heartbeat_ms = n.heartbeat_ms, smtp_listen = %n.smtp_listen,
            "a node under this name sent a heartbeat moments ago: unless this node just restarted, give each \
             node its own cluster.node_name");
    }
    let tag = spool::node_tag(name);
    for other in nodes.iter().filter(|n| &n.name != name && spool::node_tag(&n.name) == tag) {
        tracing::error!(node = %name, other = %other.name, tag,
            "this node's name and another known node's give the same queue-id tag, so the two can mint the \
             same queue id: rename one (cluster.node_name), or forget the other if it is gone for good");
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
