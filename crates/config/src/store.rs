//! Settings of the store (`[store]`): which database holds quarantine metadata, accounts, tracking and
//! the classifier's state, and how the gateway connects to it.
//!
//! # Security
//! A PostgreSQL URL may carry a password. It is never shown: [`StoreConfig`]'s `Debug`, every error
//! message and `doctor` use [`StoreConfig::redacted_url`].

use crate::values::HumanDuration;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Longest `store.acquire_timeout` and `store.connect_timeout`.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Most connections in the pool (PostgreSQL's own default limit is 100 for all clients together).
const MAX_CONNECTIONS: u32 = 1000;
/// Longest PostgreSQL identifier.
const MAX_SCHEMA_LEN: usize = 63;

/// Which database the store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// Embedded: `<data_dir>/store/portcullis.db`, one node.
    Sqlite,
    /// A PostgreSQL server shared by every node of a cluster.
    Postgres,
}

/// Where quarantine metadata, users, tracking and classifier state are kept.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (embedded: `<data_dir>/store/portcullis.db`, write-ahead log) or `postgres` (shared by nodes).
    pub backend: StoreBackend,
    /// PostgreSQL only, and required there: `postgres://user[:password]@host[:port]/database[?sslmode=...]`.
    /// Serialized redacted (`config show`, the admin console), so its password is never printed.
    #[serde(serialize_with = "serialize_redacted")]
    pub url: String,
    /// PostgreSQL only: the schema holding Portcullis's tables, created if missing; every connection's
    /// `search_path` is set to it (so several gateways, or tests, can share one database).
    pub schema: String,
    /// Most connections the pool keeps open to the database.
    pub max_connections: u32,
    /// Connections the pool keeps open even when idle (at most `max_connections`), reopened in the
    /// background when one is retired: a portal search then does not wait for a new connection
    /// (about 100 ms to a loaded PostgreSQL server); 0 opens every connection on demand.
    pub min_connections: u32,
    /// How long a query waits for a pooled connection (including opening a new one) before it fails.
    pub acquire_timeout: HumanDuration,
    /// PostgreSQL only: how long opening the store waits to reach the server (so a start, or
    /// `portcullis migrate`, fails promptly when the database is down).
    pub connect_timeout: HumanDuration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sqlite,
            url: String::new(),
            schema: "public".into(),
            max_connections: 8,
            min_connections: 2,
            acquire_timeout: HumanDuration::secs(10),
            connect_timeout: HumanDuration::secs(10),
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("backend", &self.backend)
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl StoreConfig {
    /// `url` with its password (in the user part or a `password=` parameter) replaced by `***`, for
    /// logs, errors and `doctor`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Value rules (a bad value stops the start, naming the key).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match self.backend {
            StoreBackend::Sqlite if !self.url.is_empty() => {
                return Err(("store.url", "is for backend = \"postgres\" only; remove it for sqlite".into()));
            }
            StoreBackend::Sqlite => {}
            StoreBackend::Postgres => {
                check_url(&self.url)
                    .map_err(|why| ("store.url", format!("{why} ({})", self.redacted_url())))?;
            }
        }
        if !is_schema_name(&self.schema) {
            return Err((
                "store.schema",
                "must be 1 to 63 lower-case letters, digits or _, not starting with a digit or pg_".into(),
            ));
        }
        if self.max_connections == 0 || self.max_connections > MAX_CONNECTIONS {
            return Err(("store.max_connections", format!("must be between 1 and {MAX_CONNECTIONS}")));
        }
        if self.min_connections > self.max_connections {
            return Err(("store.min_connections", "must be at most store.max_connections".into()));
        }
        for (key, d) in
            [("store.acquire_timeout", self.acquire_timeout), ("store.connect_timeout", self.connect_timeout)]
        {
            if d.get().is_zero() || d.get() > MAX_TIMEOUT {
                return Err((key, "must be longer than zero and at most 5m".into()));
            }
        }
        Ok(())
    }
}

fn serialize_redacted<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

