//! Request extractors whose refusals are only ever 400, 413 or 415 (axum's own answer 422 for a form
//! that does not fit its type, which hostile input must never get), as HTML for the web and JSON for
//! the API. Web forms and queries are read as name/value pairs, so a missing or repeated field is the
//! handler's decision, never a deserialisation error.

use crate::error::{ApiError, PortalError, WebError};
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// Most fields read from one form or query.
pub const MAX_FIELDS: usize = 2_000;

fn refusal(status: StatusCode, text: String) -> PortalError {
    match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => PortalError::UnsupportedMediaType(
            "expected a form (application/x-www-form-urlencoded) or JSON, as documented".into(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => PortalError::PayloadTooLarge,
        StatusCode::REQUEST_TIMEOUT => {
            PortalError::BadRequest("the request body did not arrive in time".into())
        }
        _ => PortalError::BadRequest(bounded(&text)),
    }
}

/// Rejection texts can quote the input: keep them short (they are escaped wherever they are shown).
fn bounded(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Form or query fields as name/value pairs, in order.
#[derive(Debug, Default, Clone)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn checked(v: Vec<(String, String)>) -> Result<Fields, PortalError> {
        if v.len() > MAX_FIELDS {
            return Err(PortalError::BadRequest("too many fields".into()));
        }
        Ok(Fields(v))
    }
}

/// A POSTed web form (`application/x-www-form-urlencoded` only: anything else is 415).
pub struct WebForm(pub Fields);

impl<S: Send + Sync> FromRequest<S> for WebForm {
    type Rejection = WebError;
    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        match axum::Form::<Vec<(String, String)>>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(WebForm(Fields::checked(v)?)),
            Err(e) => Err(WebError(form_refusal(e))),
        }
    }
}

fn form_refusal(e: FormRejection) -> PortalError {
    refusal(e.status(), e.body_text())
}

/// The query string of a web page as fields.
pub struct WebQuery(pub Fields);

impl<S: Send + Sync> FromRequestParts<S> for WebQuery {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, WebError> {
        match axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(WebQuery(Fields::checked(v)?)),
            Err(e) => Err(WebError(query_refusal(e))),
        }
    }
}

fn query_refusal(e: QueryRejection) -> PortalError {
    refusal(e.status(), e.body_text())
}

/// One path parameter of a web route.
pub struct WebPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for WebPath {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, WebError> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(WebPath(v)),
            Err(e) => Err(WebError(path_refusal(e))),
        }
    }
}

fn path_refusal(e: PathRejection) -> PortalError {
    refusal(e.status(), e.body_text())
}

/// A typed API query.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError(query_refusal(e))),
        }
    }
}

/// One path parameter of an API route.
pub struct ApiPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError(path_refusal(e))),
        }
    }
}

/// A typed JSON body (`application/json` only: anything else is 415).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(ApiError(json_refusal(e))),
        }
    }
}

fn json_refusal(e: JsonRejection) -> PortalError {
    refusal(e.status(), e.body_text())
}
