//! The REST API under `/api/v1`: JSON, `Authorization: Bearer TOKEN` (kept as SHA-256 only), each token
//! acting with its account's role. Described by an OpenAPI document at `/api/v1/openapi.json`.
//! Everything the web pages can do is here too.

pub mod admin;
pub mod quarantine;

use crate::error::{ApiError, ApiResult, PortalError};
use crate::secrets::{TOKEN_PREFIX, sha256_hex};
use crate::state::{AppState, now};
use axum::Json;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::routing::{get, post};
use serde::Serialize;
use store::{Account, Role};
use utoipa::{OpenApi, ToSchema};

/// The account a request's bearer token acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
    pub addresses: Vec<String>,
    pub token_id: i64,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.account.role == Role::Admin
    }
    pub fn is_staff(&self) -> bool {
        matches!(self.account.role, Role::Admin | Role::Helpdesk)
    }
    /// The caller as the quarantine core knows them (acting through this token).
    pub fn actor_q(&self) -> ::quarantine::Actor {
        let role = crate::session::quarantine_role(self.account.role);
        ::quarantine::Actor::api(
            self.account.name.clone(),
            role,
            self.addresses.clone(),
            format!("api-{}", self.token_id),
        )
    }
    /// The audit actor: the account, through a token.
    pub fn actor(&self) -> audit::Actor {
        audit::Actor::User(self.account.name.clone())
    }
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() { Ok(()) } else { Err(ApiError(PortalError::Forbidden("administrators only"))) }
    }
    pub fn require_staff(&self) -> Result<(), ApiError> {
        if self.is_staff() {
            Ok(())
        } else {
            Err(ApiError(PortalError::Forbidden("administrators and helpdesk only")))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(TOKEN_PREFIX) && t.len() <= 128)
            .ok_or(ApiError(PortalError::Unauthenticated))?;
        let found = state.store.use_api_token(&sha256_hex(token.as_bytes()), now()).await?;
        let (t, account) = found.ok_or(ApiError(PortalError::Unauthenticated))?;
        if account.disabled {
            return Err(ApiError(PortalError::Unauthenticated));
        }
        let addresses = state.store.account_addresses(account.id).await?;
        Ok(Caller { account, addresses, token_id: t.id })
    }
}

/// Who the token belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub name: String,
    /// `admin`, `helpdesk` or `user`.
    pub role: String,
    /// Recipient addresses the account owns.
    pub addresses: Vec<String>,
}

/// An error: a stable code and a sentence.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// The account behind the token.
#[utoipa::path(get, path = "/api/v1/me", tag = "account",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn me(caller: Caller) -> ApiResult<Json<Me>> {
    Ok(Json(Me {
        name: caller.account.name,
        role: caller.account.role.as_str().into(),
        addresses: caller.addresses,
    }))
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answers any request can get before it reaches an operation (the listener's limits), written
/// into every operation so clients (and schemathesis) know them.
struct TransportLimits;

impl utoipa::Modify for TransportLimits {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::ResponseBuilder;
        let limits = [
            ("400", "The request is malformed (a parameter, the path or the body)."),
            ("401", "No valid API token (`Authorization: Bearer TOKEN`)."),
            ("408", "The request did not arrive within `portal.request_timeout`."),
            ("413", "The body is larger than `portal.max_body_size`."),
            ("414", "The request target is longer than `portal.max_url_length`."),
            ("415", "The body is not `application/json`."),
            ("431", "The request head is larger than `portal.max_header_size`."),
        ];
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                for (code, text) in limits {
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| ResponseBuilder::new().description(text).build().into());
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Portcullis API", version = "1", description = "Quarantine, tracking, queue and accounts of a Portcullis gateway."),
    paths(me, quarantine::list, quarantine::get, quarantine::raw, quarantine::release, quarantine::delete,
        quarantine::learn_spam, quarantine::safelist, quarantine::tracking, quarantine::lists, quarantine::add_list_entry,
        quarantine::remove_list_entry, quarantine::digest_prefs, quarantine::set_digest_pref, quarantine::dashboard, quarantine::send_digests,
        admin::users, admin::create_user, admin::update_user, admin::queue, admin::queue_retry, admin::queue_delete, admin::nodes,
        admin::config, admin::audit_log, admin::tokens, admin::create_token, admin::revoke_token),
    components(schemas(Me, ErrorBody, quarantine::ItemOut, quarantine::SymbolOut, quarantine::ItemDetailOut,
        quarantine::AttachmentOut, quarantine::OutcomeOut, quarantine::TimelineOut, quarantine::EventOut,
        quarantine::ListEntry, quarantine::DigestPref, quarantine::DashboardOut, quarantine::FlowOut, quarantine::CountOut, quarantine::DigestsOut, admin::UserOut, admin::NewUserIn, admin::NewUserOut, admin::UserChangeIn,
        admin::QueueItem, crate::web::admin::NodeView, admin::AuditOut, crate::audit_trail::NodeState, admin::AuditRecord, admin::TokenOut, admin::NewTokenIn, admin::NewTokenOut)),
    modifiers(&BearerAuth, &TransportLimits),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json` (for token holders, like the rest of the API).
pub async fn openapi(_caller: Caller) -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The routes under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/me", get(me))
        .route("/quarantine", get(quarantine::list))
        .route("/quarantine/{id}", get(quarantine::get))
        .route("/quarantine/{id}/raw", get(quarantine::raw))
        .route("/quarantine/{id}/release", post(quarantine::release))
        .route("/quarantine/{id}/delete", post(quarantine::delete))
        .route("/quarantine/{id}/learn-spam", post(quarantine::learn_spam))
        .route("/quarantine/{id}/safelist", post(quarantine::safelist))
        .route("/tracking", get(quarantine::tracking))
        .route("/lists", get(quarantine::lists).post(quarantine::add_list_entry))
        .route("/lists/remove", post(quarantine::remove_list_entry))
        .route("/digest-preferences", get(quarantine::digest_prefs).post(quarantine::set_digest_pref))
        .route("/dashboard", get(quarantine::dashboard))
        .route("/digests/send", post(quarantine::send_digests))
        .route("/users", get(admin::users).post(admin::create_user))
        .route("/users/{name}", post(admin::update_user))
        .route("/queue", get(admin::queue))
        .route("/queue/retry", post(admin::queue_retry))
        .route("/queue/{id}/delete", post(admin::queue_delete))
        .route("/nodes", get(admin::nodes))
        .route("/config", get(admin::config))
        .route("/audit", get(admin::audit_log))
        .route("/tokens", get(admin::tokens).post(admin::create_token))
        .route("/tokens/{id}/revoke", post(admin::revoke_token))
        .fallback(api_not_found)
}

async fn api_not_found() -> ApiError {
    ApiError(PortalError::NotFound)
}
