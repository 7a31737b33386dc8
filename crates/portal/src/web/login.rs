//! Logging in and out: password, then (for admins who enrolled one) a TOTP code. Throttled per
//! account name and per client address; an unknown name, a disabled account and a wrong password get
//! the same page, status and (since a dummy hash is verified) the same time.

use super::{Page, html, see_other};
use crate::error::{PortalError, WebError, WebResult};
use crate::extract::{WebForm, WebQuery};
use crate::secrets::{verify_nothing, verify_password};
use crate::server::ClientAddr;
use crate::session::{self, PendingViewer, Viewer};
use crate::state::{AppState, now};
use crate::throttle;
use askama::Template;
use audit::{Action, Actor, Event};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::net::{IpAddr, Ipv4Addr};
use store::{Account, Role, ThrottleScope};

/// The same words for an unknown name, a disabled account and a wrong password.
const WRONG: &str = "Wrong name or password.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    page: Page,
    error: &'a str,
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage<'a> {
    page: Page,
    error: &'a str,
}

/// The login page, with one of our own messages (never text from the request).
pub fn login_page(error: Option<&str>) -> String {
    let page = LoginPage { page: Page::anonymous("Log in"), error: error.unwrap_or("") };
    page.render().unwrap_or_else(|_| "log in at /login".into())
}

/// The client's address as the listener saw it.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<ClientAddr>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
        Ok(ClientIp(ip))
    }
}

/// `GET /login`. `?error=` only picks one of our messages; its text is never shown.
pub async fn form(WebQuery(q): WebQuery) -> WebResult<Html<String>> {
    let error = match q.get("error") {
        "expired" => "Your session has ended. Please log in again.",
        "link" => "That link cannot be used any more. Log in to manage your quarantine.",
        _ => "",
    };
    html(&LoginPage { page: Page::anonymous("Log in"), error })
}

/// A login name as the throttle counts it (bounded, lower-case, printable).
fn name_key(name: &str) -> String {
    let key: String = name.chars().filter(|c| !c.is_control()).take(64).collect::<String>().to_lowercase();
    if key.is_empty() { "(empty)".into() } else { key }
}

/// Names accounts may have: 1 to 64 of `a-z 0-9 . _ @ + -`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._@+-".contains(&b))
}

/// 429 when the account name or the client address has used up its failures in this window.
async fn check_throttle(state: &AppState, key: &str, ip: IpAddr) -> Result<(), PortalError> {
    let p = &state.config.portal;
    let window = p.login_window.get().as_secs() as i64;
    let now = now();
    let by_address = throttle::failures(state, ThrottleScope::Address, &ip.to_string(), now, window).await?;
    let by_account = throttle::failures(state, ThrottleScope::Account, key, now, window).await?;
    if by_address >= p.login_max_failures_per_address || by_account >= p.login_max_failures_per_account {
        metrics::counter!("portcullis_portal_logins_total", "outcome" => "throttled").increment(1);
        return Err(PortalError::TooManyRequests { retry_after: window as u64 });
    }
    Ok(())
}

/// Count a failure against both; record it, and a lockout when a limit is reached.
async fn count_failure(state: &AppState, key: &str, ip: IpAddr) -> Result<(), PortalError> {
    let p = &state.config.portal;
    let window = p.login_window.get().as_secs() as i64;
    let now = now();
    let by_address =
        throttle::count_failure(state, ThrottleScope::Address, &ip.to_string(), now, window).await?;
    let by_account = throttle::count_failure(state, ThrottleScope::Account, key, now, window).await?;
    metrics::counter!("portcullis_portal_logins_total", "outcome" => "failed").increment(1);
    state.audit.record(Event::new(Action::LoginFailure, Actor::Remote(ip)).target(key));
    if by_address == p.login_max_failures_per_address || by_account == p.login_max_failures_per_account {
        let scope = if by_account == p.login_max_failures_per_account { "account" } else { "address" };
        state
            .audit
            .record(Event::new(Action::LoginLockout, Actor::Remote(ip)).target(key).detail("scope", scope));
    }
    Ok(())
}

/// The account behind a name and password, if both are right and it may log in.
async fn authenticate(state: &AppState, name: &str, password: &str) -> Result<Option<Account>, PortalError> {
    let account = if valid_name(name) { state.store.account_by_name(name).await? } else { None };
    let password = password.to_string();
    let verified = tokio::task::spawn_blocking(move || match account {
        Some(a) if !a.disabled && verify_password(&password, &a.password_hash) => Some(a),
        Some(a) => {
            let _ = verify_password(&password, &a.password_hash);
            None
        }
        None => {
            verify_nothing(&password);
            None
        }
    });
    verified.await.map_err(|e| PortalError::Internal(format!("password check: {e}")))
}

