//! `/authorize`, `/login`, `/callback/{provider}`, `/consent`: the browser
//! leg. The CSRF cookie is set on `/authorize` and must come back, equal to
//! the form's `csrf` field, on every POST.

use super::cookies::{self, CSRF_COOKIE, SESSION_COOKIE};
use super::html;
use super::params::Params;
use super::IssuerState;
use crate::domain::secret::ct_eq;
use crate::issue::authorize::{AuthorizeFailure, AuthorizeParams, Next};
use crate::issue::error::OAuthError;
use crate::issue::login::{LoginOutcome, LoginView};
use crate::issue::metadata::{issuer_path, CONSENT_PATH, LOGIN_PATH, LOGOUT_PATH};
use crate::issue::records::random_token;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

type St = State<Arc<IssuerState>>;

fn prefix(st: &IssuerState) -> String {
    issuer_path(&st.core.settings().issuer)
}

/// The login form for `view`, posting back to this issuer's login path.
fn login_form(st: &IssuerState, view: &LoginView, csrf: &str) -> Response {
    html::login_page(view, csrf, &format!("{}{LOGIN_PATH}", prefix(st)))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Where `next` sends the browser.
fn go(st: &IssuerState, next: Next) -> Response {
    let p = prefix(st);
    match next {
        Next::Login(id) => html::see_other(&format!("{p}{LOGIN_PATH}?req={}", enc(&id))),
        Next::Consent(id) => html::see_other(&format!("{p}{CONSENT_PATH}?req={}", enc(&id))),
        Next::Redirect(url) => html::see_other(&url),
    }
}

fn with_cookie(mut resp: Response, cookie: String) -> Response {
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn session_cookie(st: &IssuerState, token: &str) -> String {
    let s = &st.core.settings();
    let path = prefix(st);
    cookies::set(
        SESSION_COOKIE,
        token,
        &path,
        s.secure_cookies(),
        s.session_ttl.as_secs(),
    )
}

/// The audit `result` of a failed login step.
fn failure_label(e: &AuthorizeFailure) -> &'static str {
    match e {
        AuthorizeFailure::Page(e) => e.code.as_str(),
        AuthorizeFailure::Redirect(_) => "access_denied",
    }
}

fn expired() -> AuthorizeFailure {
    AuthorizeFailure::Page(OAuthError::invalid_request(
        "missing or mismatched browser cookie; enable cookies and start again",
    ))
}

/// The CSRF cookie, which must equal the form's `csrf` on POSTs.
fn csrf_checked(headers: &HeaderMap, form: Option<&Params>) -> Result<String, AuthorizeFailure> {
    let cookie = cookies::get(headers, CSRF_COOKIE).ok_or_else(expired)?;
    if let Some(f) = form {
        let sent = f.get("csrf").unwrap_or_default();
        if !ct_eq(sent.as_bytes(), cookie.as_bytes()) {
            return Err(expired());
        }
    }
    Ok(cookie)
}

/// `GET /authorize` (RFC 6749 §4.1.1).
pub(super) async fn authorize_start_get(
    State(st): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    let params = AuthorizeParams {
        response_type: p.get("response_type"),
        client_id: p.get("client_id"),
        redirect_uri: p.get("redirect_uri"),
        state: p.get("state"),
        scope: p.get("scope"),
        code_challenge: p.get("code_challenge"),
        code_challenge_method: p.get("code_challenge_method"),
        resource: p.all("resource"),
        duplicated: p.duplicated(&["resource"]),
    };
    let (csrf, new_cookie) = match cookies::get(&headers, CSRF_COOKIE) {
        Some(c) => (c, None),
        None => match random_token(32) {
            Ok(c) => (c.clone(), Some(c)),
            Err(e) => return e.into_response(),
        },
    };
    let session = cookies::get(&headers, SESSION_COOKIE);
    let result = match st.core.authorize_start(params, &csrf).await {
        Ok(id) => {
            st.core
                .authorize_resume(&id, &csrf, session.as_deref())
                .await
        }
        Err(e) => Err(e),
    };
    st.metrics
        .count("authorize", if result.is_ok() { "ok" } else { "error" });
    let resp = match result {
        Ok(next) => go(&st, next),
        Err(e) => e.into_response(),
    };
    match new_cookie {
        Some(c) => {
            let s = &st.core.settings();
            let max_age = s.session_ttl.as_secs().max(s.pending_ttl.as_secs());
            with_cookie(
                resp,
                cookies::set(CSRF_COOKIE, &c, &prefix(&st), s.secure_cookies(), max_age),
            )
        }
        None => resp,
    }
}

/// `GET /login?req=…` shows the login page; `&provider=<id>` starts that
/// upstream login instead.
pub(super) async fn authorize_login_get(
    State(st): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AuthorizeFailure> {
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    let csrf = csrf_checked(&headers, None)?;
    let id = p.get("req").unwrap_or_default();
    if let Some(provider) = p.get("provider") {
        let next = st.core.upstream_begin(&id, &csrf, &provider).await?;
        return Ok(go(&st, next));
    }
    let view = st.core.login_view(&id, &csrf).await?;
    if let (None, [(only, _)]) = (&view.static_provider, view.upstreams.as_slice()) {
        let next = st.core.upstream_begin(&id, &csrf, only).await?;
        return Ok(go(&st, next));
    }
    Ok(login_form(&st, &view, &csrf))
}

/// `POST /login` with `req`, `csrf`, `username`, `password`.
pub(super) async fn authorize_login_post(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AuthorizeFailure> {
    let f = Params::parse(&body);
    let csrf = csrf_checked(&headers, Some(&f))?;
    let id = f.get("req").unwrap_or_default();
    let (user, pw) = (
        f.get("username").unwrap_or_default(),
        f.get("password").unwrap_or_default(),
    );
    let ip = super::client_ip(&st, peer.ip(), &headers).to_string();
    let outcome = st.core.login_static(&id, &csrf, &user, &pw, &ip).await;
    let result = match &outcome {
        Ok(LoginOutcome::Limited { .. }) => "too_many_requests",
        Ok(LoginOutcome::Ok { .. }) => "ok",
        Ok(LoginOutcome::Retry(_)) => "access_denied",
        Err(e) => failure_label(e),
    };
    // The user name as typed (a failed login's may be anything a client
    // sent: the JSON log escapes it), never the password.
    super::audit::login("static", &user, "", result, &ip);
    match outcome? {
        LoginOutcome::Limited { view, retry_after } => {
            st.metrics.count("login", "too_many_requests");
            let mut resp = login_form(&st, &view, &csrf);
            *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            Ok(resp)
        }
        LoginOutcome::Ok { session, next } => {
            st.metrics.count("login", "ok");
            Ok(with_cookie(go(&st, next), session_cookie(&st, &session)))
        }
        LoginOutcome::Retry(view) => {
            st.metrics.count("login", "access_denied");
            Ok(login_form(&st, &view, &csrf))
        }
    }
}

/// `GET /callback/{provider}?code=…&state=…` from the upstream provider.
pub(super) async fn authorize_callback_get(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AuthorizeFailure> {
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    let csrf = csrf_checked(&headers, None)?;
    let (state, code, error) = (p.get("state"), p.get("code"), p.get("error"));
    let ip = super::client_ip(&st, peer.ip(), &headers).to_string();
    let done = st
        .core
        .upstream_callback(
            &provider,
            state.as_deref(),
            code.as_deref(),
            error.as_deref(),
            &csrf,
        )
        .await;
    let (session, next) = match done {
        Ok(v) => v,
        Err(e) => {
            super::audit::login(&provider, "", "", failure_label(&e), &ip);
            return Err(e);
        }
    };
    let sub = st
        .core
        .session(&session)
        .await
        .map(|s| s.user.subject)
        .unwrap_or_default();
    super::audit::login(&provider, "", &sub, "ok", &ip);
    st.metrics.count("login", "ok");
    Ok(with_cookie(go(&st, next), session_cookie(&st, &session)))
}

/// `GET /consent?req=…`.
pub(super) async fn authorize_consent_get(
    State(st): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AuthorizeFailure> {
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    let csrf = csrf_checked(&headers, None)?;
    let view = st
        .core
        .consent_view(&p.get("req").unwrap_or_default(), &csrf)
        .await?;
    Ok(html::consent_page(
        &view,
        &csrf,
        &format!("{}{CONSENT_PATH}", prefix(&st)),
    ))
}

/// `POST /consent` with `req`, `csrf`, `decision` = `approve` | `deny`.
pub(super) async fn authorize_consent_post(
    State(st): St,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AuthorizeFailure> {
    let f = Params::parse(&body);
    let csrf = csrf_checked(&headers, Some(&f))?;
    let approve = f.get("decision").as_deref() == Some("approve");
    let url = st
        .core
        .consent_decide(&f.get("req").unwrap_or_default(), &csrf, approve)
        .await?;
    st.metrics
        .count("consent", if approve { "ok" } else { "access_denied" });
    Ok(html::see_other(&url))
}

/// `GET /logout`: a confirmation form (a GET never ends the session, so a
/// link or image elsewhere cannot log the user out).
pub(super) async fn authorize_logout_get(State(st): St, headers: HeaderMap) -> Response {
    let (csrf, new_cookie) = match cookies::get(&headers, CSRF_COOKIE) {
        Some(c) => (c, None),
        None => match random_token(32) {
            Ok(c) => (c.clone(), Some(c)),
            Err(e) => return e.into_response(),
        },
    };
    let signed_in = match cookies::get(&headers, SESSION_COOKIE) {
        Some(s) => st.core.session(&s).await.is_some(),
        None => false,
    };
    let resp = html::logout_page(&csrf, &format!("{}{LOGOUT_PATH}", prefix(&st)), signed_in);
    match new_cookie {
        Some(c) => {
            let s = &st.core.settings();
            let cookie = cookies::set(
                CSRF_COOKIE,
                &c,
                &prefix(&st),
                s.secure_cookies(),
                s.session_ttl.as_secs().max(s.pending_ttl.as_secs()),
            );
            with_cookie(resp, cookie)
        }
        None => resp,
    }
}

/// `POST /logout` with `csrf`: ends the browser session and clears its
/// cookie.
pub(super) async fn authorize_logout_post(
    State(st): St,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AuthorizeFailure> {
    let f = Params::parse(&body);
    csrf_checked(&headers, Some(&f))?;
    if let Some(s) = cookies::get(&headers, SESSION_COOKIE) {
        st.core.logout(&s).await?;
    }
    st.metrics.count("logout", "ok");
    let s = &st.core.settings();
    let clear = cookies::set(SESSION_COOKIE, "", &prefix(&st), s.secure_cookies(), 0);
    Ok(with_cookie(html::logged_out_page(), clear))
}
