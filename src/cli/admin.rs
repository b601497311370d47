//! `mcpgate admin …`: the issuer's admin API (`/admin/*`, bearer admin
//! token) on its internal listener (`--admin-url`, the issuer's
//! `admin_listen`; the public issuer URL does not serve it).

use super::args::{AdminArgs, AdminCommand, ClientsCommand, KeysCommand};
use super::commands::Context;
use super::{sanitize, Error};
use crate::domain::secret::AdminToken;
use serde_json::{json, Value};

fn admin_url(base: &str, path: &str) -> String {
    format!("{}/admin{path}", base.trim_end_matches('/'))
}

async fn call(
    ctx: &Context,
    base: &str,
    token: &AdminToken,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), Error> {
    let url = admin_url(base, path);
    let mut req = ctx
        .http
        .http
        .request(method, &url)
        .bearer_auth(token.secret());
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.map_err(|source| Error::Http {
        url: url.clone(),
        source,
    })?;
    let status = r.status().as_u16();
    let bytes = r.bytes().await.map_err(|source| Error::Http {
        url: url.clone(),
        source,
    })?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    match status {
        200..=299 => Ok((status, v)),
        401 => Err(Error::OAuth {
            endpoint: "admin API".into(),
            status,
            error: "unauthorized".into(),
            description: Some(
                "wrong admin token, or the issuer has no admin token configured".into(),
            ),
        }),
        _ => Err(match v.get("error").and_then(Value::as_str) {
            Some(e) => Error::OAuth {
                endpoint: "admin API".into(),
                status,
                error: sanitize(e),
                description: v
                    .get("error_description")
                    .and_then(Value::as_str)
                    .map(sanitize),
            },
            None => Error::protocol(&url, format!("HTTP {status}")),
        }),
    }
}

fn text(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .map(sanitize)
        .unwrap_or_else(|| "-".into())
}

/// One line per client: id, auth method, name, redirect URIs.
pub(crate) fn clients_table(list: &Value) -> String {
    let mut out = String::from("CLIENT_ID\tAUTH\tNAME\tREDIRECT_URIS\n");
    for c in list.as_array().map(Vec::as_slice).unwrap_or_default() {
        let uris: Vec<String> = c
            .get("redirect_uris")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(sanitize).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            text(c, "client_id"),
            text(c, "token_endpoint_auth_method"),
            text(c, "client_name"),
            uris.join(",")
        ));
    }
    out
}

/// Runs an admin subcommand.
pub(crate) async fn run(ctx: &Context, a: &AdminArgs) -> Result<(), Error> {
    let token = a
        .admin_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(AdminToken::new)
        .ok_or_else(|| {
            Error::Config(format!(
                "the admin token is missing: set {} or pass --admin-token",
                super::args::ENV_ADMIN_TOKEN
            ))
        })?;
    let base = a.admin_url.as_str();
    let parsed = url::Url::parse(base)
        .map_err(|e| Error::Config(format!("--admin-url {}: {e}", sanitize(base))))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "--admin-url {}: not an http(s) URL",
            sanitize(base)
        )));
    }
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if parsed.scheme() == "http" && !loopback {
        eprintln!(
            "warning: sending the admin token over plain HTTP to {}; reach the admin listener through loopback (kubectl port-forward) or HTTPS",
            sanitize(base)
        );
    }
    match &a.command {
        AdminCommand::Clients(ClientsCommand::List { json }) => {
            let (_, v) = call(ctx, base, &token, reqwest::Method::GET, "/clients", None).await?;
            if *json {
                let s = serde_json::to_string_pretty(&v)
                    .map_err(|e| Error::protocol(base, e.to_string()))?;
                println!("{s}");
            } else {
                print!("{}", clients_table(&v));
            }
        }
        AdminCommand::Clients(ClientsCommand::Delete { id }) => {
            let path = format!(
                "/clients/{}",
                url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            );
            match call(ctx, base, &token, reqwest::Method::DELETE, &path, None).await {
                Ok(_) => eprintln!("Deleted client {} and revoked its tokens.", sanitize(id)),
                Err(Error::Protocol { msg, .. }) if msg == "HTTP 404" => {
                    return Err(Error::OAuth {
                        endpoint: "admin API".into(),
                        status: 404,
                        error: "not_found".into(),
                        description: Some(format!("no client {}", sanitize(id))),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        AdminCommand::Revoke(r) => {
            let body = match (&r.sub, &r.client) {
                (Some(s), _) => json!({ "sub": s }),
                (None, Some(c)) => json!({ "client_id": c }),
                (None, None) => return Err(Error::Config("give --sub or --client".into())),
            };
            call(
                ctx,
                base,
                &token,
                reqwest::Method::POST,
                "/revoke",
                Some(body),
            )
            .await?;
            eprintln!("Revoked.");
        }
        AdminCommand::Keys(KeysCommand::Rotate) => {
            let (_, v) = call(
                ctx,
                base,
                &token,
                reqwest::Method::POST,
                "/keys/rotate",
                None,
            )
            .await?;
            eprintln!("Rotated the signing key; now signing with:");
            println!("{}", text(&v, "kid"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sanitized() {
        let t = clients_table(&json!([
            {"client_id": "c1", "client_name": "A\u{1b}]0;x", "redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"},
            {"client_id": "c2"}
        ]));
        assert!(!t.contains('\u{1b}'));
        assert!(t.contains("c1\tnone\t"));
        assert!(t.contains("c2\t-\t-\t\n"));
    }
}
