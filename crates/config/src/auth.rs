//! Settings of DNS lookups (`[dns]`), sender authentication (`[auth]`) and reputation (`[reputation]`).

use serde::{Deserialize, Serialize};

/// The resolver every network check uses.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Name servers as `ip:port` (list); empty: those in /etc/resolv.conf.
    pub nameservers: Vec<String>,
}

/// SPF, DKIM, DMARC and ARC verification.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Verify SPF, DKIM, DMARC and ARC and add `Authentication-Results:`.
    pub enabled: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { enabled: true }
    }
}

/// DNS blocklists and connection-time sender groups.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ReputationConfig {
    /// DNS blocklist zones queried with the client IP (list, e.g. `zen.example.org`); empty: none.
    pub ip_blocklists: Vec<String>,
}
