//! The shared cache: the Redis that gateway nodes share for what is hot and counted across them.
//!
//! Owns: one Redis client per process ([`Cache`]), whose every call is bounded by
//! `cache.command_timeout` and whose up/down state is tracked, logged on each change (never per call)
//! and exported as the `portcullis_cache_up` gauge, with `portcullis_cache_fallbacks_total` counting
//! the calls that failed (and whose callers therefore fell back); the atomic operations nodes share
//! ([`counters`]: fixed-window rate limits and login-failure counters, each one Lua script with a TTL
//! on its key; [`model`]: the classifier's generation and its change notices over pub/sub). Must not
//! touch: SQL and anything durable (Redis here keeps nothing on disk, so it holds only what may be
//! lost: counters restart from zero, a missed notice is caught by polling), SMTP replies, policy (the
//! callers decide what a failure means: `cache.on_unavailable`).
//!
//! What is deliberately not here: the single-use marks of digest links. A mark lost on a Redis
//! restart would make a used link usable again, so they stay in the store, which is durable and,
//! on PostgreSQL, shared by every node; a Redis copy in front of it would only add a second
//! place to be wrong.
//!
//! A failed call (refused, reset, timed out) drops the connection and makes calls for the next
//! `cache.retry_after` fail at once with [`CacheError::Down`], so a dead Redis costs one deadline per
//! `retry_after`, not one per message; the first call after that tries again and recovers by itself.
//!
//! # Security
//! What Redis answers is trusted no further than its type: counts are clamped, a malformed
//! notification is ignored. Keys are built from the configured prefix and values the callers have
//! already bounded (group names, addresses, normalised login names); nothing is ever evaluated
//! from them. The URL's password is never logged (`CacheConfig::redacted_url`).

#![forbid(unsafe_code)]

pub mod counters;
mod link;
pub mod model;

use config::CacheConfig;
use link::Link;
use std::sync::Arc;
use std::time::Duration;

/// Why a cache call failed. Every failure means: fall back now.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A recent call failed; Redis is not tried again until `cache.retry_after` has passed.
    #[error("Redis is down (not retried yet)")]
    Down,
    #[error("Redis call `{op}` did not answer within {timeout:?}")]
    Timeout { op: &'static str, timeout: Duration },
    #[error("Redis call `{op}` failed: {source}")]
    Redis { op: &'static str, source: redis::RedisError },
}

/// The shared Redis of `[cache]`; cheap to clone (clones share one connection and one state).
#[derive(Clone)]
pub struct Cache {
    link: Arc<Link>,
    prefix: Arc<str>,
}

impl Cache {
    /// The cache `config` describes, or `None` without `redis_url`. Connecting is lazy: a Redis that
    /// is down at start is a fallback, not an error. Fails only on a URL the client cannot use.
    pub fn from_config(config: &CacheConfig) -> Result<Option<Cache>, CacheError> {
        if !config.enabled() {
            return Ok(None);
        }
        let link = Link::new(config).map_err(|source| CacheError::Redis { op: "open", source })?;
        Ok(Some(Cache { link: Arc::new(link), prefix: config.key_prefix.as_str().into() }))
    }

    /// Ask Redis to answer (`PING`), under the same deadline as every call.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.link.call("ping", |mut c| async move { redis::cmd("PING").exec_async(&mut c).await }).await
    }

    /// Whether the last call reached Redis.
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// `name` under the configured prefix.
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}
