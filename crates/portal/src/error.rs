//! What can go wrong in a request, and how it is answered: as an HTML page for the web, as JSON for
//! the API. Nothing from the request is echoed back unescaped, and internal errors say nothing about
//! their cause to the client (the log has it).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// What a user is told when the mail plane (another process) cannot be asked.
pub const MAIL_PLANE_DOWN: &str = "the mail service is not answering right now (held mail cannot be shown or changed); try again in a moment";

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("too many attempts; try again later")]
    TooManyRequests { retry_after: u64 },
    /// A digest link that was used or has expired (its explanation is shown).
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Conflict(String),
    /// A part of the gateway this process does not run or cannot reach now (the mail plane).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl PortalError {
    pub fn status(&self) -> StatusCode {
        match self {
            PortalError::Unauthenticated => StatusCode::UNAUTHORIZED,
            PortalError::Forbidden(_) => StatusCode::FORBIDDEN,
            PortalError::NotFound => StatusCode::NOT_FOUND,
            PortalError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PortalError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PortalError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            PortalError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            PortalError::Gone(_) => StatusCode::GONE,
            PortalError::Conflict(_) => StatusCode::CONFLICT,
            PortalError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PortalError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short stable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            PortalError::Unauthenticated => "unauthenticated",
            PortalError::Forbidden(_) => "forbidden",
            PortalError::NotFound => "not_found",
            PortalError::BadRequest(_) => "bad_request",
            PortalError::UnsupportedMediaType(_) => "unsupported_media_type",
            PortalError::PayloadTooLarge => "payload_too_large",
            PortalError::TooManyRequests { .. } => "too_many_requests",
            PortalError::Gone(_) => "gone",
            PortalError::Conflict(_) => "conflict",
            PortalError::Unavailable(_) => "unavailable",
            PortalError::Internal(_) => "internal",
        }
    }

    /// What the client is told (internal causes stay in the log).
    pub fn public_message(&self) -> String {
        match self {
            PortalError::Internal(_) => "something went wrong on the server".into(),
            other => other.to_string(),
        }
    }

    fn decorate(&self, mut response: Response) -> Response {
        if let PortalError::TooManyRequests { retry_after } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let PortalError::Internal(cause) = self {
            tracing::error!(cause, "portal request failed");
        }
        response
    }
}

impl From<store::StoreError> for PortalError {
    fn from(e: store::StoreError) -> Self {
        PortalError::Internal(e.to_string())
    }
}

impl From<quarantine::QuarantineError> for PortalError {
    fn from(e: quarantine::QuarantineError) -> Self {
        use quarantine::QuarantineError as Q;
        match e {
            // Someone else's item, an unknown id and a malformed one are the same answer.
            Q::NotFound | Q::MissingFile => PortalError::NotFound,
            Q::Forbidden(why) => PortalError::Forbidden(why),
            Q::BadQuery(why) => PortalError::BadRequest(why),
            Q::MailPlane(cause) => {
                tracing::error!(cause, "the mail plane could not be asked");
                PortalError::Unavailable(MAIL_PLANE_DOWN.into())
            }
            Q::MailNodeOnly(why) => PortalError::Unavailable(why.into()),
            other => PortalError::Internal(other.to_string()),
        }
    }
}

impl From<askama::Error> for PortalError {
    fn from(e: askama::Error) -> Self {
        PortalError::Internal(format!("rendering a page: {e}"))
    }
}

/// An error answered as an HTML page.
#[derive(Debug)]
pub struct WebError(pub PortalError);

impl<E: Into<PortalError>> From<E> for WebError {
    fn from(e: E) -> Self {
        WebError(e.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = match &e {
            PortalError::Unauthenticated => crate::web::login::login_page(None),
            other => crate::web::error_page(other.status(), &other.public_message()),
        };
        let response = (e.status(), Html(body)).into_response();
        e.decorate(response)
    }
}

/// An error answered as JSON: `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError(pub PortalError);

impl<E: Into<PortalError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = serde_json::json!({"error": e.code(), "message": e.public_message()});
        let mut response = (e.status(), axum::Json(body)).into_response();
        if matches!(e, PortalError::Unauthenticated) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        e.decorate(response)
    }
}

pub type WebResult<T> = Result<T, WebError>;
pub type ApiResult<T> = Result<T, ApiError>;
