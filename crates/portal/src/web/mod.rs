//! The server-rendered web: login, the end-user portal, the admin console, digest links, static files,
//! health and metrics. Every page is an askama template (HTML auto-escaped); nothing needs JavaScript.

pub mod account;
pub mod admin;
pub mod console;
pub mod digest;
pub mod login;
pub mod quarantine;
pub mod settings;
pub mod view;

use crate::error::{PortalError, WebError, WebResult};
use crate::secrets::ct_eq;
use crate::session::{Viewer, resolve};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// What the layout needs: the title, who is logged in, their powers and their CSRF token.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub title: String,
    pub user: String,
    pub admin: bool,
    pub staff: bool,
    pub csrf: String,
    pub notice: String,
}

impl Page {
    pub fn anonymous(title: &str) -> Page {
        Page { title: title.into(), ..Page::default() }
    }
    pub fn for_viewer(v: &Viewer, title: &str) -> Page {
        Page {
            title: title.into(),
            user: crate::render::display_text(&v.account.name),
            admin: v.is_admin(),
            staff: v.is_staff(),
            csrf: v.session.csrf_token.clone(),
            notice: String::new(),
        }
    }
    pub fn with_notice(mut self, notice: impl Into<String>) -> Page {
        self.notice = notice.into();
        self
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: Page,
    status: String,
    message: &'a str,
}

/// The body of an error page (rendering cannot fail on these fields; if it did, plain text).
pub fn error_page(status: StatusCode, message: &str) -> String {
    let page = Page::anonymous(status.canonical_reason().unwrap_or("Error"));
    let status = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    ErrorPage { page, status, message }.render().unwrap_or_else(|_| "error".into())
}

/// Render a template into a page response.
pub fn html(t: &impl Template) -> WebResult<Html<String>> {
    Ok(Html(t.render().map_err(PortalError::from)?))
}

/// A 303 to `to` (a constant path from code, never from the request).
pub fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// Files compiled into the binary: nothing on disk is served, and no request names a file.
const STATIC_FILES: &[(&str, &str, &[u8])] = &[
    ("portal.css", "text/css; charset=utf-8", include_bytes!("../../static/portal.css")),
    ("portal.js", "text/javascript; charset=utf-8", include_bytes!("../../static/portal.js")),
];

pub async fn static_file(crate::extract::WebPath(name): crate::extract::WebPath) -> WebResult<Response> {
    let (_, kind, body) = STATIC_FILES.iter().find(|(n, _, _)| *n == name).ok_or(PortalError::NotFound)?;
    let headers = [(header::CONTENT_TYPE, *kind), (header::CACHE_CONTROL, "public, max-age=3600")];
    Ok((headers, *body).into_response())
}

/// `GET /healthz`: the process answers and the store can be read. Says nothing else.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match state.store.account_count().await {
        Ok(_) => (StatusCode::OK, headers, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, headers, "unavailable\n").into_response(),
    }
}

/// `GET /metrics`: Prometheus text, for `Authorization: Bearer <portal.metrics_token>` or an admin
/// session.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> WebResult<Response> {
    let token = &state.config.portal.metrics_token;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let by_token = !token.is_empty() && ct_eq(bearer.as_bytes(), token.as_bytes());
    if !by_token {
        let viewer = resolve(&state, &headers, false).await?.ok_or(PortalError::Unauthenticated)?;
        if !viewer.is_admin() {
            return Err(WebError(PortalError::Forbidden("metrics are for administrators")));
        }
    }
    let text = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}
