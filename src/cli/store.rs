//! The token file: JSON keyed by issuer URL, then by resource. Written
//! atomically (temp file with mode 0600 in the same directory, fsync,
//! rename, fsync of the directory); the directory is created 0700.
//! Writers serialize through a lock file next to it.

use super::Error;
use crate::domain::secret::{BearerToken, ClientSecret, RefreshToken, RegistrationToken};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The current file format.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// The key of tokens obtained without a `resource`.
pub(crate) const DEFAULT_RESOURCE_KEY: &str = "default";
/// A lock file older than this is left over from a killed process.
const STALE_LOCK: Duration = Duration::from_secs(60);
/// How long to wait for another process's lock.
const LOCK_WAIT: Duration = Duration::from_secs(15);

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenFile {
    pub version: u32,
    #[serde(default)]
    pub issuers: BTreeMap<String, IssuerEntry>,
}

/// What is saved for one issuer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct IssuerEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<SavedClient>,
    /// Tokens by resource ([`DEFAULT_RESOURCE_KEY`] without one).
    #[serde(default)]
    pub tokens: BTreeMap<String, SavedTokens>,
    /// The resource key of the last login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resource: Option<String>,
}

/// A registered client (RFC 7591 §3.2.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedClient {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<RegistrationToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_client_uri: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
}

/// Tokens from one token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedTokens {
    pub access_token: BearerToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    /// Unix seconds; from `expires_in`, else the JWT's `exp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The RFC 8707 resource they were asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The client they were issued to.
    pub client_id: String,
}

/// The token file's location.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    path: PathBuf,
}

/// Held while a process reads, modifies and writes the file.
#[derive(Debug)]
pub(crate) struct LockGuard {
    path: PathBuf,
}

/// The default location: `$XDG_CONFIG_HOME/mcpgate/tokens.json`, else
/// `$HOME/.config/mcpgate/tokens.json`.
pub(crate) fn default_path(env: impl Fn(&str) -> Option<String>) -> Result<PathBuf, Error> {
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
    let base = match nonempty("XDG_CONFIG_HOME") {
        Some(x) => PathBuf::from(x),
        None => match nonempty("HOME") {
            Some(h) => Path::new(&h).join(".config"),
            None => {
                return Err(Error::Config(
                    "neither XDG_CONFIG_HOME nor HOME is set; pass --store".into(),
                ))
            }
        },
    };
    Ok(base.join("mcpgate").join("tokens.json"))
}

/// The key of a resource in [`IssuerEntry::tokens`].
pub(crate) fn resource_key(resource: Option<&str>) -> String {
    resource.unwrap_or(DEFAULT_RESOURCE_KEY).to_owned()
}

// === impl IssuerEntry ===

impl IssuerEntry {
    /// The key for `resource`, or the last login's, or the only one.
    pub(crate) fn pick_key(&self, resource: Option<&str>) -> Option<String> {
        if let Some(r) = resource {
            return Some(resource_key(Some(r)));
        }
        if let Some(k) = self
            .last_resource
            .as_ref()
            .filter(|k| self.tokens.contains_key(*k))
        {
            return Some(k.clone());
        }
        let mut keys = self.tokens.keys();
        match (keys.next(), keys.next()) {
            (Some(k), None) => Some(k.clone()),
            _ => None,
        }
    }
}

// === impl Store ===

