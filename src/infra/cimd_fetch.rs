//! [`MetadataFetcher`] with SSRF guards, for Client ID Metadata Documents.
//!
//! The guard: https only (plain http only when `allow_insecure_http` is set,
//! for tests and dev); no credentials in the URL; the host is resolved here
//! and every address must be public (see [`is_public`]) unless
//! `allow_private_addresses` is set; the request then connects to exactly the
//! checked addresses (a per-request DNS override), so a second, rebinding DNS
//! answer is never used. No proxies, no redirects, a body size cap enforced
//! while streaming, and one overall timeout.

use crate::issue::cimd::{FetchError, FetchedDocument, MetadataFetcher};
use async_trait::async_trait;
use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use url::{Host, Url};

/// Settings of the [`GuardedFetcher`].
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Allow `http://` URLs (tests and local development only). Defaults to false.
    pub allow_insecure_http: bool,
    /// Allow private, loopback, link-local and other non-public addresses.
    /// Defaults to false.
    pub allow_private_addresses: bool,
    /// Largest accepted document. Defaults to 5 KiB.
    pub max_body_bytes: usize,
    /// Time limit for resolving, connecting and reading. Defaults to 5 s.
    pub timeout: Duration,
    /// Upper bound applied to `Cache-Control: max-age`. Defaults to 24 h.
    pub max_cache_age: Duration,
    /// How long a failed fetch is remembered (and answered without
    /// fetching again). Defaults to 30 s.
    pub failure_cache: Duration,
}

/// Most failed URLs remembered at once (the negative cache is bounded).
const FAILURE_CACHE_ENTRIES: u64 = 10_000;

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            allow_insecure_http: false,
            allow_private_addresses: false,
            max_body_bytes: 5 * 1024,
            timeout: Duration::from_secs(5),
            max_cache_age: Duration::from_secs(24 * 3600),
            failure_cache: Duration::from_secs(30),
        }
    }
}

/// Fetches metadata documents through the SSRF guard.
#[derive(Debug, Clone)]
pub struct GuardedFetcher {
    settings: FetchSettings,
    /// URL → why it failed, for `failure_cache`: a client_id pointing at a
    /// dead or refused address cannot make the issuer fetch on every hit.
    failures: moka::sync::Cache<String, String>,
}

/// IPv4 ranges that are not globally reachable unicast (RFC 6890 and friends).
const BLOCKED_V4: &[(u8, u8, u8, u8, u8)] = &[
    (0, 0, 0, 0, 8),       // "this network", unspecified
    (10, 0, 0, 0, 8),      // private
    (100, 64, 0, 0, 10),   // CGNAT shared space
    (127, 0, 0, 0, 8),     // loopback
    (169, 254, 0, 0, 16),  // link-local (cloud metadata lives here)
    (172, 16, 0, 0, 12),   // private
    (192, 0, 0, 0, 24),    // IETF protocol assignments
    (192, 0, 2, 0, 24),    // documentation
    (192, 88, 99, 0, 24),  // 6to4 relay anycast
    (192, 168, 0, 0, 16),  // private
    (198, 18, 0, 0, 15),   // benchmarking
    (198, 51, 100, 0, 24), // documentation
    (203, 0, 113, 0, 24),  // documentation
    (224, 0, 0, 0, 4),     // multicast
    (240, 0, 0, 0, 4),     // reserved, broadcast
];

/// IPv6 ranges that are not globally reachable unicast. Ranges embedding an
/// IPv4 address (mapped, NAT64, 6to4) are judged by that address instead.
const BLOCKED_V6: &[(u16, u8)] = &[
    (0x0100, 16), // discard-only 100::/64 (and the rest of 100::/16 is unassigned)
    (0x2001, 23), // IETF protocol assignments, including Teredo 2001::/32
    (0xfc00, 7),  // unique local
    (0xfe80, 10), // link-local
    (0xfec0, 10), // site-local (deprecated)
    (0xff00, 8),  // multicast
];

