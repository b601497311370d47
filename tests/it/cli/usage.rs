//! Exit codes that need no server: usage (2), bad configuration (64),
//! failure (1).

use super::support::*;

#[tokio::test]
async fn exit_codes_for_usage_config_and_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("tokens.json");

    let r = run(mcpgate("http://127.0.0.1:9", &store).arg("no-such-command")).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    let mut c = mcpgate("http://127.0.0.1:9", &store);
    c.args(["admin", "revoke", "--sub", "a", "--client", "b"]);
    assert_eq!(run(c).await.code, 2);

    let r = run(mcpgate("ftp://nope", &store).arg("token")).await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("--issuer"), "{}", r.stderr);

    let mut c = mcpgate("http://127.0.0.1:9", &store);
    c.args(["admin", "clients", "list"]);
    let r = run(c).await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("MCPGATE_ADMIN_TOKEN"), "{}", r.stderr);

    let r = run(mcpgate("http://127.0.0.1:9", &store).arg("token")).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not logged in"), "{}", r.stderr);
    assert!(r.stdout.is_empty());

    // Port 9 (discard) is closed on loopback: a clear network error.
    let r = run(mcpgate("http://127.0.0.1:9", &store).arg("register")).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cannot reach"), "{}", r.stderr);
    assert!(!store.exists(), "nothing written on failure");
}
