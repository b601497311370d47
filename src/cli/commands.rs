//! The commands that work on saved state: `register`, `token`, `revoke`,
//! `whoami`, and the [`Context`] every command starts from.

use super::args::{Cli, RegisterArgs, RevokeArgs, TokenArgs, WhoamiArgs};
use super::oauth::{self, jwt_claims, Grant};
use super::store::{self, IssuerEntry, SavedClient, SavedTokens, Store, TokenFile};
use super::Error;
use crate::domain::clock::{Clock, SystemClock};
use serde_json::{json, Value};
use std::sync::Arc;

/// A token closer to expiry than this is refreshed before use.
pub(crate) const REFRESH_MARGIN_SECS: u64 = 60;
/// What `register` asks for unless told otherwise: any loopback port
/// (RFC 8252 §7.3).
pub(crate) const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// What every command needs: the issuer, its HTTP client, the token file
/// and the clock.
pub(crate) struct Context {
    pub issuer: String,
    pub http: oauth::Client,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
}

/// The RFC 7591 request the CLI sends.
pub(crate) fn registration_request(
    name: &str,
    redirect_uris: &[String],
    scope: Option<&str>,
    confidential: bool,
) -> Value {
    let mut v = json!({
        "client_name": name,
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": if confidential { "client_secret_basic" } else { "none" },
        "application_type": "native",
        "software_id": "mcpgate-cli",
        "software_version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(s) = scope {
        v["scope"] = json!(s);
    }
    v
}

fn is_fresh(t: &SavedTokens, now: u64) -> bool {
    t.expires_at
        .is_none_or(|e| e > now.saturating_add(REFRESH_MARGIN_SECS))
}

// === impl Context ===

impl Context {
    pub(crate) fn new(cli: &Cli) -> Result<Self, Error> {
        Self::with_issuer(cli, &cli.issuer)
    }

    /// The context for another issuer than `--issuer` (one discovered from
    /// an MCP server).
    pub(crate) fn with_issuer(cli: &Cli, issuer: &str) -> Result<Self, Error> {
        let issuer = oauth::normalize_issuer(issuer)?;
        if issuer.starts_with("http://") && !crate::domain::net::is_loopback_url(&issuer) {
            eprintln!("warning: {issuer} is plain HTTP; OAuth 2.1 requires HTTPS outside loopback");
        }
        let path = match &cli.store {
            Some(p) => p.clone(),
            None => store::default_path(|k| std::env::var(k).ok())?,
        };
        Ok(Self {
            http: oauth::Client::new(issuer.clone())?,
            issuer,
            store: Store::new(path),
            clock: Arc::new(SystemClock),
        })
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.unix()
    }

    fn entry<'a>(&self, f: &'a TokenFile) -> Result<&'a IssuerEntry, Error> {
        f.issuers
            .get(&self.issuer)
            .ok_or_else(|| self.not_logged_in(None))
    }

    fn not_logged_in(&self, resource: Option<&str>) -> Error {
        Error::NotLoggedIn {
            issuer: self.issuer.clone(),
            resource: resource.map(str::to_owned),
        }
    }

    /// The saved tokens for `resource` (or the default ones) and their key.
    fn lookup(
        &self,
        f: &TokenFile,
        resource: Option<&str>,
    ) -> Result<(String, SavedTokens), Error> {
        let e = self.entry(f)?;
        let key = e
            .pick_key(resource)
            .ok_or_else(|| self.not_logged_in(resource))?;
        let t = e
            .tokens
            .get(&key)
            .ok_or_else(|| self.not_logged_in(resource))?;
        Ok((key, t.clone()))
    }
}

