//! `mcpgate dev`: an issuer and a verifier in one process, for a laptop.
//! Loopback only; embedded store in `--data-dir` (memory without it); one
//! static user whose password is generated and printed unless given; an
//! admin token generated and printed; revocations shared in-process
//! ([`crate::infra::revocation::LocalRevocations`]) so they apply at once.

use super::args::DevArgs;
use super::Error;

/// Runs until Ctrl-C / SIGTERM.
#[cfg(all(feature = "verifier", feature = "issuer"))]
pub(crate) async fn run(a: &DevArgs) -> Result<(), Error> {
    imp::run(a).await
}

/// This build has no servers to run.
#[cfg(not(all(feature = "verifier", feature = "issuer")))]
pub async fn run(_a: &DevArgs) -> Result<(), Error> {
    Err(Error::Dev(
        "this mcpgate was built without the `verifier` and `issuer` features".into(),
    ))
}

#[cfg(all(feature = "verifier", feature = "issuer"))]
mod imp {
    use super::{DevArgs, Error};
    use crate::app::{issuer, verifier};
    use crate::config::issuer::dev::{dev_default, DevOptions, DEV_SCOPES};
    use crate::config::verifier::RawConfig as VerifierRaw;
    use crate::domain::clock::SystemClock;
    use crate::domain::secret::AdminToken;
    use crate::infra::revocation::LocalRevocations;
    use std::sync::Arc;
    use std::time::Duration;

    /// Longest access-token lifetime the shared revocation set must cover.
    const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

    fn dev(e: impl std::fmt::Display) -> Error {
        Error::Dev(e.to_string())
    }

    pub(super) async fn run(a: &DevArgs) -> Result<(), Error> {
        for (flag, addr) in [
            ("--http", a.http),
            ("--verifier-http", a.verifier_http),
            ("--verifier-grpc", a.verifier_grpc),
        ] {
            if !addr.ip().is_loopback() {
                return Err(Error::Config(format!(
                    "{flag} {addr}: dev mode listens on loopback only"
                )));
            }
        }
        let _telemetry = crate::telemetry::init("mcpgate-dev");
        let resource = match (&a.resource, a.verifier_http.port()) {
            (Some(r), _) => r.clone(),
            (None, 0) => {
                return Err(Error::Config(
                    "--verifier-http with port 0 needs an explicit --resource".into(),
                ))
            }
            (None, _) => format!("http://{}/mcp", a.verifier_http),
        };
        let generated = a.password.is_none();
        let mut d = dev_default(DevOptions {
            data_dir: a.data_dir.clone(),
            listen: a.http,
            resource: resource.clone(),
            username: a.user.clone(),
            password: a.password.clone(),
            access_token_ttl_secs: a.access_token_ttl,
            ..DevOptions::default()
        })
        .map_err(|e| Error::Config(e.to_string()))?;
        if let Some(dir) = &a.data_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Config(format!("--data-dir {}: {e}", dir.display())))?;
        }
        let admin = crate::domain::secret::random_b64(32).map_err(dev)?;
        d.config.settings.admin_token = Some(AdminToken::new(admin.clone()));

        let revocations = LocalRevocations::new(Arc::new(SystemClock), MAX_TOKEN_LIFETIME);
        let iss = issuer::spawn(
            d.config,
            issuer::IssuerDeps {
                revocations: Some(Arc::new(revocations.clone())),
                ..Default::default()
            },
        )
        .await
        .map_err(dev)?;
        let mut raw = match &a.verifier_config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!("--verifier-config {}: {e}", path.display()))
                })?;
                VerifierRaw::from_toml(&text).map_err(|e| {
                    Error::Config(format!("--verifier-config {}: {e}", path.display()))
                })?
            }
            None => VerifierRaw::default(),
        };
        raw.http_addr = Some(a.verifier_http.to_string());
        raw.grpc_addr = Some(a.verifier_grpc.to_string());
        raw.issuers = Some(vec![iss.issuer.clone()]);
        raw.authorization_servers = None;
        if raw.routes.as_ref().is_none_or(|r| r.is_empty()) && raw.resource.is_none() {
            raw.resource = Some(resource.clone());
            raw.resource_name = Some("mcpgate dev".into());
            raw.scopes_supported = Some(DEV_SCOPES.iter().map(|s| s.to_string()).collect());
        }
        let vcfg = match raw.validate() {
            Ok(c) if !c.metrics_addr.ip().is_loopback() => {
                iss.shutdown().await;
                return Err(Error::Config(format!(
                    "--verifier-config metrics_addr {}: dev mode listens on loopback only",
                    c.metrics_addr
                )));
            }
            Ok(c) => c,
            Err(e) => {
                iss.shutdown().await;
                return Err(Error::Config(e.to_string()));
            }
        };
        let ver = match verifier::spawn(
            vcfg,
            verifier::VerifierDeps {
                revocations: Some(Arc::new(revocations)),
                ..Default::default()
            },
        )
        .await
        {
            Ok(v) => v,
            Err(e) => {
                iss.shutdown().await;
                return Err(dev(e));
            }
        };
        let store = match &a.data_dir {
            Some(dir) => format!("embedded, {}", dir.join("issuer.redb").display()),
            None => "memory (lost on exit; use --data-dir to keep it)".into(),
        };
        let pw_note = if generated {
            " (generated; set --password or MCPGATE_DEV_PASSWORD to choose one)"
        } else {
            ""
        };
        eprintln!(
            "mcpgate dev is running (Ctrl-C to stop)\n\
             \x20 issuer:      {}\n\
             \x20 verifier:    http://{} (ForwardAuth /auth, metadata /.well-known/oauth-protected-resource), gRPC ext_authz {}\n\
             \x20 resource:    {resource}  (the token audience: the URL clients use, i.e. your proxy's MCP URL; the verifier decides, it does not proxy)\n\
             \x20 storage:     {store}\n\
             \x20 user:        {}\n\
             \x20 password:    {}{pw_note}\n\
             \x20 admin token: {admin}\n\
             \x20 admin API:   http://{admin_addr}/admin (mcpgate admin --admin-url http://{admin_addr} ...)\n\
             \x20 metrics:     http://{admin_addr}/metrics (issuer), http://{metrics_addr}/metrics (verifier)\n\
             Log in with:  mcpgate --issuer {} login --resource {resource}",
            iss.issuer,
            ver.http_addr,
            ver.grpc_addr,
            d.username,
            d.password,
            iss.issuer,
            admin_addr = iss.admin_addr,
            metrics_addr = ver.metrics_addr,
        );
        crate::app::shutdown_signal().await;
        ver.shutdown().await;
        iss.shutdown().await;
        Ok(())
    }
}
