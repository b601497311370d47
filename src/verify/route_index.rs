//! The route index: host, then a path-segment trie, built once at config
//! load so a Check costs one host lookup and one lookup per path segment,
//! whatever the number of routes.
//!
//! It returns exactly the route the linear rule returns (kept in the tests
//! as the oracle): of the routes whose host is the request's (or any host)
//! and whose `path_prefix` is the path or a parent of it at a `/` boundary,
//! a host-specific route beats an any-host one, then the longer prefix
//! (trailing `/` ignored) wins, then the later route in the config.
//!
//! Only canonical hosts and paths come in (`Authorizer::check` canonicalises
//! them first, DESIGN.md §4, and its decision carries them to the log);
//! nothing here re-derives them.

use std::collections::HashMap;

/// Indexes into the route list, by host.
#[derive(Debug, Clone, Default)]
pub(super) struct RouteIndex {
    /// Routes with a host, by that (canonical) host.
    by_host: HashMap<Box<str>, Table>,
    /// Routes for any host.
    any_host: Table,
}

/// The routes of one host class.
#[derive(Debug, Clone, Default)]
struct Table {
    /// The last route whose prefix is `""` or `/`: it matches every path.
    every_path: Option<usize>,
    /// Every other prefix, trailing `/` removed, split at `/`: the node at
    /// depth `k` holds the last route whose prefix has those `k` segments.
    /// A canonical path starts with `/`, so its first segment is `""`.
    trie: Node,
}

#[derive(Debug, Clone, Default)]
struct Node {
    route: Option<usize>,
    /// The child for the empty segment (every path's first, as paths start
    /// with `/`), apart: comparing two empty strings, whose pointers are
    /// dangling, costs about a microsecond in glibc's AVX-512 `memcmp` on
    /// some machines (a masked load's fault suppression), 20 times a lookup.
    empty: Option<Box<Node>>,
    children: HashMap<Box<str>, Node>,
}

// === impl Node ===

impl Node {
    fn child(&self, seg: &str) -> Option<&Node> {
        if seg.is_empty() {
            self.empty.as_deref()
        } else {
            self.children.get(seg)
        }
    }

    fn child_mut(&mut self, seg: &str) -> &mut Node {
        if seg.is_empty() {
            self.empty.get_or_insert_with(Box::default)
        } else {
            self.children.entry(seg.into()).or_default()
        }
    }
}

// === impl RouteIndex ===

impl RouteIndex {
    /// Indexes `(host, path_prefix)` pairs, in config order.
    pub(super) fn new<'a>(routes: impl IntoIterator<Item = (Option<&'a str>, &'a str)>) -> Self {
        let mut index = Self::default();
        for (i, (host, prefix)) in routes.into_iter().enumerate() {
            let table = match host {
                Some(h) => index.by_host.entry(h.into()).or_default(),
                None => &mut index.any_host,
            };
            table.insert(i, prefix);
        }
        index
    }

    /// The index of the route for a canonical `host` and `path`.
    pub(super) fn find(&self, host: &str, path: &str) -> Option<usize> {
        self.by_host
            .get(host)
            .and_then(|t| t.find(path))
            .or_else(|| self.any_host.find(path))
    }
}

// === impl Table ===

impl Table {
    fn insert(&mut self, i: usize, prefix: &str) {
        // The same rule as `policy::prefix_at_boundary`.
        if prefix.is_empty() || prefix == "/" {
            self.every_path = Some(i);
            return;
        }
        let mut node = &mut self.trie;
        for seg in prefix.trim_end_matches('/').split('/') {
            node = node.child_mut(seg);
        }
        // A later route with the same prefix wins, as with the linear rule.
        node.route = Some(i);
    }

