//! The issuer's endpoints as the CLI calls them: discovery (RFC 8414 /
//! OIDC, in the MCP order), registration (RFC 7591), token (RFC 6749 §4.1.3
//! and §6, with RFC 8707 `resource`), revocation (RFC 7009).

use super::store::{SavedClient, SavedTokens};
use super::{sanitize, Error};
use crate::domain::secret::{AuthCode, BearerToken, PkceVerifier, RefreshToken, RegistrationToken};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use url::Url;

/// Per-request time limit.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read.
const MAX_BODY: usize = 1024 * 1024;

/// The authorization server metadata fields the CLI uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub registration_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// An HTTP client bound to one issuer.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub http: reqwest::Client,
    /// The issuer identifier, without a trailing slash.
    pub issuer: String,
}

/// A token endpoint request.
#[derive(Debug)]
pub(crate) enum Grant<'a> {
    Code {
        code: &'a AuthCode,
        redirect_uri: &'a str,
        verifier: &'a PkceVerifier,
    },
    Refresh(&'a RefreshToken),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

/// Checks and normalizes an issuer URL (no query or fragment, no trailing
/// slash).
pub(crate) fn normalize_issuer(raw: &str) -> Result<String, Error> {
    let u = Url::parse(raw).map_err(|e| Error::Config(format!("--issuer {raw}: {e}")))?;
    if !matches!(u.scheme(), "https" | "http") || u.host().is_none() {
        return Err(Error::Config(format!(
            "--issuer {raw}: needs an http(s) URL"
        )));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(Error::Config(format!(
            "--issuer {raw}: must not have a query or fragment"
        )));
    }
    Ok(u.as_str().trim_end_matches('/').to_owned())
}

/// The metadata URLs to try, in the order of the MCP authorization spec
/// (2025-11-25, "Authorization Server Metadata Discovery").
pub(crate) fn metadata_urls(issuer: &str) -> Result<Vec<String>, Error> {
    let u = Url::parse(issuer).map_err(|e| Error::Config(format!("--issuer {issuer}: {e}")))?;
    Ok(crate::domain::well_known::metadata_urls(&u))
}

async fn body_json(url: &str, r: reqwest::Response) -> Result<(u16, Value), Error> {
    let status = r.status().as_u16();
    let bytes = r.bytes().await.map_err(|source| Error::Http {
        url: url.to_owned(),
        source,
    })?;
    if bytes.len() > MAX_BODY {
        return Err(Error::protocol(url, "response too large"));
    }
    if bytes.is_empty() {
        return Ok((status, Value::Null));
    }
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok((status, v)),
        // Error pages need not be JSON; the status tells.
        Err(_) if !(200..300).contains(&status) => Ok((status, Value::Null)),
        Err(_) => Err(Error::protocol(
            url,
            format!("HTTP {status}, body is not JSON"),
        )),
    }
}

/// The RFC 6749 §5.2 error of a failed answer, or a protocol error.
fn oauth_error(endpoint: &str, url: &str, status: u16, body: &Value) -> Error {
    match body.get("error").and_then(Value::as_str) {
        Some(e) => Error::OAuth {
            endpoint: endpoint.to_owned(),
            status,
            error: sanitize(e),
            description: body
                .get("error_description")
                .and_then(Value::as_str)
                .map(sanitize),
        },
        None => Error::protocol(url, format!("HTTP {status}")),
    }
}

fn string_field(url: &str, v: &Value, name: &str) -> Result<String, Error> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::protocol(url, format!("missing {name}")))
}

/// The claims of a JWT, decoded WITHOUT verifying its signature (for
/// display and expiry hints only).
pub(crate) fn jwt_claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.is_object().then_some(v)
}

// === impl Metadata ===