impl Store {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::Store {
            path: self.path.clone(),
            msg: msg.to_string(),
        }
    }

    /// Reads the file; a missing file is an empty one.
    pub(crate) fn load(&self) -> Result<TokenFile, Error> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TokenFile {
                    version: FORMAT_VERSION,
                    ..Default::default()
                })
            }
            Err(e) => return Err(self.err(e)),
        };
        self.warn_if_readable_by_others();
        let f: TokenFile = serde_json::from_slice(&bytes)
            .map_err(|e| self.err(format!("not a token file ({e})")))?;
        if f.version != FORMAT_VERSION {
            return Err(self.err(format!("unsupported format version {}", f.version)));
        }
        Ok(f)
    }

    #[cfg(unix)]
    fn warn_if_readable_by_others(&self) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = fs::metadata(&self.path) {
            if m.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "warning: {} is accessible by other users; it will be rewritten with mode 0600",
                    self.path.display()
                );
            }
        }
    }

    #[cfg(not(unix))]
    fn warn_if_readable_by_others(&self) {}

    fn dir(&self) -> Result<&Path, Error> {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => Ok(p),
            Some(_) => Ok(Path::new(".")),
            None => Err(self.err("has no parent directory")),
        }
    }

    fn ensure_dir(&self) -> Result<(), Error> {
        let dir = self.dir()?;
        if dir.is_dir() {
            return Ok(());
        }
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(|e| self.err(e))
    }

    /// Writes the file atomically with mode 0600.
    pub(crate) fn save(&self, f: &TokenFile) -> Result<(), Error> {
        self.ensure_dir()?;
        let dir = self.dir()?;
        let name = self
            .path
            .file_name()
            .ok_or_else(|| self.err("has no file name"))?
            .to_string_lossy();
        let tmp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        let body = serde_json::to_vec_pretty(f).map_err(|e| self.err(e))?;
        let written = (|| {
            let mut o = OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            let mut file = o.open(&tmp)?;
            file.write_all(&body)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            // Make the rename durable.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok::<(), std::io::Error>(())
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(self.err(e));
        }
        Ok(())
    }

    /// Takes the writers' lock (`<file>.lock`), waiting for other
    /// processes; a lock older than a minute is considered abandoned.
    pub(crate) async fn lock(&self) -> Result<LockGuard, Error> {
        self.ensure_dir()?;
        let mut lock = self.path.clone().into_os_string();
        lock.push(".lock");
        let lock = PathBuf::from(lock);
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let mut o = OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            match o.open(&lock) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(LockGuard { path: lock });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_LOCK);
                    if stale {
                        let _ = fs::remove_file(&lock);
                        continue;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(self.err(format!(
                            "locked by another mcpgate process (remove {} if none is running)",
                            lock.display()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }
}

// === impl LockGuard ===

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> TokenFile {
        let mut f = TokenFile {
            version: FORMAT_VERSION,
            ..Default::default()
        };
        let mut e = IssuerEntry::default();
        e.tokens.insert(
            "https://mcp.example/mcp".into(),
            SavedTokens {
                access_token: BearerToken::new("at"),
                refresh_token: Some(RefreshToken::new("rt")),
                expires_at: Some(10),
                scope: None,
                resource: Some("https://mcp.example/mcp".into()),
                client_id: "c".into(),
            },
        );
        f.issuers.insert("https://as.example".into(), e);
        f
    }

    #[test]
    fn saves_with_private_modes_and_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cfg/mcpgate/tokens.json");
        let s = Store::new(path.clone());
        assert!(s.load().unwrap().issuers.is_empty());
        s.save(&sample()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let back = s.load().unwrap();
        let e = &back.issuers["https://as.example"];
        assert_eq!(e.tokens.len(), 1);
        assert_eq!(e.pick_key(None).as_deref(), Some("https://mcp.example/mcp"));
        // A looser existing file is replaced by a 0600 one.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        s.save(&back).unwrap();
        assert_eq!(mode(&path), 0o600);
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|d| d.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("tokens.json")]);
    }

    #[test]
    fn rejects_garbage_and_unknown_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("tokens.json");
        fs::write(&path, "{not json").unwrap();
        let s = Store::new(path.clone());
        assert!(matches!(s.load(), Err(Error::Store { .. })));
        fs::write(&path, r#"{"version": 99, "issuers": {}}"#).unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("version 99"), "{e}");
    }

    #[test]
    fn default_path_prefers_xdg() {
        let env = |k: &str| match k {
            "XDG_CONFIG_HOME" => Some("/x".to_owned()),
            "HOME" => Some("/home/u".to_owned()),
            _ => None,
        };
        assert_eq!(
            default_path(env).unwrap(),
            PathBuf::from("/x/mcpgate/tokens.json")
        );
        let env = |k: &str| (k == "HOME").then(|| "/home/u".to_owned());
        assert_eq!(
            default_path(env).unwrap(),
            PathBuf::from("/home/u/.config/mcpgate/tokens.json")
        );
        assert!(matches!(default_path(|_| None), Err(Error::Config(_))));
    }

    #[tokio::test]
    async fn lock_is_exclusive_and_released() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::new(tmp.path().join("tokens.json"));
        let g = s.lock().await.unwrap();
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.lock().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiter.is_finished());
        drop(g);
        waiter.await.unwrap().unwrap();
    }

    #[test]
    fn debug_does_not_show_secrets() {
        let d = format!("{:?}", sample());
        assert!(!d.contains("\"at\"") && !d.contains("\"rt\""), "{d}");
    }
}
