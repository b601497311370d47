//! Who may log in: the built-in static users (argon2 password hashes) and
//! the allow-list applied to upstream identities.

use crate::issue::upstream::UpstreamUser;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    /// Verified against when the user is unknown, so timing does not tell:
    /// hashed with the parameters of the strongest stored hash.
    dummy_hash: String,
    /// Bounds concurrent hashing to the CPUs (each Argon2 run holds its
    /// memory cost, 19 MiB by default).
    permits: Arc<tokio::sync::Semaphore>,
    size: usize,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    /// Argon2 working memory, reused from login to login.
    ///
    /// Why not `verify_password`: it allocates the memory cost afresh for
    /// every login, and glibc keeps a freed block of that size in the arena
    /// of whichever blocking-pool thread ran the hash, so a few logins left
    /// the issuer with 100+ MB resident. With hashing bounded to `size` at
    /// once, at most `size` buffers exist.
    blocks: Arc<std::sync::Mutex<Vec<Vec<argon2::Block>>>>,
}

/// No hashing slot came free in time: answer 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// Which upstream identities may log in. Every entry names a provider and
/// an identity that provider keeps stable, or a verified email.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    any: bool,
    /// Exact provider subjects (`github:583231`, `okta:00u1abc`).
    subjects: HashSet<String>,
    /// Lower-cased GitHub logins, each pinned to the numeric id of the first
    /// account that logs in with it (a renamed or re-registered login does
    /// not inherit the entry).
    github_logins: HashSet<String>,
    /// Lower-cased verified emails.
    emails: HashSet<String>,
    /// Lower-cased email domains (entries `@example.com`).
    domains: HashSet<String>,
}

/// What the allow-list says about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Allowed if the GitHub login (lower-cased) is pinned to this user's
    /// subject, or not pinned yet (then pin it).
    PinGithubLogin(String),
}

/// The subject prefix of GitHub users (`github:<numeric id>`).
pub(crate) const GITHUB_SUBJECT_PREFIX: &str = "github:";

/// Hashes a password with argon2id (default parameters) and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    hash_with(Argon2::default(), password)
}

