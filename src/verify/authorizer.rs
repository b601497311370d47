//! [`Authorizer`]: route → token → audience → revocation → scopes.

use super::bearer::{parse_bearer, BearerError};
use super::decision::{Deny, DenyReason, TokenIdentity, Verdict, VerifiedToken};
use super::jwt::{check_time, check_times, verify_signature, JwtSettings, KeySource};
use super::policy::{Route, Routes};
use super::request::{canonical_host, canonical_path, AuthzRequest};
use crate::domain::clock::{unix_secs, Clock};
use crate::domain::revocation::{RevocationView, TokenRef};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// The answer to one [`AuthzRequest`] and the facts it was decided on
/// (logged as they are, never derived again). Borrows from the request and
/// the authorizer; building it allocates nothing the verdict does not.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub(crate) verdict: Verdict,
    pub target: Target<'a>,
}

/// What a decision was made on (DESIGN.md §4: canonical inputs only).
#[derive(Debug, Clone, Default)]
pub struct Target<'a> {
    /// The canonical host; `None` when the request's has no canonical form.
    pub host: Option<Cow<'a, str>>,
    /// The canonical path; `None` when the request's has no canonical form.
    pub path: Option<Cow<'a, str>>,
    /// The route decided with; `None` when the request was refused before
    /// a route was looked up (ambiguous or not canonical) or none matched.
    pub route: Option<&'a Route>,
}

/// SHA-256 of a token: the verified-token cache key (never the token).
pub(crate) type TokenHash = [u8; 32];

/// A cache of verified tokens (moka in `infra`).
pub trait TokenCache: Send + Sync + 'static {
    fn get(&self, h: &TokenHash) -> Option<Arc<VerifiedToken>>;
    fn insert(&self, h: TokenHash, v: Arc<VerifiedToken>);

    /// An identity equal to `id`, shared with the cached tokens that have
    /// the same one when the cache keeps them. Defaults to `id` itself.
    fn intern(&self, id: TokenIdentity) -> Arc<TokenIdentity> {
        Arc::new(id)
    }
}

/// Settings for the decision beyond the routes.
#[derive(Debug, Clone)]
pub struct AuthorizerSettings {
    pub jwt: JwtSettings,
    /// Accept a token whose `aud` is a parent resource at a path boundary.
    pub(crate) allow_parent_audience: bool,
    /// How long revocation data may be out of touch before routes fail
    /// closed.
    pub(crate) revocation_staleness: Duration,
}

/// The verifier's decision function. Its parts are fixed at construction;
/// the adapters read the settings, nothing else (the routes reach them
/// through each [`Decision`]).
pub struct Authorizer {
    settings: AuthorizerSettings,
    routes: Routes,
    keys: Arc<dyn KeySource>,
    cache: Arc<dyn TokenCache>,
    revocations: Arc<dyn RevocationView>,
    clock: Arc<dyn Clock>,
}

/// A denial; `identity`: the verified token refused, kept for the logs.
fn refuse(
    status: u16,
    challenge: Option<&str>,
    reason: DenyReason,
    identity: Option<Arc<VerifiedToken>>,
) -> Verdict {
    Verdict::Deny(Deny {
        status,
        challenge: challenge.map(str::to_owned),
        reason,
        identity,
    })
}

/// A denial before any token was verified.
fn deny(status: u16, challenge: Option<&str>, reason: DenyReason) -> Verdict {
    refuse(status, challenge, reason, None)
}

/// A denial of a verified token.
fn deny_token(
    status: u16,
    challenge: Option<&str>,
    reason: DenyReason,
    vt: &Arc<VerifiedToken>,
) -> Verdict {
    refuse(status, challenge, reason, Some(vt.clone()))
}

// === impl Authorizer ===

