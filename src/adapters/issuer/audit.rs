//! Security audit events: one structured log line per event, target
//! [`TARGET`] (`mcpgate::audit`), at info (warn for a detected attack), so
//! a log pipeline can route them apart from the operational log. Every
//! line has `event`, `result` and the client's `remote_ip` (the issuer's
//! trusted-proxy rule: [`super::client_ip`]). Never a token, a secret, a
//! password or a hash of one: identities (`sub`, `client_id`, the user
//! name typed at login) and what was done.

use crate::issue::grant::IssuedTo;

/// The log target of audit events.
pub(super) const TARGET: &str = "mcpgate::audit";

/// The acting identity of an admin API call: the one admin bearer token
/// configured (`admin_token`); the admin listener serves nothing else.
pub(super) const ADMIN_ACTOR: &str = "admin_token";

/// `token_issued`: a successful `/token` exchange.
pub(super) fn token_issued(grant_type: &str, scope: &str, who: &IssuedTo, remote_ip: &str) {
    tracing::info!(
        target: TARGET,
        event = "token_issued",
        result = "ok",
        grant_type = %grant_type,
        client_id = %who.client_id,
        sub = %who.sub,
        scopes = %scope,
        resource = %who.resource,
        remote_ip = %remote_ip,
        "token issued"
    );
}

/// `token_refused`: a `/token` request answered with an OAuth error (a
/// refresh token reused after its rotation is one: the core logs
/// `refresh_reuse_detected` with the family it revoked).
pub(super) fn token_refused(grant_type: &str, client_id: &str, error: &str, remote_ip: &str) {
    tracing::info!(
        target: TARGET,
        event = "token_refused",
        result = %error,
        grant_type = %grant_type,
        client_id = %client_id,
        remote_ip = %remote_ip,
        "token request refused"
    );
}

/// `token_revoked`: an RFC 7009 revocation by a client (`token_type_hint`
/// as sent: which token is never logged).
pub(super) fn token_revoked(client_id: &str, hint: &str, result: &str, remote_ip: &str) {
    tracing::info!(
        target: TARGET,
        event = "token_revoked",
        result = %result,
        actor = "client",
        client_id = %client_id,
        token_type_hint = %hint,
        remote_ip = %remote_ip,
        "token revocation"
    );
}

/// `client_registered` / `client_updated` / `client_deleted` (RFC 7591/7592
/// by the client itself) and `client_read`.
pub(super) fn client_event(event: &'static str, client_id: &str, result: &str, remote_ip: &str) {
    tracing::info!(
        target: TARGET,
        event,
        result = %result,
        actor = "client",
        client_id = %client_id,
        remote_ip = %remote_ip,
        "client registration"
    );
}

/// `login`: a password login (the user name as typed, never the
/// password) or an upstream provider's login (`provider`, the `sub` it
/// mapped to).
pub(super) fn login(provider: &str, user: &str, sub: &str, result: &str, remote_ip: &str) {
    tracing::info!(
        target: TARGET,
        event = "login",
        result = %result,
        provider = %provider,
        user = %user,
        sub = %sub,
        remote_ip = %remote_ip,
        "login"
    );
}

/// `admin_call`: every admin API request, authorized or not, with the
/// acting identity ([`ADMIN_ACTOR`] when the bearer token matched, `none`
/// otherwise), what it asked and its outcome.
pub(super) fn admin_call(
    action: &str,
    authorized: bool,
    target: &str,
    result: &str,
    remote_ip: &str,
) {
    tracing::info!(
        target: TARGET,
        event = "admin_call",
        result = %result,
        actor = if authorized { ADMIN_ACTOR } else { "none" },
        action = %action,
        object = %target,
        remote_ip = %remote_ip,
        "admin API call"
    );
}
