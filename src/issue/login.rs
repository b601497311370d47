//! The user-facing half of `/authorize`: login (static users or an upstream
//! provider), browser sessions, and remembered consent. Every step checks
//! the CSRF token bound to the pending request.

use crate::domain::secret::{ct_eq, PkceVerifier};
use crate::issue::authorize::{AuthorizeFailure, Next};
use crate::issue::error::{ErrorCode, OAuthError};
use crate::issue::metadata::CALLBACK_PATH;
use crate::issue::records::{
    get_json, hash_secret, put_json, random_token, take_json, ConsentRecord, PendingRecord,
    SessionRecord, UpstreamPending,
};
use crate::issue::records::{ClientRecord, ClientSource};
use crate::issue::redirect;
use crate::issue::service::Issuer;
use crate::issue::store::Namespace;
use crate::issue::upstream::{UpstreamAuthRequest, UpstreamError, UpstreamUser};
use crate::issue::users::Verdict;
use std::time::Duration;

/// Failed password attempts per (username, client IP) before back-off.
const PAIR_FREE_FAILURES: u64 = 5;
/// Failed password attempts per client IP (any username) before back-off.
const IP_FREE_FAILURES: u64 = 30;
/// Failures are counted over this window.
const FAILURE_WINDOW: Duration = Duration::from_secs(3600);
/// The longest back-off.
const MAX_BACKOFF_SECS: u64 = 900;
/// How long a login waits for a password-hashing slot before 429.
pub(crate) const HASH_WAIT: Duration = Duration::from_secs(2);

/// What the login page shows.
#[derive(Debug, Clone)]
pub(crate) struct LoginView {
    pub request_id: String,
    pub client_name: String,
    /// Display name of the static username/password provider, if any.
    pub(crate) static_provider: Option<String>,
    /// `(id, display name)` of upstream providers.
    pub(crate) upstreams: Vec<(String, String)>,
    pub error: Option<String>,
}

/// What the consent page shows.
#[derive(Debug, Clone)]
pub(crate) struct ConsentView {
    pub request_id: String,
    pub client_id: String,
    pub client_name: String,
    /// Whether the name was asserted by the client itself (dynamic
    /// registration, metadata documents): shown as unverified.
    pub(crate) name_unverified: bool,
    /// Host the browser will be sent to (MUST be shown for CIMD clients).
    pub(crate) redirect_host: String,
    /// The full redirect URI.
    pub redirect_uri: String,
    /// The redirect goes to this machine (any local program could be
    /// listening there).
    pub(crate) redirect_local: bool,
    pub scopes: Vec<String>,
    pub resource: String,
    /// `None` before the login (consent comes first for upstream logins).
    pub user: Option<String>,
    /// The provider the user will sign in with after approving.
    pub(crate) next_provider: Option<String>,
}

/// The result of a username/password attempt.
#[derive(Debug)]
pub(crate) enum LoginOutcome {
    /// Logged in: the new session token, and where to go.
    Ok { session: String, next: Next },
    /// Wrong credentials: show the form again.
    Retry(LoginView),
    /// Too many failures, or no hashing slot free: 429 with `Retry-After`.
    Limited { view: LoginView, retry_after: u64 },
}

/// Fingerprint of what a user consents to about a client.
fn client_fingerprint(c: &ClientRecord) -> String {
    let mut uris = c.metadata.redirect_uris.clone();
    uris.sort();
    let v = serde_json::json!([
        uris,
        c.metadata.scope,
        c.metadata.client_name,
        c.metadata.token_endpoint_auth_method
    ]);
    hash_secret(&v.to_string())
}

/// Whether a redirect URI points at this machine.
fn is_local_redirect(uri: &str) -> bool {
    match url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        None => false,
    }
}