impl Authorizer {
    pub(crate) fn new(
        settings: AuthorizerSettings,
        routes: Routes,
        keys: Arc<dyn KeySource>,
        cache: Arc<dyn TokenCache>,
        revocations: Arc<dyn RevocationView>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            settings,
            routes,
            keys,
            cache,
            revocations,
            clock,
        }
    }

    /// The settings decided with.
    pub(crate) fn settings(&self) -> &AuthorizerSettings {
        &self.settings
    }

    /// Decides one request. No I/O unless a signing key must be fetched.
    /// The decision names the canonical host, path and route it was made
    /// on.
    pub(crate) async fn check<'a>(&'a self, req: &AuthzRequest<'a>) -> Decision<'a> {
        // Decide only on the canonical target (DESIGN.md §4): anything
        // without one is refused, never matched against a weaker route.
        let host = canonical_host(req.host).ok();
        let path = canonical_path(req.path).ok();
        let route = match (&host, &path) {
            (Some(h), Some(p)) if !req.ambiguous => self.routes.find(h, p),
            _ => None,
        };
        let verdict = if req.ambiguous {
            deny(400, None, DenyReason::Ambiguous)
        } else if host.is_none() || path.is_none() {
            deny(400, None, DenyReason::BadRequest)
        } else {
            match route {
                Some(route) => self.decide(route, req).await,
                None => deny(403, None, DenyReason::NoRoute),
            }
        };
        Decision {
            verdict,
            target: Target { host, path, route },
        }
    }

    /// Decides a request for the route it matched.
    async fn decide(&self, route: &Route, req: &AuthzRequest<'_>) -> Verdict {
        if route.public {
            return Verdict::Allow(None);
        }
        let Some(header) = req.unverified_authorization else {
            return deny(
                401,
                Some(&route.challenge_missing),
                DenyReason::MissingToken,
            );
        };
        let token = match parse_bearer(header) {
            Ok(t) => t,
            // Another scheme (Basic, DPoP, ...) carries no bearer token.
            Err(BearerError::NotBearer) => {
                return deny(
                    401,
                    Some(&route.challenge_missing),
                    DenyReason::MissingToken,
                )
            }
            Err(_) => {
                return deny(
                    401,
                    Some(&route.challenge_invalid),
                    DenyReason::MalformedHeader,
                )
            }
        };
        let now_t = self.clock.now();
        if !route.fail_open_on_stale_revocation {
            if let Some(age) = self.revocations.stale_for(now_t) {
                if age >= self.settings.revocation_staleness {
                    return deny(503, None, DenyReason::RevocationStale);
                }
            }
        }
        let now = unix_secs(now_t);
        match self.token(token, now).await {
            Ok(vt) => self.authorize(route, req, vt),
            // The verifier cannot check the token: its failure, not the
            // token's (Envoy's `status_on_error`), so never invalid_token.
            Err(r @ DenyReason::KeysUnavailable) => deny(503, None, r),
            Err(r) => deny(401, Some(&route.challenge_invalid), r),
        }
    }

    /// The verified token, from the cache or by full verification.
    async fn token(&self, token: &str, now: u64) -> Result<Arc<VerifiedToken>, DenyReason> {
        let h = hash(token);
        let s = &self.settings.jwt;
        if let Some(vt) = self.cache.get(&h) {
            check_times(vt.exp, vt.iat, vt.nbf, now, s)?;
            return Ok(vt);
        }
        let claims = verify_signature(s, self.keys.as_ref(), token).await?;
        check_time(&claims, now, s)?;
        let vt = Arc::new(VerifiedToken::interned(claims, |id| self.cache.intern(id)));
        self.cache.insert(h, vt.clone());
        Ok(vt)
    }

    fn authorize(&self, route: &Route, req: &AuthzRequest<'_>, vt: Arc<VerifiedToken>) -> Verdict {
        if !route.audience_ok(&vt.aud, self.settings.allow_parent_audience) {
            return deny_token(
                401,
                Some(&route.challenge_invalid),
                DenyReason::WrongAudience,
                &vt,
            );
        }
        let t = TokenRef {
            jti: &vt.jti,
            sub: &vt.sub,
            client_id: vt.client_id.as_deref(),
            iat: vt.iat,
        };
        if self.revocations.is_revoked(t) {
            return deny_token(
                401,
                Some(&route.challenge_invalid),
                DenyReason::Revoked,
                &vt,
            );
        }
        let needed = match route.needed_scopes(
            req.method,
            req.mcp_method,
            req.mcp_name,
            req.protocol_version,
            req.body,
        ) {
            Ok(n) => n,
            Err(r) => return deny_token(400, None, r, &vt),
        };
        if !vt.scopes.is_superset(&needed) {
            let ch = route.challenge_insufficient(&needed);
            return deny_token(403, Some(&ch), DenyReason::InsufficientScope, &vt);
        }
        Verdict::Allow(Some(vt))
    }

    /// How long revocation data has been out of touch, if it is.
    pub(crate) fn revocation_stale_for(&self) -> Option<Duration> {
        self.revocations.stale_for(self.clock.now())
    }
}

