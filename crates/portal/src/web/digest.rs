//! Digest links, the only quarantine route without a session. `GET /digest/{token}` checks the link
//! and shows what it will do (mail scanners fetch links; nothing changes on a GET); `POST` carries it
//! out once through the core's `redeem`. A used or expired link explains itself with 410 and offers a
//! login, a forged or damaged one gets 401; neither logs anyone in.
//! `/digest/request` ("send me my digest") answers the same for every address and is throttled per
//! client address.

use super::login::ClientIp;
use super::{Page, html};
use crate::error::{PortalError, WebResult};
use crate::extract::{WebForm, WebPath};
use crate::render::display_text;
use crate::state::{AppState, now};
use crate::throttle;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use quarantine::{ActionOutcome, DigestAction, TokenError};
use store::ThrottleScope;

/// Longest token accepted (a real one is far shorter).
const MAX_TOKEN: usize = 512;

#[derive(Template)]
#[template(path = "digest.html")]
struct DigestPage {
    page: Page,
    token: String,
    confirm: bool,
    action: &'static str,
    subject: String,
    message: String,
    offer_login: bool,
}

fn action_words(a: DigestAction) -> &'static str {
    match a {
        DigestAction::Release => "Release this message to your mailbox",
        DigestAction::ReleaseAndSafelist => "Release this message and safelist its sender",
        DigestAction::Delete => "Delete this message",
    }
}

fn page(
    token: &str,
    confirm: bool,
    action: &'static str,
    subject: String,
    message: String,
    offer_login: bool,
) -> DigestPage {
    DigestPage {
        page: Page::anonymous("Quarantine link"),
        token: if confirm { token.to_string() } else { String::new() },
        confirm,
        action,
        subject,
        message,
        offer_login,
    }
}

/// 401 for a link that is not ours, 410 for one used or expired, 503 when we could not act.
fn refusal(e: &TokenError) -> WebResult<Response> {
    let (status, text) = match e {
        TokenError::Invalid => {
            (StatusCode::UNAUTHORIZED, "This link is not valid. Log in to manage your quarantine.")
        }
        TokenError::Expired => (StatusCode::GONE, "This link has expired. Log in to manage your quarantine."),
        TokenError::AlreadyUsed => (
            StatusCode::GONE,
            "This link has already been used. Each link works once; log in to see what was done.",
        ),
        TokenError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway could not do this now. The link still works; try again later.",
        ),
    };
    let body = page("", false, "", String::new(), text.into(), true).render().map_err(PortalError::from)?;
    Ok((status, Html(body)).into_response())
}

fn checked(token: &str) -> Result<(), TokenError> {
    let ok = !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
    if ok { Ok(()) } else { Err(TokenError::Invalid) }
}

/// `GET /digest/{token}`: what the link does, and a button that does it.
pub async fn confirm(State(state): State<AppState>, WebPath(token): WebPath) -> WebResult<Response> {
    let claims = match checked(&token).and_then(|()| state.quarantine.peek(&token)) {
        Ok(c) => c,
        Err(e) => return refusal(&e),
    };
    let actor = quarantine::Actor::digest_link(&claims.recipient, &claims.token_id());
    let subject = match state.quarantine.get(&actor, claims.item.as_str()).await {
        // Released, deleted or expired: this link (or another for the same message) was used.
        Ok(d) if d.item.status != "held" => return refusal(&TokenError::AlreadyUsed),
        Ok(d) => display_text(&d.item.subject),
        Err(_) => return refusal(&TokenError::Invalid),
    };
    let body = page(&token, true, action_words(claims.action), subject, String::new(), false);
    Ok(html(&body)?.into_response())
}

/// `POST /digest/{token}`: do it, once.
pub async fn redeem(State(state): State<AppState>, WebPath(token): WebPath) -> WebResult<Response> {
    let redeemed = match checked(&token) {
        Ok(()) => state.quarantine.redeem(&token).await,
        Err(e) => Err(e),
    };
    let r = match redeemed {
        Ok(r) => r,
        Err(e) => {
            if let TokenError::Unavailable(why) = &e {
                tracing::error!(error = %why, "a digest link could not be carried out");
            }
            return refusal(&e);
        }
    };
    let message = match (&r.outcome, r.claims.action) {
        (ActionOutcome::AlreadyDone { status, by, .. }, _) => {
            format!(
                "Nothing to do: the message was already {status}{}.",
                by.as_deref().map(|b| format!(" by {}", display_text(b))).unwrap_or_default()
            )
        }
        (ActionOutcome::Done, DigestAction::Delete) => "Deleted.".into(),
        (ActionOutcome::Done, DigestAction::ReleaseAndSafelist) => {
            "Released, and its sender is on your safelist.".into()
        }
        (ActionOutcome::Done, DigestAction::Release) => "Released: it is on its way to your mailbox.".into(),
    };
    Ok(html(&page("", false, "", String::new(), message, true))?.into_response())
}

#[derive(Template)]
#[template(path = "digest_request.html")]
struct RequestPage {
    page: Page,
    sent: bool,
}

/// Requests for a digest from one client address in one `portal.login_window`.
const MAX_REQUESTS: u32 = 5;

/// `GET /digest/request`.
pub async fn request_form() -> WebResult<Html<String>> {
    html(&RequestPage { page: Page::anonymous("Get my digest"), sent: false })
}

/// `POST /digest/request` with `address`: the same answer whether or not the address is known. When
/// it has held mail, digests are turned back on for it, so the next scheduled digest lists it.
pub async fn request(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    WebForm(f): WebForm,
) -> WebResult<Response> {
    let window = state.config.portal.login_window.get().as_secs() as i64;
    let key = format!("digest:{ip}");
    if throttle::failures(&state, ThrottleScope::Address, &key, now(), window).await? >= MAX_REQUESTS {
        return Err(PortalError::TooManyRequests { retry_after: window as u64 }.into());
    }
    throttle::count_failure(&state, ThrottleScope::Address, &key, now(), window).await?;
    if let Ok(address) = crate::accounts::parse_address(f.get("address")) {
        let actor = quarantine::Actor::digest_link(&address, "request");
        let held =
            quarantine::SearchQuery { status: Some("held".into()), limit: Some(1), ..Default::default() };
        if let Ok(p) = state.quarantine.search(&actor, &held).await
            && !p.items.is_empty()
        {
            let _ = state.quarantine.set_digest_enabled(&actor, &address, true).await;
        }
    }
    Ok(html(&RequestPage { page: Page::anonymous("Get my digest"), sent: true })?.into_response())
}