impl Metadata {
    pub(crate) fn endpoint<'a>(&self, v: &'a Option<String>, name: &str) -> Result<&'a str, Error> {
        v.as_deref().ok_or_else(|| {
            Error::protocol(&self.issuer, format!("the issuer's metadata has no {name}"))
        })
    }

    /// MCP 2025-11-25: clients MUST use S256 and refuse servers that do not
    /// list it.
    pub(crate) fn require_s256(&self) -> Result<(), Error> {
        if self
            .code_challenge_methods_supported
            .iter()
            .any(|m| m == "S256")
        {
            Ok(())
        } else {
            Err(Error::protocol(
                &self.issuer,
                "code_challenge_methods_supported does not list S256; refusing to log in",
            ))
        }
    }
}

// === impl Client ===

impl Client {
    pub(crate) fn new(issuer: String) -> Result<Self, Error> {
        let http = crate::infra::http_client::build(
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("mcpgate-cli/", env!("CARGO_PKG_VERSION"))),
        )
        .map_err(Error::Config)?;
        Ok(Self { http, issuer })
    }

    async fn send(&self, url: &str, req: reqwest::RequestBuilder) -> Result<(u16, Value), Error> {
        let r = req.send().await.map_err(|source| Error::Http {
            url: url.to_owned(),
            source,
        })?;
        body_json(url, r).await
    }

    /// Fetches the metadata and checks its `issuer` (RFC 8414 §3.3).
    pub(crate) async fn discover(&self) -> Result<Metadata, Error> {
        let mut last = None;
        for url in metadata_urls(&self.issuer)? {
            let (status, body) = self.send(&url, self.http.get(&url)).await?;
            if status != 200 {
                last = Some(Error::protocol(&url, format!("HTTP {status}")));
                continue;
            }
            let m: Metadata = serde_json::from_value(body)
                .map_err(|e| Error::protocol(&url, format!("bad metadata: {e}")))?;
            if m.issuer.trim_end_matches('/') != self.issuer {
                return Err(Error::protocol(
                    &url,
                    format!(
                        "metadata names issuer {}, not {}",
                        sanitize(&m.issuer),
                        self.issuer
                    ),
                ));
            }
            return Ok(m);
        }
        Err(last.unwrap_or_else(|| Error::protocol(&self.issuer, "no metadata")))
    }

    /// RFC 7591 registration with the given metadata.
    pub(crate) async fn register(
        &self,
        meta: &Metadata,
        request: &Value,
        initial_access_token: Option<&str>,
    ) -> Result<SavedClient, Error> {
        let url = meta.endpoint(&meta.registration_endpoint, "registration_endpoint")?;
        let mut req = self.http.post(url).json(request);
        if let Some(t) = initial_access_token {
            req = req.bearer_auth(t);
        }
        let (status, body) = self.send(url, req).await?;
        if status != 201 && status != 200 {
            return Err(oauth_error("registration endpoint", url, status, &body));
        }
        let opt = |n: &str| body.get(n).and_then(Value::as_str).map(str::to_owned);
        Ok(SavedClient {
            client_id: string_field(url, &body, "client_id")?,
            client_secret: opt("client_secret").map(crate::domain::secret::ClientSecret::new),
            registration_access_token: opt("registration_access_token").map(RegistrationToken::new),
            registration_client_uri: opt("registration_client_uri"),
            redirect_uris: serde_json::from_value(body["redirect_uris"].clone())
                .unwrap_or_default(),
            token_endpoint_auth_method: opt("token_endpoint_auth_method")
                .unwrap_or_else(|| "client_secret_basic".into()),
        })
    }

    /// Adds the client's authentication to a form request.
    fn authenticate(
        &self,
        req: reqwest::RequestBuilder,
        client: &SavedClient,
        form: &mut Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        match (
            client.token_endpoint_auth_method.as_str(),
            &client.client_secret,
        ) {
            ("client_secret_basic", Some(s)) => {
                // RFC 6749 §2.3.1: form-encode both parts first.
                let enc = |v: &str| {
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                };
                req.basic_auth(enc(&client.client_id), Some(enc(s.secret())))
            }
            ("client_secret_post", Some(s)) => {
                form.push(("client_id", client.client_id.clone()));
                form.push(("client_secret", s.secret().to_owned()));
                req
            }
            _ => {
                form.push(("client_id", client.client_id.clone()));
                req
            }
        }
    }

    /// A token request; `now` stamps the expiry.
    pub(crate) async fn token(
        &self,
        meta: &Metadata,
        client: &SavedClient,
        grant: Grant<'_>,
        resource: Option<&str>,
        now: u64,
    ) -> Result<SavedTokens, Error> {
        let url = meta.endpoint(&meta.token_endpoint, "token_endpoint")?;
        let mut form: Vec<(&'static str, String)> = match &grant {
            Grant::Code {
                code,
                redirect_uri,
                verifier,
            } => vec![
                ("grant_type", "authorization_code".into()),
                ("code", code.secret().to_owned()),
                ("redirect_uri", (*redirect_uri).to_owned()),
                ("code_verifier", verifier.secret().to_owned()),
            ],
            Grant::Refresh(rt) => vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", rt.secret().to_owned()),
            ],
        };
        if let Some(r) = resource {
            form.push(("resource", r.to_owned()));
        }
        let req = self.authenticate(self.http.post(url), client, &mut form);
        let (status, body) = self.send(url, req.form(&form)).await?;
        if status != 200 {
            return Err(oauth_error("token endpoint", url, status, &body));
        }
        let t: TokenResponse = serde_json::from_value(body)
            .map_err(|e| Error::protocol(url, format!("bad token response: {e}")))?;
        if !t.token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::protocol(
                url,
                format!("unsupported token_type {}", sanitize(&t.token_type)),
            ));
        }
        let expires_at = t
            .expires_in
            .map(|s| now.saturating_add(s))
            .or_else(|| jwt_claims(&t.access_token).and_then(|c| c["exp"].as_u64()));
        Ok(SavedTokens {
            access_token: BearerToken::new(t.access_token),
            refresh_token: t.refresh_token.map(RefreshToken::new),
            expires_at,
            scope: t.scope,
            resource: resource.map(str::to_owned),
            client_id: client.client_id.clone(),
        })
    }

    /// RFC 7009 revocation of one token.
    pub(crate) async fn revoke(
        &self,
        meta: &Metadata,
        client: &SavedClient,
        token: &str,
        hint: &str,
    ) -> Result<(), Error> {
        let url = meta.endpoint(&meta.revocation_endpoint, "revocation_endpoint")?;
        let mut form = vec![
            ("token", token.to_owned()),
            ("token_type_hint", hint.to_owned()),
        ];
        let req = self.authenticate(self.http.post(url), client, &mut form);
        let (status, body) = self.send(url, req.form(&form)).await?;
        if status != 200 {
            return Err(oauth_error("revocation endpoint", url, status, &body));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_urls_are_normalized() {
        assert_eq!(
            normalize_issuer("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_issuer("https://as.example/tenant/").unwrap(),
            "https://as.example/tenant"
        );
        for bad in [
            "ftp://x",
            "not a url",
            "https://as.example/?a=b",
            "https://a#f",
        ] {
            assert!(
                matches!(normalize_issuer(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn discovery_order_follows_mcp() {
        assert_eq!(
            metadata_urls("https://as.example").unwrap(),
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_urls("https://as.example/t1").unwrap(),
            [
                "https://as.example/.well-known/oauth-authorization-server/t1",
                "https://as.example/.well-known/openid-configuration/t1",
                "https://as.example/t1/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn oauth_errors_are_shown_sanitized() {
        let e = oauth_error(
            "token endpoint",
            "u",
            400,
            &serde_json::json!({"error": "invalid_grant", "error_description": "bad\u{7}code"}),
        );
        let s = e.to_string();
        assert!(
            s.contains("invalid_grant") && s.contains("HTTP 400") && !s.contains('\u{7}'),
            "{s}"
        );
        assert!(matches!(
            oauth_error("x", "u", 500, &Value::Null),
            Error::Protocol { .. }
        ));
    }
}
