//! Failure counters for login and "send me my digest" throttling: in the Redis that gateway nodes
//! share (`[cache]`) when there is one and it answers, else in the store (shared too when the store
//! is PostgreSQL). Both count the same way (a window of `window` seconds from the first failure; a
//! passed window starts over), which the `cache` crate's tests check against the store.
//!
//! A call Redis fails goes to the store, so throttling never stops: while Redis is down the store's
//! counters apply, and they start from what the store holds (counts made in Redis are not copied
//! over, so a switch can give a client up to one extra window's worth of attempts, never more).

use crate::error::PortalError;
use crate::state::AppState;
use store::ThrottleScope;

/// The name of a counter in Redis.
fn cache_key(scope: ThrottleScope, key: &str) -> String {
    let scope = match scope {
        ThrottleScope::Account => "account",
        ThrottleScope::Address => "address",
    };
    format!("throttle:{scope}:{key}")
}

/// Failures counted for `key` in the window still open at `now`.
pub async fn failures(
    state: &AppState,
    scope: ThrottleScope,
    key: &str,
    now: i64,
    window: i64,
) -> Result<u32, PortalError> {
    counter(state, Op::Read, scope, key, now, window).await
}

/// Count one failure for `key`; returns the count in the window.
pub async fn count_failure(
    state: &AppState,
    scope: ThrottleScope,
    key: &str,
    now: i64,
    window: i64,
) -> Result<u32, PortalError> {
    counter(state, Op::Count, scope, key, now, window).await
}

/// What is done to a counter.
#[derive(Clone, Copy)]
enum Op {
    Read,
    Count,
}

/// `op` on the counter of `key`: in Redis when there is one and it answers, else in the store.
async fn counter(
    state: &AppState,
    op: Op,
    scope: ThrottleScope,
    key: &str,
    now: i64,
    window: i64,
) -> Result<u32, PortalError> {
    if let Some(cache) = &state.cache {
        let name = cache_key(scope, key);
        let answer = match op {
            Op::Read => cache.failures(&name, now, window).await,
            Op::Count => cache.count_failure(&name, now, window).await,
        };
        // A failure is logged by the cache when its state changes and counted in its metrics.
        if let Ok(n) = answer {
            return Ok(n);
        }
    }
    let store = &state.store;
    Ok(match op {
        Op::Read => store.throttle_failures(scope, key, now, window).await?,
        Op::Count => store.throttle_fail(scope, key, now, window).await?,
    })
}

/// Forget the failures of `key` wherever they were counted.
pub async fn forget(state: &AppState, scope: ThrottleScope, key: &str) -> Result<(), PortalError> {
    if let Some(cache) = &state.cache {
        let _ = cache.forget(&cache_key(scope, key)).await;
    }
    Ok(state.store.throttle_clear(scope, key).await?)
}
