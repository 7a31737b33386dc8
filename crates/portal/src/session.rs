//! Web sessions: the cookie, finding the session behind it (idle and absolute expiry, disabled
//! accounts), rotating it at login, CSRF tokens and the Origin check, and who may see what.
//!
//! The cookie holds 32 random bytes; the store keeps only their SHA-256, so a copy of the database
//! cannot be replayed as cookies. Cookies are `HttpOnly; SameSite=Strict; Path=/` and, under TLS,
//! `Secure` with the `__Host-` prefix. Every state-changing form carries the session's CSRF token,
//! compared in constant time, and every unsafe request must come from our own origin.

use crate::error::{PortalError, WebError};
use crate::extract::Fields;
use crate::secrets::{ct_eq, random_token, sha256_hex};
use crate::state::{AppState, now};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use store::{Account, Role, WebSession};

const COOKIE_PLAIN: &str = "portcullis_session";
const COOKIE_TLS: &str = "__Host-portcullis_session";
/// A session's last-seen time is written at most this often (seconds).
const TOUCH_EVERY: i64 = 15;

fn cookie_name(tls: bool) -> &'static str {
    if tls { COOKIE_TLS } else { COOKIE_PLAIN }
}

/// The session cookie's value, if the request carries one that could be ours.
pub fn session_cookie(headers: &HeaderMap, tls: bool) -> Option<String> {
    let name = cookie_name(tls);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| v.len() == 43 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(tls: bool, value: &str, max_age: i64) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    let text =
        format!("{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}", cookie_name(tls));
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("x=; Max-Age=0"))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    let text = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}", cookie_name(tls));
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("x=; Max-Age=0"))
}

/// Start a session for `account_id`, ending the one the request came with (rotation at login).
/// Returns the cookie value.
pub async fn start(
    state: &AppState,
    account_id: i64,
    second_factor_due: bool,
    old: Option<&str>,
) -> Result<String, PortalError> {
    if let Some(old) = old {
        state.store.delete_web_session(&sha256_hex(old.as_bytes())).await?;
    }
    let value = random_token();
    let now = now();
    let session = WebSession {
        id_hash: sha256_hex(value.as_bytes()),
        account_id,
        csrf_token: random_token(),
        second_factor_due,
        created_at: now,
        last_seen_at: now,
        absolute_expires_at: now + state.config.portal.session_absolute_timeout.get().as_secs() as i64,
    };
    state.store.create_web_session(&session).await?;
    Ok(value)
}

/// The logged-in person behind a request.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub account: Account,
    pub addresses: Vec<String>,
    pub session: WebSession,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.account.role == Role::Admin
    }
    /// Admins and helpdesk: they operate quarantine and tracking for everyone.
    pub fn is_staff(&self) -> bool {
        matches!(self.account.role, Role::Admin | Role::Helpdesk)
    }
    /// This person as the quarantine core knows them (it authorizes every operation itself).
    pub fn actor(&self) -> quarantine::Actor {
        quarantine::Actor::new(
            self.account.name.clone(),
            quarantine_role(self.account.role),
            self.addresses.clone(),
        )
    }
    /// The form's `csrf` field must be this session's token (403 otherwise).
    pub fn check_csrf(&self, fields: &Fields) -> Result<(), PortalError> {
        if ct_eq(fields.get("csrf").as_bytes(), self.session.csrf_token.as_bytes()) {
            Ok(())
        } else {
            Err(PortalError::Forbidden("the form is stale or did not come from this site; reload the page"))
        }
    }
}

/// The quarantine core's role for an account's role.
pub fn quarantine_role(role: Role) -> quarantine::Role {
    match role {
        Role::Admin => quarantine::Role::Admin,
        Role::Helpdesk => quarantine::Role::Helpdesk,
        Role::User => quarantine::Role::User,
    }
}

