//! Per-next-hop concurrency: at most `relay.max_concurrency_per_destination` transactions at once.
//!
//! A counter per next hop rather than a semaphore, so a reload that changes the limit applies to the
//! very next acquisition without replacing anything in-flight attempts hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct DestLimits {
    in_use: Mutex<HashMap<String, usize>>,
    freed: Notify,
}

/// One slot towards a next hop; freed on drop.
#[derive(Debug)]
pub(crate) struct DestPermit {
    limits: Arc<DestLimits>,
    key: String,
}

impl DestLimits {
    /// Wait for a slot towards `key`; `limit` is read afresh each time so reloads apply.
    pub(crate) async fn acquire(self: &Arc<Self>, key: &str, limit: impl Fn() -> usize) -> DestPermit {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Register before checking, so a slot freed between the check and the wait is not missed.
            freed.as_mut().enable();
            if self.try_take(key, limit().max(1)) {
                return DestPermit { limits: self.clone(), key: key.to_string() };
            }
            freed.await;
        }
    }

    fn try_take(&self, key: &str, limit: usize) -> bool {
        let mut in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        let n = in_use.entry(key.to_string()).or_insert(0);
        if *n < limit {
            *n += 1;
            true
        } else {
            false
        }
    }
}

impl Drop for DestPermit {
    fn drop(&mut self) {
        let mut in_use = self.limits.in_use.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = in_use.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                in_use.remove(&self.key);
            }
        }
        drop(in_use);
        self.limits.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_for_a_free_slot_per_destination() {
        let limits = Arc::new(DestLimits::default());
        let a1 = limits.acquire("a", || 1).await;
        let _b = limits.acquire("b", || 1).await; // other destinations are not held up
        let waiting = {
            let limits = limits.clone();
            tokio::spawn(async move { limits.acquire("a", || 1).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(a1);
        let a2 = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        drop(a2);
        assert!(limits.in_use.lock().unwrap().get("a").is_none());
    }
}
