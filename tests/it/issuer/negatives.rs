//! Every refusal answers with the right RFC error and changes nothing.

use super::harness::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn err(v: &Value) -> &str {
    v["error"].as_str().unwrap_or("<none>")
}

/// The error redirect of an `/authorize` URL (browser already logged out).
async fn authorize_error(h: &Harness, url: &str) -> std::collections::HashMap<String, String> {
    let mut b = Browser::new(h);
    let r = b.get(url).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = location(&r);
    assert!(loc.starts_with(REDIRECT), "{loc}");
    let q = query(&loc);
    assert_eq!(q["state"], "st-123");
    assert_eq!(q["iss"], h.base.as_str());
    q
}

#[tokio::test]
async fn authorize_refusals() {
    let h = start().await;
    let id = register(&h, "none").await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, ch) = pkce_pair();
    let good = authorize_url(&h, &id, &ch, &[]);

    // No PKCE, plain PKCE.
    let no_pkce = good.replace(&format!("code_challenge={ch}"), "x=1");
    assert_eq!(
        authorize_error(&h, &no_pkce).await["error"],
        "invalid_request"
    );
    let plain = good.replace("code_challenge_method=S256", "code_challenge_method=plain");
    assert_eq!(
        authorize_error(&h, &plain).await["error"],
        "invalid_request"
    );
    // Unknown resource, unknown scope, bad response type, repeated parameter.
    let q = authorize_error(&h, &good.replace("resource=http", "resource=https")).await;
    assert_eq!(q["error"], "invalid_target");
    let q = authorize_error(&h, &authorize_url(&h, &id, &ch, &[("scope", "a\"b")])).await;
    assert_eq!(q["error"], "invalid_scope", "malformed scope");
    let q = authorize_error(
        &h,
        &authorize_url(
            &h,
            &id,
            &ch,
            &[("scope", "mcp:write"), ("resource", OTHER_RESOURCE)],
        ),
    )
    .await;
    assert_eq!(q["error"], "invalid_target", "two resources");
    let q = authorize_error(
        &h,
        &good.replace("response_type=code", "response_type=token"),
    )
    .await;
    assert_eq!(q["error"], "unsupported_response_type");
    let q = authorize_error(&h, &format!("{good}&state=again")).await;
    assert_eq!(q["error"], "invalid_request");

    // Unregistered redirect or unknown client: an error page, never a
    // redirect. (Another loopback port is the same redirect, RFC 8252 §7.3;
    // another path is not.)
    let mut b = Browser::new(&h);
    assert!(good.contains("%2Fcallback"));
    let r = b.get(&good.replace("%2Fcallback", "%2Fcallbackx")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.text().await.unwrap().contains("redirect_uri"));
    let r = b.get(&good.replace(&id, "nope")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A forged login POST (CSRF mismatch) is refused.
    let r = b.get(&good).await;
    let req = query(&format!("http://x{}", location(&r)))["req"].clone();
    let r = b
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", "forged"),
                ("username", USER),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Wrong password: the form again, 401.
    let csrf = b.csrf();
    let r = b
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("username", USER),
                ("password", "nope"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Invalid username or password"));
    // Consent denied: access_denied back to the client.
    let r = b
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("username", USER),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(location(&r).contains("/consent?"));
    let r = b
        .post(
            "/consent",
            &[("req", &req), ("csrf", &csrf), ("decision", "deny")],
        )
        .await;
    let q = query(&location(&r));
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "st-123")
    );
    h.running.shutdown().await;
}

