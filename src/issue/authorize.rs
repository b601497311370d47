//! The authorization endpoint (RFC 6749 §4.1.1 with OAuth 2.1 and MCP
//! rules): client and redirect URI checks, PKCE S256, RFC 8707 `resource`,
//! scopes; the pending request that login and consent complete; code
//! issuance and the RFC 9207 `iss` on every response.

use crate::domain::claims::{is_valid_scope_token, Scopes};
use crate::issue::error::{ErrorCode, OAuthError};
use crate::issue::pkce;
use crate::issue::records::{
    hash_secret, put_json, random_token, ClientRecord, CodeRecord, Grant, PendingRecord,
};
use crate::issue::redirect;
use crate::issue::service::{Issuer, ResourceSettings};
use crate::issue::store::Namespace;

/// Scopes accepted from clients but not granted (we always issue refresh
/// tokens to clients registered for them).
const IGNORED_SCOPES: &[&str] = &["offline_access"];

/// The authorization request parameters, as sent.
#[derive(Debug, Default, Clone)]
pub(crate) struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    /// RFC 8707 `resource` (may repeat).
    pub resource: Vec<String>,
    /// Parameters sent more than once (RFC 6749 §3.1 forbids it).
    pub duplicated: Vec<String>,
}

/// A failed authorization step.
#[derive(Debug)]
pub(crate) enum AuthorizeFailure {
    /// The client or redirect URI cannot be trusted: show an error page.
    Page(OAuthError),
    /// Send the browser back to the client with the error (RFC 6749
    /// §4.1.2.1); the URL already carries `error`, `state` and `iss`.
    Redirect(String),
}

/// Where the browser goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Log in (`/login?req=<id>`).
    Login(String),
    /// Approve the client (`/consent?req=<id>`).
    Consent(String),
    /// Back to the client (code or error).
    Redirect(String),
}

impl From<OAuthError> for AuthorizeFailure {
    fn from(e: OAuthError) -> Self {
        AuthorizeFailure::Page(e)
    }
}

/// Whether a scope is an admin scope, left out of the defaults: one of its
/// `:`, `.` or `/`-separated parts is `admin` (`mcp:admin`, `repo.admin`).
pub(crate) fn is_admin_scope(scope: &str) -> bool {
    scope
        .split([':', '.', '/'])
        .any(|p| p.eq_ignore_ascii_case("admin"))
}

