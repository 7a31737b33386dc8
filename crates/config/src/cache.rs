//! Settings of the shared cache (`[cache]`): the Redis that gateway nodes share for what is hot and
//! counted across them (rate limits, login throttling, the classifier's generation), how long a call
//! to it may take, and what a node does while it is down.

use crate::values::HumanDuration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest `cache.command_timeout`: a Redis call sits in the SMTP and HTTP paths.
const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `cache.retry_after` and `cache.model_check_interval`.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// What a node does with throttled sender groups while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheFallback {
    /// Count per node, in memory (each node then allows the whole limit by itself).
    Local,
    /// Ask clients of throttled groups to come back later (451 4.3.0 at `MAIL FROM`, 421 at
    /// connection) until Redis is back.
    Tempfail,
}

/// The Redis shared by gateway nodes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// `redis://[user:password@]host[:port][/db]`; empty: no Redis, every counter is per node.
    /// Serialized redacted (`config show`, the admin console), so its password is never printed.
    #[serde(serialize_with = "serialize_redacted")]
    pub redis_url: String,
    /// Prefix of every key this gateway writes, so several gateways (or tests) can share one Redis.
    pub key_prefix: String,
    /// Deadline for one Redis call; past it the call counts as failed and the node falls back.
    pub command_timeout: HumanDuration,
    /// After a failure, how long to wait before trying Redis again (calls in between fall back at once).
    pub retry_after: HumanDuration,
    /// While Redis is down: `local` (count per node) or `tempfail` (throttled groups come back later).
    pub on_unavailable: CacheFallback,
    /// How often each node checks whether the classifier learned elsewhere (the Redis generation key,
    /// or the store's learned totals), besides the immediate Redis notification.
    pub model_check_interval: HumanDuration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            redis_url: String::new(),
            key_prefix: "portcullis:".into(),
            command_timeout: HumanDuration(Duration::from_millis(250)),
            retry_after: HumanDuration::secs(5),
            on_unavailable: CacheFallback::Local,
            model_check_interval: HumanDuration::secs(5),
        }
    }
}

impl CacheConfig {
    /// Whether a Redis is configured.
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }

    /// `redis_url` with any password replaced by `***`, for logs and error messages.
    pub fn redacted_url(&self) -> String {
        redact(&self.redis_url)
    }

    /// Value rules (a bad value stops the start, naming the key).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.enabled() {
            check_url(&self.redis_url)
                .map_err(|why| ("cache.redis_url", format!("{why} ({})", self.redacted_url())))?;
        }
        let prefix_ok = (1..=64).contains(&self.key_prefix.len())
            && self.key_prefix.bytes().all(|b| b.is_ascii_graphic() && b != b'*' && b != b'?');
        if !prefix_ok {
            return Err((
                "cache.key_prefix",
                "must be 1 to 64 printable characters without spaces, * or ?".into(),
            ));
        }
        let t = self.command_timeout.get();
        if t.is_zero() || t > MAX_COMMAND_TIMEOUT {
            return Err(("cache.command_timeout", "must be longer than zero and at most 5s".into()));
        }
        for (key, d) in [
            ("cache.retry_after", self.retry_after),
            ("cache.model_check_interval", self.model_check_interval),
        ] {
            if d.get() < Duration::from_millis(100) || d.get() > MAX_INTERVAL {
                return Err((key, "must be between 100ms and 1h".into()));
            }
        }
        Ok(())
    }
}

fn redact(url: &str) -> String {
    let Some(rest) = url.strip_prefix("redis://") else {
        return if url.is_empty() { String::new() } else { "(not a redis:// URL)".into() };
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("redis://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

fn serialize_redacted<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact(url))
}

/// `redis://` with a host; TLS (`rediss://`) and Unix sockets are not built in.
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url.strip_prefix("redis://").ok_or("must start with redis:// (rediss:// is not supported)")?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err("names no host");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains spaces or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_settings_default_and_check() {
        let c = CacheConfig::default();
        assert!(c.check().is_ok() && !c.enabled());
        assert_eq!(c.command_timeout.get(), Duration::from_millis(250));
        for (text, key) in [
            ("redis_url = \"http://127.0.0.1\"", "cache.redis_url"),
            ("redis_url = \"redis://\"", "cache.redis_url"),
            ("redis_url = \"redis://:pw@/0\"", "cache.redis_url"),
            ("key_prefix = \"\"", "cache.key_prefix"),
            ("key_prefix = \"a b\"", "cache.key_prefix"),
            ("command_timeout = \"0s\"", "cache.command_timeout"),
            ("command_timeout = \"1m\"", "cache.command_timeout"),
            ("retry_after = \"10ms\"", "cache.retry_after"),
            ("model_check_interval = \"2h\"", "cache.model_check_interval"),
        ] {
            let c: CacheConfig = toml::from_str(text).unwrap();
            assert_eq!(c.check().unwrap_err().0, key, "{text}");
        }
        let c: CacheConfig =
            toml::from_str("redis_url = \"redis://127.0.0.1:6379/2\"\non_unavailable = \"tempfail\"\n")
                .unwrap();
        assert!(c.check().is_ok() && c.enabled());
        assert_eq!(c.on_unavailable, CacheFallback::Tempfail);
        assert!(toml::from_str::<CacheConfig>("on_unavailable = \"drop\"\n").is_err());
    }

    #[test]
    fn the_password_is_never_shown() {
        let c: CacheConfig = toml::from_str("redis_url = \"redis://gw:s3cret@10.0.0.9:6379/1\"\n").unwrap();
        assert_eq!(c.redacted_url(), "redis://gw:***@10.0.0.9:6379/1");
        let bad: CacheConfig = toml::from_str("redis_url = \"redis://:s3cret@\"\n").unwrap();
        let (_, message) = bad.check().unwrap_err();
        assert!(!message.contains("s3cret"), "{message}");
        assert!(!toml::to_string(&c).unwrap().contains("s3cret"), "config show");
        let plain: CacheConfig = toml::from_str("redis_url = \"redis://127.0.0.1\"\n").unwrap();
        assert_eq!(plain.redacted_url(), "redis://127.0.0.1");
    }
}