/// Whether `ip` is a globally routable unicast address a server may fetch.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !BLOCKED_V4.iter().any(|&(a, b, c, d, len)| {
        Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len)
            .map(|net| net.contains(&ip))
            .unwrap_or(true)
    })
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    // Unspecified, loopback and the deprecated IPv4-compatible ::/96.
    if seg[..6] == [0; 6] {
        return false;
    }
    // IPv4-mapped ::ffff:0:0/96: judge the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // NAT64 64:ff9b::/96 embeds an IPv4 address in the last 32 bits.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded_v4(seg[6], seg[7]));
    }
    // 64:ff9b:1::/48 local-use NAT64.
    if seg[..3] == [0x64, 0xff9b, 1] {
        return false;
    }
    // 6to4 2002::/16 embeds an IPv4 address in bits 16..48.
    if seg[0] == 0x2002 {
        return is_public_v4(embedded_v4(seg[1], seg[2]));
    }
    // Documentation 2001:db8::/32 and 3fff::/20.
    if seg[..2] == [0x2001, 0x0db8] || (seg[0] == 0x3fff && seg[1] < 0x1000) {
        return false;
    }
    !BLOCKED_V6.iter().any(|&(first, len)| {
        Ipv6Net::new(Ipv6Addr::new(first, 0, 0, 0, 0, 0, 0, 0), len)
            .map(|net| net.contains(&ip))
            .unwrap_or(true)
    })
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// `max-age` from a `Cache-Control` value, clamped to `max`; `None` when the
/// response must not be cached (`no-store`, `no-cache`) or says nothing.
pub(crate) fn cache_max_age(header: Option<&str>, max: Duration) -> Option<Duration> {
    let header = header?;
    let mut age = None;
    for directive in header.split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return None;
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            let secs: u64 = v.trim_matches('"').parse().ok()?;
            age = Some(Duration::from_secs(secs).min(max));
        }
    }
    age
}

// === impl GuardedFetcher ===

impl GuardedFetcher {
    pub fn new(settings: FetchSettings) -> Self {
        let failures = moka::sync::Cache::builder()
            .max_capacity(FAILURE_CACHE_ENTRIES)
            .time_to_live(settings.failure_cache.max(Duration::from_millis(1)))
            .build();
        Self { settings, failures }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.settings.allow_private_addresses || is_public(ip)
    }

    /// Checks the URL and resolves it to the addresses to connect to.
    /// Returns the DNS name to pin (None for IP literals) and its addresses.
    async fn check(&self, url: &Url) -> Result<Option<(String, Vec<SocketAddr>)>, FetchError> {
        match url.scheme() {
            "https" => {}
            "http" if self.settings.allow_insecure_http => {}
            other => return Err(FetchError::Forbidden(format!("scheme {other} not allowed"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::Forbidden("credentials in URL".into()));
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| FetchError::Forbidden("no port".into()))?;
        let ip_literal = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(Host::Domain(name)) => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                    .await
                    .map_err(|e| FetchError::Failed(format!("resolving {name}: {e}")))?
                    .collect();
                if addrs.is_empty() {
                    return Err(FetchError::Failed(format!("{name} has no address")));
                }
                if let Some(bad) = addrs.iter().find(|a| !self.allowed(a.ip())) {
                    return Err(FetchError::Forbidden(format!(
                        "{name} resolves to non-public address {}",
                        bad.ip()
                    )));
                }
                return Ok(Some((name.to_owned(), addrs)));
            }
            None => return Err(FetchError::Forbidden("no host".into())),
        };
        if !self.allowed(ip_literal) {
            return Err(FetchError::Forbidden(format!(
                "non-public address {ip_literal}"
            )));
        }
        Ok(None)
    }

