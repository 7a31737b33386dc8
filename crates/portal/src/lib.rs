//! The management plane: the end-user quarantine portal, the admin console and the REST API, on their
//! own HTTP listener (`[portal] listen`, loopback by default).
//!
//! Owns: the HTTP server and its limits ([`server`], [`layers`]), accounts as people and scripts use
//! them (login, sessions, CSRF, throttling, TOTP, API tokens: [`session`], [`secrets`], [`totp`],
//! [`accounts`], [`throttle`]), the pages ([`web`], askama templates under `templates/`, compiled in) and the API
//! ([`api`], with its OpenAPI document). Must not touch: the spool (held mail and the delivery queue
//! are read and changed only through the `quarantine` core, which has this process's spool or asks
//! the mail plane), SMTP, SQL (only `store`'s typed methods), scoring.
//!
//! # Security
//! Everything in a request is untrusted, and so is everything from mail shown on a page. Before any
//! handler runs: request heads over `max_header_size` get 431, targets over `max_url_length` 414,
//! bodies over `max_body_size` 413, requests past `request_timeout` 408, a request with both
//! `Content-Length` and `Transfer-Encoding` 400, unknown methods 405, wrong body types 415; extractor
//! refusals are never 422 or 500. Only login, static files, digest links and `/healthz` answer without
//! a session or token; everything else is 401 first, then checked against the account's role (403)
//! and the addresses it owns (404, never someone else's message). Unsafe web requests need the
//! session's CSRF token and our own `Origin`. Pages are auto-escaped templates under a CSP without
//! inline script; mail text has bidi controls neutralised ([`render`]); HTML bodies are shown only
//! after ammonia, inside `<iframe sandbox srcdoc>`. Passwords are Argon2id; tokens and session ids are
//! stored as SHA-256; secrets are compared in constant time. No path, SQL, shell or markup is built
//! from request or mail text, and code and templates are read-only parts of the binary.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod audit_trail;
pub mod error;
pub mod extract;
pub mod layers;
pub mod render;
pub mod secrets;
pub mod server;
pub mod session;
pub mod state;
pub mod throttle;
pub mod totp;
pub mod web;

pub use error::PortalError;
pub use server::{Listener, bind};
pub use state::{AppState, Deps};

use axum::Router;
use axum::routing::{get, post};

/// Every route, wrapped in the limits and headers of [`layers`].
pub fn router(state: AppState) -> Router {
    use web::{account, admin, console, digest, login, quarantine, settings};
    let routes = Router::new()
        .route("/", get(quarantine::list))
        .route("/quarantine/bulk", post(quarantine::bulk))
        .route("/quarantine/{id}", get(quarantine::show))
        .route("/quarantine/{id}/raw", get(quarantine::raw))
        .route("/quarantine/{id}/action", post(quarantine::action))
        .route("/lists", get(settings::lists).post(settings::change_list))
        .route("/preferences", get(settings::preferences).post(settings::set_preferences))
        .route("/digest/request", get(digest::request_form).post(digest::request))
        .route("/digest/{token}", get(digest::confirm).post(digest::redeem))
        .route("/admin", get(console::dashboard))
        .route("/admin/digests", post(console::send_digests))
        .route("/admin/tracking", get(console::tracking))
        .route("/login", get(login::form).post(login::submit))
        .route("/login/totp", get(login::totp_form).post(login::totp_submit))
        .route("/logout", post(login::logout))
        .route("/account", get(account::show))
        .route("/account/password", post(account::password))
        .route("/account/tokens", post(account::new_token))
        .route("/account/tokens/revoke", post(account::revoke_token))
        .route("/account/totp", post(account::totp_enable))
        .route("/account/totp/remove", post(account::totp_remove))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/update", post(admin::update_user))
        .route("/admin/config", get(admin::config))
        .route("/admin/audit", get(admin::audit_log))
        .route("/admin/queue", get(admin::queue))
        .route("/admin/queue/retry", post(admin::queue_retry))
        .route("/admin/queue/delete", post(admin::queue_remove))
        .route("/admin/nodes", get(admin::nodes))
        .route("/admin/nodes/forget", post(admin::forget_node))
        .route("/static/{file}", get(web::static_file))
        .route("/healthz", get(web::healthz))
        .route("/metrics", get(web::metrics))
        .nest("/api/v1", api::router())
        .fallback(layers::not_found);
    layers::wrap(routes, &state).with_state(state)
}

/// Serve the portal on `listener` until `stopped` turns true.
pub async fn serve(listener: Listener, state: AppState, stopped: tokio::sync::watch::Receiver<bool>) {
    let settings = state.config.portal.clone();
    server::serve(listener, router(state), &settings, stopped).await;
}

/// Install the process-wide Prometheus recorder (once; later calls and failures give `None`), so the
/// mail plane's counters appear at `/metrics`.
pub fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().ok()
}