/// A plain lower-case identifier, so it needs no quoting anywhere (`search_path`, `CREATE SCHEMA`).
fn is_schema_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    first_ok
        && s.len() <= MAX_SCHEMA_LEN
        && !s.starts_with("pg_")
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `postgres://` or `postgresql://` with a host and a database.
fn check_url(url: &str) -> Result<(), &'static str> {
    if url.is_empty() {
        return Err("is required when backend = \"postgres\"");
    }
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("must start with postgres:// or postgresql://")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains spaces or control characters");
    }
    let (authority, path) = rest.split_once('/').ok_or("names no database (postgres://host/database)")?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err("names no host");
    }
    let database = path.split('?').next().unwrap_or("");
    if database.is_empty() {
        return Err("names no database (postgres://host/database)");
    }
    Ok(())
}

/// `url` with passwords replaced by `***`: `user:secret@` and `password=secret`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (before_query, query) = rest.split_once('?').map_or((rest, None), |(b, q)| (b, Some(q)));
    let (authority, path) = before_query.split_once('/').map_or((before_query, None), |(a, p)| (a, Some(p)));
    let mut out = String::with_capacity(url.len());
    if !scheme.is_empty() {
        out.push_str(scheme);
        out.push_str("://");
    }
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***@")),
                None => out.push_str(&format!("{userinfo}@")),
            }
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    if let Some(path) = path {
        out.push('/');
        out.push_str(path);
    }
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_settings_default_and_check() {
        let c = StoreConfig::default();
        assert!(c.check().is_ok());
        assert_eq!((c.backend, c.schema.as_str(), c.max_connections), (StoreBackend::Sqlite, "public", 8));
        let pg = "backend = \"postgres\"\n";
        for (text, key) in [
            ("url = \"postgres://127.0.0.1/test\"", "store.url"),
            (pg, "store.url"),
            (&format!("{pg}url = \"mysql://127.0.0.1/test\""), "store.url"),
            (&format!("{pg}url = \"postgres://127.0.0.1\""), "store.url"),
            (&format!("{pg}url = \"postgres:///test\""), "store.url"),
            (&format!("{pg}url = \"postgres://h/test\"\nschema = \"Public\""), "store.schema"),
            (&format!("{pg}url = \"postgres://h/test\"\nschema = \"pg_catalog\""), "store.schema"),
            (&format!("{pg}url = \"postgres://h/test\"\nschema = \"a;b\""), "store.schema"),
            (&format!("{pg}url = \"postgres://h/test\"\nschema = \"{}\"", "a".repeat(64)), "store.schema"),
            ("max_connections = 0", "store.max_connections"),
            ("max_connections = 4\nmin_connections = 5", "store.min_connections"),
            ("acquire_timeout = \"0s\"", "store.acquire_timeout"),
            ("connect_timeout = \"1h\"", "store.connect_timeout"),
        ] {
            let c: StoreConfig = toml::from_str(text).unwrap();
            assert_eq!(c.check().unwrap_err().0, key, "{text}");
        }
        let c: StoreConfig = toml::from_str(
            "backend = \"postgres\"\nurl = \"postgresql://gw@db.internal:5433/mail?sslmode=require\"\n\
             schema = \"gw_1\"\nmax_connections = 20\n",
        )
        .unwrap();
        assert!(c.check().is_ok(), "{:?}", c.check());
        assert!(toml::from_str::<StoreConfig>("backend = \"oracle\"\n").is_err());
        assert!(toml::from_str::<StoreConfig>("path = \"x\"\n").is_err());
    }

    #[test]
    fn the_password_is_never_shown() {
        let c: StoreConfig = toml::from_str(
            "backend = \"postgres\"\nurl = \"postgres://gw:s3cret@db:5432/mail?sslmode=require&password=s3cret\"\n",
        )
        .unwrap();
        assert_eq!(c.redacted_url(), "postgres://gw:***@db:5432/mail?sslmode=require&password=***");
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
        assert!(!toml::to_string(&c).unwrap().contains("s3cret"), "config show");
        let bad: StoreConfig =
            toml::from_str("backend = \"postgres\"\nurl = \"postgres://gw:s3cret@:5432/mail\"\n").unwrap();
        let (_, message) = bad.check().unwrap_err();
        assert!(!message.contains("s3cret"), "{message}");
        assert_eq!(redact_url("postgres://127.0.0.1/test"), "postgres://127.0.0.1/test");
        assert_eq!(redact_url("postgres://gw@h/test"), "postgres://gw@h/test");
    }
}
