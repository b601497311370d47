//! The one mapping of [`OAuthError`] to HTTP (RFC 6749 §5.2 JSON, RFC 6750
//! challenges), and of authorization failures to a page or a redirect.

use super::html;
use crate::issue::authorize::AuthorizeFailure;
use crate::issue::error::{ErrorCode, OAuthError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Headers every token-bearing or error JSON response carries.
pub(super) fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn log(e: &OAuthError) {
    match e.code {
        ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable => {
            tracing::error!(
                error = e.code.as_str(),
                detail = e.log_detail(),
                "request failed"
            )
        }
        _ => tracing::info!(
            error = e.code.as_str(),
            detail = e.log_detail(),
            "request refused"
        ),
    }
}

/// The JSON error response.
pub(crate) fn oauth_error_response(e: &OAuthError) -> Response {
    log(e);
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = serde_json::json!({ "error": e.code.as_str() });
    if let Some(d) = &e.description {
        body["error_description"] = serde_json::Value::String(d.clone());
    }
    let mut resp = (status, axum::Json(body)).into_response();
    no_store(&mut resp);
    let h = resp.headers_mut();
    if e.basic_challenge {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"mcpgate\""),
        );
    } else if e.code == ErrorCode::InvalidToken {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    resp
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        oauth_error_response(&self)
    }
}

impl IntoResponse for AuthorizeFailure {
    fn into_response(self) -> Response {
        match self {
            AuthorizeFailure::Redirect(url) => html::see_other(&url),
            AuthorizeFailure::Page(e) => {
                log(&e);
                let status =
                    StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                let msg = e
                    .description
                    .clone()
                    .unwrap_or_else(|| "The request could not be completed.".into());
                html::error_page(status, e.code.as_str(), &msg)
            }
        }
    }
}
