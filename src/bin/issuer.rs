//! The issuer: an MCP-compliant OAuth 2.1 authorization server. Configured
//! by the TOML file named by `--config <path>` or `MCPGW_ISSUER_CONFIG`,
//! with `MCPGW_ISSUER_*` overrides; exits 64 on bad configuration.

use mcpgate::app::issuer::{spawn, IssuerDeps};
use mcpgate::app::{shutdown_signal, EXIT_CONFIG};
use mcpgate::config::issuer::{Env, IssuerConfig, RawConfig};
use std::process::ExitCode;

const USAGE: &str = "\
usage: issuer [--config <file.toml>] | --help | --version

The mcpgate issuer: an OAuth 2.1 authorization server for MCP (RFC 8414,
7591/7592, 7009, 7662, 9728 clients, PKCE S256, refresh rotation).

The TOML file comes from --config or MCPGW_ISSUER_CONFIG; MCPGW_ISSUER_*
variables override it (secrets belong there). Every key is in the README's
\"Issuer configuration\". An unknown MCPGW_ISSUER_* variable or a bad value
stops the start with exit code 64.
";

/// What the command line asks for.
enum Args {
    Run(Option<String>),
    Help,
    Version,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => path = Some(args.next().ok_or("--config needs a path")?),
            s if s.starts_with("--config=") => path = Some(s["--config=".len()..].to_owned()),
            "--help" | "-h" => return Ok(Args::Help),
            "--version" | "-V" => return Ok(Args::Version),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Args::Run(path))
}

fn load(path: Option<&str>) -> Result<IssuerConfig, String> {
    let raw = RawConfig::load(path, &Env).map_err(|e| e.to_string())?;
    raw.validate().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let path = match parse_args() {
        Ok(Args::Run(path)) => path,
        Ok(Args::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Args::Version) => {
            println!("issuer {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("issuer: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match load(path.as_deref()) {
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
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}
