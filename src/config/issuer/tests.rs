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
    assert!(c.issuer_from_listener);
    assert_eq!(c.settings.issuer, "http://127.0.0.1:8080");
    let s = &c.settings;
    assert_eq!(s.scopes, crate::domain::claims::Scopes::parse("mcp:tools"));
    assert_eq!(s.access_ttl.as_secs(), 3600);
    assert_eq!(s.refresh_ttl.as_secs(), 30 * 86400);
    assert_eq!(s.code_ttl.as_secs(), 60);
    assert_eq!(s.pending_ttl.as_secs(), 600);
    assert!(matches!(c.storage, StoreBackend::Embedded { .. }));
    assert_eq!(c.revocation, RevocationConfig::Local);
    assert_eq!(c.signing.alg, SigningAlg::RS256);
    assert!(s.registration.enabled && s.registration.rate_limit == 20);
    assert!(s.cimd.enabled && !c.cimd_allow_private_addresses);
    assert_eq!(s.cimd.min_cache.as_secs(), 30);
    assert!(s.admin_token.is_none());
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
