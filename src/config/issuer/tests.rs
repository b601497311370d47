//! Validation of the issuer configuration: defaults, and errors that name
//! the offending key.

use super::*;
use crate::issue::keys::SigningAlg;

const MINIMAL: &str = r#"
[[resources]]
resource = "https://mcp.example.com/mcp"
scopes = ["mcp:tools"]
[[providers]]
kind = "static"
[[providers.users]]
username = "dev"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$2Wl4m9y8xTqjv1hYc8VnHn0Vb4yqO4R7mH0s1L1fKcE"
"#;

fn key_of(toml: &str) -> String {
    RawConfig::from_toml(toml)
        .unwrap()
        .validate()
        .unwrap_err()
        .key
}

#[test]
fn minimal_config_and_defaults() {
    let c = RawConfig::from_toml(MINIMAL).unwrap().validate().unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert!(c.issuer.is_none());
    assert_eq!(c.scopes, vec!["mcp:tools"]);
    assert_eq!(c.access_ttl.as_secs(), 3600);
    assert_eq!(c.refresh_ttl.as_secs(), 30 * 86400);
    assert_eq!(c.code_ttl.as_secs(), 60);
    assert!(matches!(c.storage, StoreBackend::Embedded { .. }));
    assert_eq!(c.revocation, RevocationConfig::Local);
    assert_eq!(c.signing.alg, SigningAlg::RS256);
    assert!(c.registration.enabled && c.registration.rate_limit == 20);
    assert!(c.cimd.enabled && !c.cimd.allow_private_addresses);
    assert!(c.admin_token.is_none());
}

#[test]
fn errors_name_the_key() {
    assert_eq!(key_of("listen = \"0.0.0.0:80\"\n"), "issuer");
    assert_eq!(key_of("issuer = \"https://as.example\"\n"), "resources");
    let m = MINIMAL;
    assert_eq!(
        key_of(&format!("{m}[storage]\nkind = \"disk\"\n")),
        "storage.kind"
    );
    assert_eq!(
        key_of(&format!("{m}[storage]\nkind = \"redis\"\n")),
        "storage.redis_urls"
    );
    assert_eq!(
        key_of(&format!("{m}[signing]\nalg = \"HS256\"\n")),
        "signing.alg"
    );
    assert_eq!(
        key_of(&format!("{m}[revocation]\nkind = \"redis\"\n")),
        "revocation.redis_urls"
    );
    assert_eq!(
        key_of(&format!("default_scopes = [\"x\"]\n{m}")),
        "default_scopes"
    );
    assert_eq!(key_of(&format!("code_ttl_secs = 1\n{m}")), "code_ttl_secs");
    let gh = "[[providers]]\nkind = \"github\"\nclient_id = \"id\"\nclient_secret = \"s\"\n";
    assert_eq!(key_of(&format!("{m}{gh}")), "allow_list");
    let gh_nosecret = "[[providers]]\nkind = \"github\"\nclient_id = \"id\"\n";
    assert_eq!(
        key_of(&format!("allow_list = [\"*\"]\n{m}{gh_nosecret}")),
        "providers[1].client_secret"
    );
    let oidc = "[[providers]]\nkind = \"oidc\"\nid = \"okta\"\nclient_id = \"id\"\n";
    assert_eq!(
        key_of(&format!("allow_list = [\"*\"]\n{m}{oidc}")),
        "providers[1].issuer"
    );
    assert_eq!(
        key_of(&m.replace("username = \"dev\"\n", "")),
        "providers[0].users[0].username"
    );
}

#[test]
fn redis_storage_feeds_revocation() {
    let t = format!(
        "{MINIMAL}[storage]\nkind = \"redis\"\nredis_urls = [\"redis://127.0.0.1:6379\"]\n"
    );
    let c = RawConfig::from_toml(&t).unwrap().validate().unwrap();
    assert_eq!(
        c.revocation,
        RevocationConfig::Redis {
            urls: vec!["redis://127.0.0.1:6379".into()],
            cluster: false,
        }
    );
    assert_eq!(
        provider_env("my-okta", "CLIENT_SECRET"),
        "MCPGW_ISSUER_PROVIDER_MY_OKTA_CLIENT_SECRET"
    );
}

#[test]
fn redis_cluster_flag_reaches_the_revocation_sink() {
    let t = format!(
        "{MINIMAL}[storage]\nkind = \"redis\"\nredis_urls = [\"redis://127.0.0.1:7000\"]\nredis_cluster = true\n"
    );
    let c = RawConfig::from_toml(&t).unwrap().validate().unwrap();
    assert_eq!(
        c.revocation,
        RevocationConfig::Redis {
            urls: vec!["redis://127.0.0.1:7000".into()],
            cluster: true,
        }
    );
}
