//! `mcpgate`: the client and operator CLI (see `mcpgate --help`). Exit
//! codes: 0 ok, 1 failure, 2 usage, 64 bad configuration.

use clap::Parser;
use mcpgate::cli::{self, args::Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpgate: cannot start the runtime: {e}");
            return ExitCode::from(cli::EXIT_FAILURE);
        }
    };
    match rt.block_on(cli::run(args)) {
        Ok(()) => ExitCode::from(cli::EXIT_OK),
        Err(e) => {
            eprintln!("mcpgate: {}", error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

/// The error and its causes, `: `-joined (the sources carry the detail
/// of I/O and HTTP failures).
fn error_chain(e: &cli::Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
