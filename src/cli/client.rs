//! `mcpgate client show|update|delete`: RFC 7592 management of the client
//! this CLI registered (its registration access token is in the token file).

use super::args::{ClientArgs, ClientCommand};
use super::commands::Context;
use super::oauth::Client;
use super::store::SavedClient;
use super::{sanitize, Error};
use crate::domain::secret::RegistrationToken;
use serde_json::Value;

/// Fields of a registration response the client must not send back in an
/// update (RFC 7592 §2.2).
const READ_ONLY: &[&str] = &[
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
    "client_secret",
];

// === impl Client ===

impl Client {
    /// One RFC 7592 request to the client configuration endpoint.
    async fn manage(
        &self,
        method: reqwest::Method,
        c: &SavedClient,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Error> {
        let (Some(uri), Some(token)) = (&c.registration_client_uri, &c.registration_access_token)
        else {
            return Err(Error::Config(format!(
                "client {} was saved without a registration access token; it cannot be managed",
                sanitize(&c.client_id)
            )));
        };
        let mut req = self.http.request(method, uri).bearer_auth(token.secret());
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.map_err(|source| Error::Http {
            url: uri.clone(),
            source,
        })?;
        let status = r.status().as_u16();
        let text = r.bytes().await.map_err(|source| Error::Http {
            url: uri.clone(),
            source,
        })?;
        let v = serde_json::from_slice(&text).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let e = v["error"].as_str().map(sanitize).unwrap_or_default();
            return Err(Error::protocol(uri, format!("HTTP {status} {e}")));
        }
        Ok((status, v))
    }
}

fn saved(ctx: &Context) -> Result<SavedClient, Error> {
    ctx.store
        .load()?
        .issuers
        .get(&ctx.issuer)
        .and_then(|e| e.client.clone())
        .ok_or_else(|| Error::NotLoggedIn {
            issuer: ctx.issuer.clone(),
            resource: None,
        })
}

/// The metadata with secrets left out, for printing.
fn printable(mut v: Value) -> String {
    if let Some(o) = v.as_object_mut() {
        for k in ["client_secret", "registration_access_token"] {
            if o.contains_key(k) {
                o.insert(k.into(), Value::String("(redacted)".into()));
            }
        }
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// `mcpgate client ...`.
pub(crate) async fn run(ctx: &Context, a: &ClientArgs) -> Result<(), Error> {
    let c = saved(ctx)?;
    match &a.command {
        ClientCommand::Show => {
            let (_, v) = ctx.http.manage(reqwest::Method::GET, &c, None).await?;
            println!("{}", printable(v));
        }
        ClientCommand::Update {
            name,
            redirect_uris,
        } => {
            let (_, mut v) = ctx.http.manage(reqwest::Method::GET, &c, None).await?;
            if let Some(o) = v.as_object_mut() {
                for k in READ_ONLY {
                    o.remove(*k);
                }
                if let Some(n) = name {
                    o.insert("client_name".into(), Value::String(n.clone()));
                }
                if !redirect_uris.is_empty() {
                    o.insert("redirect_uris".into(), serde_json::json!(redirect_uris));
                }
            }
            let (_, v) = ctx.http.manage(reqwest::Method::PUT, &c, Some(&v)).await?;
            let mut updated = c.clone();
            updated.redirect_uris =
                serde_json::from_value(v["redirect_uris"].clone()).unwrap_or(c.redirect_uris);
            if let Some(t) = v["registration_access_token"].as_str() {
                updated.registration_access_token = Some(RegistrationToken::new(t.to_owned()));
            }
            let _lock = ctx.store.lock().await?;
            let mut f = ctx.store.load()?;
            f.issuers.entry(ctx.issuer.clone()).or_default().client = Some(updated);
            ctx.store.save(&f)?;
            println!("{}", printable(v));
        }
        ClientCommand::Delete => {
            ctx.http.manage(reqwest::Method::DELETE, &c, None).await?;
            let _lock = ctx.store.lock().await?;
            let mut f = ctx.store.load()?;
            if let Some(e) = f.issuers.get_mut(&ctx.issuer) {
                e.client = None;
                // The issuer revoked everything issued to it.
                e.tokens.retain(|_, t| t.client_id != c.client_id);
            }
            ctx.store.save(&f)?;
            eprintln!(
                "Deleted client {} at {}.",
                sanitize(&c.client_id),
                ctx.issuer
            );
        }
    }
    Ok(())
}
