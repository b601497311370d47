//! Who may log in: the built-in static users (argon2 password hashes) and
//! the allow-list applied to upstream identities.

use crate::issue::upstream::UpstreamUser;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::collections::{HashMap, HashSet};

/// One configured local user.
#[derive(Debug, Clone)]
pub struct StaticUser {
    pub username: String,
    /// PHC-format argon2 hash (`$argon2id$v=19$...`).
    pub password_hash: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// The `static` provider: username + password against argon2 hashes.
#[derive(Debug, Clone)]
pub struct StaticUsers {
    /// Provider id (subjects are `<id>:<username>`).
    pub id: String,
    pub display_name: String,
    users: HashMap<String, StaticUser>,
    /// Verified against when the user is unknown, so timing does not tell.
    dummy_hash: String,
}

/// Which upstream identities may log in.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    any: bool,
    /// Lower-cased usernames or provider subjects (`github:583231`).
    names: HashSet<String>,
    /// Lower-cased verified emails.
    emails: HashSet<String>,
    /// Lower-cased email domains (entries `@example.com`).
    domains: HashSet<String>,
}

/// Hashes a password with argon2id (default parameters) and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| "rng failure".to_owned())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

// === impl StaticUsers ===

impl StaticUsers {
    /// Validates every hash up front, so a typo fails at startup.
    pub fn new(
        id: impl Into<String>,
        display_name: impl Into<String>,
        users: Vec<StaticUser>,
    ) -> Result<Self, String> {
        let mut map = HashMap::new();
        for u in users {
            PasswordHash::new(&u.password_hash)
                .map_err(|e| format!("user {}: bad password hash: {e}", u.username))?;
            if map.insert(u.username.clone(), u).is_some() {
                return Err("duplicate username".into());
            }
        }
        Ok(Self {
            id: id.into(),
            display_name: display_name.into(),
            users: map,
            dummy_hash: hash_password("not a real password")?,
        })
    }

    /// Checks a username and password (CPU-heavy: call from a blocking
    /// task). Unknown users cost the same as wrong passwords.
    pub fn verify(&self, username: &str, password: &str) -> Option<UpstreamUser> {
        let user = self.users.get(username);
        let hash = user.map_or(self.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let ok = PasswordHash::new(hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        let user = user.filter(|_| ok)?;
        Some(UpstreamUser {
            subject: format!("{}:{}", self.id, user.username),
            username: Some(user.username.clone()),
            email: user.email.clone(),
            // The operator configured the address.
            email_verified: user.email.is_some(),
            name: user.name.clone(),
        })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

// === impl AllowList ===

impl AllowList {
    /// Parses entries: `*` (everyone), `@example.com` (verified emails of a
    /// domain), `user@example.com` (a verified email), anything else a
    /// username or provider subject.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut a = Self::default();
        for e in entries {
            let e = e.trim().to_lowercase();
            if e.is_empty() {
                return Err("empty allow_list entry".into());
            }
            if e == "*" {
                a.any = true;
            } else if let Some(d) = e.strip_prefix('@').or_else(|| e.strip_prefix("*@")) {
                if d.is_empty() || d.contains('@') {
                    return Err(format!("bad domain entry: {e}"));
                }
                a.domains.insert(d.to_owned());
            } else if e.contains('@') {
                a.emails.insert(e);
            } else {
                a.names.insert(e);
            }
        }
        Ok(a)
    }

    /// Everyone.
    pub fn everyone() -> Self {
        Self {
            any: true,
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.any && self.names.is_empty() && self.emails.is_empty() && self.domains.is_empty()
    }

    /// Whether `user` may log in. Email and domain entries only match
    /// verified emails.
    pub fn allows(&self, user: &UpstreamUser) -> bool {
        if self.any || self.names.contains(&user.subject.to_lowercase()) {
            return true;
        }
        if user
            .username
            .as_ref()
            .is_some_and(|u| self.names.contains(&u.to_lowercase()))
        {
            return true;
        }
        let Some(email) = user.email.as_ref().filter(|_| user.email_verified) else {
            return false;
        };
        let email = email.to_lowercase();
        if self.emails.contains(&email) {
            return true;
        }
        email
            .rsplit_once('@')
            .is_some_and(|(_, d)| self.domains.contains(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, email: Option<&str>, verified: bool) -> UpstreamUser {
        UpstreamUser {
            subject: format!("github:{name}-id"),
            username: Some(name.into()),
            email: email.map(Into::into),
            email_verified: verified,
            name: None,
        }
    }

    #[test]
    fn allow_list_rules() {
        let a = AllowList::parse(&[
            "Alice".into(),
            "bob@corp.example".into(),
            "@team.example".into(),
            "github:carol-id".into(),
        ])
        .unwrap();
        assert!(a.allows(&user("alice", None, false)));
        assert!(a.allows(&user("x", Some("BOB@corp.example"), true)));
        assert!(!a.allows(&user("x", Some("bob@corp.example"), false)));
        assert!(a.allows(&user("y", Some("z@team.example"), true)));
        assert!(!a.allows(&user("y", Some("z@team.example"), false)));
        assert!(!a.allows(&user("y", Some("z@evilteam.example"), true)));
        assert!(a.allows(&user("carol", None, false)));
        assert!(!a.allows(&user("mallory", None, false)));
        assert!(AllowList::parse(&["*".into()])
            .unwrap()
            .allows(&user("m", None, false)));
        assert!(AllowList::parse(&[]).unwrap().is_empty());
        assert!(AllowList::parse(&["@".into()]).is_err());
    }

    #[test]
    fn static_users_verify() {
        let hash = hash_password("s3cret").unwrap();
        let users = StaticUsers::new(
            "local",
            "Local",
            vec![StaticUser {
                username: "dev".into(),
                password_hash: hash,
                email: Some("dev@example.com".into()),
                name: None,
            }],
        )
        .unwrap();
        let u = users.verify("dev", "s3cret").unwrap();
        assert_eq!(u.subject, "local:dev");
        assert!(users.verify("dev", "wrong").is_none());
        assert!(users.verify("nobody", "s3cret").is_none());
        let bad = StaticUser {
            username: "x".into(),
            password_hash: "plain".into(),
            email: None,
            name: None,
        };
        assert!(StaticUsers::new("l", "L", vec![bad]).is_err());
    }
}
