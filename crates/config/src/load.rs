//! Reading a configuration: file, then overrides, then whole-tree validation.

use crate::{Config, ConfigError};
use serde::Deserialize;
use std::path::Path;

/// Where an override came from, so an error can name it.
#[derive(Debug, Clone)]
pub enum Source {
    /// An environment variable `PORTCULLIS_<SECTION>__<KEY>` and its value.
    Env { var: String, value: String },
    /// A command-line `--set section.key=value`.
    Arg(String),
}

const ENV_PREFIX: &str = "PORTCULLIS_";

impl Source {
    /// The environment variables that are overrides, from any list of (name, value) pairs.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Source> {
        let mut out: Vec<Source> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .map(|(var, value)| Source::Env { var, value })
            .collect();
        out.sort_by_key(Source::origin);
        out
    }

    fn origin(&self) -> String {
        match self {
            Source::Env { var, .. } => format!("environment variable {var}"),
            Source::Arg(text) => format!("--set {text}"),
        }
    }

    /// The key path (lower-case) and raw value.
    fn split(&self) -> Result<(Vec<String>, &str), String> {
        let (path, value): (Vec<String>, &str) = match self {
            Source::Env { var, value } => {
                let key = &var[ENV_PREFIX.len()..];
                (key.split("__").map(|s| s.to_ascii_lowercase()).collect(), value)
            }
            Source::Arg(text) => {
                let (k, v) = text.split_once('=').ok_or("expected section.key=value")?;
                (k.trim().split('.').map(|s| s.to_string()).collect(), v)
            }
        };
        if path.iter().any(|p| p.is_empty()) {
            return Err("empty key".into());
        }
        Ok((path, value))
    }
}

/// Load the configuration: defaults, then `file` (if any), then `overrides` in order.
pub fn load(file: Option<&Path>, overrides: &[Source]) -> Result<Config, ConfigError> {
    match file {
        None => load_str("", "embedded defaults", overrides),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
            load_str(&text, &path.display().to_string(), overrides)
        }
    }
}

/// Like [`load`], with the file's text given; `origin` names it in errors.
pub fn load_str(text: &str, origin: &str, overrides: &[Source]) -> Result<Config, ConfigError> {
    // Deserialize the file alone first: its errors then carry the file's line and column.
    toml::from_str::<Config>(text)
        .map_err(|e| ConfigError::Invalid { origin: origin.to_string(), message: e.to_string() })?;
    let mut table: toml::Table = toml::from_str(text)
        .map_err(|e| ConfigError::Invalid { origin: origin.to_string(), message: e.to_string() })?;
    for o in overrides {
        let err = |message: String| ConfigError::Override { origin: o.origin(), message };
        let (path, raw) = o.split().map_err(err)?;
        set_path(&mut table, &path, parse_value(raw)).map_err(err)?;
        // Check after each override so an error names the one that caused it.
        Config::deserialize(toml::Value::Table(table.clone())).map_err(|e| err(e.message().to_string()))?;
    }
    let mut config = Config::deserialize(toml::Value::Table(table))
        .map_err(|e| ConfigError::Invalid { origin: origin.to_string(), message: e.to_string() })?;
    if config.hostname.is_empty() {
        config.hostname = system_hostname();
    }
    if config.cluster.node_name.is_empty() {
        config.cluster.node_name = crate::cluster::system_node_name().unwrap_or_else(|| "localhost".into());
    }
    config.validate()?;
    Ok(config)
}

/// An override value is TOML if it parses as TOML (numbers, booleans, arrays), a plain string otherwise.
fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut cur = table;
    for p in parents {
        cur = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("`{p}` is not a section"))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

/// The kernel's host name if it is a usable domain name, else `localhost`.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| h.trim().parse::<crate::Domain>().ok())
        .map(|d| d.to_string())
        .unwrap_or_else(|| "localhost".into())
}