/// Whether a sent `resource` names a configured one: scheme and host
/// compare case-insensitively (RFC 3986 §6.2.2), a default port and a
/// trailing `/` do not matter; the rest compares exactly.
pub(crate) fn same_resource(configured: &str, sent: &str) -> bool {
    if configured == sent {
        return true;
    }
    let norm = |s: &str| {
        url::Url::parse(s)
            .ok()
            .filter(|u| u.fragment().is_none())
            .map(|u| u.as_str().trim_end_matches('/').to_owned())
    };
    match (norm(configured), norm(sent)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Appends query parameters to a redirect URI.
fn with_query(base: &str, pairs: &[(&str, &str)]) -> Result<String, OAuthError> {
    let mut u = url::Url::parse(base).map_err(OAuthError::server_error)?;
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Ok(u.into())
}

// === impl Issuer ===

impl Issuer {
    /// An error redirect to a validated redirect URI.
    pub(crate) fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        err: &OAuthError,
    ) -> AuthorizeFailure {
        tracing::info!(
            error = err.code.as_str(),
            detail = err.log_detail(),
            "authorization request refused"
        );
        let mut pairs = vec![("error", err.code.as_str())];
        if let Some(d) = &err.description {
            pairs.push(("error_description", d));
        }
        if let Some(s) = state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &self.settings.issuer));
        match with_query(redirect_uri, &pairs) {
            Ok(u) => AuthorizeFailure::Redirect(u),
            Err(e) => AuthorizeFailure::Page(e),
        }
    }

    /// The configured resource a request names (RFC 8707), or the
    /// configured `default_resource` when it names none.
    pub(crate) fn resolve_resource(
        &self,
        sent: &[String],
    ) -> Result<&ResourceSettings, OAuthError> {
        let resources = &self.settings.resources;
        let mut found: Vec<&ResourceSettings> = Vec::new();
        for one in sent {
            let r = resources
                .iter()
                .find(|r| same_resource(&r.resource, one))
                .ok_or_else(|| OAuthError::invalid_target("unknown resource"))?;
            if !found.iter().any(|f| std::ptr::eq(*f, r)) {
                found.push(r);
            }
        }
        match found.as_slice() {
            [] => self
                .settings
                .default_resource
                .as_deref()
                .and_then(|d| resources.iter().find(|r| r.resource == d))
                .ok_or_else(|| OAuthError::invalid_target("resource is required")),
            [one] => Ok(one),
            _ => Err(OAuthError::invalid_target("only one resource per request")),
        }
    }

    /// The scopes to grant: the request's (or the defaults), each allowed
    /// for the resource and the client.
    pub(crate) fn resolve_scopes(
        &self,
        requested: Option<&str>,
        resource: &ResourceSettings,
        client: &ClientRecord,
    ) -> Result<Scopes, OAuthError> {
        let s = &self.settings;
        let allowed_by_resource = |t: &str| match &resource.scopes {
            Some(rs) => rs.contains(t),
            None => s.any_scope() || s.scopes.contains(t),
        };
        let client_scopes = client
            .metadata
            .scope
            .as_deref()
            .filter(|_| s.registration.enforce_client_scope)
            .map(Scopes::parse);
        let allowed = |t: &str| {
            allowed_by_resource(t) && client_scopes.as_ref().is_none_or(|c| c.contains(t))
        };
        let tokens: Vec<&str> = requested
            .unwrap_or("")
            .split(' ')
            .filter(|t| !t.is_empty() && !IGNORED_SCOPES.contains(t))
            .collect();
        if let Some(bad) = tokens.iter().find(|t| !is_valid_scope_token(t)) {
            return Err(OAuthError::invalid_scope(format!("malformed scope: {bad}")));
        }
        // RFC 6749 §3.3: scopes the resource does not offer (`openid`,
        // `email`, ...) are left out; the token response says what was
        // granted.
        let (granted, dropped): (Vec<&str>, Vec<&str>) = tokens.iter().partition(|t| allowed(t));
        if !dropped.is_empty() {
            tracing::debug!(dropped = %dropped.join(" "), "requested scopes not granted");
        }
        if !granted.is_empty() {
            return Ok(Scopes::from_iter(granted));
        }
        let defaults = match (&resource.default_scopes, s.default_scopes.is_empty()) {
            (Some(d), _) => d.clone(),
            (None, false) => s.default_scopes.clone(),
            (None, true) => {
                let offered = resource.scopes.as_ref().unwrap_or(&s.scopes);
                Scopes::from_iter(offered.iter().filter(|t| !is_admin_scope(t)))
            }
        };
        Ok(Scopes::from_iter(defaults.iter().filter(|t| allowed(t))))
    }

    /// Validates an authorization request and stores it as pending; returns
    /// its id. `csrf` is the browser's CSRF cookie value.
    pub(crate) async fn authorize_start(
        &self,
        p: AuthorizeParams,
        csrf: &str,
    ) -> Result<String, AuthorizeFailure> {
        let client_id = p
            .client_id
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
        let client = self
            .lookup_client(client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        let registered = &client.metadata.redirect_uris;
        let redirect_uri = match p.redirect_uri.as_deref() {
            Some(r) if registered.iter().any(|reg| redirect::matches(reg, r)) => r.to_owned(),
            Some(_) => {
                return Err(OAuthError::invalid_request("redirect_uri is not registered").into())
            }
            None if registered.len() == 1 => registered[0].clone(),
            None => return Err(OAuthError::invalid_request("redirect_uri is required").into()),
        };
        let state = p.state.as_deref();
        let fail = |e: OAuthError| self.error_redirect(&redirect_uri, state, &e);
        if !p.duplicated.is_empty() {
            let d = format!("parameters repeated: {}", p.duplicated.join(", "));
            return Err(fail(OAuthError::invalid_request(d)));
        }
        match p.response_type.as_deref() {
            Some("code") => {}
            None => {
                return Err(fail(OAuthError::invalid_request(
                    "response_type is required",
                )))
            }
            Some(_) => {
                return Err(fail(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                )))
            }
        }
        let challenge = pkce::validate_challenge(
            p.code_challenge_method.as_deref(),
            p.code_challenge.as_deref(),
        )
        .map_err(fail)?;
        let resource = self.resolve_resource(&p.resource).map_err(fail)?;
        let scopes = self
            .resolve_scopes(p.scope.as_deref(), resource, &client)
            .map_err(fail)?;
        let id = random_token(32)?;
        let pending = PendingRecord {
            client_id: client.client_id.clone(),
            redirect_uri,
            redirect_uri_sent: p.redirect_uri.is_some(),
            state: p.state.clone(),
            code_challenge: challenge,
            scope: scopes.to_string(),
            resource: resource.resource.clone(),
            csrf_hash: hash_secret(csrf),
            user: None,
            auth_time: None,
            consented: false,
            upstream: None,
        };
        let ttl = Some(self.settings.pending_ttl);
        put_json(self.store.as_ref(), Namespace::Pending, &id, &pending, ttl)
            .await
            .map_err(OAuthError::from)?;
        Ok(id)
    }

    /// Issues the code for a completed request and builds the success
    /// redirect (`code`, `state`, `iss`).
    pub(crate) async fn issue_code(&self, p: &PendingRecord) -> Result<String, OAuthError> {
        let user = p
            .user
            .clone()
            .ok_or_else(|| OAuthError::server_error("pending request has no user"))?;
        let code = random_token(32)?;
        let rec = CodeRecord {
            grant: Grant {
                client_id: p.client_id.clone(),
                user,
                scope: p.scope.clone(),
                resource: p.resource.clone(),
                auth_time: p.auth_time.unwrap_or_else(|| self.now()),
            },
            redirect_uri: p.redirect_uri.clone(),
            redirect_uri_sent: p.redirect_uri_sent,
            code_challenge: p.code_challenge.clone(),
        };
        let ttl = Some(self.settings.code_ttl);
        put_json(
            self.store.as_ref(),
            Namespace::Codes,
            &hash_secret(&code),
            &rec,
            ttl,
        )
        .await?;
        tracing::info!(client_id = %p.client_id, sub = %rec.grant.user.subject, "authorization code issued");
        let mut pairs = vec![("code", code.as_str())];
        if let Some(s) = &p.state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &self.settings.issuer));
        with_query(&p.redirect_uri, &pairs)
    }
}
