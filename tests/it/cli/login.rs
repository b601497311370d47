//! `mcpgate login` / `token` / `whoami` / `revoke` / `admin` against the
//! real issuer app, spawned in-process on 127.0.0.1:0.

use super::support::*;
use crate::issuer::harness::{password_hash, start, ADMIN, PASSWORD, RESOURCE, USER};
use mcpgate::app::issuer::{spawn, IssuerDeps, RunningIssuer};
use mcpgate::config::issuer::RawConfig;
use mcpgate::domain::claims::AccessClaims;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The issuer tests' issuer (memory store, in-process revocations, the
/// static user [`USER`]).
async fn issuer() -> RunningIssuer {
    start().await.running
}

async fn verify(issuer: &str, token: &str) -> AccessClaims {
    crate::access_token::verify(&http(), issuer, RESOURCE, token).await
}

async fn introspect(issuer: &str, token: &str) -> Value {
    http()
        .post(format!("{issuer}/introspect"))
        .bearer_auth(ADMIN)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Runs `login --no-browser`, drives the forms, and waits for the CLI.
async fn login(issuer: &str, store: &Path, decision: &str) -> Run {
    let mut c = mcpgate(issuer, store);
    c.args([
        "login",
        "--no-browser",
        "--resource",
        RESOURCE,
        "--scope",
        "mcp:read mcp:write",
    ]);
    let (mut child, mut lines, url) = start_login(c).await;
    assert!(url.starts_with(&format!("{issuer}/authorize?")), "{url}");
    let q = query(&url);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["resource"], RESOURCE);
    let redirect = q["redirect_uri"].clone();
    assert!(redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"));

    // A redirect that is not ours (wrong state) is refused and ignored.
    let r = http()
        .get(format!("{redirect}?code=forged&state=wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let mut b = Browser::new(issuer);
    let back = b.authorize(&url, USER, PASSWORD, decision).await;
    assert!(back.starts_with(&redirect), "{back}");
    assert_eq!(query(&back)["iss"], issuer);
    let page = http().get(&back).send().await.unwrap();
    let status = page.status();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    let mut rest = Vec::new();
    while let Some(l) = lines.next_line().await.unwrap() {
        rest.push(l);
    }
    let stderr = rest.join("\n");
    assert_eq!(status == 200, out.success(), "{stderr}");
    Run {
        code: out.code().unwrap_or(-1),
        stdout: String::new(),
        stderr,
    }
}

fn token_cmd(issuer: &str, store: &Path) -> tokio::process::Command {
    let mut c = mcpgate(issuer, store);
    c.arg("token");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_token_refresh_whoami_revoke() {
    let iss = issuer().await;
    let base = iss.issuer.clone();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("conf/mcpgate/tokens.json");

    let r = login(&base, &store, "approve").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("Logged in") && r.stderr.contains(USER),
        "{}",
        r.stderr
    );
    assert_eq!(mode(&store), 0o600);
    assert_eq!(mode(store.parent().unwrap()), 0o700);
    let file = token_file(&store);
    let entry = &file["issuers"][base.as_str()];
    let client_id = entry["client"]["client_id"].as_str().unwrap().to_owned();
    assert_eq!(entry["client"]["token_endpoint_auth_method"], "none");
    assert_eq!(entry["last_resource"], RESOURCE);

    // `token` prints only the access token, a JWT for the resource.
    let r = run(token_cmd(&base, &store)).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let at = r.stdout.trim_end_matches('\n').to_owned();
    assert_eq!(r.stdout, format!("{at}\n"));
    let claims = verify(&base, &at).await;
    assert_eq!(claims.sub, "local:alice");
    assert_eq!(claims.username.as_deref(), Some(USER));
    assert_eq!(claims.client_id.as_deref(), Some(client_id.as_str()));
    assert_eq!(claims.scope.as_deref(), Some("mcp:read mcp:write"));
    assert!(!r.stderr.contains(&at));

    // Still fresh: the same token, no refresh.
    let r = run(token_cmd(&base, &store)).await;
    assert_eq!(r.stdout.trim(), at);

    // Near expiry: refreshed, and the rotated refresh token is stored.
    let rt1 = token_file(&store)["issuers"][base.as_str()]["tokens"][RESOURCE]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut f = token_file(&store);
    f["issuers"][base.as_str()]["tokens"][RESOURCE]["expires_at"] = 1.into();
    std::fs::write(&store, serde_json::to_vec(&f).unwrap()).unwrap();
    let mut c = token_cmd(&base, &store);
    c.args(["--resource", RESOURCE]);
    let r = run(c).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let at2 = r.stdout.trim().to_owned();
    assert_ne!(at2, at);
    assert_eq!(verify(&base, &at2).await.sub, "local:alice");
    let rt2 = token_file(&store)["issuers"][base.as_str()]["tokens"][RESOURCE]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rt1, rt2);
    assert_eq!(mode(&store), 0o600);
    assert_eq!(introspect(&base, &rt2).await["active"], true);

    // whoami decodes without verifying, and says so.
    let mut c = mcpgate(&base, &store);
    c.arg("whoami");
    let r = run(c).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shown: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(shown["sub"], "local:alice");
    assert!(r.stderr.contains("NOT verified"), "{}", r.stderr);
    assert!(!r.stdout.contains(&at2) && !r.stderr.contains(&at2));

    // Operators see the client.
    let mut c = mcpgate(&base, &store);
    c.args(["admin", "clients", "list"])
        .env("MCPGATE_ADMIN_TOKEN", ADMIN)
        .env("MCPGATE_ADMIN_URL", format!("http://{}", iss.admin_addr));
    let r = run(c).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(&client_id), "{}", r.stdout);

    // revoke: both tokens dead at the issuer, and forgotten locally.
    let mut c = mcpgate(&base, &store);
    c.arg("revoke");
    let r = run(c).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(introspect(&base, &rt2).await["active"], false);
    assert_eq!(introspect(&base, &at2).await["active"], false);
    let r = run(token_cmd(&base, &store)).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not logged in"), "{}", r.stderr);
    // The client stays saved for the next login.
    assert_eq!(
        token_file(&store)["issuers"][base.as_str()]["client"]["client_id"],
        client_id.as_str()
    );
    iss.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_consent_fails_the_login() {
    let iss = issuer().await;
    let base = iss.issuer.clone();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("tokens.json");
    let r = login(&base, &store, "deny").await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("access_denied"), "{}", r.stderr);
    let f = token_file(&store);
    assert!(f["issuers"][base.as_str()]["tokens"]
        .as_object()
        .unwrap()
        .is_empty());
    iss.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_admin_commands() {
    let iss = issuer().await;
    let base = iss.issuer.clone();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("tokens.json");

    let mut c = mcpgate(&base, &store);
    c.args([
        "register",
        "--confidential",
        "--name",
        "ci",
        "--scope",
        "mcp:read",
    ]);
    let r = run(c).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = r.stdout.trim().to_owned();
    let f = token_file(&store);
    let client = &f["issuers"][base.as_str()]["client"];
    assert_eq!(client["client_id"], id.as_str());
    assert!(client["client_secret"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(client["registration_access_token"].is_string());
    assert!(!r.stdout.contains(client["client_secret"].as_str().unwrap()));
    assert!(!r.stderr.contains(client["client_secret"].as_str().unwrap()));
    assert_eq!(mode(&store), 0o600);

    let admin_url = format!("http://{}", iss.admin_addr);
    let admin = |args: &[&str]| {
        let mut c = mcpgate(&base, &store);
        c.arg("admin")
            .args(args)
            .env("MCPGATE_ADMIN_TOKEN", ADMIN)
            .env("MCPGATE_ADMIN_URL", &admin_url);
        c
    };
    // The public issuer URL serves no admin API.
    let mut c = admin(&["clients", "list"]);
    c.env("MCPGATE_ADMIN_URL", &base);
    let r = run(c).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("404"), "{}", r.stderr);
    let r = run(admin(&["clients", "list", "--json"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["client_id"] == id.as_str()));

    let r = run(admin(&["revoke", "--sub", "local:alice"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(admin(&["revoke", "--client", &id])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    let r = run(admin(&["keys", "rotate"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.trim().is_empty());

    let r = run(admin(&["clients", "delete", &id])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(admin(&["clients", "delete", &id])).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("404"), "{}", r.stderr);

    let mut c = admin(&["clients", "list"]);
    c.env("MCPGATE_ADMIN_TOKEN", "wrong");
    let r = run(c).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("admin token"), "{}", r.stderr);
    iss.shutdown().await;
}

/// A minimal ForwardAuth gateway (what Traefik or nginx do): every request
/// is decided by the verifier's `/auth`; the well-known paths go to the
/// verifier unauthenticated.
async fn gateway(listener: tokio::net::TcpListener, verifier: String) {
    use axum::extract::Request;
    use axum::response::{IntoResponse, Response};
    let host = listener.local_addr().unwrap().to_string();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (verifier, host) = (verifier.clone(), host.clone());
        async move {
            let path = req.uri().path().to_owned();
            let c = http();
            if path.starts_with("/.well-known/") {
                let r = c
                    .get(format!("{verifier}{path}"))
                    .header("x-forwarded-host", &host)
                    .send()
                    .await
                    .unwrap();
                let st = r.status().as_u16();
                let body = r.bytes().await.unwrap();
                return (axum::http::StatusCode::from_u16(st).unwrap(), body).into_response();
            }
            let mut ask = c
                .get(format!("{verifier}/auth"))
                .header("x-forwarded-method", req.method().as_str())
                .header("x-forwarded-proto", "http")
                .header("x-forwarded-host", &host)
                .header("x-forwarded-uri", &path);
            if let Some(a) = req.headers().get("authorization") {
                ask = ask.header("authorization", a.to_str().unwrap());
            }
            let r = ask.send().await.unwrap();
            let mut out: Response = if r.status().is_success() {
                "tool result".into_response()
            } else {
                axum::http::StatusCode::from_u16(r.status().as_u16())
                    .unwrap()
                    .into_response()
            };
            if let Some(w) = r.headers().get("www-authenticate") {
                out.headers_mut()
                    .insert("www-authenticate", w.to_str().unwrap().parse().unwrap());
            }
            out
        }
    });
    axum::serve(listener, app).await.unwrap();
}

/// `mcpgate login <MCP server URL>`: the issuer and the resource come from
/// the server's 401 and its protected-resource metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_discovers_the_issuer_from_the_mcp_server() {
    let gw = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}/mcp", gw.local_addr().unwrap());
    let hash = password_hash();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nscopes = [\"mcp:read\"]\n[storage]\nkind = \"memory\"\n\
         [[resources]]\nresource = \"{server}\"\n[[providers]]\nkind = \"static\"\n\
         [[providers.users]]\nusername = \"{USER}\"\npassword_hash = \"{hash}\"\n"
    );
    let config = RawConfig::from_toml(&toml).unwrap().validate().unwrap();
    let iss = spawn(config, IssuerDeps::default()).await.unwrap();
    let vtoml = format!(
        "issuers = [\"{}\"]\nresource = \"{server}\"\nrequired_scopes = [\"mcp:read\"]\n\
         http_addr = \"127.0.0.1:0\"\ngrpc_addr = \"127.0.0.1:0\"\n",
        iss.issuer
    );
    let vcfg = mcpgate::config::verifier::RawConfig::from_toml(&vtoml)
        .unwrap()
        .validate()
        .unwrap();
    let v = mcpgate::app::verifier::spawn(vcfg, Default::default())
        .await
        .unwrap();
    tokio::spawn(gateway(gw, format!("http://{}", v.http_addr)));

    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("tokens.json");
    // --issuer points nowhere: the server's metadata decides.
    let mut c = mcpgate("http://127.0.0.1:9", &store);
    c.args(["login", "--no-browser", &server]);
    let (mut child, _lines, url) = start_login(c).await;
    assert!(
        url.starts_with(&format!("{}/authorize?", iss.issuer)),
        "{url}"
    );
    let q = query(&url);
    assert_eq!(q["resource"], server);
    assert_eq!(q["scope"], "mcp:read", "the 401's scope is asked for");
    let back = Browser::new(&iss.issuer)
        .authorize(&url, USER, PASSWORD, "approve")
        .await;
    assert_eq!(http().get(&back).send().await.unwrap().status(), 200);
    let st = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(st.success());
    let r = run(token_cmd(&iss.issuer, &store)).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let tool = http()
        .post(&server)
        .bearer_auth(r.stdout.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(tool.status(), 200);
    v.shutdown().await;
    iss.shutdown().await;
}

/// `mcpgate client show|update|delete` (RFC 7592) on the client it registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_show_update_delete() {
    let iss = issuer().await;
    let base = iss.issuer.clone();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("tokens.json");
    let cmd = |args: &[&str]| {
        let mut c = mcpgate(&base, &store);
        c.args(args);
        c
    };
    let r = run(cmd(&["register", "--confidential", "--name", "before"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = r.stdout.trim().to_owned();
    let secret = token_file(&store)["issuers"][base.as_str()]["client"]["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = run(cmd(&["client", "show"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shown: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(shown["client_id"], id.as_str());
    assert_eq!(shown["client_name"], "before");
    assert!(!r.stdout.contains(&secret));

    let r = run(cmd(&[
        "client",
        "update",
        "--name",
        "after",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--redirect-uri",
        "cursor://anysphere.cursor-mcp/oauth/callback",
    ]))
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(cmd(&["client", "show"])).await;
    let shown: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(shown["client_name"], "after");
    assert_eq!(
        shown["redirect_uris"][1],
        "cursor://anysphere.cursor-mcp/oauth/callback"
    );
    assert_eq!(
        token_file(&store)["issuers"][base.as_str()]["client"]["redirect_uris"][0],
        "http://127.0.0.1/cb"
    );

    let r = run(cmd(&["client", "delete"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(token_file(&store)["issuers"][base.as_str()]["client"].is_null());
    let r = run(cmd(&["client", "show"])).await;
    assert_ne!(r.code, 0);
    // Gone at the issuer too.
    let gone = http()
        .post(format!("{base}/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 401);
    iss.shutdown().await;
}
