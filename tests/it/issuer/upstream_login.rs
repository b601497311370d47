//! Login through an upstream provider (`/login?provider=` → provider →
//! `/callback/{provider}`), with the allow-list. The provider is a test
//! implementation of the `UpstreamIdp` trait that "logs in" instantly; the
//! real GitHub/OIDC providers have their own tests.

use super::harness::*;
use async_trait::async_trait;
use mcpgate::app::issuer::{spawn, IssuerDeps};
use mcpgate::config::issuer::RawConfig;
use mcpgate::domain::clock::SystemClock;
use mcpgate::infra::revocation::LocalRevocations;
use mcpgate::issue::upstream::{UpstreamAuthRequest, UpstreamError, UpstreamIdp, UpstreamUser};
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::Duration;

/// Sends the browser straight back with `code=<email>|<verified>`.
struct InstantIdp;

#[async_trait]
impl UpstreamIdp for InstantIdp {
    fn id(&self) -> &str {
        "corp"
    }
    fn display_name(&self) -> &str {
        "Corp SSO"
    }
    fn authorize_url(&self, req: &UpstreamAuthRequest) -> Result<String, UpstreamError> {
        assert!(req.redirect_uri.ends_with("/callback/corp"));
        assert!(req.pkce_verifier.secret().len() >= 43);
        Ok(format!(
            "{}?state={}&code=PENDING",
            req.redirect_uri, req.state
        ))
    }
    async fn exchange(
        &self,
        code: &str,
        _req: &UpstreamAuthRequest,
    ) -> Result<UpstreamUser, UpstreamError> {
        let (email, verified) = code
            .split_once('|')
            .ok_or_else(|| UpstreamError::Rejected("bad code".into()))?;
        Ok(UpstreamUser {
            subject: format!("corp:{email}"),
            username: None,
            email: Some(email.to_owned()),
            email_verified: verified == "true",
            name: None,
        })
    }
}

async fn login_as(h: &Harness, client_id: &str, code: &str) -> (StatusCode, String) {
    let (_, ch) = pkce_pair();
    let mut b = Browser::new(h);
    let r = b.get(&authorize_url(h, client_id, &ch, &[])).await;
    let login = location(&r);
    // Only an upstream provider is configured: /login goes straight there.
    let r = b.get(&login).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let callback = location(&r).replace(
        "PENDING",
        &url::form_urlencoded::byte_serialize(code.as_bytes()).collect::<String>(),
    );
    let r = b.get(&callback).await;
    let status = r.status();
    (
        status,
        r.headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn upstream_login_with_allow_list() {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nallow_list = [\"@corp.example\"]\n[storage]\nkind = \"memory\"\n[[resources]]\nresource = \"{RESOURCE}\"\n[[providers]]\nkind = \"oidc\"\nid = \"corp\"\nclient_id = \"x\"\nissuer = \"https://sso.corp.example\"\n"
    );
    let config = RawConfig::from_toml(&toml).unwrap().validate().unwrap();
    let deps = IssuerDeps {
        revocations: Some(Arc::new(LocalRevocations::new(
            Arc::new(SystemClock),
            Duration::from_secs(60),
        ))),
        idps: Some(vec![Arc::new(InstantIdp)]),
        ..Default::default()
    };
    let running = spawn(config, deps).await.unwrap();
    let h = Harness {
        base: running.issuer.clone(),
        running,
        http: client(),
        revocations: LocalRevocations::new(Arc::new(SystemClock), Duration::from_secs(60)),
    };
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (st, next) = login_as(&h, &id, "bob@corp.example|true").await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert!(next.contains("/consent?"), "{next}");

    // Unverified email, or another domain: access_denied to the client.
    for code in ["bob@corp.example|false", "eve@evil.example|true"] {
        let (st, next) = login_as(&h, &id, code).await;
        assert_eq!(st, StatusCode::SEE_OTHER);
        let q = query(&next);
        assert_eq!(q["error"], "access_denied", "{code}");
        assert_eq!(q["iss"], h.base.as_str());
    }
    // The provider refusing: access_denied too.
    let (_, next) = login_as(&h, &id, "garbage").await;
    assert_eq!(query(&next)["error"], "access_denied");
    h.running.shutdown().await;
}
