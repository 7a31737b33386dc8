//! Settings of one node in a cluster (`[cluster]`): its name in the shared store, how often it reports
//! itself, when other nodes count it as gone, and how often it looks for releases to deliver.
//!
//! A single gateway needs none of these changed. Nodes share a PostgreSQL store (`[store]`) and a Redis
//! (`[cache]`); each node keeps its own spool, and its name is how the shared store knows which
//! quarantined files are its own, so it must be unique in the cluster and stay the same across restarts.

use crate::values::HumanDuration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest `cluster.node_name` (the store's `nodes.name` column allows as much).
const MAX_NODE_NAME: usize = 255;
/// Bounds of `cluster.heartbeat_interval` and `cluster.release_check_interval`.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(600);

/// This node's place in a cluster.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster and stable across restarts (1 to 255 of `A-Z a-z 0-9 . _ -`);
    /// empty (the default): the machine's host name (`/proc/sys/kernel/hostname`).
    pub node_name: String,
    /// How often a serving node records its heartbeat (version, queue depth, listeners) in the store.
    pub heartbeat_interval: HumanDuration,
    /// A node whose last heartbeat is older than this is shown stale, and release deliveries it claimed
    /// but did not finish are taken over by another node. At least twice `heartbeat_interval`.
    pub node_stale_after: HumanDuration,
    /// How often a mail node looks in the shared store for released messages to deliver (releases made on
    /// the node itself are delivered at once).
    pub release_check_interval: HumanDuration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_name: String::new(),
            heartbeat_interval: HumanDuration::secs(5),
            node_stale_after: HumanDuration::secs(30),
            release_check_interval: HumanDuration::secs(2),
        }
    }
}

impl ClusterConfig {
    /// Value rules (a bad value stops the start, naming the key).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !node_name_ok(&self.node_name) {
            return Err((
                "cluster.node_name",
                format!(
                    "`{}` must be 1 to 255 characters of A-Z a-z 0-9 . _ -",
                    self.node_name.escape_default()
                ),
            ));
        }
        for (key, d) in [
            ("cluster.heartbeat_interval", self.heartbeat_interval),
            ("cluster.release_check_interval", self.release_check_interval),
        ] {
            if d.get() < MIN_INTERVAL || d.get() > MAX_INTERVAL {
                return Err((key, "must be between 100ms and 10m".into()));
            }
        }
        if self.node_stale_after.get() < self.heartbeat_interval.get() * 2 {
            return Err((
                "cluster.node_stale_after",
                "must be at least twice cluster.heartbeat_interval".into(),
            ));
        }
        Ok(())
    }
}

/// Whether `name` can name a node.
pub(crate) fn node_name_ok(name: &str) -> bool {
    (1..=MAX_NODE_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The machine's host name as a node name, if it is one.
pub(crate) fn system_node_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    node_name_ok(name).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_settings_default_and_check() {
        let mut c = ClusterConfig::default();
        assert_eq!(c.check().unwrap_err().0, "cluster.node_name", "empty until load fills it");
        c.node_name = "mx1.example.com".into();
        assert!(c.check().is_ok());
        for (text, key) in [
            ("node_name = \"mx 1\"", "cluster.node_name"),
            ("node_name = \"mx/1\"", "cluster.node_name"),
            ("heartbeat_interval = \"10ms\"", "cluster.heartbeat_interval"),
            ("heartbeat_interval = \"1h\"", "cluster.heartbeat_interval"),
            ("release_check_interval = \"0s\"", "cluster.release_check_interval"),
            ("node_stale_after = \"9s\"", "cluster.node_stale_after"),
        ] {
            let mut c: ClusterConfig = toml::from_str(text).unwrap();
            if c.node_name.is_empty() {
                c.node_name = "mx1".into();
            }
            assert_eq!(c.check().unwrap_err().0, key, "{text}");
        }
        let long = ClusterConfig { node_name: "a".repeat(256), ..ClusterConfig::default() };
        assert_eq!(long.check().unwrap_err().0, "cluster.node_name");
        assert!(node_name_ok(&"a".repeat(255)));
    }
}
