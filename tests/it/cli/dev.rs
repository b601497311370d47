//! `mcpgate dev`: issuer + verifier in one process; a CLI login against it,
//! a ForwardAuth check with the token, and a revocation the verifier sees
//! at once.

use super::support::*;
use std::process::Stdio;
use std::time::Duration;

const RESOURCE: &str = "http://127.0.0.1:9/mcp";

async fn forward_auth(verifier: &str, token: &str) -> u16 {
    http()
        .get(format!("http://{verifier}/auth"))
        .header("x-forwarded-method", "POST")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "127.0.0.1:9")
        .header("x-forwarded-uri", "/mcp")
        // A 2026-07-28 client names the operation in headers; without them
        // a POST on a route with tool rules needs the strongest scopes.
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_login_check_revoke() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("tokens.json");
    let data = tmp.path().join("data");
    // A verifier config file: dev keeps its routes and tool scopes.
    let vconf = tmp.path().join("verifier.toml");
    std::fs::write(
        &vconf,
        format!(
            "[[routes]]\nresource = \"{RESOURCE}\"\nrequired_scopes = [\"mcp:tools\"]\n\
             tool_scopes = [{{ method = \"tools/call\", name = \"drop_tables\", scopes = [\"mcp:admin\"] }}]\n"
        ),
    )
    .unwrap();
    let mut dev = tokio::process::Command::new(BIN);
    dev.args([
        "dev",
        "--http",
        "127.0.0.1:0",
        "--verifier-http",
        "127.0.0.1:0",
    ])
    .args(["--verifier-grpc", "127.0.0.1:0", "--resource", RESOURCE])
    .arg("--data-dir")
    .arg(&data)
    .args(["--access-token-ttl", "120"])
    .arg("--verifier-config")
    .arg(&vconf)
    .env("MCPGATE_DEV_PASSWORD", "dev-pass")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = dev.spawn().unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stderr.take().unwrap()));
    let (issuer, _) = read_until(&mut lines, "  issuer:").await;
    let issuer = issuer.trim().to_owned();
    let (verifier, _) = read_until(&mut lines, "  verifier:").await;
    let verifier = verifier
        .trim()
        .trim_start_matches("http://")
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let (user, _) = read_until(&mut lines, "  user:").await;
    assert_eq!(user.trim(), "dev");
    let (pw, _) = read_until(&mut lines, "  password:").await;
    assert_eq!(pw.trim(), "dev-pass");
    assert!(data.join("issuer.redb").exists());
    // The admin API and both /metrics on their own loopback listeners.
    let (admin_line, _) = read_until(&mut lines, "  admin API:").await;
    let admin = admin_line.trim().split(' ').next().unwrap().to_owned();
    let (metrics_line, _) = read_until(&mut lines, "  metrics:").await;
    let urls: Vec<&str> = metrics_line
        .split([' ', ','])
        .filter(|w| w.starts_with("http://"))
        .collect();
    assert_eq!(urls.len(), 2, "{metrics_line}");
    for u in &urls {
        assert!(u.starts_with("http://127.0.0.1:"), "{u}");
        assert_eq!(http().get(*u).send().await.unwrap().status(), 200, "{u}");
    }
    assert!(
        admin.starts_with("http://127.0.0.1:") && admin.ends_with("/admin"),
        "{admin}"
    );
    assert_eq!(
        http()
            .get(format!("{admin}/clients"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        http()
            .get(format!("http://{verifier}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let mut c = mcpgate(&issuer, &store);
    c.args(["login", "--no-browser", "--resource", RESOURCE]);
    let (mut login, _login_err, url) = start_login(c).await;
    let back = Browser::new(&issuer)
        .authorize(&url, "dev", "dev-pass", "approve")
        .await;
    assert_eq!(http().get(&back).send().await.unwrap().status(), 200);
    let st = tokio::time::timeout(Duration::from_secs(30), login.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(st.success());

    let mut c = mcpgate(&issuer, &store);
    c.arg("token");
    let r = run(c).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let at = r.stdout.trim().to_owned();
    assert_eq!(forward_auth(&verifier, &at).await, 200);
    assert_eq!(forward_auth(&verifier, "not-a-token").await, 401);
    // --access-token-ttl and the config file's tool scope.
    let payload = at.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        120
    );
    let tool = http()
        .get(format!("http://{verifier}/auth"))
        .header("x-forwarded-method", "POST")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "127.0.0.1:9")
        .header("x-forwarded-uri", "/mcp")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "drop_tables")
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(tool.status(), 403);

    let mut c = mcpgate(&issuer, &store);
    c.arg("revoke");
    let r = run(c).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    // In-process revocations: no propagation delay.
    assert_eq!(forward_auth(&verifier, &at).await, 401);

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let st = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(st.success(), "{st:?}");
}