    fn find(&self, path: &str) -> Option<usize> {
        // The deepest match is the longest prefix. Only a prefix of length
        // 0 (`//`, trimmed to `""`) can tie with `every_path`: then the
        // later route wins.
        let mut best: Option<(usize, usize)> = None; // (prefix length, route)
        let mut node = &self.trie;
        let mut len = 0;
        for (depth, seg) in path.split('/').enumerate() {
            let Some(next) = node.child(seg) else {
                break;
            };
            node = next;
            len += seg.len() + usize::from(depth > 0);
            if let Some(r) = node.route {
                best = Some((len, r));
            }
        }
        match (best, self.every_path) {
            (Some((0, r)), Some(e)) => Some(r.max(e)),
            (Some((_, r)), _) => Some(r),
            (None, e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::policy::{Route, Routes};
    use super::super::request::{canonical_host, canonical_path};
    use crate::domain::claims::Scopes;
    use proptest::prelude::*;

    fn route(host: Option<&str>, prefix: &str) -> Route {
        Route::new(
            host.map(str::to_owned),
            prefix.to_owned(),
            format!("https://r.example{prefix}"),
            Scopes::parse("mcp"),
            vec![],
            false,
            false,
            "https://r.example/.well-known/oauth-protected-resource".into(),
        )
    }

    /// Hosts as configured: case, a trailing dot, IDNA, an IP literal and
    /// `*` (not a wildcard: it has no canonical form, so nothing matches it).
    const HOSTS: &[&str] = &[
        "a.example",
        "A.Example.",
        "b.example",
        "xn--bcher-kva.example",
        "bücher.example",
        "[::1]",
        "127.0.0.1",
        "*",
        "*.example",
    ];
    /// Segments that meet at prefix boundaries (`mcp` / `mcpx`), differ by
    /// case, are empty (so `//`, trailing `/`) or are dot-segments.
    const SEGS: &[&str] = &["", "mcp", "mcpx", "MCP", "m", "a", "b", ".", "..", "%41"];

    fn joined(segs: Vec<usize>, lead: bool, trail: bool) -> String {
        let mut s = String::new();
        if lead {
            s.push('/');
        }
        s.push_str(&segs.iter().map(|&i| SEGS[i]).collect::<Vec<_>>().join("/"));
        if trail {
            s.push('/');
        }
        s
    }

    fn path() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(0..SEGS.len(), 0..5),
            prop::bool::weighted(0.9),
            any::<bool>(),
        )
            .prop_map(|(s, l, t)| joined(s, l, t))
    }

    fn routes() -> impl Strategy<Value = Vec<(Option<usize>, String)>> {
        prop::collection::vec((prop::option::of(0..HOSTS.len()), path()), 0..24)
    }

    fn check(table: &[(Option<usize>, String)], hosts: &[String], paths: &[String]) {
        let rs = Routes::new(
            table
                .iter()
                .map(|(h, p)| route(h.map(|i| HOSTS[i]), p))
                .collect(),
        );
        for h in hosts {
            for p in paths {
                let got = rs.find(h, p).map(|r| r as *const Route);
                let want = rs.find_linear(h, p).map(|r| r as *const Route);
                assert_eq!(got, want, "host {h:?} path {p:?} routes {table:?}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// On the canonical inputs the authorizer passes: the index is the
        /// linear rule.
        #[test]
        fn index_is_the_linear_rule(
            table in routes(),
            raw_hosts in prop::collection::vec(0..HOSTS.len(), 1..4),
            raw_paths in prop::collection::vec(path(), 1..8),
        ) {
            let hosts: Vec<String> = raw_hosts
                .iter()
                .filter_map(|&i| canonical_host(HOSTS[i]).ok().map(|h| h.into_owned()))
                .collect();
            let mut paths: Vec<String> = raw_paths
                .iter()
                .filter_map(|p| canonical_path(p).ok().map(|c| c.into_owned()))
                .collect();
            // Each route's own prefix, and one segment past it.
            for (_, p) in &table {
                if let Ok(c) = canonical_path(p) {
                    paths.push(format!("{c}x"));
                    paths.push(format!("{}/x", c.trim_end_matches('/')));
                    paths.push(c.into_owned());
                }
            }
            check(&table, &hosts, &paths);
        }

        /// The same on raw strings (not canonical, not even absolute): the
        /// index does not depend on canonical input to agree.
        #[test]
        fn index_is_the_linear_rule_on_any_string(
            table in routes(),
            raw_hosts in prop::collection::vec(0..HOSTS.len(), 1..4),
            paths in prop::collection::vec(path(), 1..8),
        ) {
            let hosts: Vec<String> = raw_hosts.iter().map(|&i| HOSTS[i].to_owned()).collect();
            check(&table, &hosts, &paths);
        }
    }

    #[test]
    fn precedence_cases() {
        let table: Vec<(Option<usize>, String)> = [
            (None, "/"),
            (None, "//"),
            (None, "/mcp"),
            (None, "/mcp/"),
            (Some(0), "/mcp/x"),
            (Some(1), ""),
            (Some(7), "/"),
            (None, "/mcpx/y/"),
        ]
        .into_iter()
        .map(|(h, p)| (h, p.to_owned()))
        .collect();
        let paths: Vec<String> = [
            "", "/", "/mcp", "/mcp/", "/mcpx", "/mcp/x", "/mcp/xy", "/MCP", "/mcpx/y", "/mcpx/yz",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let hosts = ["a.example", "b.example", "*"].map(str::to_owned);
        check(&table, &hosts, &paths);
        let rs = Routes::new(
            table
                .iter()
                .map(|(h, p)| route(h.map(|i| HOSTS[i]), p))
                .collect(),
        );
        // Same host class, same prefix up to a trailing `/`: the later one.
        assert_eq!(rs.find("b.example", "/mcp/a").unwrap().path_prefix, "/mcp/");
        // Any host-specific route beats an any-host one, however long.
        assert_eq!(rs.find("a.example", "/mcpx/y").unwrap().path_prefix, "");
        // `*` is a literal host no canonical host equals.
        assert_eq!(rs.find("b.example", "/").unwrap().path_prefix, "//");
    }
}