impl Config {
    /// Rules that span several settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rule = |key, message: &str| Err(ConfigError::Rule { key, message: message.to_string() });
        let s = &self.smtp;
        if s.listen.is_empty() {
            return rule("smtp.listen", "at least one address is needed");
        }
        if s.accepted_domains.is_empty() {
            return rule("smtp.accepted_domains", "at least one domain is needed");
        }
        if self.hostname.parse::<crate::Domain>().is_err() {
            return rule("hostname", "must be a valid domain name");
        }
        for (key, value) in [
            ("smtp.max_message_size", s.max_message_size.0 as usize),
            ("smtp.max_recipients", s.max_recipients),
            ("smtp.max_errors", s.max_errors as usize),
            ("smtp.max_connections", s.max_connections),
            ("smtp.max_connections_per_ip", s.max_connections_per_ip),
            ("smtp.max_messages_per_session", s.max_messages_per_session as usize),
            ("relay.max_concurrency", self.relay.max_concurrency),
            ("relay.max_concurrency_per_destination", self.relay.max_concurrency_per_destination),
            ("relay.max_messages_per_connection", self.relay.max_messages_per_connection as usize),
        ] {
            if value == 0 {
                return rule(key, "must be greater than zero");
            }
        }
        if !(512..=65_536).contains(&s.max_line_length) {
            return rule("smtp.max_line_length", "must be between 512 (RFC 5321) and 65536");
        }
        for (key, d) in [
            ("smtp.command_timeout", s.command_timeout),
            ("smtp.data_timeout", s.data_timeout),
            ("relay.connect_timeout", self.relay.connect_timeout),
            ("relay.command_timeout", self.relay.command_timeout),
            ("relay.retry_min", self.relay.retry_min),
        ] {
            if d.get().is_zero() {
                return rule(key, "must be longer than zero");
            }
        }
        if s.in_flow_delay.get() > std::time::Duration::from_secs(60) {
            return rule("smtp.in_flow_delay", "must be at most 1m");
        }
        if s.in_flow_limit == 0 {
            return rule("smtp.in_flow_limit", "must be at least 1");
        }
        if self.spool.recycle_files > 65_536 {
            return rule("spool.recycle_files", "must be between 0 and 65536");
        }
        if !(4 << 10..=64 << 20).contains(&self.spool.recycle_max_size.0) {
            return rule("spool.recycle_max_size", "must be between 4KiB and 64MiB");
        }
        if self.relay.retry_max.get() < self.relay.retry_min.get() {
            return rule("relay.retry_max", "must not be shorter than relay.retry_min");
        }
        if s.tls_cert.as_os_str().is_empty() != s.tls_key.as_os_str().is_empty() {
            return rule("smtp.tls_cert", "smtp.tls_cert and smtp.tls_key must be set together");
        }
        if s.require_tls && !s.starttls {
            return rule("smtp.require_tls", "requires smtp.starttls = true");
        }
        if let Err((key, message)) = self.verdict.check().and_then(|()| self.actions.check()) {
            return rule(key, &message);
        }
        if let Err((key, message)) = self.audit.check() {
            return rule(key, &message);
        }
        if let Err((key, message)) = self.quarantine.check().and_then(|()| self.digest.check()) {
            return rule(key, &message);
        }
        if let Err((key, message)) = self.portal.check().and_then(|()| self.cache.check()) {
            return rule(key, &message);
        }
        let control = |()| self.control.check();
        if let Err((key, message)) = self.store.check().and_then(|()| self.cluster.check()).and_then(control)
        {
            return rule(key, &message);
        }
        for r in &s.recipients {
            let domain = r.rsplit_once('@').map(|(_, d)| d.trim().to_ascii_lowercase());
            if !domain.is_some_and(|d| self.accepts_domain(&d)) {
                return rule(
                    "smtp.recipients",
                    &format!("`{r}` is not user@domain or @domain of an accepted domain"),
                );
            }
        }
        for r in &self.relay.route {
            let bare = r.domain.strip_prefix("*.").unwrap_or(&r.domain);
            if bare.parse::<crate::Domain>().map(|d| d.as_str() != bare).unwrap_or(true) {
                return rule("relay.route.domain", &format!("`{}` is not a lower-case domain", r.domain));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NextHop;

    fn env(pairs: &[(&str, &str)]) -> Vec<Source> {
        Source::from_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let c = load_str("", "defaults", &[]).unwrap();
        assert_eq!(c.smtp.listen[0].0.to_string(), "127.0.0.1:2525");
        assert_eq!(c.smtp.accepted_domains[0].as_str(), "localhost");
        assert_eq!(c.relay.next_hop, NextHop::Local);
        assert!(!c.hostname.is_empty());
    }

    #[test]
    fn file_values_and_routes() {
        let text = r#"
data_dir = "/var/lib/portcullis"
[smtp]
listen = ["127.0.0.1:25", "[::1]:25"]
accepted_domains = ["Example.COM", "example.org."]
max_message_size = "10MiB"
max_recipients = 5
[relay]
next_hop = "smtp://127.0.0.1:2626"
[[relay.route]]
domain = "*.example.org"
next_hop = "local"
"#;
        let c = load_str(text, "t.toml", &[]).unwrap();
        assert_eq!(c.smtp.listen.len(), 2);
        assert!(c.accepts_domain("example.com") && c.accepts_domain("example.org"));
        assert_eq!(c.smtp.max_message_size.0, 10 << 20);
        assert_eq!(c.next_hop_for("a.example.org"), &NextHop::Local);
        assert_eq!(c.next_hop_for("example.org"), &NextHop::Local);
        assert_eq!(c.next_hop_for("example.com").to_string(), "smtp://127.0.0.1:2626");
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let err = load_str("[smtp]\nmax_recipients = 5\nmax_recipents = 6\n", "gw.toml", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("gw.toml") && msg.contains("line 3") && msg.contains("max_recipents"), "{msg}");
        let err = load_str("[relay]\n\nnext_hop = \"ftp://x\"\n", "gw.toml", &[]).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("smtp://"), "{err}");
        let err = load_str("[smtp]\nmax_recipients = 0\n", "gw.toml", &[]).unwrap_err().to_string();
        assert!(err.contains("smtp.max_recipients"), "{err}");
        for (text, key) in [
            ("[spool]\nrecycle_files = 70000\n", "spool.recycle_files"),
            ("[smtp]\nin_flow_delay = \"2m\"\n", "smtp.in_flow_delay"),
            ("[smtp]\nin_flow_limit = 0\n", "smtp.in_flow_limit"),
            ("[spool]\nrecycle_max_size = \"1KiB\"\n", "spool.recycle_max_size"),
            ("[spool]\nrecycle_max_size = \"1GiB\"\n", "spool.recycle_max_size"),
        ] {
            let err = load_str(text, "gw.toml", &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        let c =
            load_str("[spool]\nrecycle_files = 0\nrecycle_max_size = \"1MiB\"\n", "gw.toml", &[]).unwrap();
        assert_eq!((c.spool.recycle_files, c.spool.recycle_max_size.0), (0, 1 << 20));
    }

    #[test]
    fn environment_overrides() {
        let o = env(&[
            ("PORTCULLIS_SMTP__MAX_RECIPIENTS", "7"),
            ("PORTCULLIS_SMTP__LISTEN", "127.0.0.1:2600,127.0.0.1:2601"),
            ("PORTCULLIS_DATA_DIR", "/tmp/x"),
            ("PORTCULLIS_RELAY__NEXT_HOP", "smtp://127.0.0.1:2626"),
            ("HOME", "/root"),
        ]);
        let c = load_str("[smtp]\nmax_recipients = 5\n", "f", &o).unwrap();
        assert_eq!(c.smtp.max_recipients, 7);
        assert_eq!(c.smtp.listen.len(), 2);
        assert_eq!(c.data_dir.to_str(), Some("/tmp/x"));
        let bad = load_str("", "f", &env(&[("PORTCULLIS_SMTP__MAX_RECIPIENTS", "many")])).unwrap_err();
        assert!(bad.to_string().contains("PORTCULLIS_SMTP__MAX_RECIPIENTS"), "{bad}");
        let unknown = load_str("", "f", &env(&[("PORTCULLIS_SMTP__NOPE", "1")])).unwrap_err();
        assert!(unknown.to_string().contains("nope"), "{unknown}");
    }

    #[test]
    fn a_removed_setting_says_so_wherever_it_is_given() {
        let err = load_str("[control]\ntimeout = \"5s\"\nmax_response_size = \"48MiB\"\n", "gw.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("gw.toml") && err.contains("line 3"), "{err}");
        assert!(err.contains("removed") && err.contains("derived from smtp.max_message_size"), "{err}");
        for o in [
            env(&[("PORTCULLIS_CONTROL__MAX_RESPONSE_SIZE", "48MiB")]),
            vec![Source::Arg("control.max_response_size=1000".into())],
        ] {
            let err = load_str("", "f", &o).unwrap_err().to_string();
            assert!(err.contains("derived from smtp.max_message_size"), "{err}");
        }
        let shown = toml::to_string(&load_str("", "f", &[]).unwrap()).unwrap();
        assert!(!shown.contains("max_response_size"), "{shown}");
    }

    #[test]
    fn set_arguments() {
        let c = load_str("", "f", &[Source::Arg("smtp.max_errors=3".into())]).unwrap();
        assert_eq!(c.smtp.max_errors, 3);
        assert!(load_str("", "f", &[Source::Arg("smtp.max_errors".into())]).is_err());
    }
}
