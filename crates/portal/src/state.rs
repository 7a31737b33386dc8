//! What every request handler shares: settings, the store, the audit trail, the metrics handle, the
//! quarantine core (held mail, and the mail plane's delivery queue and digests) and the shared cache.

use config::Config;
use std::sync::Arc;

/// What the portal is built from (the binary opens each of these).
pub struct Deps {
    pub config: Arc<Config>,
    pub store: store::Store,
    pub audit: audit::Audit,
    /// The quarantine core: every quarantine read and change goes through it, and so do the delivery
    /// queue and "send digests now" (this process's spool, or the mail plane's control socket).
    pub quarantine: quarantine::Quarantine,
    /// The process-wide Prometheus recorder, for `/metrics`.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The Redis gateway nodes share, for throttling counters ([`crate::throttle`]); `None`: the store.
    pub cache: Option<cache::Cache>,
}

/// The shared state, cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Shared>);

pub struct Shared {
    pub config: Arc<Config>,
    pub store: store::Store,
    pub audit: audit::Audit,
    pub quarantine: quarantine::Quarantine,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub cache: Option<cache::Cache>,
    /// The listener speaks TLS (cookies are Secure, HSTS is sent).
    pub tls: bool,
    /// The audit page's last verification of the chain, reused for a while.
    pub audit_verifications: crate::audit_trail::Verifications,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(deps: Deps) -> AppState {
        let tls = deps.config.portal.tls();
        AppState(Arc::new(Shared {
            config: deps.config,
            store: deps.store,
            audit: deps.audit,
            quarantine: deps.quarantine,
            metrics: deps.metrics,
            cache: deps.cache,
            tls,
            audit_verifications: Default::default(),
        }))
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix seconds as `2026-01-02 03:04:05 UTC` for people.
pub fn format_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "-".into())
}
