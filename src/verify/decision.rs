//! [`Verdict`]: the core's answer, encoded by each adapter (it reaches them
//! in an [`super::authorizer::Decision`], with what it was decided on).

use crate::domain::claims::AccessClaims;
use std::sync::Arc;

/// Allow or deny.
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    /// Let the request through; `identity` is `None` on public routes.
    Allow(Option<Arc<VerifiedToken>>),
    Deny(Deny),
}

/// A denial: HTTP status, `WWW-Authenticate` challenge and the cause (for
/// logs and metrics only; clients see the generic RFC 6750 code).
#[derive(Debug, Clone)]
pub(crate) struct Deny {
    pub status: u16,
    pub challenge: Option<String>,
    pub reason: DenyReason,
    /// The verified token, when the denial came after its verification
    /// (wrong audience, revoked, scope): who was refused, for the logs.
    pub(crate) identity: Option<Arc<VerifiedToken>>,
}

/// A token that passed signature, issuer and type checks: what the
/// decision and the logs read, and nothing else (the token cache holds one
/// per cached token, so it is kept small: the per-token facts inline, the
/// rest shared through [`TokenIdentity`], which derefs from it).
#[derive(Debug)]
pub struct VerifiedToken {
    pub(crate) exp: u64,
    pub(crate) iat: u64,
    pub(crate) nbf: Option<u64>,
    pub(crate) jti: Box<str>,
    /// Facts many tokens share (one user through one client): the token
    /// cache interns them, so its tokens share one copy.
    pub(crate) identity: Arc<TokenIdentity>,
}

/// The facts of a token that are the same for every token of one subject
/// through one client, with the upstream header values precomputed (slot
/// order of [`IDENTITY_SLOTS`]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TokenIdentity {
    pub sub: String,
    pub client_id: Option<String>,
    pub aud: crate::domain::claims::Audience,
    pub scopes: crate::domain::claims::Scopes,
    /// Header values per identity slot; `None` when the claim is absent or
    /// not a valid header value.
    pub(crate) header_values: [Option<String>; 5],
}

/// The identity facts sent upstream, in slot order: user id (`sub`), user
/// name (`username`, else `name`), email, scopes, client id.
pub(crate) const IDENTITY_SLOTS: [&str; 5] = [
    "user_id",
    "user_name",
    "user_email",
    "user_scopes",
    "client_id",
];

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DenyReason {
    #[error("no bearer token")]
    MissingToken,
    #[error("malformed authorization header")]
    MalformedHeader,
    #[error("malformed token")]
    MalformedToken,
    #[error("algorithm not allowed")]
    BadAlgorithm,
    #[error("token type not allowed")]
    BadType,
    #[error("untrusted issuer")]
    UnknownIssuer,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("signing keys unavailable")]
    KeysUnavailable,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token audience does not match the resource")]
    WrongAudience,
    #[error("token revoked")]
    Revoked,
    #[error("insufficient scope")]
    InsufficientScope,
    #[error("revocation data stale")]
    RevocationStale,
    #[error("no route for request")]
    NoRoute,
    #[error("request target has no canonical form")]
    BadRequest,
    #[error("several or disagreeing copies of one request fact")]
    Ambiguous,
    #[error("MCP headers disagree with the JSON-RPC body")]
    McpMismatch,
    #[error("token lifetime exceeds max_token_lifetime_secs")]
    LifetimeTooLong,
    #[error("token has an unsupported critical header")]
    UnknownCritical,
}

// === impl DenyReason ===

impl DenyReason {
    /// A stable metrics label.
    pub fn label(self) -> &'static str {
        match self {
            DenyReason::MissingToken => "missing_token",
            DenyReason::MalformedHeader => "malformed_header",
            DenyReason::MalformedToken => "malformed_token",
            DenyReason::BadAlgorithm => "bad_algorithm",
            DenyReason::BadType => "bad_type",
            DenyReason::UnknownIssuer => "unknown_issuer",
            DenyReason::UnknownKey => "unknown_key",
            DenyReason::KeysUnavailable => "keys_unavailable",
            DenyReason::BadSignature => "bad_signature",
            DenyReason::Expired => "expired",
            DenyReason::NotYetValid => "not_yet_valid",
            DenyReason::WrongAudience => "wrong_audience",
            DenyReason::Revoked => "revoked",
            DenyReason::InsufficientScope => "insufficient_scope",
            DenyReason::RevocationStale => "revocation_stale",
            DenyReason::NoRoute => "no_route",
            DenyReason::BadRequest => "bad_request",
            DenyReason::Ambiguous => "ambiguous",
            DenyReason::McpMismatch => "mcp_mismatch",
            DenyReason::LifetimeTooLong => "lifetime_too_long",
            DenyReason::UnknownCritical => "unknown_critical",
        }
    }
}

// === impl VerifiedToken ===

impl VerifiedToken {
    /// The verified facts of `claims`, the shared part passed through
    /// `intern` (which returns an equal identity, possibly one it holds).
    /// Only verification calls it; it is public for the memory benchmark
    /// (`benches/cache_bytes.rs`) and hidden from the docs.
    #[doc(hidden)]
    pub fn interned(
        claims: AccessClaims,
        intern: impl FnOnce(TokenIdentity) -> Arc<TokenIdentity>,
    ) -> Self {
        let scopes = claims.scopes();
        let clean = |s: Option<&str>| s.filter(|v| header_safe(v)).map(str::to_owned);
        let header_values = [
            clean(Some(claims.sub.as_str())),
            clean(claims.username.as_deref().or(claims.name.as_deref())),
            clean(claims.email.as_deref()),
            clean(Some(scopes.to_string().as_str()).filter(|s| !s.is_empty())),
            clean(claims.client_id.as_deref()),
        ];
        let identity = intern(TokenIdentity {
            aud: claims.aud,
            sub: claims.sub,
            client_id: claims.client_id,
            scopes,
            header_values,
        });
        Self {
            exp: claims.exp,
            iat: claims.iat,
            nbf: claims.nbf,
            jti: claims.jti.into_boxed_str(),
            identity,
        }
    }
}

impl std::ops::Deref for VerifiedToken {
    type Target = TokenIdentity;

    fn deref(&self) -> &TokenIdentity {
        &self.identity
    }
}

/// Whether a claim may be sent as a header value: visible ASCII and spaces,
/// bounded length, no leading/trailing whitespace.
fn header_safe(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 4096
        && v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
}
