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
    // mcpgate's consent page before the provider (confused deputy rule).
    let consent = location(&r);
    assert!(consent.contains("/consent?"), "{consent}");
    let page = b.get(&consent).await.text().await.unwrap();
    assert!(page.contains("after approving"), "{page}");
    let req = query(&format!("http://x{consent}"))["req"].clone();
    let csrf = b.csrf();
    let r = b
        .post(
            "/consent",
            &[("req", &req), ("csrf", &csrf), ("decision", "approve")],
        )
        .await;
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
        admin: format!("http://{}", running.admin_addr),
        running,
        http: client(),
        revocations: LocalRevocations::new(Arc::new(SystemClock), Duration::from_secs(60)),
    };
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Consent came first, on mcpgate's page: the callback goes straight
    // back to the client.
    let (st, next) = login_as(&h, &id, "bob@corp.example|true").await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert!(next.starts_with(REDIRECT), "{next}");
    assert!(query(&next).contains_key("code"), "{next}");

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

/// GitHub-shaped: `code=<numeric id>|<login>` logs in as `github:<id>`.
struct GithubLikeIdp;

#[async_trait]
impl UpstreamIdp for GithubLikeIdp {
    fn id(&self) -> &str {
        "github"
    }
    fn display_name(&self) -> &str {
        "GitHub"
    }
    fn authorize_url(&self, req: &UpstreamAuthRequest) -> Result<String, UpstreamError> {
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
        let (id, login) = code
            .split_once('|')
            .ok_or_else(|| UpstreamError::Rejected("bad code".into()))?;
        Ok(UpstreamUser {
            subject: format!("github:{id}"),
            username: Some(login.to_owned()),
            email: Some(format!("{login}@users.example")),
            email_verified: false,
            name: None,
        })
    }
}

/// `github:<login>` pins the numeric id of the first account using it: a
/// rename keeps access, a new account under the old login gets none.
#[tokio::test]
async fn github_login_entries_pin_the_numeric_id() {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nallow_list = [\"github:Alice\", \"github:id:77\"]\n[storage]\nkind = \"memory\"\n[[resources]]\nresource = \"{RESOURCE}\"\n[[providers]]\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"y\"\n"
    );
    let config = RawConfig::from_toml(&toml).unwrap().validate().unwrap();
    let deps = IssuerDeps {
        revocations: Some(Arc::new(LocalRevocations::new(
            Arc::new(SystemClock),
            Duration::from_secs(60),
        ))),
        idps: Some(vec![Arc::new(GithubLikeIdp)]),
        ..Default::default()
    };
    let running = spawn(config, deps).await.unwrap();
    let h = Harness {
        base: running.issuer.clone(),
        admin: format!("http://{}", running.admin_addr),
        running,
        http: client(),
        revocations: LocalRevocations::new(Arc::new(SystemClock), Duration::from_secs(60)),
    };
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ok = |next: &str| query(next).contains_key("code");
    // First login as "alice" (any case) pins id 1.
    let (_, next) = login_as(&h, &id, "1|ALICE").await;
    assert!(ok(&next), "{next}");
    // Someone else who later owns the login "alice": refused.
    let (_, next) = login_as(&h, &id, "2|alice").await;
    assert_eq!(query(&next)["error"], "access_denied", "{next}");
    // Account 1 renamed itself: still in.
    let (_, next) = login_as(&h, &id, "1|alice-renamed").await;
    assert!(ok(&next), "{next}");
    // By numeric id; an unlisted account whose email looks right: refused.
    let (_, next) = login_as(&h, &id, "77|whoever").await;
    assert!(ok(&next), "{next}");
    let (_, next) = login_as(&h, &id, "3|bob").await;
    assert_eq!(query(&next)["error"], "access_denied");
    h.running.shutdown().await;

    // Bare usernames are refused when they could name an OIDC
    // preferred_username, with the migration in the message.
    let bad = format!(
        "listen = \"127.0.0.1:0\"\nallow_list = [\"alice\"]\n[[resources]]\nresource = \"{RESOURCE}\"\n[[providers]]\nkind = \"oidc\"\nid = \"corp\"\nclient_id = \"x\"\nissuer = \"https://sso.corp.example\"\n"
    );
    let e = RawConfig::from_toml(&bad).unwrap().validate().unwrap_err();
    assert_eq!(e.key, "allow_list");
    assert!(
        e.msg.contains("github:alice") && e.msg.contains("<provider id>:<sub>"),
        "{e}"
    );
    // ...and a non-GitHub provider cannot take the id `github`.
    let bad = bad
        .replace("id = \"corp\"", "id = \"github\"")
        .replace("\"alice\"", "\"*\"");
    let e = RawConfig::from_toml(&bad).unwrap().validate().unwrap_err();
    assert_eq!(e.key, "providers", "{e}");
}
