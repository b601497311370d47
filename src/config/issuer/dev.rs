//! The all-in-one development configuration (`mcpgate dev`): issuer on
//! loopback, embedded store in a data directory, one static user, one
//! resource, open registration and CIMD, in-process revocation.

use super::validate::IssuerConfig;
use super::{RawCimd, RawConfig, RawProvider, RawResource, RawStorage, RawUser};
use crate::config::common::{bad, ConfigError};
use crate::issue::users::hash_password;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The dev mode's protected resource unless told otherwise.
pub(crate) const DEV_RESOURCE: &str = "http://127.0.0.1:8081/mcp";
/// The dev mode's scopes unless told otherwise.
pub(crate) const DEV_SCOPES: &[&str] = &["mcp:tools", "mcp:resources", "mcp:prompts"];
/// The dev user's name unless told otherwise.
pub(crate) const DEV_USERNAME: &str = "dev";

/// Knobs of the dev configuration.
#[derive(Debug, Clone)]
pub(crate) struct DevOptions {
    /// Directory for `issuer.redb`; `None` keeps everything in memory.
    pub(crate) data_dir: Option<PathBuf>,
    /// Defaults to 127.0.0.1:8080 (the issuer URL follows the bound address).
    pub listen: SocketAddr,
    pub resource: String,
    pub scopes: Vec<String>,
    pub username: String,
    /// `None` generates a random password (returned in [`DevConfig`]).
    pub password: Option<String>,
    /// Access-token lifetime; `None` = the issuer's default.
    pub(crate) access_token_ttl_secs: Option<u64>,
}

/// The dev configuration and the dev user's credentials (to print).
#[derive(Debug, Clone)]
pub(crate) struct DevConfig {
    pub config: IssuerConfig,
    pub username: String,
    pub password: String,
}

impl Default for DevOptions {
    fn default() -> Self {
        Self {
            data_dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            resource: DEV_RESOURCE.to_owned(),
            scopes: DEV_SCOPES.iter().map(|s| s.to_string()).collect(),
            username: DEV_USERNAME.to_owned(),
            password: None,
            access_token_ttl_secs: None,
        }
    }
}

/// Builds the dev configuration (hashes the password with argon2).
pub(crate) fn dev_default(o: DevOptions) -> Result<DevConfig, ConfigError> {
    if !o.listen.ip().is_loopback() {
        return Err(bad("listen", "dev mode listens on loopback only"));
    }
    let password = match o.password {
        Some(p) => p,
        None => {
            crate::domain::secret::random_b64(12).map_err(|_| bad("password", "rng failure"))?
        }
    };
    let hash = hash_password(&password).map_err(|e| bad("password", e))?;
    let storage = match &o.data_dir {
        Some(d) => RawStorage {
            kind: Some("embedded".into()),
            path: Some(d.join("issuer.redb").to_string_lossy().into_owned()),
            ..Default::default()
        },
        None => RawStorage {
            kind: Some("memory".into()),
            ..Default::default()
        },
    };
    let raw = RawConfig {
        listen: Some(o.listen.to_string()),
        resources: Some(vec![RawResource {
            resource: Some(o.resource),
            scopes: Some(o.scopes),
            ..Default::default()
        }]),
        storage: Some(storage),
        access_token_ttl_secs: o.access_token_ttl_secs,
        // Client metadata documents served from this machine (a client
        // under development) may be fetched: dev listens on loopback only.
        cimd: Some(RawCimd {
            allow_private_addresses: Some(true),
            ..Default::default()
        }),
        providers: Some(vec![RawProvider {
            kind: Some("static".into()),
            users: Some(vec![RawUser {
                username: Some(o.username.clone()),
                password_hash: Some(hash),
                email: Some(format!("{}@localhost", o.username)),
                name: Some("Developer".into()),
            }]),
            ..Default::default()
        }]),
        ..Default::default()
    };
    Ok(DevConfig {
        config: raw.validate()?,
        username: o.username,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::issuer::validate::StoreBackend;

    #[test]
    fn dev_config_is_valid() {
        let d = dev_default(DevOptions {
            data_dir: Some(PathBuf::from("/tmp/x")),
            password: Some("pw".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(d.password, "pw");
        assert!(d.config.issuer_from_listener);
        assert!(d.config.cimd_allow_private_addresses);
        assert_eq!(d.config.settings.resources[0].resource, DEV_RESOURCE);
        assert_eq!(
            d.config.storage,
            StoreBackend::Embedded {
                path: PathBuf::from("/tmp/x/issuer.redb")
            }
        );
        assert!(dev_default(DevOptions {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..Default::default()
        })
        .is_err());
    }
}
