//! The issuer: an MCP-compliant OAuth 2.1 authorization server. Configured
//! by the TOML file named by `--config <path>` or `MCPGW_ISSUER_CONFIG`,
//! with `MCPGW_ISSUER_*` overrides; exits 64 on bad configuration.

use mcpgate::app::issuer::{spawn, IssuerDeps};
use mcpgate::config::issuer::{Env, IssuerConfig, RawConfig};
use std::process::ExitCode;

/// EX_USAGE: the configuration is invalid.
const EXIT_CONFIG: u8 = 64;

fn config_path() -> Result<Option<String>, String> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => path = Some(args.next().ok_or("--config needs a path")?),
            s if s.starts_with("--config=") => path = Some(s["--config=".len()..].to_owned()),
            "--help" | "-h" => return Err("usage: issuer [--config <file.toml>]".into()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(path)
}

fn load() -> Result<IssuerConfig, String> {
    let path = config_path()?;
    let raw = RawConfig::load(path.as_deref(), &Env).map_err(|e| e.to_string())?;
    raw.validate().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let config = match load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("issuer: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("issuer: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(config))
}

async fn run(config: IssuerConfig) -> ExitCode {
    let _guard = mcpgate::telemetry::init("mcpgate-issuer");
    let running = match spawn(config, IssuerDeps::default()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "issuer failed to start");
            return ExitCode::FAILURE;
        }
    };
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}
