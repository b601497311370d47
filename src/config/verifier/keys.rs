//! The verifier's configuration keys: TOML name, environment variable,
//! documentation and default. The README's config reference is generated
//! from [`KEYS`]; a unit test fails when an env variable is undocumented.

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyDoc {
    /// Name in the TOML file.
    pub toml: &'static str,
    /// Environment variable overriding it (`None`: file only).
    pub env: Option<&'static str>,
    pub doc: &'static str,
    pub default: &'static str,
}

pub(crate) const ENV_CONFIG: &str = "MCPGW_VERIFIER_CONFIG";
pub(crate) const ENV_HTTP_ADDR: &str = "MCPGW_VERIFIER_HTTP_ADDR";
pub(crate) const ENV_GRPC_ADDR: &str = "MCPGW_VERIFIER_GRPC_ADDR";
pub(crate) const ENV_METRICS_ADDR: &str = "MCPGW_VERIFIER_METRICS_ADDR";
pub(crate) const ENV_ISSUERS: &str = "MCPGW_VERIFIER_ISSUERS";
pub(crate) const ENV_JWKS_URI: &str = "MCPGW_VERIFIER_JWKS_URI";
pub(crate) const ENV_RESOURCE: &str = "MCPGW_VERIFIER_RESOURCE";
pub(crate) const ENV_RESOURCE_NAME: &str = "MCPGW_VERIFIER_RESOURCE_NAME";
pub(crate) const ENV_AUTHORIZATION_SERVERS: &str = "MCPGW_VERIFIER_AUTHORIZATION_SERVERS";
pub(crate) const ENV_REQUIRED_SCOPES: &str = "MCPGW_VERIFIER_REQUIRED_SCOPES";
pub(crate) const ENV_SCOPES_SUPPORTED: &str = "MCPGW_VERIFIER_SCOPES_SUPPORTED";
pub(crate) const ENV_REDIS_URL: &str = "MCPGW_VERIFIER_REDIS_URL";
pub(crate) const ENV_REVOCATION_STALENESS_SECS: &str = "MCPGW_VERIFIER_REVOCATION_STALENESS_SECS";
pub(crate) const ENV_MAX_TOKEN_LIFETIME_SECS: &str = "MCPGW_VERIFIER_MAX_TOKEN_LIFETIME_SECS";
pub(crate) const ENV_LEEWAY_SECS: &str = "MCPGW_VERIFIER_LEEWAY_SECS";
pub(crate) const ENV_REQUIRE_AT_JWT_TYP: &str = "MCPGW_VERIFIER_REQUIRE_AT_JWT_TYP";
pub(crate) const ENV_ALLOW_PARENT_AUDIENCE: &str = "MCPGW_VERIFIER_ALLOW_PARENT_AUDIENCE";
pub(crate) const ENV_TRUSTED_PROXIES: &str = "MCPGW_VERIFIER_TRUSTED_PROXIES";
pub(crate) const ENV_FORWARD_AUTHORIZATION: &str = "MCPGW_VERIFIER_FORWARD_AUTHORIZATION";
pub(crate) const ENV_HEADER_USER_ID: &str = "MCPGW_VERIFIER_HEADER_USER_ID";
pub(crate) const ENV_HEADER_USER_NAME: &str = "MCPGW_VERIFIER_HEADER_USER_NAME";
pub(crate) const ENV_HEADER_USER_EMAIL: &str = "MCPGW_VERIFIER_HEADER_USER_EMAIL";
pub(crate) const ENV_HEADER_USER_SCOPES: &str = "MCPGW_VERIFIER_HEADER_USER_SCOPES";
pub(crate) const ENV_HEADER_CLIENT_ID: &str = "MCPGW_VERIFIER_HEADER_CLIENT_ID";
pub(crate) const ENV_JWKS_REFRESH_SECS: &str = "MCPGW_VERIFIER_JWKS_REFRESH_SECS";
pub(crate) const ENV_JWKS_MIN_REFETCH_SECS: &str = "MCPGW_VERIFIER_JWKS_MIN_REFETCH_SECS";
pub(crate) const ENV_JWKS_TIMEOUT_SECS: &str = "MCPGW_VERIFIER_JWKS_TIMEOUT_SECS";
pub(crate) const ENV_TOKEN_CACHE_CAPACITY: &str = "MCPGW_VERIFIER_TOKEN_CACHE_CAPACITY";
pub(crate) const ENV_WORKER_THREADS: &str = "MCPGW_VERIFIER_WORKER_THREADS";
pub(crate) const ENV_SHUTDOWN_GRACE_SECS: &str = "MCPGW_VERIFIER_SHUTDOWN_GRACE_SECS";
pub(crate) const ENV_LOG_ALLOW_SAMPLE: &str = "MCPGW_VERIFIER_LOG_ALLOW_SAMPLE";
pub(crate) const ENV_AUTHORIZATION_SERVER_METADATA: &str =
    "MCPGW_VERIFIER_AUTHORIZATION_SERVER_METADATA";

