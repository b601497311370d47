//! The verifier: Envoy ext_authz gRPC + ForwardAuth HTTP decision service.
//! Configured by `MCPGW_VERIFIER_*` variables and/or the TOML file named by
//! `MCPGW_VERIFIER_CONFIG`; exits 64 on bad configuration.

use mcpgate::app::verifier::{build, VerifierDeps};
use mcpgate::app::{shutdown_signal, EXIT_CONFIG};
use mcpgate::config::verifier::{Env, VerifierConfig};
use std::process::ExitCode;

const USAGE: &str = "\
usage: verifier [--help | --version]

The mcpgate verifier: Envoy ext_authz (gRPC) and ForwardAuth (HTTP) decisions
on OAuth 2.1 access tokens for MCP servers.

Configured by MCPGW_VERIFIER_* environment variables and/or the TOML file
named by MCPGW_VERIFIER_CONFIG (the environment wins); every key is in the
README's \"Verifier configuration\". An unknown MCPGW_VERIFIER_* variable or
a bad value stops the start with exit code 64.
";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("--help" | "-h") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") => {
            println!("verifier {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("verifier: unknown argument `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let config = match VerifierConfig::load(&Env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("verifier: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Each serving thread runs a single-threaded runtime, which batches a
    // connection's responses into one write where tokio's multi-threaded
    // runtime flushes each (see BENCHMARKS.md). worker_threads = 0: one
    // thread per available CPU (1 under a CPU limit of 1 or taskset).
    // Tokio's own TOKIO_WORKER_THREADS selects its multi-threaded runtime
    // instead, with every connection on it.
    let multi = std::env::var_os("TOKIO_WORKER_THREADS").is_some();
    let threads = match config.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut builder = if multi {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("verifier: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(config, if multi { 1 } else { threads }))
}

async fn run(config: VerifierConfig, threads: usize) -> ExitCode {
    let _guard = mcpgate::telemetry::init("mcpgate-verifier");
    let started = match build(config, VerifierDeps::default()) {
        Ok(app) => app.serve_on(threads).await,
        Err(e) => Err(e),
    };
    let running = match started {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "verifier failed to start");
            return ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    tracing::info!("shutting down: refusing new connections, draining the requests in flight");
    running.shutdown().await;
    ExitCode::SUCCESS
}