fn backoff_secs(failures: u64, free: u64) -> Option<u64> {
    let over = failures.checked_sub(free)?.checked_sub(1)?;
    Some(
        1u64.checked_shl(over.min(20) as u32)
            .unwrap_or(u64::MAX)
            .min(MAX_BACKOFF_SECS),
    )
}

fn expired() -> AuthorizeFailure {
    AuthorizeFailure::Page(OAuthError::invalid_request(
        "this authorization request has expired or is invalid; start again from the application",
    ))
}

fn consent_key(sub: &str, client_id: &str) -> String {
    format!("{}|{client_id}", hash_secret(sub))
}

fn display_user(u: &UpstreamUser) -> String {
    u.email
        .clone()
        .or_else(|| u.username.clone())
        .unwrap_or_else(|| u.subject.clone())
}

// === impl Issuer ===

impl Issuer {
    /// The pending request, if `csrf` is the browser cookie that started it.
    async fn pending(&self, id: &str, csrf: &str) -> Result<PendingRecord, AuthorizeFailure> {
        let p: Option<PendingRecord> = get_json(self.store.as_ref(), Namespace::Pending, id)
            .await
            .map_err(OAuthError::from)?;
        match p {
            Some(p) if ct_eq(p.csrf_hash.as_bytes(), hash_secret(csrf).as_bytes()) => Ok(p),
            _ => Err(expired()),
        }
    }

    fn fail_pending(&self, p: &PendingRecord, e: OAuthError) -> AuthorizeFailure {
        self.error_redirect(&p.redirect_uri, p.state.as_deref(), &e)
    }

    async fn client_name(&self, client_id: &str) -> String {
        match self.lookup_client(client_id).await {
            Ok(Some(c)) => c
                .metadata
                .client_name
                .unwrap_or_else(|| client_id.to_owned()),
            _ => client_id.to_owned(),
        }
    }

    /// Creates a browser session; returns its cookie value.
    pub(crate) async fn create_session(&self, user: &UpstreamUser) -> Result<String, OAuthError> {
        let token = random_token(32)?;
        let rec = SessionRecord {
            user: user.clone(),
            auth_time: self.now(),
        };
        let ttl = Some(self.settings.session_ttl);
        put_json(
            self.store.as_ref(),
            Namespace::Sessions,
            &hash_secret(&token),
            &rec,
            ttl,
        )
        .await?;
        Ok(token)
    }

    pub async fn session(&self, token: &str) -> Option<SessionRecord> {
        get_json(
            self.store.as_ref(),
            Namespace::Sessions,
            &hash_secret(token),
        )
        .await
        .ok()
        .flatten()
    }

    async fn user_allowed(&self, u: &UpstreamUser) -> Result<bool, OAuthError> {
        let local = self
            .static_users
            .as_ref()
            .is_some_and(|s| u.subject.starts_with(&format!("{}:", s.id)));
        if local {
            return Ok(true);
        }
        let store = self.store.as_ref();
        // Pins live in the consents namespace under keys no consent uses
        // (consent keys are `<hash>|<client_id>`).
        let by_sub = format!("allowpin:sub:{}", u.subject);
        match self.settings.allow_list.check(u) {
            Verdict::Allow => Ok(true),
            Verdict::Deny => {
                // An account that pinned a listed login keeps access after
                // renaming itself.
                let pinned = store.get(Namespace::Consents, &by_sub).await?;
                Ok(pinned.is_some_and(|login| {
                    std::str::from_utf8(&login)
                        .is_ok_and(|l| self.settings.allow_list.lists_github_login(l))
                }))
            }
            Verdict::PinGithubLogin(login) => {
                // The first account to log in with the listed login pins it;
                // a later owner of the same login is someone else.
                let key = format!("allowpin:github:{login}");
                store
                    .put_if_absent(Namespace::Consents, &key, u.subject.as_bytes(), None)
                    .await?;
                let pinned = store.get(Namespace::Consents, &key).await?;
                let ok = pinned.is_some_and(|p| ct_eq(&p, u.subject.as_bytes()));
                if ok {
                    store
                        .put(Namespace::Consents, &by_sub, login.as_bytes(), None)
                        .await?;
                } else {
                    tracing::warn!(login, sub = %u.subject, "GitHub login is pinned to another account");
                }
                Ok(ok)
            }
        }
    }

