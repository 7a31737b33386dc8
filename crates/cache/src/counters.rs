//! Counters every node shares: fixed-window rate limits ([`Cache::hit`], the semantics of the
//! sender groups' in-memory `RateLimiter::hit`) and login-failure counters ([`Cache::failures`],
//! [`Cache::count_failure`], [`Cache::forget`], the semantics of the store's `login_throttle`
//! table). Each update is one Lua script, so concurrent callers on any node never lose or double a
//! count, and every key carries a TTL a little past its window, so nothing outlives its use.

use crate::{Cache, CacheError};
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// Count one event unless `limit` (ARGV[1]) is reached; the window (ARGV[2], ms) starts with the
/// first event. A refused event is not counted. Returns 1 when counted, 0 when refused.
static HIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
",
    )
});

/// Count one failure at `now` (ARGV[1], Unix seconds) in a window of ARGV[2] seconds that starts with
/// the first failure: a window that has passed starts over at 1. Returns the count. The key lives a
/// second past its window.
static FAIL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local start = tonumber(redis.call('HGET', KEYS[1], 'start'))
local n
if start and start > now - window then
  n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
else
  start = now
  redis.call('HSET', KEYS[1], 'start', now, 'failures', 1)
  n = 1
end
redis.call('EXPIRE', KEYS[1], math.max(1, start + window - now) + 1)
return n
",
    )
});

impl Cache {
    /// Count one event under `key` in a fixed window of `window` that starts with its first event;
    /// `false` (and not counted) when `limit` events were already counted in this window.
    pub async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<bool, CacheError> {
        let key = self.key(key);
        let window_ms = window.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        self.link
            .call("hit", |mut c| async move {
                let counted: i64 = HIT.key(&key).arg(limit).arg(window_ms).invoke_async(&mut c).await?;
                Ok(counted == 1)
            })
            .await
    }

    /// Failures counted under `key` in the window still open at `now` (Unix seconds; a window of
    /// `window` seconds from the first failure).
    pub async fn failures(&self, key: &str, now: i64, window: i64) -> Result<u32, CacheError> {
        let key = self.key(key);
        let (start, failures): (Option<i64>, Option<i64>) = self
            .link
            .call("failures", |mut c| async move {
                redis::cmd("HMGET").arg(&key).arg("start").arg("failures").query_async(&mut c).await
            })
            .await?;
        Ok(match (start, failures) {
            (Some(start), Some(n)) if start > now - window => clamp(n),
            _ => 0,
        })
    }

    /// Count one failure under `key` at `now` (a new window starts when the last one has passed);
    /// returns the count in the window.
    pub async fn count_failure(&self, key: &str, now: i64, window: i64) -> Result<u32, CacheError> {
        let key = self.key(key);
        let n: i64 = self
            .link
            .call("count_failure", |mut c| async move {
                FAIL.key(&key).arg(now).arg(window).invoke_async(&mut c).await
            })
            .await?;
        Ok(clamp(n))
    }

    /// Forget the failures under `key`.
    pub async fn forget(&self, key: &str) -> Result<(), CacheError> {
        let key = self.key(key);
        self.link
            .call("forget", |mut c| async move { redis::cmd("DEL").arg(&key).exec_async(&mut c).await })
            .await
    }
}

fn clamp(n: i64) -> u32 {
    n.clamp(0, i64::from(u32::MAX)) as u32
}