/// `mcpgate register`.
pub(crate) async fn register(ctx: &Context, a: &RegisterArgs) -> Result<(), Error> {
    let meta = ctx.http.discover().await?;
    let uris = if a.redirect_uris.is_empty() {
        vec![DEFAULT_REDIRECT_URI.to_owned()]
    } else {
        a.redirect_uris.clone()
    };
    let req = registration_request(&a.name, &uris, a.scope.as_deref(), a.confidential);
    let client = ctx
        .http
        .register(&meta, &req, a.initial_access_token.as_deref())
        .await?;
    let id = client.client_id.clone();
    save_client(ctx, client).await?;
    eprintln!("Registered client {id} with {}.", ctx.issuer);
    println!("{id}");
    Ok(())
}

/// Saves a newly registered client for the context's issuer.
pub(crate) async fn save_client(ctx: &Context, client: SavedClient) -> Result<(), Error> {
    let _lock = ctx.store.lock().await?;
    let mut f = ctx.store.load()?;
    let e = f.issuers.entry(ctx.issuer.clone()).or_default();
    if let Some(old) = &e.client {
        eprintln!("Replacing the saved client {}.", old.client_id);
    }
    e.client = Some(client);
    ctx.store.save(&f)
}

/// `mcpgate token`.
pub(crate) async fn token(ctx: &Context, a: &TokenArgs) -> Result<(), Error> {
    let t = fresh_tokens(ctx, a.resource.as_deref()).await?;
    println!("{}", t.access_token.secret());
    Ok(())
}

/// The saved tokens, refreshed first when they expire within
/// [`REFRESH_MARGIN_SECS`]. The refresh runs under the file lock and stores
/// the rotated refresh token before returning.
pub(crate) async fn fresh_tokens(
    ctx: &Context,
    resource: Option<&str>,
) -> Result<SavedTokens, Error> {
    let (_, t) = ctx.lookup(&ctx.store.load()?, resource)?;
    if is_fresh(&t, ctx.now()) {
        return Ok(t);
    }
    let _lock = ctx.store.lock().await?;
    let mut f = ctx.store.load()?;
    // Another process may have refreshed meanwhile.
    let (key, t) = ctx.lookup(&f, resource)?;
    if is_fresh(&t, ctx.now()) {
        return Ok(t);
    }
    let expired = || {
        Error::Login("the access token expired and cannot be refreshed; run `mcpgate login`".into())
    };
    let rt = t.refresh_token.clone().ok_or_else(expired)?;
    let client = ctx
        .entry(&f)?
        .client
        .clone()
        .filter(|c| c.client_id == t.client_id)
        .ok_or_else(expired)?;
    let meta = ctx.http.discover().await?;
    let now = ctx.now();
    let res = ctx
        .http
        .token(
            &meta,
            &client,
            Grant::Refresh(&rt),
            t.resource.as_deref(),
            now,
        )
        .await;
    let entry = f.issuers.entry(ctx.issuer.clone()).or_default();
    match res {
        Ok(mut new) => {
            // Without rotation the old refresh token stays valid.
            if new.refresh_token.is_none() {
                new.refresh_token = Some(rt);
            }
            entry.tokens.insert(key, new.clone());
            ctx.store.save(&f)?;
            Ok(new)
        }
        Err(Error::OAuth { error, .. }) if error == "invalid_grant" => {
            entry.tokens.remove(&key);
            ctx.store.save(&f)?;
            Err(Error::Login(
                "the session expired or was revoked; run `mcpgate login`".into(),
            ))
        }
        Err(e) => Err(e),
    }
}

