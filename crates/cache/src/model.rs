//! The classifier's generation: a counter every learning node bumps ([`Cache::publish_model_changed`])
//! and announces on a pub/sub channel, so serving nodes reload the weights from the store at once
//! ([`Cache::model_changes`]); the counter itself ([`Cache::model_generation`]) is what they poll in
//! case a notice was missed (a subscriber reconnecting, Redis restarting). One key per gateway, kept
//! for [`GENERATION_TTL`] after the last change: losing it (expiry, a Redis restart) only makes every
//! node reload once more, since nodes look for a different generation, not a larger one.

use crate::{Cache, CacheError};
use futures_util::StreamExt;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::watch;

/// The generation key and channel, under the prefix.
const GENERATION: &str = "classifier:generation";
const CHANNEL: &str = "classifier:changed";

/// How long the generation key outlives the last change (so a gateway, or a test, that is gone
/// leaves nothing behind for ever).
pub const GENERATION_TTL: Duration = Duration::from_secs(30 * 86_400);

/// Bump the generation (KEYS[1]), keep it for ARGV[2] seconds and publish the new value on ARGV[1],
/// in one step.
static BUMP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[1], n)
return n
",
    )
});

impl Cache {
    /// Say that the model in the store changed: bump the generation and publish it. Returns the new
    /// generation.
    pub async fn publish_model_changed(&self) -> Result<u64, CacheError> {
        let (key, channel) = (self.key(GENERATION), self.key(CHANNEL));
        let n: i64 = self
            .link
            .call("publish_model_changed", |mut c| async move {
                BUMP.key(&key).arg(&channel).arg(GENERATION_TTL.as_secs()).invoke_async(&mut c).await
            })
            .await?;
        Ok(n.max(0) as u64)
    }

    /// The current generation (0 before the first change).
    pub async fn model_generation(&self) -> Result<u64, CacheError> {
        let key = self.key(GENERATION);
        let n: Option<i64> =
            self.link
                .call("model_generation", |mut c| async move {
                    redis::cmd("GET").arg(&key).query_async(&mut c).await
                })
                .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// Generations as they are announced: a task subscribes (again after `retry_after` whenever the
    /// subscription breaks), and after each (re)subscription also reads the current generation, so
    /// what was announced while it was away is not missed. It ends when the receiver is dropped.
    pub fn model_changes(&self) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(0);
        tokio::spawn(follow(self.clone(), tx));
        rx
    }
}

async fn follow(cache: Cache, tx: watch::Sender<u64>) {
    let channel = cache.key(CHANNEL);
    loop {
        let subscribed = tokio::time::timeout(cache.link.timeout, async {
            let mut pubsub = cache.link.client().get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(pubsub)) => {
                if let Ok(n) = cache.model_generation().await {
                    tx.send_replace(n);
                }
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(m) => if let Ok(n) = m.get_payload::<u64>() { tx.send_replace(n); },
                            None => break,
                        },
                        _ = tx.closed() => return,
                    }
                }
                tracing::debug!("classifier change subscription lost; subscribing again");
            }
            Ok(Err(error)) => tracing::debug!(%error, "cannot subscribe to classifier changes"),
            Err(_) => tracing::debug!("subscribing to classifier changes timed out"),
        }
        tokio::select! {
            _ = tokio::time::sleep(cache.link.retry_after) => {}
            _ = tx.closed() => return,
        }
    }
}
