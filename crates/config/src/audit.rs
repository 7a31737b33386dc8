//! Settings of the audit trail (`[audit]`: checkpoints, forwarding to a syslog collector) and of the
//! process sandbox (`[sandbox]`: seccomp and Landlock).

use crate::values::HumanDuration;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The hash-chained audit log in `<data_dir>/audit/` and its copy on a remote collector.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How often the chain head is signed (Ed25519) into `audit/checkpoints.log` when records were added.
    pub checkpoint_interval: HumanDuration,
    /// Syslog collector (`host:port`) that receives every record as it is written (RFC 5424 over TCP,
    /// octet-counting framing); empty: no forwarding.
    pub syslog_address: String,
    /// Speak TLS to the collector (then `syslog_tls_ca_file` is required).
    pub syslog_tls: bool,
    /// PEM file of the CA certificates the collector's certificate must chain to.
    pub syslog_tls_ca_file: PathBuf,
    /// Name the collector's certificate must carry; empty: the host part of `syslog_address`.
    pub syslog_tls_server_name: String,
    /// Most records read from the log and held in memory for one send.
    pub syslog_batch: usize,
    /// Unsent records past which an outage is reported (logged and recorded); nothing is dropped.
    pub syslog_alert_backlog: u64,
    /// Longest wait between two attempts to reach the collector (attempts start at 250ms and double).
    pub syslog_retry_max: HumanDuration,
    /// On a shared (PostgreSQL) store: most records read from the log and copied to the store's
    /// cluster-wide audit trail in one transaction.
    pub store_batch: usize,
    /// On a shared store: records not yet copied past which a store outage is reported (logged and
    /// recorded); nothing is dropped, the copy catches up from the log.
    pub store_alert_backlog: u64,
    /// On a shared store: longest wait between two attempts to copy records (attempts start at 250ms
    /// and double).
    pub store_retry_max: HumanDuration,
    /// How long the admin console and `GET /api/v1/audit` reuse their last verification of the chain
    /// (this node's log, and on a shared store every node's chain in the store) before verifying it
    /// again: a page load never costs more than one verification per interval however long the trail
    /// grows. The page says when it was verified; `0s` verifies on every request. `portcullis audit
    /// verify` always verifies in full.
    pub console_verify_interval: HumanDuration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_interval: HumanDuration::secs(60),
            syslog_address: String::new(),
            syslog_tls: false,
            syslog_tls_ca_file: PathBuf::new(),
            syslog_tls_server_name: String::new(),
            syslog_batch: 256,
            syslog_alert_backlog: 10_000,
            syslog_retry_max: HumanDuration::secs(30),
            store_batch: 256,
            store_alert_backlog: 10_000,
            store_retry_max: HumanDuration::secs(30),
            console_verify_interval: HumanDuration::secs(60),
        }
    }
}

impl AuditConfig {
    /// Value rules (a bad value stops the start, naming the key).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.checkpoint_interval.get().is_zero() {
            return Err(("audit.checkpoint_interval", "must be longer than zero".into()));
        }
        if !(1..=10_000).contains(&self.syslog_batch) {
            return Err(("audit.syslog_batch", "must be between 1 and 10000".into()));
        }
        if self.syslog_retry_max.get().is_zero() {
            return Err(("audit.syslog_retry_max", "must be longer than zero".into()));
        }
        if !(1..=10_000).contains(&self.store_batch) {
            return Err(("audit.store_batch", "must be between 1 and 10000".into()));
        }
        if self.store_retry_max.get().is_zero() {
            return Err(("audit.store_retry_max", "must be longer than zero".into()));
        }
        if !self.syslog_address.is_empty() && self.syslog_host_port().is_none() {
            return Err(("audit.syslog_address", "must be host:port".into()));
        }
        if self.syslog_tls && self.syslog_address.is_empty() {
            return Err(("audit.syslog_tls", "needs audit.syslog_address".into()));
        }
        if self.syslog_tls && self.syslog_tls_ca_file.as_os_str().is_empty() {
            return Err(("audit.syslog_tls_ca_file", "is required with audit.syslog_tls = true".into()));
        }
        Ok(())
    }

    /// The collector's host (without brackets for IPv6) and port.
    pub fn syslog_host_port(&self) -> Option<(&str, u16)> {
        let (host, port) = self.syslog_address.rsplit_once(':')?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port = port.parse().ok().filter(|p| *p != 0)?;
        (!host.is_empty() && !host.contains(char::is_whitespace)).then_some((host, port))
    }
}

/// How the gateway confines itself at start (Linux; elsewhere these do nothing).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Install a seccomp filter that refuses `execve`, `execveat`, process creation and system
    /// administration calls for the whole process.
    pub seccomp: bool,
    /// Restrict file access with Landlock to the data directory (read-write), the configuration's
    /// directory and the files named in the configuration (read-only).
    pub landlock: bool,
    /// Refuse to start when the kernel cannot enforce what is enabled here (otherwise: best effort, logged).
    pub required: bool,
    /// More paths the gateway may read (files or directories), beyond those it finds in the configuration.
    pub read_only_paths: Vec<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig { seccomp: true, landlock: true, required: false, read_only_paths: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_settings_default_and_check() {
        assert!(AuditConfig::default().check().is_ok());
        let c: AuditConfig = toml::from_str("syslog_address = \"[::1]:6514\"\n").unwrap();
        assert_eq!(c.syslog_host_port(), Some(("::1", 6514)));
        assert!(c.check().is_ok());
        for (text, key) in [
            ("syslog_address = \"nohost\"", "audit.syslog_address"),
            ("syslog_address = \"h:0\"", "audit.syslog_address"),
            ("syslog_tls = true", "audit.syslog_tls"),
            ("syslog_address = \"h:1\"\nsyslog_tls = true", "audit.syslog_tls_ca_file"),
            ("checkpoint_interval = \"0s\"", "audit.checkpoint_interval"),
            ("syslog_batch = 0", "audit.syslog_batch"),
            ("store_batch = 10001", "audit.store_batch"),
            ("store_retry_max = \"0s\"", "audit.store_retry_max"),
        ] {
            let c: AuditConfig = toml::from_str(text).unwrap();
            assert_eq!(c.check().unwrap_err().0, key, "{text}");
        }
        assert!(toml::from_str::<SandboxConfig>("seccomp = false\nnope = 1\n").is_err());
    }
}
