//! `/account`: the logged-in person's own password, API tokens and (admins) TOTP second factor.

use super::{Page, html, see_other};
use crate::error::{PortalError, WebResult};
use crate::extract::WebForm;
use crate::secrets::{hash_password, new_api_token, password_problem, verify_password};
use crate::session::{self, Viewer};
use crate::state::{AppState, format_time, now};
use askama::Template;
use audit::{Action, Actor, Event};
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

pub struct TokenRow {
    pub id: i64,
    pub label: String,
    pub created: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    page: Page,
    role: &'static str,
    addresses: Vec<String>,
    tokens: Vec<TokenRow>,
    new_token: String,
    totp_enrolled: bool,
    totp_secret: String,
    totp_uri: String,
}

async fn account_page(
    state: &AppState,
    v: &Viewer,
    notice: &str,
    new_token: String,
) -> WebResult<Html<String>> {
    let tokens = state
        .store
        .api_tokens(v.account.id)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            label: crate::render::display_text(&t.label),
            created: format_time(t.created_at),
            last_used: t.last_used_at.map_or_else(|| "never".into(), format_time),
        })
        .collect();
    let secret = crate::totp::generate_secret();
    html(&AccountPage {
        page: Page::for_viewer(v, "Account").with_notice(notice),
        role: v.account.role.as_str(),
        addresses: v.addresses.clone(),
        tokens,
        new_token,
        totp_enrolled: v.account.totp_secret.is_some(),
        totp_uri: crate::totp::uri("Portcullis", &v.account.name, &secret),
        totp_secret: secret,
    })
}

/// `GET /account`.
pub async fn show(State(state): State<AppState>, v: Viewer) -> WebResult<Html<String>> {
    account_page(&state, &v, "", String::new()).await
}

/// `POST /account/password`: needs the current password; ends every session, then starts a new one.
pub async fn password(State(state): State<AppState>, v: Viewer, WebForm(f): WebForm) -> WebResult<Response> {
    v.check_csrf(&f)?;
    let (current, new) = (f.get("current").to_string(), f.get("new").to_string());
    if let Some(problem) = password_problem(&new) {
        return Err(PortalError::BadRequest(problem.into()).into());
    }
    let hash = v.account.password_hash.clone();
    let checked =
        tokio::task::spawn_blocking(move || verify_password(&current, &hash).then(|| hash_password(&new)))
            .await
            .map_err(|e| PortalError::Internal(e.to_string()))?;
    let Some(new_hash) = checked else {
        return Err(PortalError::Forbidden("the current password is not right").into());
    };
    let new_hash = new_hash.map_err(PortalError::Internal)?;
    state.store.set_account_password(v.account.id, &new_hash, now()).await?;
    state.store.delete_account_sessions(v.account.id).await?;
    let cookie = session::start(&state, v.account.id, false, None).await?;
    state.audit.record(
        Event::new(Action::UserUpdate, Actor::User(v.account.name.clone()))
            .target(&v.account.name)
            .detail("change", "password"),
    );
    let mut response = see_other("/account");
    let max_age = state.config.portal.session_absolute_timeout.get().as_secs() as i64;
    response.headers_mut().append(header::SET_COOKIE, session::set_cookie(state.tls, &cookie, max_age));
    Ok(response)
}

/// Labels people give tokens: 1 to 64 printable characters.
fn token_label(label: &str) -> Result<String, PortalError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err(PortalError::BadRequest("a label of 1 to 64 printable characters is needed".into()));
    }
    Ok(label.to_string())
}

/// Create a token for an account and record it; returns the secret (shown once).
pub async fn create_token(
    state: &AppState,
    account_id: i64,
    owner: &str,
    by: Actor,
    label: &str,
) -> Result<String, PortalError> {
    let label = token_label(label)?;
    let (secret, hash) = new_api_token();
    let id = state.store.create_api_token(account_id, &label, &hash, now()).await?;
    state.audit.record(
        Event::new(Action::TokenCreate, by)
            .target(owner)
            .detail("token_id", id.to_string())
            .detail("label", &label),
    );
    Ok(secret)
}

/// `POST /account/tokens`: the new token is shown once, on this response.
pub async fn new_token(
    State(state): State<AppState>,
    v: Viewer,
    WebForm(f): WebForm,
) -> WebResult<impl IntoResponse> {
    v.check_csrf(&f)?;
    let actor = Actor::User(v.account.name.clone());
    let secret = create_token(&state, v.account.id, &v.account.name, actor, f.get("label")).await?;
    account_page(&state, &v, "API token created.", secret).await
}

/// `POST /account/tokens/revoke`.
pub async fn revoke_token(
    State(state): State<AppState>,
    v: Viewer,
    WebForm(f): WebForm,
) -> WebResult<Response> {
    v.check_csrf(&f)?;
    let id: i64 = f.get("token").parse().map_err(|_| PortalError::BadRequest("no such token".into()))?;
    if !state.store.revoke_api_token(v.account.id, id).await? {
        return Err(PortalError::NotFound.into());
    }
    state.audit.record(
        Event::new(Action::TokenRevoke, Actor::User(v.account.name.clone()))
            .target(&v.account.name)
            .detail("token_id", id.to_string()),
    );
    Ok(see_other("/account"))
}

/// `POST /account/totp`: enrol the shown secret once a code from it is right (admins only).
pub async fn totp_enable(
    State(state): State<AppState>,
    v: Viewer,
    WebForm(f): WebForm,
) -> WebResult<Response> {
    v.check_csrf(&f)?;
    if !v.is_admin() {
        return Err(PortalError::Forbidden("the second factor is for administrators").into());
    }
    let secret = f.get("secret");
    if !crate::totp::verify(secret, f.get("code"), now().max(0) as u64) {
        return Err(PortalError::BadRequest("that code does not match the secret; try again".into()).into());
    }
    state.store.set_account_totp(v.account.id, Some(secret), now()).await?;
    state.audit.record(
        Event::new(Action::UserUpdate, Actor::User(v.account.name.clone()))
            .target(&v.account.name)
            .detail("change", "totp_enabled"),
    );
    Ok(see_other("/account"))
}

/// `POST /account/totp/remove`: needs the password.
pub async fn totp_remove(
    State(state): State<AppState>,
    v: Viewer,
    WebForm(f): WebForm,
) -> WebResult<Response> {
    v.check_csrf(&f)?;
    let (current, hash) = (f.get("current").to_string(), v.account.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || verify_password(&current, &hash))
        .await
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    if !ok {
        return Err(PortalError::Forbidden("the password is not right").into());
    }
    state.store.set_account_totp(v.account.id, None, now()).await?;
    state.audit.record(
        Event::new(Action::UserUpdate, Actor::User(v.account.name.clone()))
            .target(&v.account.name)
            .detail("change", "totp_removed"),
    );
    Ok(see_other("/account"))
}
