//! Settings of the management plane (`[portal]`): the portal, admin console and REST API listener, its
//! TLS, sessions, login throttling and the limits every HTTP request lives under.

use crate::values::{ByteSize, HumanDuration, ListenAddr};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The quarantine portal, admin console and REST API, on their own listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalConfig {
    /// Address the portal binds; loopback by default. Any other address needs TLS (`tls_cert`, `tls_key`)
    /// or `allow_insecure_public = true`.
    pub listen: ListenAddr,
    /// PEM certificate chain; with `tls_key`, the portal speaks only HTTPS.
    pub tls_cert: PathBuf,
    /// PEM private key for `tls_cert`.
    pub tls_key: PathBuf,
    /// Let a non-loopback `listen` run without TLS (logged as a warning at every start).
    pub allow_insecure_public: bool,
    /// A web session ends after this long without a request.
    pub session_idle_timeout: HumanDuration,
    /// A web session ends this long after login, however busy.
    pub session_absolute_timeout: HumanDuration,
    /// Failed logins to one account name within `login_window` before further attempts get 429.
    pub login_max_failures_per_account: u32,
    /// Failed logins from one client address within `login_window` before further attempts get 429.
    pub login_max_failures_per_address: u32,
    /// The window the login failure counters cover.
    pub login_window: HumanDuration,
    /// Largest request body (413 beyond).
    pub max_body_size: ByteSize,
    /// Largest request head: request line and header fields together (431 beyond).
    pub max_header_size: ByteSize,
    /// Longest request target, path and query (414 beyond).
    pub max_url_length: usize,
    /// Deadline for a whole request, body included (408 beyond); also the deadline for the request head.
    pub request_timeout: HumanDuration,
    /// Most HTTP connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Bearer token for `GET /metrics` (for a Prometheus scraper); empty: only an admin session may read it.
    pub metrics_token: String,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            listen: "127.0.0.1:8025".parse().expect("valid default"),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            allow_insecure_public: false,
            session_idle_timeout: HumanDuration::secs(30 * 60),
            session_absolute_timeout: HumanDuration::secs(12 * 3600),
            login_max_failures_per_account: 10,
            login_max_failures_per_address: 30,
            login_window: HumanDuration::secs(15 * 60),
            max_body_size: ByteSize(1 << 20),
            max_header_size: ByteSize(16 << 10),
            max_url_length: 4096,
            request_timeout: HumanDuration::secs(30),
            max_connections: 256,
            metrics_token: String::new(),
        }
    }
}

impl PortalConfig {
    /// Whether the portal speaks TLS.
    pub fn tls(&self) -> bool {
        !self.tls_cert.as_os_str().is_empty()
    }

    /// Value rules (a bad value stops the start, naming the key).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.tls_cert.as_os_str().is_empty() != self.tls_key.as_os_str().is_empty() {
            return Err((
                "portal.tls_cert",
                "portal.tls_cert and portal.tls_key must be set together".into(),
            ));
        }
        if !self.listen.0.ip().is_loopback() && !self.tls() && !self.allow_insecure_public {
            return Err((
                "portal.listen",
                format!(
                    "{} is not a loopback address: set portal.tls_cert and portal.tls_key, or \
                     portal.allow_insecure_public = true",
                    self.listen
                ),
            ));
        }
        let idle = self.session_idle_timeout.get();
        if idle.is_zero() || idle > self.session_absolute_timeout.get() {
            return Err((
                "portal.session_idle_timeout",
                "must be longer than zero and not longer than session_absolute_timeout".into(),
            ));
        }
        self.check_limits()
    }

    fn check_limits(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("portal.login_max_failures_per_account", u64::from(self.login_max_failures_per_account)),
            ("portal.login_max_failures_per_address", u64::from(self.login_max_failures_per_address)),
            ("portal.max_body_size", self.max_body_size.0),
            ("portal.max_connections", self.max_connections as u64),
            ("portal.login_window", self.login_window.get().as_secs()),
            ("portal.request_timeout", self.request_timeout.get().as_millis() as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err((key, "must be greater than zero".into()));
        }
        if !(8192..=1 << 20).contains(&self.max_header_size.0) {
            return Err(("portal.max_header_size", "must be between 8KiB and 1MiB".into()));
        }
        if !(256..=65_536).contains(&self.max_url_length) {
            return Err(("portal.max_url_length", "must be between 256 and 65536".into()));
        }
        if !self.metrics_token.is_empty() && self.metrics_token.len() < 16 {
            return Err(("portal.metrics_token", "must be at least 16 characters".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_settings_default_and_check() {
        let c = PortalConfig::default();
        assert!(c.check().is_ok());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8025");
        for (text, key) in [
            ("listen = \"0.0.0.0:8025\"", "portal.listen"),
            ("tls_cert = \"/x.pem\"", "portal.tls_cert"),
            ("session_idle_timeout = \"13h\"", "portal.session_idle_timeout"),
            ("max_url_length = 10", "portal.max_url_length"),
            ("max_header_size = 100", "portal.max_header_size"),
            ("metrics_token = \"short\"", "portal.metrics_token"),
            ("login_max_failures_per_address = 0", "portal.login_max_failures_per_address"),
        ] {
            let c: PortalConfig = toml::from_str(text).unwrap();
            assert_eq!(c.check().unwrap_err().0, key, "{text}");
        }
        let public: PortalConfig =
            toml::from_str("listen = \"0.0.0.0:8025\"\nallow_insecure_public = true\n").unwrap();
        assert!(public.check().is_ok());
        let tls: PortalConfig =
            toml::from_str("listen = \"[::]:443\"\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n").unwrap();
        assert!(tls.check().is_ok() && tls.tls());
        assert!(toml::from_str::<PortalConfig>("listen_on = \"x\"\n").is_err());
    }
}
