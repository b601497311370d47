//! The verifier: Envoy ext_authz gRPC + ForwardAuth HTTP decision service.
//! Configured by `MCPGW_VERIFIER_*` variables and/or the TOML file named by
//! `MCPGW_VERIFIER_CONFIG`; exits 64 on bad configuration.

use mcpgate::app::verifier::{spawn, VerifierDeps};
use mcpgate::config::verifier::{Env, VerifierConfig};
use std::process::ExitCode;

/// EX_USAGE: the configuration is invalid.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let config = match VerifierConfig::load(&Env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("verifier: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // One thread: the single-threaded runtime, which batches a connection's
    // responses into one write where the multi-threaded one flushes each
    // (see BENCHMARKS.md). worker_threads = 0: one thread when one CPU is
    // available (a CPU limit, taskset), otherwise one worker per CPU.
    // Tokio's own TOKIO_WORKER_THREADS forces its multi-threaded runtime.
    let forced_multi = std::env::var_os("TOKIO_WORKER_THREADS").is_some();
    let threads = match config.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut builder = if forced_multi {
        tokio::runtime::Builder::new_multi_thread()
    } else if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("verifier: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(config))
}

async fn run(config: VerifierConfig) -> ExitCode {
    let _guard = mcpgate::telemetry::init("mcpgate-verifier");
    let running = match spawn(config, VerifierDeps::default()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "verifier failed to start");
            return ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
