//! The node's heartbeat: every `cluster.heartbeat_interval` a serving mail plane records in the store
//! who it is (`cluster.node_name`), the version it runs, when it started, its delivery queue depth and
//! its listeners, for the admin console's Nodes page and `GET /api/v1/nodes`. A failed write is logged
//! once per change of state and tried again at the next beat; nothing else waits on it.

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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
