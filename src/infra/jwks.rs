//! JWKS per issuer: discovery (RFC 8414, then OIDC) or an explicit
//! `jwks_uri`, keys cached in moka, refreshed periodically and on an
//! unknown `kid` (single-flight, rate-limited, negative-cached). A failed
//! fetch keeps the last good set and never poisons the cache.

use crate::verify::jwt::{KeyError, KeySource, VerifyKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::Algorithm;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Outbound HTTP for JWKS and discovery documents (injected for tests).
#[async_trait::async_trait]
pub trait JwksFetcher: Send + Sync + 'static {
    /// GETs `url` and returns the body (size- and time-limited).
    async fn get(&self, url: &str) -> Result<Vec<u8>, String>;
}

/// The production fetcher on reqwest.
pub(crate) struct HttpJwksFetcher {
    client: reqwest::Client,
    max_bytes: usize,
}

/// Cache settings.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    /// Least time between two miss-triggered fetches per issuer.
    pub(crate) min_refetch_interval: Duration,
    /// Period of the background refresh.
    pub(crate) refresh_interval: Duration,
}

/// Fetch outcomes, `{result}` = ok / error / rate_limited.
/// What the cache reports: fetches by result, and when each issuer's keys
/// last loaded.
#[derive(Debug, Clone, Default)]
pub(crate) struct JwksStats {
    pub fetches: crate::metrics::StaticCounter<1>,
    pub(crate) last_success: crate::metrics::IssuerGauge,
}

struct IssuerState {
    issuer: String,
    explicit_jwks_uri: Option<String>,
    jwks_uri: Mutex<Option<String>>,
    keys: moka::sync::Cache<String, Arc<VerifyKey>>,
    unknown_kids: moka::sync::Cache<String, ()>,
    last_attempt: Mutex<Option<Instant>>,
    fetch: tokio::sync::Mutex<()>,
}

/// The verifier's [`KeySource`].
pub(crate) struct JwksCache {
    issuers: HashMap<String, Arc<IssuerState>>,
    fetcher: Arc<dyn JwksFetcher>,
    settings: JwksSettings,
    stats: JwksStats,
}

// === impl HttpJwksFetcher ===

impl HttpJwksFetcher {
    pub(crate) fn new(timeout: Duration, max_bytes: usize) -> Result<Self, String> {
        let client = super::http_client::build(
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .redirect(reqwest::redirect::Policy::limited(3)),
        )?;
        Ok(Self { client, max_bytes })
    }
}

#[async_trait::async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err("response too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

// === impl JwksCache ===

impl JwksCache {
    /// `issuers`: (issuer URL, explicit jwks_uri if any).
    pub(crate) fn new(
        issuers: Vec<(String, Option<String>)>,
        fetcher: Arc<dyn JwksFetcher>,
        settings: JwksSettings,
        stats: JwksStats,
    ) -> Self {
        let negative_ttl = settings.min_refetch_interval.max(Duration::from_millis(1));
        let issuers = issuers
            .into_iter()
            .map(|(iss, uri)| {
                let st = IssuerState {
                    issuer: iss.clone(),
                    explicit_jwks_uri: uri,
                    jwks_uri: Mutex::new(None),
                    keys: moka::sync::Cache::builder().max_capacity(64).build(),
                    unknown_kids: moka::sync::Cache::builder()
                        .max_capacity(1024)
                        .time_to_live(negative_ttl)
                        .build(),
                    last_attempt: Mutex::new(None),
                    fetch: tokio::sync::Mutex::new(()),
                };
                (iss, Arc::new(st))
            })
            .collect();
        Self {
            issuers,
            fetcher,
            settings,
            stats,
        }
    }

    /// Fetches every issuer's keys once (errors are logged, not fatal).
    pub(crate) async fn refresh_all(&self) {
        for st in self.issuers.values() {
            let _g = st.fetch.lock().await;
            self.fetch(st).await;
        }
    }

