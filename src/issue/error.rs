//! [`OAuthError`]: the issuer core's one error type. Its [`ErrorCode`] is the
//! wire code (RFC 6749 §4.1.2.1 and §5.2, RFC 7591 §3.2.2, RFC 8707 §2,
//! RFC 6750 §3.1); the optional description is safe to show; the cause is for
//! logs only.

use crate::domain::revocation::RevocationError;
use crate::issue::store::StoreError;

/// The error codes the issuer answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    /// RFC 8707 §2: the `resource` is unknown or not allowed.
    InvalidTarget,
    AccessDenied,
    /// RFC 7591 §3.2.2.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2.
    InvalidClientMetadata,
    /// RFC 6750 §3.1: a bad registration access or admin token.
    InvalidToken,
    /// Too many requests (answered with 429).
    RateLimited,
    ServerError,
    TemporarilyUnavailable,
}

/// An OAuth error: wire code, optional safe description, log-only cause.
#[derive(Debug, thiserror::Error)]
#[error("{}", .code.as_str())]
pub struct OAuthError {
    pub code: ErrorCode,
    /// Shown to the client (`error_description`); never contains secrets.
    pub(crate) description: Option<String>,
    /// Answer `invalid_client` with `WWW-Authenticate: Basic` (RFC 6749 §5.2).
    pub(crate) basic_challenge: bool,
    /// For logs only.
    pub(crate) cause: Option<String>,
}

// === impl ErrorCode ===

impl ErrorCode {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::RateLimited => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status of a direct (non-redirect) error response.
    pub(crate) fn http_status(&self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::AccessDenied => 403,
            ErrorCode::RateLimited => 429,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

// === impl OAuthError ===

impl OAuthError {
    pub(crate) fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: Some(description.into()),
            basic_challenge: false,
            cause: None,
        }
    }

    /// An error without a description.
    pub(crate) fn bare(code: ErrorCode) -> Self {
        Self {
            code,
            description: None,
            basic_challenge: false,
            cause: None,
        }
    }

    /// Attaches a log-only cause.
    pub(crate) fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub(crate) fn with_basic_challenge(mut self, yes: bool) -> Self {
        self.basic_challenge = yes;
        self
    }

    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    pub(crate) fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }

    pub(crate) fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }

    pub(crate) fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }

    pub(crate) fn invalid_target(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidTarget, d)
    }

    pub(crate) fn invalid_token() -> Self {
        Self::bare(ErrorCode::InvalidToken)
    }

    pub(crate) fn server_error(cause: impl std::fmt::Display) -> Self {
        Self::bare(ErrorCode::ServerError).with_cause(cause)
    }

    /// The cause for logs, or the description.
    pub(crate) fn log_detail(&self) -> &str {
        self.cause
            .as_deref()
            .or(self.description.as_deref())
            .unwrap_or("")
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        Self::bare(ErrorCode::TemporarilyUnavailable).with_cause(e)
    }
}

impl From<RevocationError> for OAuthError {
    fn from(e: RevocationError) -> Self {
        Self::bare(ErrorCode::TemporarilyUnavailable).with_cause(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        assert_eq!(
            OAuthError::invalid_target("x").to_string(),
            "invalid_target"
        );
        assert_eq!(ErrorCode::InvalidClient.http_status(), 401);
        assert_eq!(ErrorCode::RateLimited.http_status(), 429);
        let e = OAuthError::server_error("db down");
        assert_eq!(e.log_detail(), "db down");
        assert!(e.description.is_none());
    }
}