/// A numeric default, named once: validation uses the value, the README's
/// table ([`KEYS`]) its text.
macro_rules! default_number {
    ($(#[$m:meta])* $name:ident: $t:ty = $v:literal, $text:ident) => {
        $(#[$m])*
        pub const $name: $t = $v;
        const $text: &str = stringify!($v);
    };
}

pub(crate) const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8081";
pub(crate) const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:9191";
/// Default `metrics_addr`.
pub(crate) const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:8091";
/// Loopback, comma-separated.
pub(crate) const DEFAULT_TRUSTED_PROXIES: &str = "127.0.0.0/8,::1/128";
pub(crate) const DEFAULT_HEADER_USER_ID: &str = "X-User-Id";
pub(crate) const DEFAULT_HEADER_USER_NAME: &str = "X-User-Name";
pub(crate) const DEFAULT_HEADER_USER_EMAIL: &str = "X-User-Email";
pub(crate) const DEFAULT_HEADER_USER_SCOPES: &str = "X-User-Scopes";
pub(crate) const DEFAULT_HEADER_CLIENT_ID: &str = "X-Client-Id";
default_number!(DEFAULT_REVOCATION_STALENESS_SECS: u64 = 30, REVOCATION_STALENESS_TEXT);
default_number!(DEFAULT_MAX_TOKEN_LIFETIME_SECS: u64 = 86400, MAX_TOKEN_LIFETIME_TEXT);
default_number!(DEFAULT_LEEWAY_SECS: u64 = 60, LEEWAY_TEXT);
default_number!(DEFAULT_JWKS_REFRESH_SECS: u64 = 300, JWKS_REFRESH_TEXT);
default_number!(DEFAULT_JWKS_MIN_REFETCH_SECS: u64 = 10, JWKS_MIN_REFETCH_TEXT);
default_number!(DEFAULT_JWKS_TIMEOUT_SECS: u64 = 5, JWKS_TIMEOUT_TEXT);
default_number!(DEFAULT_TOKEN_CACHE_CAPACITY: u64 = 10000, TOKEN_CACHE_CAPACITY_TEXT);
default_number!(DEFAULT_WORKER_THREADS: usize = 0, WORKER_THREADS_TEXT);
default_number!(DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10, SHUTDOWN_GRACE_TEXT);

const fn k(
    toml: &'static str,
    env: &'static str,
    doc: &'static str,
    default: &'static str,
) -> KeyDoc {
    KeyDoc {
        toml,
        env: Some(env),
        doc,
        default,
    }
}

/// Every key, in README order.
pub(crate) const KEYS: &[KeyDoc] = &[
    KeyDoc { toml: "-", env: Some(ENV_CONFIG), doc: "Path of a TOML config file; environment variables override its values. Defaults to none (environment only).", default: "" },
    k("http_addr", ENV_HTTP_ADDR, "HTTP listen address (ForwardAuth `/auth`, protected-resource metadata, `/healthz`, `/readyz`). Defaults to 127.0.0.1:8081.", DEFAULT_HTTP_ADDR),
    k("grpc_addr", ENV_GRPC_ADDR, "gRPC listen address (Envoy ext_authz v3 and grpc.health.v1). Defaults to 127.0.0.1:9191.", DEFAULT_GRPC_ADDR),
    k("metrics_addr", ENV_METRICS_ADDR, "Listen address of Prometheus `/metrics`, which the proxy-facing `http_addr` does not serve: keep it on loopback or on a cluster-internal port no Ingress routes. Defaults to 127.0.0.1:8091 (127.0.0.1:0, a free port, when `http_addr` has port 0).", DEFAULT_METRICS_ADDR),
    k("issuers", ENV_ISSUERS, "Trusted token issuers (`iss`), comma-separated in the environment. Required. Defaults to none.", ""),
    k("jwks_uri", ENV_JWKS_URI, "JWKS URL, skipping discovery; only with a single issuer. Defaults to discovery (RFC 8414, then OpenID) from the issuer URL.", ""),
    k("resource", ENV_RESOURCE, "Single-resource shorthand: canonical resource URI (RFC 8707) of a catch-all route, e.g. https://mcp.example.com/mcp. Defaults to none (use [[routes]]).", ""),
    k("resource_name", ENV_RESOURCE_NAME, "Human-readable `resource_name` of the shorthand resource's metadata. Defaults to none.", ""),
    k("authorization_servers", ENV_AUTHORIZATION_SERVERS, "`authorization_servers` advertised in protected-resource metadata. Defaults to the issuers.", ""),
    k("authorization_server_metadata", ENV_AUTHORIZATION_SERVER_METADATA, "What the verifier answers at the resource origin's `/.well-known/oauth-authorization-server[/path]` and `/.well-known/openid-configuration` (clients of the 2025-03-26 MCP revision look there): `serve` (a copy of the authorization server's RFC 8414 / OpenID document, fetched and refreshed with the JWKS; a 307 redirect to it until the first fetch succeeds), `redirect` (307 to the authorization server's own URL) or `off` (404). Needs a single authorization server. Defaults to `serve` with a single authorization server, else `off`.", ""),
    k("required_scopes", ENV_REQUIRED_SCOPES, "Scopes every request to the shorthand resource needs (space or comma separated). Defaults to none.", ""),
    k("scopes_supported", ENV_SCOPES_SUPPORTED, "`scopes_supported` of the shorthand resource's metadata (`offline_access` is never listed). Defaults to the required scopes.", ""),
    k("redis_urls", ENV_REDIS_URL, "Redis URL(s) the revocation mirror subscribes to; several (comma list) mean Redis Cluster seeds. Defaults to none (no revocation source: in-process only).", ""),
    k("revocation_staleness_secs", ENV_REVOCATION_STALENESS_SECS, "How long the revocation mirror may be out of touch with Redis before routes fail closed and /readyz turns 503. Defaults to 30.", REVOCATION_STALENESS_TEXT),
    k("max_token_lifetime_secs", ENV_MAX_TOKEN_LIFETIME_SECS, "Longest access-token lifetime: tokens with a longer `exp - iat` are refused, and subject/client revocations are kept this long. Defaults to 86400.", MAX_TOKEN_LIFETIME_TEXT),
    k("leeway_secs", ENV_LEEWAY_SECS, "Clock-skew leeway for `exp`, `nbf` and `iat`. Defaults to 60.", LEEWAY_TEXT),
    k("require_at_jwt_typ", ENV_REQUIRE_AT_JWT_TYP, "Reject tokens whose `typ` header is not `at+jwt` (RFC 9068). Defaults to false (`JWT` or absent also accepted).", "false"),
    k("allow_parent_audience", ENV_ALLOW_PARENT_AUDIENCE, "Also accept a token whose `aud` is a parent of the route's resource at a path boundary. Defaults to false (exact match).", "false"),
    k("trusted_proxies", ENV_TRUSTED_PROXIES, "CIDRs whose X-Forwarded-* / X-Original-* headers are trusted on /auth. Defaults to 127.0.0.0/8,::1/128.", DEFAULT_TRUSTED_PROXIES),
    k("forward_authorization", ENV_FORWARD_AUTHORIZATION, "Pass the client's Authorization header upstream (MCP forbids token passthrough). Defaults to false (removed).", "false"),
    k("header_user_id", ENV_HEADER_USER_ID, "Upstream header carrying `sub`. Defaults to X-User-Id.", DEFAULT_HEADER_USER_ID),
    k("header_user_name", ENV_HEADER_USER_NAME, "Upstream header carrying `username` (else `name`). Defaults to X-User-Name.", DEFAULT_HEADER_USER_NAME),
    k("header_user_email", ENV_HEADER_USER_EMAIL, "Upstream header carrying `email`. Defaults to X-User-Email.", DEFAULT_HEADER_USER_EMAIL),
    k("header_user_scopes", ENV_HEADER_USER_SCOPES, "Upstream header carrying the granted scopes. Defaults to X-User-Scopes.", DEFAULT_HEADER_USER_SCOPES),
    k("header_client_id", ENV_HEADER_CLIENT_ID, "Upstream header carrying `client_id`. Defaults to X-Client-Id.", DEFAULT_HEADER_CLIENT_ID),
    k("jwks_refresh_secs", ENV_JWKS_REFRESH_SECS, "Period of the background JWKS refresh. Defaults to 300.", JWKS_REFRESH_TEXT),
    k("jwks_min_refetch_secs", ENV_JWKS_MIN_REFETCH_SECS, "Least time between two JWKS fetches per issuer triggered by an unknown kid. Defaults to 10.", JWKS_MIN_REFETCH_TEXT),
    k("jwks_timeout_secs", ENV_JWKS_TIMEOUT_SECS, "Time limit of one JWKS or discovery fetch. Defaults to 5.", JWKS_TIMEOUT_TEXT),
    k("token_cache_capacity", ENV_TOKEN_CACHE_CAPACITY, "Verified tokens kept in the cache (0 turns the cache off: every request verifies the signature). Memory: about 200 bytes per cached token when tokens share a user and client (their identity is stored once), up to about 1 KB when every token has its own subject; 10,000 tokens take 2–10 MB. Defaults to 10000.", TOKEN_CACHE_CAPACITY_TEXT),
    k("worker_threads", ENV_WORKER_THREADS, "Serving threads, each a single-threaded runtime with its own listeners on the same addresses (SO_REUSEPORT; the kernel spreads connections over them). 0 = one per available CPU (1 under a CPU limit of 1). Setting TOKIO_WORKER_THREADS instead serves everything on Tokio's multi-threaded runtime. Defaults to 0.", WORKER_THREADS_TEXT),
    k("shutdown_grace_secs", ENV_SHUTDOWN_GRACE_SECS, "On SIGTERM or Ctrl-C the verifier stops accepting connections at once and lets the Checks and requests in flight finish for up to this long, then exits (keep the pod's terminationGracePeriodSeconds above it). Defaults to 10.", SHUTDOWN_GRACE_TEXT),
    k("log_allow_sample", ENV_LOG_ALLOW_SAMPLE, "Share (0.0–1.0) of allowed requests whose decision line (log target `mcpgate::decision`) is written at info; the others are at debug. Denials are always logged at info. Defaults to 0.", "0"),
    KeyDoc { toml: "issuer_claims", env: None, doc: "How another authorization server's tokens carry their claims (file only): list of {issuer, require_jti (default true; without `jti` a token is revocable only by subject/client watermark), scope_claims (default [\"scope\"]; each a space-separated string or an array, e.g. [\"scp\"]), client_id_claims (default [\"client_id\"], e.g. [\"azp\", \"appid\"]), user_id_claim (default `sub`), name_claims (default [\"username\", \"name\"]), email_claim (default `email`), role_claims (default [\"roles\", \"groups\"] when role_scopes is set), role_scopes = {role = [scopes]}}. Defaults to mcpgate's own claims for every issuer.", default: "" },
    KeyDoc { toml: "routes", env: None, doc: "Per-route policy (file only): list of {host, path_prefix, resource, resource_name, required_scopes, scopes_supported, public, fail_open_on_stale_revocation, tool_scopes = [{method, name, scopes}]}. Defaults to one catch-all route for `resource`.", default: "" },
];

/// The config reference as a Markdown table (for the README).
pub fn markdown_reference() -> String {
    let mut out =
        String::from("| Environment | TOML key | Default | Description |\n|---|---|---|---|\n");
    for k in KEYS {
        let default = if k.default.is_empty() {
            "—"
        } else {
            k.default
        };
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            k.env.unwrap_or("—"),
            k.toml,
            default,
            k.doc.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_env_const_is_documented() {
        let src = include_str!("keys.rs");
        let mut n = 0;
        for (i, _) in src.match_indices("\"MCPGW_VERIFIER_") {
            let rest = &src[i + 1..];
            let name = &rest[..rest.find('"').unwrap()];
            if name == "MCPGW_VERIFIER_" {
                continue; // this test's own needle
            }
            n += 1;
            let key = KEYS.iter().find(|k| k.env == Some(name));
            let key = key.unwrap_or_else(|| panic!("{name} is not in KEYS"));
            assert!(
                key.doc.contains("Defaults to"),
                "{name} doc lacks a default"
            );
        }
        assert!(n >= 20);
        let md = markdown_reference();
        assert!(KEYS.iter().all(|k| md.contains(k.toml)));
    }

    /// The prose default agrees with the table's (and so with validation,
    /// which reads the same `DEFAULT_*` constants).
    #[test]
    fn doc_defaults_match_the_default_column() {
        for k in KEYS.iter().filter(|k| !k.default.is_empty()) {
            assert!(
                k.doc.contains(&format!("Defaults to {}", k.default)),
                "{}: doc says otherwise than its default {}",
                k.toml,
                k.default
            );
        }
    }
}
