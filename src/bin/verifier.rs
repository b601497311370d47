//! The verifier: Envoy ext_authz gRPC + ForwardAuth HTTP decision service.
//! Configured by `MCPGW_VERIFIER_*` variables and/or the TOML file named by
//! `MCPGW_VERIFIER_CONFIG`; exits 64 on bad configuration.

use mcpgate::app::verifier::{build, VerifierApp, VerifierDeps};
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
    // The state (routes, keys, caches) is built on this thread and the
    // requests are served on another. glibc gives each thread an arena of
    // its own, and building thousands of routes leaves this one's heap in
    // small free pieces that every request's short-lived allocations would
    // otherwise search and merge (at 10,000 routes a fifth of the Check/s
    // went to glibc's `unlink_chunk` and `malloc_consolidate`; see
    // BENCHMARKS.md, "Routes").
    let (guard, app) = {
        let _in = rt.enter();
        let guard = mcpgate::telemetry::init("mcpgate-verifier");
        (guard, build(config, VerifierDeps::default()))
    };
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "verifier failed to start");
            return ExitCode::FAILURE;
        }
    };
    let threads = if multi { 1 } else { threads };
    let serving = std::thread::Builder::new()
        .name("verifier-serve".into())
        .spawn(move || rt.block_on(serve(app, threads)));
    let code = match serving {
        // The serving thread returns its exit code; it does not panic.
        Ok(t) => t.join().unwrap_or(ExitCode::FAILURE),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the serving thread");
            ExitCode::FAILURE
        }
    };
    drop(guard);
    code
}

async fn serve(app: VerifierApp, threads: usize) -> ExitCode {
    let running = match app.serve_on(threads).await {
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
