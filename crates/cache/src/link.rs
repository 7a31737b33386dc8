//! The connection to Redis and its health: one multiplexed connection shared by every caller, a
//! deadline on every call, and the up/down state with its log lines and metrics.

use crate::CacheError;
use config::CacheConfig;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisResult};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Whether Redis answered the last call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// Not tried yet.
    Unknown,
    Up,
    Down,
}

struct State {
    conn: Option<MultiplexedConnection>,
    /// Calls fail at once until then.
    paused_until: Option<Instant>,
    health: Health,
}

pub(crate) struct Link {
    client: redis::Client,
    /// For logs: the URL without its password.
    url: String,
    pub(crate) timeout: Duration,
    pub(crate) retry_after: Duration,
    state: Mutex<State>,
    /// One connection attempt at a time; the others wait for its outcome.
    connecting: tokio::sync::Mutex<()>,
}

impl Link {
    pub(crate) fn new(config: &CacheConfig) -> RedisResult<Link> {
        Ok(Link {
            client: redis::Client::open(config.redis_url.as_str())?,
            url: config.redacted_url(),
            timeout: config.command_timeout.get(),
            retry_after: config.retry_after.get(),
            state: Mutex::new(State { conn: None, paused_until: None, health: Health::Unknown }),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    pub(crate) fn is_up(&self) -> bool {
        self.state().health == Health::Up
    }

    /// Run `f` on the shared connection (connecting first if needed), all within the deadline;
    /// record the outcome in the health state.
    pub(crate) async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, CacheError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.connection().await?;
            f(conn).await.map_err(|source| CacheError::Redis { op, source })
        };
        let result = tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or(Err(CacheError::Timeout { op, timeout: self.timeout }));
        match &result {
            Ok(_) => self.mark_up(),
            Err(CacheError::Down) => metrics::gauge!("portcullis_cache_up").set(0.0),
            Err(e) => self.mark_down(e),
        }
        if result.is_err() {
            metrics::counter!("portcullis_cache_fallbacks_total", "op" => op).increment(1);
        }
        result
    }

    async fn connection(&self) -> Result<MultiplexedConnection, CacheError> {
        if let Some(conn) = self.ready()? {
            return Ok(conn);
        }
        let _one = self.connecting.lock().await;
        if let Some(conn) = self.ready()? {
            return Ok(conn); // the attempt we waited for succeeded (or failed: `ready` said so)
        }
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&settings)
            .await
            .map_err(|source| CacheError::Redis { op: "connect", source })?;
        self.state().conn = Some(conn.clone());
        Ok(conn)
    }

    /// The open connection; `None` when there is none and one may be tried; `Down` while paused.
    fn ready(&self) -> Result<Option<MultiplexedConnection>, CacheError> {
        let s = self.state();
        if let Some(conn) = &s.conn {
            return Ok(Some(conn.clone()));
        }
        if s.paused_until.is_some_and(|t| Instant::now() < t) {
            return Err(CacheError::Down);
        }
        Ok(None)
    }

    // The gauge is set on every outcome, not only on changes: a metrics recorder installed after the
    // first call (the portal's) still sees it.
    fn mark_up(&self) {
        metrics::gauge!("portcullis_cache_up").set(1.0);
        let mut s = self.state();
        s.paused_until = None;
        if s.health != Health::Up {
            let was = s.health;
            s.health = Health::Up;
            drop(s);
            if was == Health::Down {
                tracing::warn!(redis = %self.url, "Redis reachable again: counters are shared across nodes again");
            } else {
                tracing::info!(redis = %self.url, "Redis reachable: counters are shared across nodes");
            }
        }
    }

    fn mark_down(&self, error: &CacheError) {
        metrics::gauge!("portcullis_cache_up").set(0.0);
        let mut s = self.state();
        s.conn = None;
        s.paused_until = Some(Instant::now() + self.retry_after);
        if s.health != Health::Down {
            s.health = Health::Down;
            drop(s);
            tracing::warn!(redis = %self.url, %error, retry_after = ?self.retry_after,
                "Redis unreachable: falling back (cache.on_unavailable for rate limits, the store for login \
                 throttling, store polling for classifier changes) until it answers again");
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