/// Find the session a request carries; `None` if there is none, or it has expired, or its account is
/// disabled. A session still owing its second factor is returned only when `pending` is asked for.
pub async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    pending: bool,
) -> Result<Option<Viewer>, PortalError> {
    let Some(cookie) = session_cookie(headers, state.tls) else { return Ok(None) };
    let hash = sha256_hex(cookie.as_bytes());
    let Some(session) = state.store.web_session(&hash).await? else { return Ok(None) };
    let now = now();
    let idle = state.config.portal.session_idle_timeout.get().as_secs() as i64;
    if session.last_seen_at + idle <= now || session.absolute_expires_at <= now {
        state.store.delete_web_session(&hash).await?;
        return Ok(None);
    }
    if session.second_factor_due != pending {
        return Ok(None);
    }
    let Some(account) = state.store.account_by_id(session.account_id).await? else { return Ok(None) };
    if account.disabled {
        return Ok(None);
    }
    if now - session.last_seen_at >= TOUCH_EVERY {
        state.store.touch_web_session(&hash, now).await?;
    }
    let addresses = state.store.account_addresses(account.id).await?;
    Ok(Some(Viewer { account, addresses, session }))
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        resolve(state, &parts.headers, false).await?.ok_or(WebError(PortalError::Unauthenticated))
    }
}

/// A session that has given its password and still owes the second factor.
pub struct PendingViewer(pub Viewer);

impl FromRequestParts<AppState> for PendingViewer {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let v = resolve(state, &parts.headers, true).await?.ok_or(WebError(PortalError::Unauthenticated))?;
        Ok(PendingViewer(v))
    }
}

/// An admin (helpdesk and end users get 403).
pub struct Admin(pub Viewer);

impl FromRequestParts<AppState> for Admin {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let v = Viewer::from_request_parts(parts, state).await?;
        if !v.is_admin() {
            return Err(WebError(PortalError::Forbidden("this page is for administrators")));
        }
        Ok(Admin(v))
    }
}

/// An admin or helpdesk member (end users get 403).
pub struct Staff(pub Viewer);

impl FromRequestParts<AppState> for Staff {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let v = Viewer::from_request_parts(parts, state).await?;
        if !v.is_staff() {
            return Err(WebError(PortalError::Forbidden("this page is for administrators and helpdesk")));
        }
        Ok(Staff(v))
    }
}

/// Unsafe methods must come from our own origin: `Sec-Fetch-Site` (when the browser sends it) must be
/// `same-origin` or `none`, and `Origin` (when present) must be this site. Under our
/// `Referrer-Policy: no-referrer` browsers send `Origin: null` with form posts, so `null` is accepted
/// only with `Sec-Fetch-Site: same-origin` (a header pages cannot set). A cross-site form post gets
/// 403 before any handler runs; the CSRF token is checked after.
pub fn check_origin(method: &Method, headers: &HeaderMap, tls: bool) -> Result<(), PortalError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let refused = PortalError::Forbidden("cross-site requests are refused");
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if site.is_some_and(|s| s != b"same-origin" && s != b"none") {
        return Err(refused);
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    if origin.as_bytes() == b"null" {
        return if site == Some(b"same-origin".as_slice()) { Ok(()) } else { Err(refused) };
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let scheme = if tls { "https" } else { "http" };
    let ours = format!("{scheme}://{host}");
    if host.is_empty() || origin.as_bytes() != ours.as_bytes() {
        return Err(refused);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_and_well_formed() {
        let mut h = HeaderMap::new();
        let v = "a".repeat(43);
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; portcullis_session={v}; y=2")).unwrap(),
        );
        assert_eq!(session_cookie(&h, false), Some(v.clone()));
        assert_eq!(session_cookie(&h, true), None, "the TLS cookie has the __Host- name");
        h.insert(header::COOKIE, HeaderValue::from_static("portcullis_session=../../etc/passwd"));
        assert_eq!(session_cookie(&h, false), None);
        let set = set_cookie(true, &v, 60);
        let set = set.to_str().unwrap();
        assert!(set.starts_with("__Host-portcullis_session=") && set.contains("HttpOnly"));
        assert!(set.contains("SameSite=Strict") && set.contains("Secure") && set.contains("Path=/"));
        assert!(!set_cookie(false, &v, 60).to_str().unwrap().contains("Secure"));
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8025"));
        assert!(check_origin(&Method::POST, &h, false).is_ok(), "no Origin: a non-browser client");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8025"));
        assert!(check_origin(&Method::POST, &h, false).is_ok());
        assert!(check_origin(&Method::POST, &h, true).is_err(), "scheme differs");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.test"));
        assert!(check_origin(&Method::POST, &h, false).is_err());
        assert!(check_origin(&Method::GET, &h, false).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check_origin(&Method::POST, &h, false).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(check_origin(&Method::POST, &h, false).is_ok(), "a form post under no-referrer");
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_origin(&Method::POST, &h, false).is_err());
    }
}
