//! Idle connections kept per next hop for reuse.
//!
//! After a completed transaction a session is back in its initial state, so the next message's MAIL
//! goes out directly, without RSET. A connection is kept for `relay.connection_idle` and carries at
//! most `relay.max_messages_per_connection` transactions; one opened before a reload is not reused.

use super::client::Connection;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Idle {
    conn: Connection,
    since: Instant,
    generation: u64,
}

#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used live connection to `key`, if one is idle.
    pub(crate) async fn take(&self, key: &str, generation: u64, max_idle: Duration) -> Option<Connection> {
        loop {
            let idle = self.lock().get_mut(key)?.pop()?;
            if idle.generation != generation || idle.since.elapsed() >= max_idle {
                continue; // dropped: closes the socket
            }
            let mut conn = idle.conn;
            if conn.wire.is_stale().await {
                continue;
            }
            return Some(conn);
        }
    }

    pub(crate) fn put(&self, key: &str, conn: Connection, generation: u64) {
        let idle = Idle { conn, since: Instant::now(), generation };
        self.lock().entry(key.to_string()).or_default().push(idle);
    }

    /// Remove connections idle for `max_idle` or opened under older settings, for closing.
    pub(crate) fn expired(&self, generation: u64, max_idle: Duration) -> Vec<Connection> {
        let mut out = Vec::new();
        let mut idle = self.lock();
        for list in idle.values_mut() {
            let (old, keep): (Vec<Idle>, Vec<Idle>) =
                list.drain(..).partition(|i| i.generation != generation || i.since.elapsed() >= max_idle);
            *list = keep;
            out.extend(old.into_iter().map(|i| i.conn));
        }
        idle.retain(|_, list| !list.is_empty());
        out
    }

    /// Every idle connection (at shutdown).
    pub(crate) fn drain(&self) -> Vec<Connection> {
        self.lock().drain().flat_map(|(_, list)| list.into_iter().map(|i| i.conn)).collect()
    }
}