    /// Ends a browser session (the logout endpoint).
    pub async fn logout(&self, session: &str) -> Result<(), OAuthError> {
        self.store
            .delete(Namespace::Sessions, &hash_secret(session))
            .await?;
        tracing::info!("browser session ended");
        Ok(())
    }

    /// Remembers the user's consent for the pending request's client.
    async fn remember_consent(
        &self,
        user: &UpstreamUser,
        p: &PendingRecord,
        client: &ClientRecord,
    ) -> Result<(), OAuthError> {
        let key = consent_key(&user.subject, &p.client_id);
        let fp = client_fingerprint(client);
        let old: Option<ConsentRecord> =
            get_json(self.store.as_ref(), Namespace::Consents, &key).await?;
        // A consent given to another version of the client does not carry.
        let (mut scope, mut resources) = old
            .filter(|c| c.client == fp)
            .map(|c| (crate::domain::claims::Scopes::parse(&c.scope), c.resources))
            .unwrap_or_default();
        scope = scope.union(&crate::domain::claims::Scopes::parse(&p.scope));
        if !resources.contains(&p.resource) {
            resources.push(p.resource.clone());
        }
        let rec = ConsentRecord {
            scope: scope.to_string(),
            resources,
            client: fp,
        };
        let ttl = Some(self.settings.consent_ttl);
        put_json(self.store.as_ref(), Namespace::Consents, &key, &rec, ttl).await?;
        Ok(())
    }

