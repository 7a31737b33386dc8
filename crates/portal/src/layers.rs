//! What wraps every route: response headers that lock the page down (CSP, nosniff, no referrer, no
//! framing, HSTS under TLS, no caching of personal pages), the URL length limit (414), the origin
//! check for unsafe web requests (403), the body limit (413) and the request deadline (408).

use crate::error::{PortalError, WebError};
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};

/// The policy of every page: no inline script, no eval, nothing from other origins, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Wrap `router` in the layers every route gets.
pub fn wrap(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let p = &state.config.portal;
    let max_body = p.max_body_size.0 as usize;
    router
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            p.request_timeout.get(),
        ))
        .layer(from_fn_with_state(state.clone(), same_origin))
        .layer(from_fn_with_state(state.clone(), url_length))
        .layer(from_fn_with_state(state.clone(), security_headers))
        .layer(from_fn(count_requests))
}

async fn url_length(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if len > state.config.portal.max_url_length {
        return (StatusCode::URI_TOO_LONG, "the request target is too long\n").into_response();
    }
    next.run(req).await
}

/// Unsafe methods on web routes must come from this site (the API authenticates with bearer tokens,
/// which a browser never sends by itself, so it needs no such check).
async fn same_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    if !api && let Err(e) = crate::session::check_origin(req.method(), req.headers(), state.tls) {
        return WebError(e).into_response();
    }
    next.run(req).await
}

async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::CONTENT_SECURITY_POLICY, CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
    set(
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    );
    set(header::CACHE_CONTROL, "no-store");
    if state.tls {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains");
    }
    response
}

async fn count_requests(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let class = match response.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("portcullis_portal_requests_total", "status" => class).increment(1);
    response
}

/// 404 for every path no route has.
pub async fn not_found() -> WebError {
    WebError(PortalError::NotFound)
}