#[tokio::test]
async fn code_exchange_refusals_change_nothing() {
    let h = start().await;
    let (id, secret, code, verifier) = confidential_code(&h).await;
    let code_form = |v: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", REDIRECT.into()),
            ("code_verifier", v.into()),
        ]
    };
    let as_ref = |f: &Vec<(&'static str, String)>| {
        f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };
    let send = |f: Vec<(&'static str, String)>, auth: Option<(String, String)>| {
        let h = &h;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let a = auth.as_ref().map(|(i, s)| (i.as_str(), s.as_str()));
            token(h, a, &f).await
        }
    };
    let good = Some((id.clone(), secret.clone()));

    // Wrong verifier.
    let wrong = "wrong-verifier-0123456789abcdefghijklmnopqrstuvwxyz";
    let (st, _, e) = send(code_form(wrong), good.clone()).await;
    assert_eq!((st, err(&e)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    // Wrong client secret: 401 + Basic challenge.
    let (st, hd, e) = send(as_ref(&code_form("x")), Some((id.clone(), "bad".into()))).await;
    assert_eq!((st, err(&e)), (StatusCode::UNAUTHORIZED, "invalid_client"));
    assert!(hd["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    // No client authentication at all.
    let (st, _, e) = send(code_form(wrong), None).await;
    assert_eq!((st, err(&e)), (StatusCode::UNAUTHORIZED, "invalid_client"));
    // Wrong redirect_uri, other resource, unknown grant type.
    let mut f = code_form(wrong);
    f[2].1 = "http://127.0.0.1:7777/other".into();
    f[3].1 = verifier.clone();
    let (st, _, e) = send(f, good.clone()).await;
    assert_eq!((st, err(&e)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    let mut f = code_form(wrong);
    f[3].1 = verifier.clone();
    f.push(("resource", OTHER_RESOURCE.into()));
    let (st, _, e) = send(f, good.clone()).await;
    assert_eq!((st, err(&e)), (StatusCode::BAD_REQUEST, "invalid_target"));
    let (st, _, e) = send(vec![("grant_type", "password".into())], good.clone()).await;
    assert_eq!(
        (st, err(&e)),
        (StatusCode::BAD_REQUEST, "unsupported_grant_type")
    );

    // None of that consumed the code.
    let (st, t) = exchange(&h, &id, &secret, &code, &verifier).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    let at = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&h, at).await["active"], true);

    // Replaying the code: invalid_grant, and what it produced is revoked.
    let (st, e) = exchange(&h, &id, &secret, &code, &verifier).await;
    assert_eq!((st, err(&e)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    assert_eq!(introspect(&h, at).await["active"], false);
    assert_eq!(introspect(&h, rt).await["active"], false);
    assert_eq!(h.revocations.len(), 1);
    h.running.shutdown().await;
}

#[tokio::test]
async fn refresh_refusals_and_reuse_detection() {
    // No grace window: the first reuse counts (tests/it/clients covers it).
    let h = start_toml(&format!("refresh_grace_secs = 0\n{}", base_toml()), None).await;
    let (id, secret, code, verifier) = confidential_code(&h).await;
    let (_, t) = exchange(&h, &id, &secret, &code, &verifier).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let auth = Some((id.as_str(), secret.as_str()));

    // Widening is refused and changes nothing.
    let (st, _, e) = token(
        &h,
        auth,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "mcp:read mcp:write"),
        ],
    )
    .await;
    assert_eq!((st, err(&e)), (StatusCode::BAD_REQUEST, "invalid_scope"));
    let (st, _, e) = token(
        &h,
        auth,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("resource", OTHER_RESOURCE),
        ],
    )
    .await;
    assert_eq!((st, err(&e)), (StatusCode::BAD_REQUEST, "invalid_target"));
    // Another client cannot use it.
    let other = register(&h, "client_secret_basic").await;
    let oauth = Some((
        other["client_id"].as_str().unwrap(),
        other["client_secret"].as_str().unwrap(),
    ));
    let (st, _, e) = token(
        &h,
        oauth,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!((st, err(&e)), (StatusCode::BAD_REQUEST, "invalid_grant"));

    let (st, _, t2) = token(
        &h,
        auth,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap();
    let at2 = t2["access_token"].as_str().unwrap();

    // Reusing the rotated token revokes the whole family.
    let (st, _, e) = token(
        &h,
        auth,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!((st, err(&e)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    let (st, _, e) = token(
        &h,
        auth,
        &[("grant_type", "refresh_token"), ("refresh_token", rt2)],
    )
    .await;
    assert_eq!((st, err(&e)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    assert_eq!(introspect(&h, at2).await["active"], false);
    assert_eq!(
        introspect(&h, t["access_token"].as_str().unwrap()).await["active"],
        false
    );
    h.running.shutdown().await;
}

#[tokio::test]
async fn registration_refusals() {
    let toml = base_toml().replace("[storage]", "[registration]\nrate_limit = 3\n[storage]");
    let h = start_toml(&toml, None).await;
    let reg = |body: Value| {
        h.http
            .post(format!("{}/register", h.base))
            .json(&body)
            .send()
    };
    let r = reg(json!({"redirect_uris": ["javascript:alert(1)"]}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(err(&r.json().await.unwrap()), "invalid_redirect_uri");
    let r = reg(json!({"redirect_uris": [REDIRECT], "scope": "root"}))
        .await
        .unwrap();
    assert_eq!(err(&r.json().await.unwrap()), "invalid_client_metadata");

    let c: Value = reg(json!({"redirect_uris": [REDIRECT]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["token_endpoint_auth_method"], "client_secret_basic");
    let uri = c["registration_client_uri"].as_str().unwrap();
    // A bad registration access token: 401 invalid_token, client untouched.
    for tok in [Some("wrong"), None] {
        let mut req = h.http.delete(uri);
        if let Some(t) = tok {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token"));
    }
    let r = h
        .http
        .get(uri)
        .bearer_auth(c["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The fourth registration from this address within the window: 429.
    let r = reg(json!({"redirect_uris": [REDIRECT]})).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    h.running.shutdown().await;
}

/// Registers a public client whose metadata names `scope = "mcp:read"`.
async fn register_read_only(h: &Harness) -> String {
    let r = h
        .http
        .post(format!("{}/register", h.base))
        .json(&json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "scope": "mcp:read",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A client's registered `scope` is self-asserted: by default it does not
/// cap what the user may consent to (MCP step-up re-authorizes with more);
/// `registration.enforce_client_scope = true` makes it a hard limit.
#[tokio::test]
async fn registered_scope_caps_grants_only_when_enforced() {
    let (_, ch) = pkce_pair();
    let wide = [("scope", "mcp:read mcp:write")];

    let h = start().await;
    let id = register_read_only(&h).await;
    let mut b = Browser::new(&h);
    let q = login_and_consent(&mut b, &authorize_url(&h, &id, &ch, &wide)).await;
    assert!(q.contains_key("code"), "{q:?}");

    let h = start_toml(
        &format!(
            "{}\n[registration]\nenforce_client_scope = true\n",
            base_toml()
        ),
        None,
    )
    .await;
    let id = register_read_only(&h).await;
    // Enforced: what the client may not have is left out of the grant.
    let t = public_tokens(&h, &id, &wide).await;
    assert_eq!(t["scope"], "mcp:read");
    let mut b = Browser::new(&h);
    let q = login_and_consent(
        &mut b,
        &authorize_url(&h, &id, &ch, &[("scope", "mcp:read")]),
    )
    .await;
    assert!(q.contains_key("code"), "{q:?}");
}

/// A refresh that races with the family's revocation can save the family
/// record after the revocation did (a lost update); the revocation's
/// tombstone still wins.
#[tokio::test]
async fn family_revocation_survives_a_lost_update_of_its_record() {
    use mcpgate::issue::records::{get_json, hash_secret, put_json, FamilyRecord, RefreshRecord};
    use mcpgate::issue::store::Namespace;

    let h = start().await;
    let (id, secret, code, verifier) = confidential_code(&h).await;
    let (_, t) = exchange(&h, &id, &secret, &code, &verifier).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let store = h.running.core.store();
    let fid = get_json::<RefreshRecord>(store, Namespace::Refresh, &hash_secret(&rt))
        .await
        .unwrap()
        .unwrap()
        .family_id;
    let before = get_json::<FamilyRecord>(store, Namespace::Families, &fid)
        .await
        .unwrap()
        .unwrap();

    let rkey = hash_secret(&rt);
    let refresh = get_json::<RefreshRecord>(store, Namespace::Refresh, &rkey)
        .await
        .unwrap()
        .unwrap();

    h.running.core.revoke_family(&fid).await.unwrap();
    // The racing writer saves its refresh token and the family record it
    // read before the revocation.
    put_json(store, Namespace::Refresh, &rkey, &refresh, None)
        .await
        .unwrap();
    put_json(store, Namespace::Families, &fid, &before, None)
        .await
        .unwrap();

    let auth = Some((id.as_str(), secret.as_str()));
    let (st, _, e) = token(
        &h,
        auth,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!((st, err(&e)), (StatusCode::BAD_REQUEST, "invalid_grant"));
}