/// `POST /login`.
pub async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    WebForm(f): WebForm,
) -> WebResult<Response> {
    let (name, password) = (f.get("name").trim(), f.get("password"));
    let key = name_key(name);
    check_throttle(&state, &key, ip).await?;
    let Some(account) = authenticate(&state, name, password).await? else {
        count_failure(&state, &key, ip).await?;
        return Ok((StatusCode::UNAUTHORIZED, Html(login_page(Some(WRONG)))).into_response());
    };
    throttle::forget(&state, ThrottleScope::Account, &key).await?;
    let second_factor = account.role == Role::Admin && account.totp_secret.is_some();
    let old = session::session_cookie(&headers, state.tls);
    let cookie = session::start(&state, account.id, second_factor, old.as_deref()).await?;
    let event =
        Event::new(Action::LoginSuccess, Actor::User(account.name.clone())).detail("client", ip.to_string());
    let event = if second_factor { event.detail("second_factor", "due") } else { event };
    state.audit.record(event);
    metrics::counter!("portcullis_portal_logins_total", "outcome" => "ok").increment(1);
    let to = if second_factor { "/login/totp" } else { "/" };
    Ok(with_cookie(see_other(to), session::set_cookie(state.tls, &cookie, max_age(&state))))
}

fn max_age(state: &AppState) -> i64 {
    state.config.portal.session_absolute_timeout.get().as_secs() as i64
}

fn with_cookie(mut response: Response, cookie: axum::http::HeaderValue) -> Response {
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// `GET /login/totp`.
pub async fn totp_form(PendingViewer(v): PendingViewer) -> WebResult<Html<String>> {
    html(&TotpPage {
        page: Page { csrf: v.session.csrf_token.clone(), ..Page::anonymous("Second factor") },
        error: "",
    })
}

/// `POST /login/totp`: the code, then a fresh session (the half-logged-in one ends).
pub async fn totp_submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PendingViewer(v): PendingViewer,
    WebForm(f): WebForm,
) -> WebResult<Response> {
    v.check_csrf(&f)?;
    let key = name_key(&v.account.name);
    check_throttle(&state, &key, ip).await?;
    let secret = v.account.totp_secret.as_deref().unwrap_or("");
    if !crate::totp::verify(secret, f.get("code"), now().max(0) as u64) {
        count_failure(&state, &key, ip).await?;
        let page = Page { csrf: v.session.csrf_token.clone(), ..Page::anonymous("Second factor") };
        let body = TotpPage { page, error: "That code is not right." }.render().map_err(PortalError::from)?;
        return Ok((StatusCode::UNAUTHORIZED, Html(body)).into_response());
    }
    throttle::forget(&state, ThrottleScope::Account, &key).await?;
    let old = session::session_cookie(&headers, state.tls);
    let cookie = session::start(&state, v.account.id, false, old.as_deref()).await?;
    state.audit.record(
        Event::new(Action::LoginSuccess, Actor::User(v.account.name.clone()))
            .detail("client", ip.to_string())
            .detail("second_factor", "totp"),
    );
    Ok(with_cookie(see_other("/"), session::set_cookie(state.tls, &cookie, max_age(&state))))
}

/// `POST /logout`.
pub async fn logout(State(state): State<AppState>, v: Viewer, WebForm(f): WebForm) -> WebResult<Response> {
    v.check_csrf(&f)?;
    state.store.delete_web_session(&v.session.id_hash).await.map_err(WebError::from)?;
    state.audit.record(Event::new(Action::Logout, Actor::User(v.account.name.clone())));
    Ok(with_cookie(see_other("/login"), session::clear_cookie(state.tls)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        assert!(valid_name("alice") && valid_name("a.b-c_d@x+y"));
        assert!(
            !valid_name("") && !valid_name("Alice") && !valid_name("a b") && !valid_name(&"a".repeat(65))
        );
        assert_eq!(name_key("Bob\u{7}"), "bob");
        assert_eq!(name_key(""), "(empty)");
        assert_eq!(name_key(&"x".repeat(500)).len(), 64);
    }

    #[test]
    fn the_login_page_never_shows_request_text() {
        let page = login_page(Some(WRONG));
        assert!(page.contains(WRONG) && page.contains("action=\"/login\""));
    }
}
