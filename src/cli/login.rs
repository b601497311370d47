//! `mcpgate login`: OAuth 2.1 authorization code with PKCE S256 over a
//! loopback redirect (RFC 8252), RFC 8707 `resource` on both legs, RFC 9207
//! `iss` check, tokens saved to the token file.

use super::args::LoginArgs;
use super::commands::{registration_request, save_client, Context, DEFAULT_REDIRECT_URI};
use super::loopback::Listener;
use super::oauth::{Grant, Metadata};
use super::pkce::{Expect, Pending};
use super::store::{resource_key, SavedClient};
use super::{sanitize, Error};
use std::process::{Command, Stdio};
use std::time::Duration;
use url::Url;

/// How long the login waits for the browser to come back.
pub(crate) const LOGIN_TIMEOUT: Duration = Duration::from_secs(300);
/// The line prefix the authorization URL is printed with (on stderr).
pub(crate) const OPEN_URL_PREFIX: &str = "Open this URL to log in: ";

/// Whether `registered` admits `actual`: the same string, or a port-less
/// loopback IP URI that differs only by the port (RFC 8252 §7.3).
pub(crate) fn redirect_admits(registered: &str, actual: &str) -> bool {
    if registered == actual {
        return true;
    }
    let (Ok(r), Ok(a)) = (Url::parse(registered), Url::parse(actual)) else {
        return false;
    };
    let loopback_ip = r
        .host()
        .is_some_and(|h| crate::domain::net::is_loopback_ip(&h));
    if r.scheme() != "http" || !loopback_ip || r.port().is_some() {
        return false;
    }
    let mut with_port = r;
    with_port.set_port(a.port()).is_ok() && with_port.as_str() == actual
}

/// The authorization request URL (RFC 6749 §4.1.1, RFC 7636 §4.3,
/// RFC 8707 §2).
pub(crate) fn authorize_url(
    endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    pending: &Pending,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<String, Error> {
    let mut u = Url::parse(endpoint)
        .map_err(|e| Error::protocol(endpoint, format!("bad authorization_endpoint: {e}")))?;
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", &pending.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &pending.state);
        if let Some(s) = scope {
            q.append_pair("scope", s);
        }
        if let Some(r) = resource {
            q.append_pair("resource", r);
        }
    }
    Ok(u.into())
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let started = Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if started.is_err() {
        eprintln!("(could not start a browser with {opener}; open the URL yourself)");
    }
}

/// The saved client if its redirect URIs admit `redirect_uri`, else a newly
/// registered public one (saved).
async fn client_for(
    ctx: &Context,
    meta: &Metadata,
    redirect_uri: &str,
    a: &LoginArgs,
) -> Result<SavedClient, Error> {
    let saved = ctx
        .store
        .load()?
        .issuers
        .get(&ctx.issuer)
        .and_then(|e| e.client.clone());
    if let Some(c) = saved {
        if c.redirect_uris
            .iter()
            .any(|r| redirect_admits(r, redirect_uri))
        {
            return Ok(c);
        }
        eprintln!(
            "The saved client {} does not accept {redirect_uri}; registering a new one.",
            c.client_id
        );
    }
    let mut uris = vec![DEFAULT_REDIRECT_URI.to_owned()];
    if !redirect_admits(DEFAULT_REDIRECT_URI, redirect_uri) {
        uris.push(redirect_uri.to_owned());
    }
    let req = registration_request("mcpgate CLI", &uris, a.scope.as_deref(), false);
    let c = ctx
        .http
        .register(meta, &req, a.initial_access_token.as_deref())
        .await?;
    eprintln!("Registered client {} with {}.", c.client_id, ctx.issuer);
    save_client(ctx, c.clone()).await?;
    Ok(c)
}

/// `mcpgate login`.
pub(crate) async fn login(ctx: &Context, a: &LoginArgs) -> Result<(), Error> {
    let meta = ctx.http.discover().await?;
    meta.require_s256()?;
    let endpoint = meta
        .endpoint(&meta.authorization_endpoint, "authorization_endpoint")?
        .to_owned();
    let listener = Listener::bind(a.port.unwrap_or(0)).await?;
    let redirect_uri = listener.redirect_uri();
    let client = client_for(ctx, &meta, &redirect_uri, a).await?;
    let pending = Pending::new()?;
    let url = authorize_url(
        &endpoint,
        &client.client_id,
        &redirect_uri,
        &pending,
        a.scope.as_deref(),
        a.resource.as_deref(),
    )?;
    eprintln!("{OPEN_URL_PREFIX}{url}");
    if !a.no_browser {
        open_browser(&url);
    }
    let expect = Expect {
        state: pending.state.clone(),
        issuer: meta.issuer.clone(),
        iss_required: meta.authorization_response_iss_parameter_supported,
    };
    let code = listener.wait(expect, LOGIN_TIMEOUT).await?;
    let grant = Grant::Code {
        code: &code,
        redirect_uri: &redirect_uri,
        verifier: &pending.verifier,
    };
    let tokens = ctx
        .http
        .token(&meta, &client, grant, a.resource.as_deref(), ctx.now())
        .await?;
    let who = super::oauth::jwt_claims(tokens.access_token.secret())
        .and_then(|c| {
            c.get("username")
                .or_else(|| c.get("sub"))
                .and_then(|v| v.as_str())
                .map(sanitize)
        })
        .unwrap_or_else(|| "(unknown)".into());
    let scope = tokens.scope.as_deref().map(sanitize).unwrap_or_default();
    let key = resource_key(a.resource.as_deref());
    {
        let _lock = ctx.store.lock().await?;
        let mut f = ctx.store.load()?;
        let e = f.issuers.entry(ctx.issuer.clone()).or_default();
        e.tokens.insert(key.clone(), tokens);
        e.last_resource = Some(key);
        ctx.store.save(&f)?;
    }
    eprintln!("Logged in to {} as {who} (scope: {scope}).", ctx.issuer);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_admit_any_port_only_when_portless() {
        let a = "http://127.0.0.1:5123/callback";
        assert!(redirect_admits(a, a));
        assert!(redirect_admits("http://127.0.0.1/callback", a));
        assert!(redirect_admits(
            "http://[::1]/callback",
            "http://[::1]:9/callback"
        ));
        assert!(!redirect_admits("http://127.0.0.1:4000/callback", a));
        assert!(!redirect_admits("http://127.0.0.1/other", a));
        assert!(!redirect_admits(
            "http://localhost/callback",
            "http://localhost:5/callback"
        ));
        assert!(!redirect_admits("https://127.0.0.1/callback", a));
    }

    #[test]
    fn authorize_url_carries_pkce_state_and_resource() {
        let p = Pending::new().unwrap();
        let u = authorize_url(
            "https://as.example/authorize",
            "cid",
            "http://127.0.0.1:9/callback",
            &p,
            Some("mcp:read"),
            Some("https://mcp.example/mcp"),
        )
        .unwrap();
        let q: std::collections::HashMap<_, _> =
            Url::parse(&u).unwrap().query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge"], p.challenge);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], p.state);
        assert_eq!(q["resource"], "https://mcp.example/mcp");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:9/callback");
        assert!(!u.contains(p.verifier.secret()));
    }
}