/// `mcpgate revoke`.
pub(crate) async fn revoke(ctx: &Context, a: &RevokeArgs) -> Result<(), Error> {
    let _lock = ctx.store.lock().await?;
    let mut f = ctx.store.load()?;
    let entry = ctx.entry(&f)?;
    let keys: Vec<String> = if a.all {
        entry.tokens.keys().cloned().collect()
    } else {
        let k = entry
            .pick_key(a.resource.as_deref())
            .filter(|k| entry.tokens.contains_key(k))
            .ok_or_else(|| ctx.not_logged_in(a.resource.as_deref()))?;
        vec![k]
    };
    if keys.is_empty() {
        return Err(ctx.not_logged_in(None));
    }
    let meta = ctx.http.discover().await?;
    let mut result = Ok(());
    for key in keys {
        let entry = f.issuers.entry(ctx.issuer.clone()).or_default();
        let Some(t) = entry.tokens.get(&key).cloned() else {
            continue;
        };
        match (&meta.revocation_endpoint, &entry.client) {
            (Some(_), Some(c)) if c.client_id == t.client_id => {
                let c = c.clone();
                if let Err(e) = revoke_pair(ctx, &meta, &c, &t).await {
                    result = Err(e);
                    break;
                }
            }
            (None, _) => eprintln!(
                "warning: the issuer has no revocation endpoint; the tokens for {key} stay valid until they expire"
            ),
            _ => eprintln!(
                "warning: the client the tokens for {key} were issued to is no longer saved; they stay valid until they expire"
            ),
        }
        entry.tokens.remove(&key);
        eprintln!("Forgot the tokens for {key}.");
    }
    let entry = f.issuers.entry(ctx.issuer.clone()).or_default();
    if entry
        .last_resource
        .as_ref()
        .is_some_and(|k| !entry.tokens.contains_key(k))
    {
        entry.last_resource = None;
    }
    ctx.store.save(&f)?;
    result
}

async fn revoke_pair(
    ctx: &Context,
    meta: &oauth::Metadata,
    c: &SavedClient,
    t: &SavedTokens,
) -> Result<(), Error> {
    // The refresh token first: revoking it ends the whole grant.
    if let Some(rt) = &t.refresh_token {
        ctx.http
            .revoke(meta, c, rt.secret(), "refresh_token")
            .await?;
    }
    ctx.http
        .revoke(meta, c, t.access_token.secret(), "access_token")
        .await
}

/// `mcpgate whoami`.
pub(crate) fn whoami(ctx: &Context, a: &WhoamiArgs) -> Result<(), Error> {
    let (key, t) = ctx.lookup(&ctx.store.load()?, a.resource.as_deref())?;
    let claims = jwt_claims(t.access_token.secret())
        .ok_or_else(|| Error::protocol(&ctx.issuer, "the saved access token is not a JWT"))?;
    eprintln!(
        "Claims of the saved access token for {key} (decoded locally; the signature is NOT verified):"
    );
    let pretty = serde_json::to_string_pretty(&claims)
        .map_err(|e| Error::protocol(&ctx.issuer, e.to_string()))?;
    println!("{pretty}");
    if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
        let now = ctx.now();
        if exp > now {
            eprintln!("Expires in {} s.", exp - now);
        } else {
            eprintln!("Expired {} s ago.", now - exp);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secret::BearerToken;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    #[test]
    fn decodes_jwt_payload_without_verifying() {
        let p = URL_SAFE_NO_PAD.encode(br#"{"sub":"alice","exp":5}"#);
        let c = jwt_claims(&format!("e30.{p}.sig")).unwrap();
        assert_eq!(c["sub"], "alice");
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "e30.!!.x",
            &format!("e30.{}.x", URL_SAFE_NO_PAD.encode("[1]")),
        ] {
            assert!(jwt_claims(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn freshness_keeps_a_margin() {
        let t = |exp| SavedTokens {
            access_token: BearerToken::new("x"),
            refresh_token: None,
            expires_at: exp,
            scope: None,
            resource: None,
            client_id: "c".into(),
        };
        assert!(is_fresh(&t(Some(1000)), 900));
        assert!(!is_fresh(&t(Some(1000)), 940));
        assert!(!is_fresh(&t(Some(1000)), 2000));
        assert!(is_fresh(&t(None), 2000));
    }

    #[test]
    fn registration_request_shape() {
        let v = registration_request("n", &[DEFAULT_REDIRECT_URI.into()], Some("a b"), false);
        assert_eq!(v["token_endpoint_auth_method"], "none");
        assert_eq!(v["scope"], "a b");
        let v = registration_request("n", &[], None, true);
        assert_eq!(v["token_endpoint_auth_method"], "client_secret_basic");
        assert!(v.get("scope").is_none());
    }
}
