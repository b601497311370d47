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
use crate::issue::redirect;
use crate::issue::service::Issuer;
use crate::issue::store::Namespace;
use crate::issue::upstream::{UpstreamAuthRequest, UpstreamError, UpstreamUser};

/// Password attempts allowed per username per [`LOGIN_WINDOW`].
const LOGIN_ATTEMPTS: u64 = 20;
const LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(900);

/// What the login page shows.
#[derive(Debug, Clone)]
pub struct LoginView {
    pub request_id: String,
    pub client_name: String,
    /// Display name of the static username/password provider, if any.
    pub static_provider: Option<String>,
    /// `(id, display name)` of upstream providers.
    pub upstreams: Vec<(String, String)>,
    pub error: Option<String>,
}

/// What the consent page shows.
#[derive(Debug, Clone)]
pub struct ConsentView {
    pub request_id: String,
    pub client_id: String,
    pub client_name: String,
    /// Host the browser will be sent to (MUST be shown for CIMD clients).
    pub redirect_host: String,
    pub scopes: Vec<String>,
    pub resource: String,
    pub user: String,
}

/// The result of a username/password attempt.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Logged in: the new session token, and where to go.
    Ok { session: String, next: Next },
    /// Wrong credentials: show the form again.
    Retry(LoginView),
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
    pub async fn create_session(&self, user: &UpstreamUser) -> Result<String, OAuthError> {
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

    fn user_allowed(&self, u: &UpstreamUser) -> bool {
        let local = self
            .static_users
            .as_ref()
            .is_some_and(|s| u.subject.starts_with(&format!("{}:", s.id)));
        local || self.settings.allow_list.allows(u)
    }

    /// Continues a pending request: with the browser session's user, to
    /// consent or straight back to the client if consent is remembered.
    pub async fn authorize_resume(
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
        if !self.user_allowed(&user) {
            tracing::info!(sub = %user.subject, "login refused by the allow-list");
            self.store
                .delete(Namespace::Pending, id)
                .await
                .map_err(OAuthError::from)?;
            let e = OAuthError::new(ErrorCode::AccessDenied, "this user is not allowed");
            return Err(self.fail_pending(&p, e));
        }
        p.auth_time.get_or_insert_with(|| self.now());
        let remembered: Option<ConsentRecord> = get_json(
            self.store.as_ref(),
            Namespace::Consents,
            &consent_key(&user.subject, &p.client_id),
        )
        .await
        .map_err(OAuthError::from)?;
        let granted = remembered.is_some_and(|c| {
            let have = crate::domain::claims::Scopes::parse(&c.scope);
            have.is_superset(&crate::domain::claims::Scopes::parse(&p.scope))
                && c.resources.contains(&p.resource)
        });
        if granted {
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

    pub async fn login_view(&self, id: &str, csrf: &str) -> Result<LoginView, AuthorizeFailure> {
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
    pub async fn login_static(
        &self,
        id: &str,
        csrf: &str,
        username: &str,
        password: &str,
    ) -> Result<LoginOutcome, AuthorizeFailure> {
        let mut p = self.pending(id, csrf).await?;
        let Some(users) = self.static_users.clone() else {
            return Err(OAuthError::invalid_request("password login is not enabled").into());
        };
        let key = format!("login:{}", hash_secret(username));
        let attempts = self
            .store
            .incr(Namespace::RateLimits, &key, LOGIN_WINDOW)
            .await
            .map_err(OAuthError::from)?;
        if attempts > LOGIN_ATTEMPTS {
            tracing::warn!(client_id = %p.client_id, "too many password attempts");
            let mut view = self.login_view(id, csrf).await?;
            view.error = Some("Too many attempts; try again later.".into());
            return Ok(LoginOutcome::Retry(view));
        }
        let (u, pw) = (username.to_owned(), password.to_owned());
        let verified = tokio::task::spawn_blocking(move || users.verify(&u, &pw))
            .await
            .map_err(OAuthError::server_error)?;
        let Some(user) = verified else {
            tracing::info!(client_id = %p.client_id, "static login failed");
            let mut view = self.login_view(id, csrf).await?;
            view.error = Some("Invalid username or password.".into());
            return Ok(LoginOutcome::Retry(view));
        };
        let session = self.create_session(&user).await?;
        p.user = Some(user);
        p.auth_time = Some(self.now());
        let next = self.after_login(id, p).await?;
        Ok(LoginOutcome::Ok { session, next })
    }

    /// Starts an upstream login; returns the provider URL to redirect to.
    pub async fn upstream_begin(
        &self,
        id: &str,
        csrf: &str,
        provider: &str,
    ) -> Result<String, AuthorizeFailure> {
        let p = self.pending(id, csrf).await?;
        let Some(idp) = self.idp(provider) else {
            return Err(OAuthError::invalid_request("unknown login provider").into());
        };
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
        idp.authorize_url(&req).map_err(|e| {
            self.fail_pending(&p, OAuthError::bare(ErrorCode::ServerError).with_cause(e))
        })
    }

    /// The provider's redirect back to `/callback/{provider}`; returns the
    /// new session and where to go next.
    pub async fn upstream_callback(
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

    pub async fn consent_view(
        &self,
        id: &str,
        csrf: &str,
    ) -> Result<ConsentView, AuthorizeFailure> {
        let p = self.pending(id, csrf).await?;
        let Some(user) = &p.user else {
            return Err(expired());
        };
        Ok(ConsentView {
            request_id: id.to_owned(),
            client_id: p.client_id.clone(),
            client_name: self.client_name(&p.client_id).await,
            redirect_host: redirect::display_host(&p.redirect_uri),
            scopes: p
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            resource: p.resource.clone(),
            user: display_user(user),
        })
    }

    /// The user's answer on the consent page; returns the client redirect.
    pub async fn consent_decide(
        &self,
        id: &str,
        csrf: &str,
        approve: bool,
    ) -> Result<String, AuthorizeFailure> {
        let p = self.pending(id, csrf).await?;
        let Some(user) = p.user.clone() else {
            return Err(expired());
        };
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
        let key = consent_key(&user.subject, &p.client_id);
        let old: Option<ConsentRecord> = get_json(self.store.as_ref(), Namespace::Consents, &key)
            .await
            .map_err(OAuthError::from)?;
        let (mut scope, mut resources) = old
            .map(|c| (crate::domain::claims::Scopes::parse(&c.scope), c.resources))
            .unwrap_or_default();
        scope = scope.union(&crate::domain::claims::Scopes::parse(&p.scope));
        if !resources.contains(&p.resource) {
            resources.push(p.resource.clone());
        }
        let rec = ConsentRecord {
            scope: scope.to_string(),
            resources,
        };
        let ttl = Some(self.settings.consent_ttl);
        put_json(self.store.as_ref(), Namespace::Consents, &key, &rec, ttl)
            .await
            .map_err(OAuthError::from)?;
        self.finish(id, p).await
    }
}