    async fn fetch_inner(&self, raw_url: &str) -> Result<FetchedDocument, FetchError> {
        let url =
            Url::parse(raw_url).map_err(|e| FetchError::Forbidden(format!("bad URL: {e}")))?;
        let pin = self.check(&url).await?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.settings.timeout);
        if let Some((name, addrs)) = &pin {
            builder = builder.resolve_to_addrs(name, addrs);
        }
        let client = super::http_client::build(builder).map_err(FetchError::Failed)?;
        let mut resp = client
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(req_err)?;
        if resp.status() != http::StatusCode::OK {
            return Err(FetchError::Failed(format!("status {}", resp.status())));
        }
        let cap = self.settings.max_body_bytes;
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return Err(FetchError::TooLarge);
        }
        let max_age = cache_max_age(
            resp.headers()
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            self.settings.max_cache_age,
        );
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(req_err)? {
            if body.len() + chunk.len() > cap {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchedDocument { body, max_age })
    }
}

fn req_err(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout
    } else {
        FetchError::Failed(e.to_string())
    }
}

#[async_trait]
impl MetadataFetcher for GuardedFetcher {
    async fn fetch(&self, url: &str) -> Result<FetchedDocument, FetchError> {
        if let Some(why) = self.failures.get(url) {
            return Err(FetchError::Failed(format!("failed recently: {why}")));
        }
        let r = match tokio::time::timeout(self.settings.timeout, self.fetch_inner(url)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout),
        };
        if let Err(e) = &r {
            if !self.settings.failure_cache.is_zero() {
                self.failures.insert(url.to_owned(), e.to_string());
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().unwrap())
    }
    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().unwrap())
    }

    #[test]
    fn classifies_known_addresses() {
        for bad in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "192.0.2.1",
        ] {
            assert!(!is_public(v4(bad)), "{bad}");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "93.184.216.34",
        ] {
            assert!(is_public(v4(good)), "{good}");
        }
        for bad in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "64:ff9b::a00:1",
            "2002:c0a8:101::1",
            "::127.0.0.1",
            "fec0::1",
        ] {
            assert!(!is_public(v6(bad)), "{bad}");
        }
        for good in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(v6(good)), "{good}");
        }
    }

    #[test]
    fn parses_cache_control() {
        let max = Duration::from_secs(3600);
        assert_eq!(
            cache_max_age(Some("max-age=60"), max),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            cache_max_age(Some("public, Max-Age=999999"), max),
            Some(max)
        );
        assert_eq!(cache_max_age(Some("no-store, max-age=60"), max), None);
        assert_eq!(cache_max_age(Some("max-age=60, no-cache"), max), None);
        assert_eq!(cache_max_age(Some("max-age=abc"), max), None);
        assert_eq!(cache_max_age(Some("public"), max), None);
        assert_eq!(cache_max_age(None, max), None);
    }

    proptest! {
        #[test]
        fn private_v4_ranges_are_never_public(host in any::<u32>()) {
            for (net, bits) in [(0x0a00_0000u32, 8), (0x7f00_0000, 8), (0xa9fe_0000, 16),
                                (0xc0a8_0000, 16), (0xac10_0000, 12), (0x6440_0000, 10)] {
                let ip = Ipv4Addr::from(net | (host >> bits));
                prop_assert!(!is_public(IpAddr::V4(ip)), "{ip}");
            }
        }

        #[test]
        fn mapped_v4_is_judged_like_v4(raw in any::<u32>()) {
            let ip = Ipv4Addr::from(raw);
            prop_assert_eq!(is_public(IpAddr::V6(ip.to_ipv6_mapped())), is_public(IpAddr::V4(ip)));
        }

        #[test]
        fn ula_link_local_multicast_v6_are_never_public(raw in any::<u128>()) {
            for (prefix, bits) in [(0xfc00u128 << 112, 7), (0xfe80u128 << 112, 10), (0xffu128 << 120, 8)] {
                let ip = Ipv6Addr::from(prefix | (raw >> bits));
                prop_assert!(!is_public(IpAddr::V6(ip)), "{ip}");
            }
        }

        #[test]
        fn global_unicast_v6_is_public(raw in any::<u128>()) {
            // 2400::/6 is allocated global unicast space.
            let ip = Ipv6Addr::from((0x2400u128 << 112) | (raw >> 6));
            prop_assert!(is_public(IpAddr::V6(ip)), "{ip}");
        }
    }
}
