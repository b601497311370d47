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

/// `verifier` and `issuer`: `--help` and `--version` answer on stdout with
/// 0, an unknown argument is a usage error (2), and a misspelt
/// `MCPGW_*` variable or a TOML type error stops the start (64) naming the
/// variable or the key path and line.
#[tokio::test]
async fn server_binaries_help_version_and_loud_config_errors() {
    use tokio::process::Command;
    let tmp = tempfile::tempdir().unwrap();
    for (name, bin) in [
        ("verifier", env!("CARGO_BIN_EXE_verifier")),
        ("issuer", env!("CARGO_BIN_EXE_issuer")),
    ] {
        let r = run(Command::new(bin).arg("--help")).await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout.starts_with(&format!("usage: {name}")),
            "{}",
            r.stdout
        );
        let r = run(Command::new(bin).arg("--version")).await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(
            r.stdout.trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
        let r = run(Command::new(bin).arg("--bogus")).await;
        assert_eq!(r.code, 2, "{}", r.stderr);
    }

    let mut c = Command::new(env!("CARGO_BIN_EXE_verifier"));
    c.env("MCPGW_VERIFIER_ISSUERS", "http://127.0.0.1:9")
        .env("MCPGW_VERIFIER_RESOURCE", "http://127.0.0.1:9/mcp")
        .env("MCPGW_VERIFIER_REQUIRED_SCOPE", "mcp:tools");
    let r = run(c).await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("MCPGW_VERIFIER_REQUIRED_SCOPE")
            && r.stderr
                .contains("did you mean `MCPGW_VERIFIER_REQUIRED_SCOPES`"),
        "{}",
        r.stderr
    );

    // An unparseable Redis URL stops the start; the password is not echoed.
    let mut c = Command::new(env!("CARGO_BIN_EXE_verifier"));
    c.env("MCPGW_VERIFIER_ISSUERS", "http://127.0.0.1:9")
        .env("MCPGW_VERIFIER_RESOURCE", "http://127.0.0.1:9/mcp")
        .env("MCPGW_VERIFIER_REDIS_URL", "redis//:hunter2@127.0.0.1:6379");
    let r = run(c).await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("redis_urls") && !r.stderr.contains("hunter2"),
        "{}",
        r.stderr
    );

    let cfg = tmp.path().join("issuer.toml");
    std::fs::write(
        &cfg,
        "issuer = \"http://127.0.0.1:9\"\n\n[[resources]]\nresource = \"http://127.0.0.1:9/mcp\"\nscopes = \"mcp:tools\"\n",
    )
    .unwrap();
    let r = run(Command::new(env!("CARGO_BIN_EXE_issuer"))
        .arg("--config")
        .arg(&cfg))
    .await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("resources[0].scopes") && r.stderr.contains("line 5, column 10"),
        "{}",
        r.stderr
    );
}