/// SHA-256 of the token bytes.
pub fn hash(token: &str) -> TokenHash {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::claims::Scopes;
    use crate::domain::clock::FixedClock;
    use crate::domain::revocation::{Revocation, RevocationSet};
    use crate::verify::jwt::{KeyError, VerifyKey};
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use std::collections::HashMap;
    use std::sync::{Mutex, RwLock};

    struct OneKey(Arc<VerifyKey>);
    #[async_trait::async_trait]
    impl KeySource for OneKey {
        async fn key(&self, _: &str, _: Option<&str>) -> Result<Arc<VerifyKey>, KeyError> {
            Ok(self.0.clone())
        }
    }
    #[derive(Default)]
    struct MapCache(Mutex<HashMap<TokenHash, Arc<VerifiedToken>>>);
    impl TokenCache for MapCache {
        fn get(&self, h: &TokenHash) -> Option<Arc<VerifiedToken>> {
            self.0.lock().unwrap().get(h).cloned()
        }
        fn insert(&self, h: TokenHash, v: Arc<VerifiedToken>) {
            self.0.lock().unwrap().insert(h, v);
        }
    }
    #[derive(Default)]
    struct Set(RwLock<RevocationSet>);
    impl RevocationView for Set {
        fn is_revoked(&self, t: TokenRef<'_>) -> bool {
            self.0.read().unwrap().is_revoked(t)
        }
        fn stale_for(&self, _: std::time::SystemTime) -> Option<Duration> {
            None
        }
    }

    #[tokio::test]
    async fn time_is_injected_and_cache_hits_recheck_exp_and_revocation() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key = VerifyKey::ed25519(kp.public_key().as_ref()).unwrap();
        let clock = Arc::new(FixedClock::at_unix(1_000));
        let revs = Arc::new(Set::default());
        let route = Route::new(
            None,
            "/".into(),
            "https://r/mcp".into(),
            Scopes::parse("mcp"),
            vec![],
            false,
            false,
            "https://r/.well-known/oauth-protected-resource/mcp".into(),
        );
        let a = Authorizer {
            settings: AuthorizerSettings {
                jwt: JwtSettings {
                    issuers: vec!["https://iss".into()],
                    leeway_secs: 60,
                    require_at_jwt_typ: false,
                    max_token_lifetime_secs: 86_400,
                    claims: Default::default(),
                },
                allow_parent_audience: false,
                revocation_staleness: Duration::from_secs(30),
            },
            routes: Routes::new(vec![route]),
            keys: Arc::new(OneKey(Arc::new(key))),
            cache: Arc::new(MapCache::default()),
            revocations: revs.clone(),
            clock: clock.clone(),
        };
        let claims = serde_json::json!({"iss": "https://iss", "sub": "u", "aud": "https://r/mcp", "exp": 1_100, "iat": 1_000, "nbf": 1_050, "jti": "j", "scope": "mcp"});
        let enc = jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref());
        let tok = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
            &claims,
            &enc,
        )
        .unwrap();
        let auth = format!("Bearer {tok}");
        let req = AuthzRequest {
            method: "POST",
            host: "r",
            path: "/mcp",
            unverified_authorization: Some(&auth),
            ..Default::default()
        };
        let reason = |d: Decision| match d.verdict {
            Verdict::Allow(_) => None,
            Verdict::Deny(d) => Some(d.reason),
        };
        // nbf 1050 is within the 60 s leeway of 1000.
        assert_eq!(reason(a.check(&req).await), None);
        // The decision names what it was made on: the canonical host and
        // path, and the route they matched.
        let spelt = AuthzRequest {
            host: "R.",
            path: "/x/../mcp",
            ..req
        };
        let d = a.check(&spelt).await;
        assert!(matches!(d.verdict, Verdict::Allow(Some(_))));
        assert_eq!(d.target.host.as_deref(), Some("r"));
        assert_eq!(d.target.path.as_deref(), Some("/mcp"));
        assert_eq!(d.target.route.map(Route::resource), Some("https://r/mcp"));
        clock.advance(Duration::from_secs(159)); // exp 1100 + 60 leeway > 1159
        assert_eq!(reason(a.check(&req).await), None);
        revs.0.write().unwrap().apply(&Revocation::Jti {
            id: "j".into(),
            exp: 2_000,
        });
        assert_eq!(reason(a.check(&req).await), Some(DenyReason::Revoked));
        *revs.0.write().unwrap() = RevocationSet::default();
        clock.advance(Duration::from_secs(1));
        assert_eq!(reason(a.check(&req).await), Some(DenyReason::Expired));
        let basic = AuthzRequest {
            unverified_authorization: Some("Basic Zm9v"),
            ..req
        };
        assert_eq!(
            reason(a.check(&basic).await),
            Some(DenyReason::MissingToken)
        );

        // JWT hygiene: unknown `crit`, `iat` in the future, a lifetime
        // beyond max_token_lifetime_secs.
        let t = 1_160; // the clock's time now
        let sign = |header: jsonwebtoken::Header, claims: serde_json::Value| {
            format!(
                "Bearer {}",
                jsonwebtoken::encode(&header, &claims, &enc).unwrap()
            )
        };
        let base = |exp: u64, iat: u64| serde_json::json!({"iss": "https://iss", "sub": "u", "aud": "https://r/mcp", "exp": exp, "iat": iat, "jti": format!("j{exp}-{iat}"), "scope": "mcp"});
        let ed = || jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        let mut crit = ed();
        crit.crit = Some(vec!["exp-ext".into()]);
        let cases = [
            (
                sign(crit, base(t + 100, t)),
                Some(DenyReason::UnknownCritical),
            ),
            (sign(ed(), base(t + 86_400, t)), None),
            (
                sign(ed(), base(t + 86_401, t)),
                Some(DenyReason::LifetimeTooLong),
            ),
            (
                sign(ed(), base(400_000_000, t)),
                Some(DenyReason::LifetimeTooLong),
            ),
            (sign(ed(), base(t + 1_000, t + 60)), None),
            (
                sign(ed(), base(t + 40_000_000, t + 31_536_000)),
                Some(DenyReason::NotYetValid),
            ),
            (
                sign(ed(), base(t + 1_000, t + 61)),
                Some(DenyReason::NotYetValid),
            ),
        ];
        for (auth, want) in cases {
            let r = AuthzRequest {
                unverified_authorization: Some(&auth),
                ..req
            };
            assert_eq!(reason(a.check(&r).await), want);
        }
        // Several Authorization headers and non-canonical targets: 400.
        for r in [
            AuthzRequest {
                ambiguous: true,
                ..req
            },
            AuthzRequest {
                path: "/mcp/..%2fadmin",
                ..req
            },
            AuthzRequest {
                path: "/../mcp",
                ..req
            },
            AuthzRequest { host: "r..", ..req },
        ] {
            let d = a.check(&r).await;
            assert!(d.target.route.is_none(), "{r:?}");
            match d.verdict {
                Verdict::Deny(d) => assert_eq!(d.status, 400, "{r:?}"),
                Verdict::Allow(_) => panic!("{r:?} allowed"),
            }
        }
    }
}
