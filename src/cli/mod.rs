//! The `mcpgate` client and operator CLI: dynamic registration, the OAuth
//! 2.1 authorization code + PKCE login over a loopback redirect, a token
//! store, revocation, the issuer's admin API and the all-in-one dev mode.
//!
//! `src/bin/mcpgate.rs` parses [`args::Cli`] and calls [`run`]; every
//! failure is one [`Error`] with an exit code ([`Error::exit_code`]).

pub(crate) mod admin;
pub mod args;
pub(crate) mod client;
pub(crate) mod commands;
pub(crate) mod dev;
pub(crate) mod discover;
pub(crate) mod hash;
pub(crate) mod login;
pub(crate) mod loopback;
pub(crate) mod oauth;
pub(crate) mod pkce;
pub(crate) mod store;

use args::{Cli, Command};
use std::path::PathBuf;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failed operation.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad configuration (sysexits `EX_USAGE`, as the servers).
pub use crate::app::EXIT_CONFIG;

/// Everything that can go wrong at the CLI boundary. Messages never
/// contain a token or secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration: issuer URL, token file location, admin token.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The request did not get an HTTP answer.
    #[error("cannot reach {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The issuer answered with an OAuth error (RFC 6749 §5.2).
    #[error("{endpoint} refused the request (HTTP {status}): {error}{}", describe(.description))]
    OAuth {
        endpoint: String,
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// The issuer answered something that is not what the protocol says.
    #[error("unexpected answer from {url}: {msg}")]
    Protocol { url: String, msg: String },
    /// The authorization step failed or was refused.
    #[error("login failed: {0}")]
    Login(String),
    /// Nothing stored for this issuer / resource.
    #[error("not logged in to {issuer}{}; run `mcpgate login`", for_resource(.resource))]
    NotLoggedIn {
        issuer: String,
        resource: Option<String>,
    },
    /// Reading or writing the token file.
    #[error("token file {}: {msg}", .path.display())]
    Store { path: PathBuf, msg: String },
    /// The in-process servers of `mcpgate dev`.
    #[error("dev mode: {0}")]
    Dev(String),
}

fn describe(d: &Option<String>) -> String {
    d.as_deref()
        .map(|d| format!(": {}", sanitize(d)))
        .unwrap_or_default()
}

fn for_resource(r: &Option<String>) -> String {
    r.as_deref()
        .map(|r| format!(" for {}", sanitize(r)))
        .unwrap_or_default()
}

/// Replaces control characters (terminal escapes) in text that came from
/// the network before it is shown.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

// === impl Error ===

impl Error {
    /// The process exit code: [`EXIT_CONFIG`] for configuration, else
    /// [`EXIT_FAILURE`].
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => EXIT_CONFIG,
            _ => EXIT_FAILURE,
        }
    }

    pub(crate) fn protocol(url: &str, msg: impl Into<String>) -> Self {
        Error::Protocol {
            url: url.to_owned(),
            msg: msg.into(),
        }
    }
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<(), Error> {
    if let Command::Login(a) = &cli.command {
        if let Some(server) = &a.server {
            let d = discover::discover(server).await?;
            eprintln!(
                "{server}: resource {}, authorization server {}",
                d.resource, d.issuer
            );
            let ctx = commands::Context::with_issuer(&cli, &d.issuer)?;
            let a = args::LoginArgs {
                server: None,
                resource: a.resource.clone().or(Some(d.resource)),
                scope: a.scope.clone().or(d.scope),
                no_browser: a.no_browser,
                port: a.port,
                initial_access_token: a.initial_access_token.clone(),
            };
            return login::login(&ctx, &a).await;
        }
    }
    let ctx = commands::Context::new(&cli)?;
    match cli.command {
        Command::Register(a) => commands::register(&ctx, &a).await,
        Command::Login(a) => login::login(&ctx, &a).await,
        Command::Token(a) => commands::token(&ctx, &a).await,
        Command::Revoke(a) => commands::revoke(&ctx, &a).await,
        Command::Whoami(a) => commands::whoami(&ctx, &a),
        Command::Admin(a) => admin::run(&ctx, &a).await,
        Command::Client(a) => client::run(&ctx, &a).await,
        Command::Dev(a) => dev::run(&a).await,
        Command::HashPassword => hash::run(std::io::stdin().lock(), &mut std::io::stdout()),
    }
}
