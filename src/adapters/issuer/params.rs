//! Form and query parameters as ordered pairs: RFC 6749 §3.1 forbids
//! repeating a parameter (RFC 8707 `resource` excepted), and treats empty
//! values as absent.

/// Decoded `application/x-www-form-urlencoded` pairs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<(String, String)>);

// === impl Params ===

impl Params {
    pub(crate) fn parse(raw: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(raw)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first non-empty value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    /// All non-empty values of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Names (other than `except`) that appear more than once.
    pub(crate) fn duplicated(&self, except: &[&str]) -> Vec<String> {
        let mut seen = std::collections::BTreeMap::<&str, usize>::new();
        for (k, _) in &self.0 {
            *seen.entry(k.as_str()).or_default() += 1;
        }
        seen.into_iter()
            .filter(|(k, n)| *n > 1 && !except.contains(k))
            .map(|(k, _)| k.to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        let p = Params::parse(b"a=1&b=&resource=x&resource=y&a=2&c=%20z");
        assert_eq!(p.get("a").as_deref(), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.all("resource"), vec!["x", "y"]);
        assert_eq!(p.duplicated(&["resource"]), vec!["a"]);
        assert_eq!(p.get("c").as_deref(), Some(" z"));
    }
}
