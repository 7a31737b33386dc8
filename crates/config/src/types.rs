//! The settings tree. Each field's doc comment is its documentation; the README's reference mirrors it.

use crate::values::{ByteSize, Domain, HumanDuration, ListenAddrs, NextHop, OneOrMany};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything Portcullis can be told.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory holding the spool, mailboxes, TLS material and databases.
    pub data_dir: PathBuf,
    /// Name this gateway uses in its SMTP greeting and `Received:` headers (default: the system host name).
    pub hostname: String,
    pub smtp: SmtpConfig,
    pub relay: RelayConfig,
    pub spool: SpoolConfig,
    pub actions: crate::ActionsConfig,
    pub verdict: crate::VerdictConfig,
    pub classifier: crate::ClassifierConfig,
    pub store: crate::StoreConfig,
    pub dns: crate::DnsConfig,
    pub auth: crate::AuthConfig,
    pub reputation: crate::ReputationConfig,
    pub attachments: crate::AttachmentsConfig,
    pub antivirus: crate::AntivirusConfig,
    pub urls: crate::UrlsConfig,
    pub quarantine: crate::QuarantineConfig,
    pub digest: crate::DigestConfig,
    pub audit: crate::AuditConfig,
    pub sandbox: crate::SandboxConfig,
    pub portal: crate::PortalConfig,
    pub cache: crate::CacheConfig,
    pub cluster: crate::ClusterConfig,
    pub control: crate::ControlConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./portcullis-data"),
            hostname: String::new(),
            smtp: SmtpConfig::default(),
            relay: RelayConfig::default(),
            spool: SpoolConfig::default(),
            actions: Default::default(),
            verdict: Default::default(),
            classifier: Default::default(),
            store: Default::default(),
            dns: Default::default(),
            auth: Default::default(),
            reputation: Default::default(),
            attachments: Default::default(),
            antivirus: Default::default(),
            urls: Default::default(),
            quarantine: Default::default(),
            digest: Default::default(),
            audit: Default::default(),
            sandbox: Default::default(),
            portal: Default::default(),
            cache: Default::default(),
            cluster: Default::default(),
            control: Default::default(),
            log: LogConfig::default(),
        }
    }
}

/// The mail plane: SMTP listeners, the domains accepted, and the limits every session lives under.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Addresses the SMTP listener binds (list).
    pub listen: ListenAddrs,
    /// Recipient domains this gateway accepts mail for; everything else is refused with 550 5.7.1 (no relaying).
    pub accepted_domains: OneOrMany<Domain>,
    /// Valid recipient addresses (`user@domain`, or `@domain` for a whole domain); empty: every address in
    /// an accepted domain. Others get 550 5.1.1 at RCPT (never accepted and then bounced).
    pub recipients: Vec<String>,
    /// Largest message accepted, in bytes (or with a unit, e.g. `25MiB`); enforced while the data streams in.
    pub max_message_size: ByteSize,
    /// Most recipients in one transaction; more get 452 4.5.3.
    pub max_recipients: usize,
    /// Longest command line in bytes, CRLF included; longer lines get 500 5.5.2.
    pub max_line_length: usize,
    /// Bad commands tolerated in one session before it is closed with 421 4.7.0.
    pub max_errors: u32,
    /// Most SMTP connections open at once; more get 421 4.7.0.
    pub max_connections: usize,
    /// Most SMTP connections open at once from one client IP address; more get 421 4.7.0.
    pub max_connections_per_ip: usize,
    /// Most transactions (messages) in one session before the gateway closes it with 421 4.7.0.
    pub max_messages_per_session: u32,
    /// Deadline for a complete command line, counted from when the gateway starts waiting for it (421 4.4.2).
    pub command_timeout: HumanDuration,
    /// Deadline for the whole message content after DATA or for one BDAT chunk (421 4.4.2).
    pub data_timeout: HumanDuration,
    /// Pause before the greeting; a client that talks during it is refused with 554 5.5.0 (early talker).
    pub greeting_delay: HumanDuration,
    /// Offer STARTTLS.
    pub starttls: bool,
    /// Refuse MAIL until the client has started TLS (530 5.7.0).
    pub require_tls: bool,
    /// PEM certificate chain for STARTTLS; empty: a self-signed one is made in `<data_dir>/tls` on first start.
    pub tls_cert: PathBuf,
    /// PEM private key for `tls_cert`.
    pub tls_key: PathBuf,
    /// On SIGTERM, how long sessions get to finish the message they are receiving before they are closed.
    pub drain_timeout: HumanDuration,
    /// Flow control (as Postfix's `in_flow_delay`): while delivery is behind by `in_flow_limit` messages
    /// or more, a new transaction's MAIL waits for one to be delivered, at most this long, then goes
    /// on; 0s: never waits.
    pub in_flow_delay: HumanDuration,
    /// Messages handed to delivery and not yet attempted (retries waiting for their time not counted)
    /// at which new transactions start to wait (`in_flow_delay`).
    pub in_flow_limit: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: OneOrMany(vec!["127.0.0.1:2525".parse().expect("valid default")]),
            accepted_domains: OneOrMany(vec!["localhost".parse().expect("valid default")]),
            recipients: Vec::new(),
            max_message_size: ByteSize(25 << 20),
            max_recipients: 1000,
            max_line_length: 2048,
            max_errors: 20,
            max_connections: 1000,
            max_connections_per_ip: 50,
            max_messages_per_session: 1000,
            command_timeout: HumanDuration::secs(300),
            data_timeout: HumanDuration::secs(600),
            greeting_delay: HumanDuration::secs(0),
            starttls: true,
            require_tls: false,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            drain_timeout: HumanDuration::secs(30),
            in_flow_delay: HumanDuration::secs(1),
            in_flow_limit: 500,
        }
    }
}