    /// Refreshes all issuers every `refresh_interval` until dropped.
    pub(crate) fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        let every = self.settings.refresh_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(c) = me.upgrade() else { return };
                c.refresh_all().await;
            }
        })
    }

    /// Whether every issuer has at least one key.
    pub(crate) fn all_loaded(&self) -> bool {
        self.issuers.values().all(|s| {
            s.keys.run_pending_tasks();
            s.keys.entry_count() > 0
        })
    }

    /// One fetch (caller holds the issuer's fetch lock). Returns success.
    async fn fetch(&self, st: &IssuerState) -> bool {
        if let Ok(mut l) = st.last_attempt.lock() {
            *l = Some(Instant::now());
        }
        match self.fetch_keys(st).await {
            Ok(keys) => {
                let fresh: std::collections::HashSet<String> = keys.keys().cloned().collect();
                for (kid, k) in keys {
                    st.keys.insert(kid, Arc::new(k));
                }
                let stale: Vec<String> = st
                    .keys
                    .iter()
                    .map(|(k, _)| (*k).clone())
                    .filter(|k| !fresh.contains(k))
                    .collect();
                for k in stale {
                    st.keys.invalidate(&k);
                }
                st.unknown_kids.invalidate_all();
                self.stats.fetches.get_or_create(&[("result", "ok")]).inc();
                let now = crate::domain::clock::Clock::now(&crate::domain::clock::SystemClock);
                self.stats
                    .last_success
                    .get_or_create(&vec![("issuer".to_owned(), st.issuer.clone())])
                    .set(crate::domain::clock::unix_millis(now) as f64 / 1000.0);
                true
            }
            Err(e) => {
                self.stats
                    .fetches
                    .get_or_create(&[("result", "error")])
                    .inc();
                tracing::warn!(issuer = %st.issuer, error = %e, "JWKS fetch failed; keeping the last good keys");
                false
            }
        }
    }

    async fn fetch_keys(&self, st: &IssuerState) -> Result<HashMap<String, VerifyKey>, String> {
        let uri = match &st.explicit_jwks_uri {
            Some(u) => u.clone(),
            None => {
                let cached = st.jwks_uri.lock().ok().and_then(|g| g.clone());
                match cached {
                    Some(u) => u,
                    None => {
                        let u = self.discover(&st.issuer).await?;
                        if let Ok(mut g) = st.jwks_uri.lock() {
                            *g = Some(u.clone());
                        }
                        u
                    }
                }
            }
        };
        let body = self.fetcher.get(&uri).await?;
        parse_jwks(&body)
    }

    /// RFC 8414 (path-inserted well-known), then OpenID discovery.
    async fn discover(&self, issuer: &str) -> Result<String, String> {
        let u = url::Url::parse(issuer).map_err(|e| e.to_string())?;
        let candidates = crate::domain::well_known::metadata_urls(&u);
        let mut last = String::from("no discovery document");
        for c in candidates {
            match self.fetcher.get(&c).await {
                Ok(body) => {
                    #[derive(serde::Deserialize)]
                    struct Meta {
                        issuer: String,
                        jwks_uri: String,
                    }
                    match serde_json::from_slice::<Meta>(&body) {
                        Ok(m) if m.issuer.trim_end_matches('/') == issuer.trim_end_matches('/') => {
                            return Ok(m.jwks_uri)
                        }
                        Ok(_) => last = "discovery issuer mismatch".into(),
                        Err(e) => last = format!("bad discovery document: {e}"),
                    }
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[async_trait::async_trait]
impl KeySource for JwksCache {
    async fn key(&self, issuer: &str, kid: Option<&str>) -> Result<Arc<VerifyKey>, KeyError> {
        let st = self.issuers.get(issuer).ok_or(KeyError::Unavailable)?;
        let kid = kid.unwrap_or("");
        if let Some(k) = lookup(st, kid) {
            return Ok(k);
        }
        if st.unknown_kids.contains_key(kid) {
            return Err(KeyError::UnknownKid);
        }
        let _g = st.fetch.lock().await;
        if let Some(k) = lookup(st, kid) {
            return Ok(k);
        }
        let recent = st
            .last_attempt
            .lock()
            .ok()
            .and_then(|l| *l)
            .is_some_and(|t| t.elapsed() < self.settings.min_refetch_interval);
        let ok = if recent {
            self.stats
                .fetches
                .get_or_create(&[("result", "rate_limited")])
                .inc();
            false
        } else {
            self.fetch(st).await
        };
        if let Some(k) = lookup(st, kid) {
            return Ok(k);
        }
        if st.keys.entry_count() == 0 && !ok && !recent {
            return Err(KeyError::Unavailable);
        }
        if ok {
            st.unknown_kids.insert(kid.to_owned(), ());
        }
        if st.keys.iter().next().is_none() {
            return Err(KeyError::Unavailable);
        }
        Err(KeyError::UnknownKid)
    }
}

/// A kid lookup; an empty kid matches a sole key.
fn lookup(st: &IssuerState, kid: &str) -> Option<Arc<VerifyKey>> {
    if let Some(k) = st.keys.get(kid) {
        return Some(k);
    }
    if kid.is_empty() {
        let mut it = st.keys.iter();
        let first = it.next();
        if it.next().is_none() {
            return first.map(|(_, v)| v);
        }
    }
    None
}

/// The verification key of a JWK's public parameters (already known to be
/// RSA, P-256 or Ed25519).
fn verify_key(p: &AlgorithmParameters) -> Option<VerifyKey> {
    let b64 = |s: &str| URL_SAFE_NO_PAD.decode(s).ok();
    match p {
        AlgorithmParameters::RSA(r) => VerifyKey::rs256(&b64(&r.n)?, &b64(&r.e)?),
        AlgorithmParameters::EllipticCurve(e) => VerifyKey::es256(&b64(&e.x)?, &b64(&e.y)?),
        AlgorithmParameters::OctetKeyPair(o) => VerifyKey::ed25519(&b64(&o.x)?),
        _ => None,
    }
}

/// Parses a JWK Set, keeping only RS256 / ES256 / EdDSA signature keys.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<HashMap<String, VerifyKey>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| format!("bad JWKS: {e}"))?;
    let mut out = HashMap::new();
    for v in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(v) else {
            continue;
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
        {
            continue;
        }
        let natural = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                Algorithm::EdDSA
            }
            _ => continue,
        };
        let declared = match jwk.common.key_algorithm {
            None => natural,
            Some(KeyAlgorithm::RS256) => Algorithm::RS256,
            Some(KeyAlgorithm::ES256) => Algorithm::ES256,
            Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
            Some(_) => continue,
        };
        if declared != natural {
            continue;
        }
        let Some(key) = verify_key(&jwk.algorithm) else {
            continue;
        };
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        out.insert(kid, key);
    }
    // A set with no usable key (`{"keys":[]}`, only foreign keys) is a
    // failed fetch: an issuer never rightly publishes no key at all, and
    // taking it would drop the keys every live token is signed with.
    if out.is_empty() {
        return Err("JWKS has no usable signature key".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_keeps_only_asymmetric_signature_keys() {
        let body = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"hs","alg":"HS256"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"enc","use":"enc"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"lie","alg":"RS256"},
            {"bogus":true}
        ]}"#;
        let keys = parse_jwks(body).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys["ed"].alg, Algorithm::EdDSA);
        assert!(parse_jwks(b"not json").is_err());
        assert!(parse_jwks(br#"{"keys":[]}"#).is_err());
        assert!(parse_jwks(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"hs"}]}"#).is_err());
    }
}