fn hash_with(a: Argon2<'_>, password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| "rng failure".to_owned())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    a.hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC-format argon2 `hash`, computed in
/// `blocks` (grown to the hash's memory cost if smaller). What
/// `PasswordVerifier::verify_password` does, without allocating the
/// working memory: the hash's own algorithm, version, parameters and
/// salt, and a constant-time comparison of the outputs.
fn verify_with_memory(hash: &str, password: &[u8], blocks: &mut Vec<argon2::Block>) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(alg), Ok(ver), Ok(params)) = (
        Algorithm::try_from(h.algorithm),
        Version::try_from(h.version.unwrap_or(0x13)),
        Params::try_from(&h),
    ) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let n = params.block_count();
    if blocks.len() < n {
        blocks.resize(n, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(alg, ver, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut blocks[..n])
        .is_ok()
        && crate::domain::secret::ct_eq(&out, expected.as_bytes())
}

// === impl StaticUsers ===

impl StaticUsers {
    /// Validates every hash up front, so a typo fails at startup.
    pub(crate) fn new(
        id: impl Into<String>,
        display_name: impl Into<String>,
        users: Vec<StaticUser>,
    ) -> Result<Self, String> {
        let mut map = HashMap::new();
        // The strongest stored parameters (memory x passes x lanes).
        let mut strongest: Option<(u64, Algorithm, Version, Params)> = None;
        for u in users {
            let h = PasswordHash::new(&u.password_hash)
                .map_err(|e| format!("user {}: bad password hash: {e}", u.username))?;
            let alg = Algorithm::try_from(h.algorithm);
            let ver = Version::try_from(h.version.unwrap_or(0x13));
            if let (Ok(alg), Ok(ver), Ok(params)) = (alg, ver, Params::try_from(&h)) {
                let cost = u64::from(params.m_cost())
                    * u64::from(params.t_cost())
                    * u64::from(params.p_cost());
                if strongest.as_ref().is_none_or(|(c, ..)| cost > *c) {
                    strongest = Some((cost, alg, ver, params));
                }
            }
            if map.insert(u.username.clone(), u).is_some() {
                return Err("duplicate username".into());
            }
        }
        let dummy_hash = match strongest {
            Some((_, alg, ver, params)) => {
                hash_with(Argon2::new(alg, ver, params), "not a real password")?
            }
            None => hash_password("not a real password")?,
        };
        let size = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            id: id.into(),
            display_name: display_name.into(),
            users: map,
            dummy_hash,
            permits: Arc::new(tokio::sync::Semaphore::new(size)),
            size,
            in_flight: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            blocks: Arc::default(),
        })
    }

    /// [`StaticUsers::verify`] on the blocking pool under the CPU-sized
    /// bound; waits up to `wait` for a slot, else [`Busy`].
    pub(crate) async fn verify_bounded(
        &self,
        username: &str,
        password: &str,
        wait: Duration,
    ) -> Result<Option<UpstreamUser>, Busy> {
        let permit = tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        let me = self.clone();
        let (u, pw) = (username.to_owned(), password.to_owned());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let now = me.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            me.peak.fetch_max(now, Ordering::SeqCst);
            let r = me.verify(&u, &pw);
            me.in_flight.fetch_sub(1, Ordering::SeqCst);
            r
        })
        .await
        .map_err(|_| Busy)
    }

    /// How many hashes may run at once (the CPUs).
    pub fn hash_slots(&self) -> usize {
        self.size
    }

    /// The most hashes that ran at once so far.
    pub fn peak_hashing(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Checks a username and password (CPU-heavy: call from a blocking
    /// task). Unknown users cost the same as wrong passwords.
    pub(crate) fn verify(&self, username: &str, password: &str) -> Option<UpstreamUser> {
        let user = self.users.get(username);
        let hash = user.map_or(self.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let mut blocks = self
            .blocks
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        let ok = verify_with_memory(hash, password.as_bytes(), &mut blocks);
        if let Ok(mut p) = self.blocks.lock() {
            if p.len() < self.size {
                p.push(blocks);
            }
        }
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
}

// === impl AllowList ===

fn is_github_login(s: &str) -> bool {
    !s.is_empty() && s.len() <= 39 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl AllowList {
    /// Parses entries: `*` (everyone), `@example.com` (verified emails of a
    /// domain), `user@example.com` (a verified email), `github:<login>`
    /// (pinned to its numeric id at the first login), `github:<id>` or
    /// `github:id:<id>`, and `<provider id>:<sub>` (an OIDC subject, exact).
    /// A bare name is a GitHub login when `bare_is_github` (GitHub is the
    /// only upstream provider), else refused: it used to match any
    /// provider's self-chosen username.
    pub(crate) fn parse(entries: &[String], bare_is_github: bool) -> Result<Self, String> {
        let mut a = Self::default();
        for raw in entries {
            let e = raw.trim();
            let lower = e.to_lowercase();
            if e.is_empty() {
                return Err("empty allow_list entry".into());
            }
            if e == "*" {
                a.any = true;
            } else if let Some(d) = lower.strip_prefix('@').or_else(|| lower.strip_prefix("*@")) {
                if d.is_empty() || d.contains('@') {
                    return Err(format!("bad domain entry: {e}"));
                }
                a.domains.insert(d.to_owned());
            } else if let Some(rest) = lower.strip_prefix(GITHUB_SUBJECT_PREFIX) {
                let id = rest.strip_prefix("id:").unwrap_or(rest);
                if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) {
                    a.subjects.insert(format!("{GITHUB_SUBJECT_PREFIX}{id}"));
                } else if is_github_login(rest) {
                    a.github_logins.insert(rest.to_owned());
                } else {
                    return Err(format!(
                        "bad GitHub entry `{e}`: use github:<login> or github:id:<numeric id>"
                    ));
                }
            } else if let Some((provider, sub)) = e.split_once(':') {
                if provider.is_empty() || sub.is_empty() {
                    return Err(format!("bad entry `{e}`: use <provider id>:<subject>"));
                }
                a.subjects.insert(e.to_owned());
            } else if e.contains('@') {
                a.emails.insert(lower);
            } else if bare_is_github && is_github_login(&lower) {
                a.github_logins.insert(lower);
            } else {
                return Err(format!(
                    "entry `{e}` names no provider: bare usernames matched any provider's \
                     self-chosen username (OIDC preferred_username, renamable logins) and are \
                     no longer accepted; write `github:{e}` (a GitHub login, pinned to its \
                     numeric id at the first login), `github:id:<numeric id>`, \
                     `<provider id>:<sub>` for an OIDC provider, or a verified email"
                ));
            }
        }
        Ok(a)
    }

    /// Everyone.
    #[cfg(test)]
    pub(crate) fn everyone() -> Self {
        Self {
            any: true,
            ..Self::default()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.any
            && self.subjects.is_empty()
            && self.github_logins.is_empty()
            && self.emails.is_empty()
            && self.domains.is_empty()
    }

    /// Whether `login` (lower-cased) is a listed GitHub login.
    pub(crate) fn lists_github_login(&self, login: &str) -> bool {
        self.github_logins.contains(login)
    }

    /// Whether `user` may log in. Email and domain entries only match
    /// verified emails; usernames only GitHub logins, through a pin.
    pub(crate) fn check(&self, user: &UpstreamUser) -> Verdict {
        if self.any || self.subjects.contains(&user.subject) {
            return Verdict::Allow;
        }
        if let Some(email) = user.email.as_ref().filter(|_| user.email_verified) {
            let email = email.to_lowercase();
            let domain_ok = email
                .rsplit_once('@')
                .is_some_and(|(_, d)| self.domains.contains(d));
            if self.emails.contains(&email) || domain_ok {
                return Verdict::Allow;
            }
        }
        let github_id = user
            .subject
            .strip_prefix(GITHUB_SUBJECT_PREFIX)
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()));
        match (github_id, &user.username) {
            (Some(_), Some(login)) if self.github_logins.contains(&login.to_lowercase()) => {
                Verdict::PinGithubLogin(login.to_lowercase())
            }
            _ => Verdict::Deny,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(sub: &str, preferred: &str, email: Option<&str>, verified: bool) -> UpstreamUser {
        UpstreamUser {
            subject: format!("okta:{sub}"),
            username: Some(preferred.into()),
            email: email.map(Into::into),
            email_verified: verified,
            name: None,
        }
    }

    #[test]
    fn allow_list_rules() {
        let a = AllowList::parse(
            &[
                "bob@corp.example".into(),
                "@team.example".into(),
                "github:583231".into(),
                "GitHub:Alice".into(),
                "github:id:42".into(),
                "okta:00uCaseSensitive".into(),
            ],
            false,
        )
        .unwrap();
        let gh = |id: &str, login: &str| UpstreamUser {
            subject: format!("github:{id}"),
            username: Some(login.into()),
            email: None,
            email_verified: false,
            name: None,
        };
        assert_eq!(a.check(&gh("583231", "whoever")), Verdict::Allow);
        assert_eq!(a.check(&gh("42", "x")), Verdict::Allow);
        assert_eq!(
            a.check(&gh("7", "ALICE")),
            Verdict::PinGithubLogin("alice".into())
        );
        assert_eq!(a.check(&gh("7", "mallory")), Verdict::Deny);
        // An OIDC user whose preferred_username is a listed GitHub login,
        // or whose sub differs only in case, is not let in.
        assert_eq!(a.check(&oidc("1", "alice", None, false)), Verdict::Deny);
        assert_eq!(
            a.check(&oidc("00ucasesensitive", "x", None, false)),
            Verdict::Deny
        );
        assert_eq!(
            a.check(&oidc("00uCaseSensitive", "x", None, false)),
            Verdict::Allow
        );
        // A subject that only looks like GitHub's: not pinned.
        let fake = UpstreamUser {
            subject: "github:alice".into(),
            ..gh("1", "alice")
        };
        assert_eq!(a.check(&fake), Verdict::Deny);
        // Emails and domains: verified only.
        let e = |m: &str, v: bool| oidc("s", "p", Some(m), v);
        assert_eq!(a.check(&e("BOB@corp.example", true)), Verdict::Allow);
        assert_eq!(a.check(&e("bob@corp.example", false)), Verdict::Deny);
        assert_eq!(a.check(&e("z@team.example", true)), Verdict::Allow);
        assert_eq!(a.check(&e("z@team.example", false)), Verdict::Deny);
        assert_eq!(a.check(&e("z@evilteam.example", true)), Verdict::Deny);
        assert_eq!(a.check(&e("z@sub.team.example", true)), Verdict::Deny);
        assert_eq!(
            AllowList::parse(&["*".into()], false)
                .unwrap()
                .check(&oidc("m", "m", None, false)),
            Verdict::Allow
        );
        assert!(AllowList::parse(&[], false).unwrap().is_empty());
        assert!(AllowList::parse(&["@".into()], false).is_err());
        assert!(AllowList::parse(&["github:bad_login!".into()], false).is_err());
        assert!(AllowList::parse(&[":x".into()], false).is_err());
    }

    #[test]
    fn bare_names_only_when_github_is_the_only_provider() {
        let err = AllowList::parse(&["alice".into()], false).unwrap_err();
        assert!(err.contains("github:alice"), "{err}");
        let a = AllowList::parse(&["Alice".into()], true).unwrap();
        let u = UpstreamUser {
            subject: "github:9".into(),
            username: Some("alice".into()),
            email: None,
            email_verified: false,
            name: None,
        };
        assert_eq!(a.check(&u), Verdict::PinGithubLogin("alice".into()));
    }

    #[tokio::test]
    async fn hashing_is_bounded_to_the_cpus() {
        // Cheap parameters: the bound is what is tested, not Argon2.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let users = StaticUsers::new(
            "local",
            "Local",
            vec![StaticUser {
                username: "dev".into(),
                password_hash: hash_with(cheap, "pw").unwrap(),
                email: None,
                name: None,
            }],
        )
        .unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let u = users.clone();
                tokio::spawn(async move {
                    u.verify_bounded(&format!("nobody{i}"), "wrong", Duration::from_secs(30))
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(None));
        }
        assert!(users.peak_hashing() >= 1);
        assert!(
            users.peak_hashing() <= users.hash_slots(),
            "{} > {}",
            users.peak_hashing(),
            users.hash_slots()
        );
    }

    #[tokio::test]
    async fn excess_logins_get_busy() {
        let users = StaticUsers::new(
            "local",
            "Local",
            vec![StaticUser {
                username: "dev".into(),
                password_hash: hash_password("pw").unwrap(),
                email: None,
                name: None,
            }],
        )
        .unwrap();
        // Hold every slot: the next login waits, then is told to retry.
        let held: Vec<_> = (0..users.hash_slots())
            .map(|_| users.permits.clone().try_acquire_owned().unwrap())
            .collect();
        let r = users
            .verify_bounded("dev", "pw", Duration::from_millis(20))
            .await;
        assert_eq!(r, Err(Busy));
        drop(held);
        assert!(users
            .verify_bounded("dev", "pw", Duration::from_secs(30))
            .await
            .unwrap()
            .is_some());
    }

    #[test]
    fn unknown_users_cost_the_strongest_stored_hash() {
        let strong = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 3, 1, None).unwrap(),
        );
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let mk = |n: &str, h: String| StaticUser {
            username: n.into(),
            password_hash: h,
            email: None,
            name: None,
        };
        let users = StaticUsers::new(
            "l",
            "L",
            vec![
                mk("weak", hash_with(weak, "a").unwrap()),
                mk("strong", hash_with(strong, "b").unwrap()),
            ],
        )
        .unwrap();
        let d = PasswordHash::new(&users.dummy_hash).unwrap();
        let p = Params::try_from(&d).unwrap();
        assert_eq!((p.m_cost(), p.t_cost(), p.p_cost()), (32 * 1024, 3, 1));
    }

    /// The verification with reused memory says what argon2's own
    /// `verify_password` says, for hashes of different costs sharing one
    /// buffer (larger, then smaller, then larger again).
    #[test]
    fn reused_memory_verifies_like_argon2() {
        use argon2::password_hash::PasswordVerifier;
        let weak = hash_with(
            Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(1024, 1, 1, None).unwrap(),
            ),
            "pw-weak",
        )
        .unwrap();
        let v10 = hash_with(
            Argon2::new(
                Algorithm::Argon2i,
                Version::V0x10,
                Params::new(2048, 2, 2, Some(24)).unwrap(),
            ),
            "pw-i",
        )
        .unwrap();
        let strong = hash_password("pw-strong").unwrap();
        let mut blocks = Vec::new();
        for (hash, right) in [
            (&strong, "pw-strong"),
            (&weak, "pw-weak"),
            (&v10, "pw-i"),
            (&strong, "pw-strong"),
        ] {
            for pw in [right, "wrong", ""] {
                let theirs = Argon2::default()
                    .verify_password(pw.as_bytes(), &PasswordHash::new(hash).unwrap())
                    .is_ok();
                assert_eq!(
                    verify_with_memory(hash, pw.as_bytes(), &mut blocks),
                    theirs,
                    "{hash} {pw}"
                );
                assert_eq!(theirs, pw == right);
            }
        }
        assert!(!verify_with_memory("not a hash", b"x", &mut blocks));
        assert!(!verify_with_memory(
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ",
            b"x",
            &mut blocks
        ));
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