/// How the relay's outbound connections use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboundTls {
    /// Never start TLS.
    None,
    /// Start TLS when the next hop offers it, without verifying its certificate; plain text otherwise.
    Opportunistic,
    /// Defer delivery unless TLS can be started (and, with `tls_ca_file`, the certificate verifies).
    Required,
}

/// Outbound delivery: where mail goes next, how often it is retried, and how long it may wait.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Where accepted mail goes: `local` (Maildirs under `<data_dir>/mailboxes`) or `smtp://host[:port]`.
    pub next_hop: NextHop,
    /// Per-domain next hops (`[[relay.route]]` with `domain` and `next_hop`); the first match wins.
    pub route: Vec<Route>,
    /// TLS towards next hops: `none`, `opportunistic` or `required`.
    pub tls: OutboundTls,
    /// PEM file of CA certificates that next hops' certificates must chain to under `tls = "required"`; empty: not verified.
    pub tls_ca_file: PathBuf,
    /// Most delivery attempts running at once, in total.
    pub max_concurrency: usize,
    /// Most delivery attempts running at once towards one next hop.
    pub max_concurrency_per_destination: usize,
    /// Deadline for connecting to a next hop and receiving its greeting.
    pub connect_timeout: HumanDuration,
    /// Deadline for each reply from a next hop (the final reply after the message content included).
    pub command_timeout: HumanDuration,
    /// First retry delay after a temporary failure; each later retry waits twice as long.
    pub retry_min: HumanDuration,
    /// Longest wait between two retries.
    pub retry_max: HumanDuration,
    /// How long a message may stay queued before its undelivered recipients are bounced.
    pub max_queue_lifetime: HumanDuration,
    /// How long an idle outbound connection is kept open for reuse.
    pub connection_idle: HumanDuration,
    /// Most messages sent over one outbound connection before it is closed.
    pub max_messages_per_connection: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            next_hop: NextHop::Local,
            route: Vec::new(),
            tls: OutboundTls::Opportunistic,
            tls_ca_file: PathBuf::new(),
            max_concurrency: 100,
            max_concurrency_per_destination: 20,
            connect_timeout: HumanDuration::secs(30),
            command_timeout: HumanDuration::secs(300),
            retry_min: HumanDuration::secs(60),
            retry_max: HumanDuration::secs(3600),
            max_queue_lifetime: HumanDuration::secs(5 * 86_400),
            connection_idle: HumanDuration::secs(5),
            max_messages_per_connection: 100,
        }
    }
}

/// One per-domain route.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Recipient domain this route is for; `*.example.com` also matches every subdomain.
    pub domain: String,
    /// Next hop for that domain (`local` or `smtp://host[:port]`).
    pub next_hop: NextHop,
}

impl Route {
    /// Whether this route covers `domain` (lower-case, no trailing dot).
    pub fn matches(&self, domain: &str) -> bool {
        match self.domain.strip_prefix("*.") {
            Some(parent) => domain == parent || domain.ends_with(&format!(".{parent}")),
            None => domain == self.domain,
        }
    }
}

/// The queue's files on disk (the queue itself is `<data_dir>/spool`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Removed queue files (delivered, deleted, refused) kept in `spool/free/` and written over by new
    /// messages instead of creating and unlinking a file per message; 0: none kept (0 to 65536).
    pub recycle_files: usize,
    /// Larger removed files are unlinked, not kept, so `spool/free/` holds at most `recycle_files` times
    /// this much disk (4KiB to 64MiB).
    pub recycle_max_size: ByteSize,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig { recycle_files: 1024, recycle_max_size: ByteSize(128 << 10) }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Log filter, e.g. `info` or `info,smtp_server=debug`.
    pub level: String,
    /// `text` for people, `json` for log shippers.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Text }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The next hop for a recipient domain: the first matching route, else `relay.next_hop`.
    pub fn next_hop_for(&self, domain: &str) -> &NextHop {
        self.relay
            .route
            .iter()
            .find(|r| r.matches(domain))
            .map(|r| &r.next_hop)
            .unwrap_or(&self.relay.next_hop)
    }

    /// Whether `domain` (lower-case, no trailing dot) is one this gateway accepts mail for.
    pub fn accepts_domain(&self, domain: &str) -> bool {
        self.smtp.accepted_domains.iter().any(|d| d.as_str() == domain)
    }
}
