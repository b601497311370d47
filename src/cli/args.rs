//! The command line (clap derive). Environment variable names are consts.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The issuer URL unless `--issuer` / [`ENV_ISSUER`] says otherwise.
pub(crate) const DEFAULT_ISSUER: &str = "http://127.0.0.1:8080";
pub(crate) const ENV_ISSUER: &str = "MCPGATE_ISSUER";
pub(crate) const ENV_TOKEN_FILE: &str = "MCPGATE_TOKEN_FILE";
pub(crate) const ENV_ADMIN_TOKEN: &str = "MCPGATE_ADMIN_TOKEN";
pub(crate) const ENV_ADMIN_URL: &str = "MCPGATE_ADMIN_URL";
/// The issuer's admin listener (`admin_listen`) unless `--admin-url` says otherwise.
pub(crate) const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:8090";
pub(crate) const ENV_INITIAL_ACCESS_TOKEN: &str = "MCPGATE_INITIAL_ACCESS_TOKEN";
pub(crate) const ENV_DEV_PASSWORD: &str = "MCPGATE_DEV_PASSWORD";

/// OAuth 2.1 client for MCP servers protected by mcpgate.
#[derive(Debug, Parser)]
#[command(name = "mcpgate", version, about, propagate_version = true)]
pub struct Cli {
    /// The authorization server (issuer identifier).
    #[arg(long, global = true, env = ENV_ISSUER, default_value = DEFAULT_ISSUER)]
    pub issuer: String,
    /// The token file. Defaults to $XDG_CONFIG_HOME/mcpgate/tokens.json,
    /// else ~/.config/mcpgate/tokens.json.
    #[arg(long, global = true, env = ENV_TOKEN_FILE)]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register a client with the issuer (RFC 7591) and save it.
    Register(RegisterArgs),
    /// Log in through the browser (authorization code + PKCE) and save the tokens.
    Login(LoginArgs),
    /// Print a valid access token (refreshing it when needed).
    Token(TokenArgs),
    /// Revoke the saved tokens at the issuer (RFC 7009) and forget them.
    Revoke(RevokeArgs),
    /// Show the saved access token's claims (decoded, NOT verified).
    Whoami(WhoamiArgs),
    /// Operator commands (the issuer's admin API).
    Admin(AdminArgs),
    /// Show, update or delete the client this CLI registered (RFC 7592).
    Client(ClientArgs),
    /// Run an issuer and a verifier in this process for local development.
    Dev(DevArgs),
    /// Read a password on stdin and print its Argon2id hash, for a static
    /// provider's `password_hash`.
    HashPassword,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The client name shown on the consent page.
    #[arg(long, default_value = "mcpgate CLI")]
    pub name: String,
    /// Redirect URIs (repeatable). Defaults to http://127.0.0.1/callback
    /// (any loopback port, RFC 8252 §7.3).
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// Space-separated scopes the client may ask for.
    #[arg(long)]
    pub scope: Option<String>,
    /// Register a confidential client (client_secret_basic) instead of a
    /// public one.
    #[arg(long)]
    pub confidential: bool,
    /// RFC 7591 initial access token, if the issuer requires one.
    #[arg(long, env = ENV_INITIAL_ACCESS_TOKEN, hide_env_values = true)]
    pub(crate) initial_access_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The MCP server's URL: its 401 and protected-resource metadata name
    /// the authorization server and the resource (instead of --issuer and
    /// --resource).
    pub server: Option<String>,
    /// The protected resource (RFC 8707), e.g. https://mcp.example.com/mcp.
    #[arg(long)]
    pub resource: Option<String>,
    /// Space-separated scopes to ask for.
    #[arg(long)]
    pub scope: Option<String>,
    /// Do not start a browser; only print the URL.
    #[arg(long)]
    pub(crate) no_browser: bool,
    /// Loopback port for the redirect. Defaults to any free port.
    #[arg(long)]
    pub port: Option<u16>,
    /// RFC 7591 initial access token, if the issuer requires one.
    #[arg(long, env = ENV_INITIAL_ACCESS_TOKEN, hide_env_values = true)]
    pub(crate) initial_access_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Print the client's registration as the issuer has it.
    Show,
    /// Change the client's name or redirect URIs.
    Update {
        /// A new `client_name`.
        #[arg(long)]
        name: Option<String>,
        /// Replacement redirect URIs (repeat for several).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
    },
    /// Delete the client at the issuer (its tokens die with it) and forget it.
    Delete,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The resource whose token to print. Defaults to the last login's.
    #[arg(long)]
    pub resource: Option<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The resource whose tokens to revoke. Defaults to the last login's.
    #[arg(long, conflicts_with = "all")]
    pub resource: Option<String>,
    /// Revoke the tokens of every resource of this issuer.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    /// The resource whose token to show. Defaults to the last login's.
    #[arg(long)]
    pub resource: Option<String>,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The issuer's admin token (prefer the environment variable: command
    /// lines are visible to other users).
    #[arg(long, env = ENV_ADMIN_TOKEN, hide_env_values = true, global = true)]
    pub admin_token: Option<String>,
    /// The issuer's admin listener (its `admin_listen`, not the public
    /// issuer URL), e.g. through `kubectl port-forward`.
    #[arg(long, env = ENV_ADMIN_URL, default_value = DEFAULT_ADMIN_URL, global = true)]
    pub admin_url: String,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Registered clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Revoke every token of a user or of a client.
    Revoke(AdminRevokeArgs),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// List registered clients.
    List {
        /// Print the issuer's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a client (and revoke its tokens).
    Delete {
        /// The client_id.
        id: String,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct AdminRevokeArgs {
    /// The subject (`sub` claim) whose tokens to revoke.
    #[arg(long)]
    pub sub: Option<String>,
    /// The client whose tokens to revoke.
    #[arg(long = "client", value_name = "CLIENT_ID")]
    pub client: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Promote the next signing key and publish a new next key.
    Rotate,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Keep the issuer's data (keys, clients, tokens) in DIR/issuer.redb.
    /// Defaults to memory only.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The issuer's listen address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The verifier's ForwardAuth/PRM listen address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub(crate) verifier_http: SocketAddr,
    /// The verifier's ext_authz gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:9191")]
    pub(crate) verifier_grpc: SocketAddr,
    /// The protected resource. Defaults to http://<verifier-http>/mcp.
    #[arg(long)]
    pub resource: Option<String>,
    /// The dev user's name.
    #[arg(long, default_value = "dev")]
    pub user: String,
    /// The dev user's password. Defaults to a random one, printed at start.
    #[arg(long, env = ENV_DEV_PASSWORD, hide_env_values = true)]
    pub password: Option<String>,
    /// Access-token lifetime in seconds (at least 30; short ones exercise
    /// clients' refresh). Defaults to 3600.
    #[arg(long, value_name = "SECS")]
    pub(crate) access_token_ttl: Option<u64>,
    /// A verifier TOML file (routes, tool scopes, issuer_claims, ...); its
    /// listen addresses and issuers are replaced by dev's. Defaults to one
    /// route for --resource.
    #[arg(long, value_name = "FILE")]
    pub(crate) verifier_config: Option<PathBuf>,
}