    async fn pending_client(&self, p: &PendingRecord) -> Result<ClientRecord, AuthorizeFailure> {
        match self.lookup_client(&p.client_id).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(self.fail_pending(p, OAuthError::invalid_client("unknown client"))),
            Err(e) => Err(self.fail_pending(p, e)),
        }
    }

    /// Whether (user, IP) or the IP is backing off; the seconds left.
    async fn login_limited(&self, keys: &[(String, u64); 2]) -> Result<Option<u64>, OAuthError> {
        let now = self.now();
        for (k, _) in keys {
            let until: Option<u64> = get_json(
                self.store.as_ref(),
                Namespace::RateLimits,
                &format!("b:{k}"),
            )
            .await?;
            if let Some(u) = until.filter(|u| *u > now) {
                return Ok(Some(u - now));
            }
        }
        Ok(None)
    }

    async fn login_failed(&self, keys: &[(String, u64); 2]) -> Result<(), OAuthError> {
        let now = self.now();
        for (k, free) in keys {
            let n = self
                .store
                .incr(Namespace::RateLimits, &format!("f:{k}"), FAILURE_WINDOW)
                .await?;
            if let Some(d) = backoff_secs(n, *free) {
                let ttl = Some(Duration::from_secs(d + 1));
                put_json(
                    self.store.as_ref(),
                    Namespace::RateLimits,
                    &format!("b:{k}"),
                    &(now + d),
                    ttl,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Continues a pending request: with the browser session's user, to
    /// consent or straight back to the client if consent is remembered.
    pub(crate) async fn authorize_resume(
        &self,
        id: &str,
        csrf: &str,
        session: Option<&str>,
    ) -> Result<Next, AuthorizeFailure> {
        let mut p = self.pending(id, csrf).await?;
        if p.user.is_none() {
            match session {
                Some(s) => match self.session(s).await {
                    Some(rec) => {
                        p.user = Some(rec.user);
                        p.auth_time = Some(rec.auth_time);
                    }
                    None => return Ok(Next::Login(id.to_owned())),
                },
                None => return Ok(Next::Login(id.to_owned())),
            }
        }
        self.after_login(id, p).await
    }

    async fn after_login(&self, id: &str, mut p: PendingRecord) -> Result<Next, AuthorizeFailure> {
        let Some(user) = p.user.clone() else {
            return Ok(Next::Login(id.to_owned()));
        };
        if !self.user_allowed(&user).await? {
            tracing::info!(sub = %user.subject, "login refused by the allow-list");
            self.store
                .delete(Namespace::Pending, id)
                .await
                .map_err(OAuthError::from)?;
            let e = OAuthError::new(ErrorCode::AccessDenied, "this user is not allowed");
            return Err(self.fail_pending(&p, e));
        }
        p.auth_time.get_or_insert_with(|| self.now());
        let client = self.pending_client(&p).await?;
        let remembered: Option<ConsentRecord> = get_json(
            self.store.as_ref(),
            Namespace::Consents,
            &consent_key(&user.subject, &p.client_id),
        )
        .await
        .map_err(OAuthError::from)?;
        let fp = client_fingerprint(&client);
        let granted = remembered.is_some_and(|c| {
            let have = crate::domain::claims::Scopes::parse(&c.scope);
            c.client == fp
                && have.is_superset(&crate::domain::claims::Scopes::parse(&p.scope))
                && c.resources.contains(&p.resource)
        });
        if granted {
            return self.finish(id, p).await.map(Next::Redirect);
        }
        if p.consented {
            // Approved on our page before the upstream login.
            self.remember_consent(&user, &p, &client).await?;
            return self.finish(id, p).await.map(Next::Redirect);
        }
        let ttl = Some(self.settings.pending_ttl);
        put_json(self.store.as_ref(), Namespace::Pending, id, &p, ttl)
            .await
            .map_err(OAuthError::from)?;
        Ok(Next::Consent(id.to_owned()))
    }

    /// Consumes the pending request (once) and issues the code.
    async fn finish(&self, id: &str, p: PendingRecord) -> Result<String, AuthorizeFailure> {
        let taken: Option<PendingRecord> = take_json(self.store.as_ref(), Namespace::Pending, id)
            .await
            .map_err(OAuthError::from)?;
        if taken.is_none() {
            return Err(expired());
        }
        self.issue_code(&p)
            .await
            .map_err(|e| self.fail_pending(&p, e))
    }

    pub(crate) async fn login_view(
        &self,
        id: &str,
        csrf: &str,
    ) -> Result<LoginView, AuthorizeFailure> {
        let p = self.pending(id, csrf).await?;
        Ok(LoginView {
            request_id: id.to_owned(),
            client_name: self.client_name(&p.client_id).await,
            static_provider: self.static_users.as_ref().map(|s| s.display_name.clone()),
            upstreams: self
                .idps
                .iter()
                .map(|i| (i.id().to_owned(), i.display_name().to_owned()))
                .collect(),
            error: None,
        })
    }

    /// A username/password login with the static provider.
    /// `client_ip` is the connection's address (or the nearest untrusted
    /// `X-Forwarded-For` hop behind a trusted proxy): failures back off per
    /// (username, IP) and per IP, so an attacker elsewhere cannot lock the
    /// user out; a success clears its (username, IP) count.
    pub(crate) async fn login_static(
        &self,
        id: &str,
        csrf: &str,
        username: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<LoginOutcome, AuthorizeFailure> {
        let mut p = self.pending(id, csrf).await?;
        let Some(users) = self.static_users.as_ref() else {
            return Err(OAuthError::invalid_request("password login is not enabled").into());
        };
        let keys = [
            (
                format!(
                    "login:pair:{}",
                    hash_secret(&format!("{username}\n{client_ip}"))
                ),
                PAIR_FREE_FAILURES,
            ),
            (format!("login:ip:{client_ip}"), IP_FREE_FAILURES),
        ];
        if let Some(retry_after) = self.login_limited(&keys).await? {
            tracing::warn!(client_id = %p.client_id, client_ip, "password attempts backing off");
            let mut view = self.login_view(id, csrf).await?;
            view.error = Some(format!(
                "Too many failed attempts; try again in {retry_after} seconds."
            ));
            return Ok(LoginOutcome::Limited { view, retry_after });
        }
        let verified = match users.verify_bounded(username, password, HASH_WAIT).await {
            Ok(v) => v,
            Err(_busy) => {
                tracing::warn!(client_id = %p.client_id, "no password-hashing slot free");
                let mut view = self.login_view(id, csrf).await?;
                view.error = Some("The server is busy; try again in a moment.".into());
                return Ok(LoginOutcome::Limited {
                    view,
                    retry_after: 1,
                });
            }
        };
        let Some(user) = verified else {
            tracing::info!(client_id = %p.client_id, client_ip, "static login failed");
            self.login_failed(&keys).await?;
            let mut view = self.login_view(id, csrf).await?;
            view.error = Some("Invalid username or password.".into());
            return Ok(LoginOutcome::Retry(view));
        };
        for k in ["f", "b"] {
            self.store
                .delete(Namespace::RateLimits, &format!("{k}:{}", keys[0].0))
                .await
                .map_err(OAuthError::from)?;
        }
        let session = self.create_session(&user).await?;
        p.user = Some(user);
        p.auth_time = Some(self.now());
        let next = self.after_login(id, p).await?;
        Ok(LoginOutcome::Ok { session, next })
    }

    /// Starts an upstream login: first mcpgate's own consent page (MCP
    /// security best practices, "Confused Deputy Problem": the upstream
    /// provider may skip its consent for mcpgate, so the user must see this
    /// client before being sent there), then the provider URL.
    pub(crate) async fn upstream_begin(
        &self,
        id: &str,
        csrf: &str,
        provider: &str,
    ) -> Result<Next, AuthorizeFailure> {
        let mut p = self.pending(id, csrf).await?;
        let Some(idp) = self.idp(provider) else {
            return Err(OAuthError::invalid_request("unknown login provider").into());
        };
        if !p.consented {
            p.upstream = Some(provider.to_owned());
            let ttl = Some(self.settings.pending_ttl);
            put_json(self.store.as_ref(), Namespace::Pending, id, &p, ttl)
                .await
                .map_err(OAuthError::from)?;
            return Ok(Next::Consent(id.to_owned()));
        }
        let req = UpstreamAuthRequest {
            state: random_token(32)?,
            redirect_uri: self.settings.url(&format!("{CALLBACK_PATH}/{provider}")),
            pkce_verifier: PkceVerifier::new(random_token(48)?),
            nonce: random_token(24)?,
        };
        let rec = UpstreamPending {
            request_id: id.to_owned(),
            provider: provider.to_owned(),
            pkce_verifier: req.pkce_verifier.secret().to_owned(),
            nonce: req.nonce.clone(),
        };
        let key = format!("up:{}", req.state);
        let ttl = Some(self.settings.pending_ttl);
        put_json(self.store.as_ref(), Namespace::Pending, &key, &rec, ttl)
            .await
            .map_err(OAuthError::from)?;
        idp.authorize_url(&req).map(Next::Redirect).map_err(|e| {
            self.fail_pending(&p, OAuthError::bare(ErrorCode::ServerError).with_cause(e))
        })
    }

    /// The provider's redirect back to `/callback/{provider}`; returns the
    /// new session and where to go next.
    pub(crate) async fn upstream_callback(
        &self,
        provider: &str,
        state: Option<&str>,
        code: Option<&str>,
        upstream_error: Option<&str>,
        csrf: &str,
    ) -> Result<(String, Next), AuthorizeFailure> {
        let key = format!("up:{}", state.unwrap_or_default());
        let up: Option<UpstreamPending> = take_json(self.store.as_ref(), Namespace::Pending, &key)
            .await
            .map_err(OAuthError::from)?;
        let Some(up) = up.filter(|u| u.provider == provider && state.is_some()) else {
            return Err(expired());
        };
        let mut p = self.pending(&up.request_id, csrf).await?;
        let (Some(idp), None, Some(code)) = (self.idp(provider), upstream_error, code) else {
            let e = OAuthError::new(
                ErrorCode::AccessDenied,
                "the login was cancelled or refused",
            );
            return Err(self.fail_pending(&p, e));
        };
        let req = UpstreamAuthRequest {
            state: state.unwrap_or_default().to_owned(),
            redirect_uri: self.settings.url(&format!("{CALLBACK_PATH}/{provider}")),
            pkce_verifier: PkceVerifier::new(up.pkce_verifier),
            nonce: up.nonce,
        };
        let user = idp.exchange(code, &req).await.map_err(|e| {
            let code = match e {
                UpstreamError::Rejected(_) => ErrorCode::AccessDenied,
                _ => ErrorCode::TemporarilyUnavailable,
            };
            self.fail_pending(&p, OAuthError::bare(code).with_cause(e))
        })?;
        let session = self.create_session(&user).await?;
        p.user = Some(user);
        p.auth_time = Some(self.now());
        let next = self.after_login(&up.request_id, p).await?;
        Ok((session, next))
    }

    pub(crate) async fn consent_view(
        &self,
        id: &str,
        csrf: &str,
    ) -> Result<ConsentView, AuthorizeFailure> {
        let p = self.pending(id, csrf).await?;
        if p.user.is_none() && p.upstream.is_none() {
            return Err(expired());
        }
        let client = self.lookup_client(&p.client_id).await.ok().flatten();
        let next_provider = match (&p.user, &p.upstream) {
            (None, Some(u)) => self.idp(u).map(|i| i.display_name().to_owned()),
            _ => None,
        };
        Ok(ConsentView {
            request_id: id.to_owned(),
            client_id: p.client_id.clone(),
            client_name: self.client_name(&p.client_id).await,
            name_unverified: client.as_ref().is_none_or(|c| {
                matches!(
                    c.source,
                    ClientSource::Dynamic | ClientSource::MetadataDocument
                )
            }),
            redirect_host: redirect::display_host(&p.redirect_uri),
            redirect_uri: p.redirect_uri.clone(),
            redirect_local: is_local_redirect(&p.redirect_uri),
            next_provider,
            scopes: p
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            resource: p.resource.clone(),
            user: p.user.as_ref().map(display_user),
        })
    }

    /// The user's answer on the consent page; returns the client redirect.
    pub(crate) async fn consent_decide(
        &self,
        id: &str,
        csrf: &str,
        approve: bool,
    ) -> Result<String, AuthorizeFailure> {
        let mut p = self.pending(id, csrf).await?;
        if p.user.is_none() && p.upstream.is_none() {
            return Err(expired());
        }
        if !approve {
            self.store
                .delete(Namespace::Pending, id)
                .await
                .map_err(OAuthError::from)?;
            let e = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            return match self.fail_pending(&p, e) {
                AuthorizeFailure::Redirect(u) => Ok(u),
                other => Err(other),
            };
        }
        let Some(user) = p.user.clone() else {
            // Consent before the upstream login: on to the provider.
            let provider = p.upstream.clone().unwrap_or_default();
            p.consented = true;
            let ttl = Some(self.settings.pending_ttl);
            put_json(self.store.as_ref(), Namespace::Pending, id, &p, ttl)
                .await
                .map_err(OAuthError::from)?;
            return match self.upstream_begin(id, csrf, &provider).await? {
                Next::Redirect(u) => Ok(u),
                _ => Err(expired()),
            };
        };
        let client = self.pending_client(&p).await?;
        self.remember_consent(&user, &p, &client).await?;
        self.finish(id, p).await
    }
}
