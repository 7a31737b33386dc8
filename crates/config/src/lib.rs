//! Portcullis settings: one typed tree, loaded from TOML, overridden from the environment, validated whole.
//!
//! Owns: the shape of every setting, its default and its one-line documentation (the doc comment beside it,
//! mirrored in the README's configuration reference, which a test keeps complete). Must not touch: sockets,
//! storage, or anything that acts on a setting; other crates receive a validated [`Config`] and trust it.
//!
//! Loading order: embedded defaults, then the TOML file, then overrides (`PORTCULLIS_<SECTION>__<KEY>`
//! environment variables and `--set section.key=value` arguments). A bad value is reported with the file
//! line or the variable that carried it, and nothing starts half-configured: [`load`] returns a complete,
//! validated configuration or an error.
//!
//! # Security
//! The configuration file is trusted (it is the operator's), but it is still checked strictly: unknown keys
//! are errors (a typo must not silently leave a limit unset), and every limit has a bounded, non-zero
//! default.

#![forbid(unsafe_code)]

mod audit;
mod auth;
mod cache;
mod classifier;
mod cluster;
mod control;
mod inspect;
mod load;
mod portal;
mod quarantine;
mod store;
mod types;
mod values;
mod verdict;

pub use audit::{AuditConfig, SandboxConfig};
pub use auth::{
    AuthConfig, BlocklistZone, BlocklistZones, DmarcRejectAction, DnsConfig, GroupPolicy, IpNet, NameServer,
    ReputationConfig, SenderGroup,
};
pub use cache::{CacheConfig, CacheFallback};
pub use classifier::ClassifierConfig;
pub use cluster::ClusterConfig;
pub use control::{ControlConfig, SocketGroup};
pub use inspect::{
    AntivirusConfig, AttachmentPolicy, AttachmentsConfig, BlockAction, HoldAction, UrlsConfig,
};
pub use load::{Source, load, load_str};
pub use portal::PortalConfig;
pub use quarantine::{DigestConfig, QuarantineConfig, ReleaseRole};
pub use store::{StoreBackend, StoreConfig, redact_url};
pub use types::*;
pub use values::{ByteSize, Domain, HumanDuration, ListenAddr, ListenAddrs, NextHop, OneOrMany, Removed};
pub use verdict::{ActionsConfig, SenderListEntry, Threshold, VerdictConfig};

/// Why a configuration could not be loaded. Every variant names where the bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The TOML text or one of its values is invalid; the message carries line and column.
    #[error("invalid configuration in {origin}: {message}")]
    Invalid { origin: String, message: String },
    /// An override could not be applied.
    #[error("invalid override {origin}: {message}")]
    Override { origin: String, message: String },
    /// The values parse but contradict each other.
    #[error("invalid configuration: {key}: {message}")]
    Rule { key: &'static str, message: String },
}
