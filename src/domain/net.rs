//! Network facts decided the same way everywhere: which hosts are loopback
//! (RFC 8252 §7.3 / §8.3, plain-http exceptions) and whether a peer is one
//! of the configured trusted proxies.

use ipnet::IpNet;
use std::net::IpAddr;
use url::Host;

/// Whether `host` is the loopback interface: `localhost` (any case) or a
/// loopback address (127.0.0.0/8, `::1`).
pub(crate) fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Whether `host` is a loopback IP literal (RFC 8252 §7.3: the any-port
/// rule is for IP literals; `localhost` is not one).
pub(crate) fn is_loopback_ip(host: &Host<&str>) -> bool {
    matches!(host, Host::Ipv4(_) | Host::Ipv6(_)) && is_loopback_host(host)
}

/// Whether the URL `u` parses and names a loopback host.
pub(crate) fn is_loopback_url(u: &str) -> bool {
    url::Url::parse(u)
        .ok()
        .is_some_and(|u| u.host().is_some_and(|h| is_loopback_host(&h)))
}

/// Whether a connection from `peer` comes from a trusted proxy. An
/// IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`, what a dual-stack listener
/// reports for IPv4 clients) is judged by its IPv4 address, so that
/// `127.0.0.0/8` means the same on either kind of socket.
pub(crate) fn is_trusted_proxy(trusted: &[IpNet], peer: IpAddr) -> bool {
    let ip = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
        v4 => v4,
    };
    trusted.iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(u: &str) -> Host<String> {
        url::Url::parse(u)
            .ok()
            .and_then(|u| u.host().map(|h| h.to_owned()))
            .unwrap_or(Host::Domain(String::new()))
    }

    fn as_ref(h: &Host<String>) -> Host<&str> {
        match h {
            Host::Domain(d) => Host::Domain(d.as_str()),
            Host::Ipv4(ip) => Host::Ipv4(*ip),
            Host::Ipv6(ip) => Host::Ipv6(*ip),
        }
    }

    #[test]
    fn loopback_hosts() {
        for u in [
            "http://localhost/",
            "http://LOCALHOST:8080/",
            "http://127.0.0.1/",
            "http://127.1.2.3:9/",
            "http://[::1]/",
        ] {
            assert!(is_loopback_host(&as_ref(&host(u))), "{u}");
            assert!(is_loopback_url(u), "{u}");
        }
        for u in [
            "http://localhost.example/",
            "http://example.com/",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "not a url",
        ] {
            assert!(!is_loopback_url(u), "{u}");
        }
        assert!(is_loopback_ip(&as_ref(&host("http://127.0.0.1/"))));
        assert!(is_loopback_ip(&as_ref(&host("http://[::1]/"))));
        assert!(!is_loopback_ip(&as_ref(&host("http://localhost/"))));
    }

    #[test]
    fn trusted_proxies_unmap_ipv4_mapped_peers() {
        let nets: Vec<IpNet> = ["127.0.0.0/8", "10.1.0.0/16", "fd00::/8"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let yes = [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "10.1.2.3",
            "::ffff:10.1.2.3",
            "fd00::1",
        ];
        for ip in yes {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_trusted_proxy(&nets, ip), "{ip}");
        }
        let no = [
            "10.2.0.1",
            "::ffff:10.2.0.1",
            "::1",
            "::127.0.0.1",
            "192.0.2.1",
        ];
        for ip in no {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_trusted_proxy(&nets, ip), "{ip}");
        }
        assert!(!is_trusted_proxy(&[], "127.0.0.1".parse().unwrap()));
    }
}
