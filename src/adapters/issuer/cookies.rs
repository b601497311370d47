//! The issuer's browser cookies: the login session and the CSRF token that
//! binds login/consent forms to the browser that started the request.
//! Both are HttpOnly, SameSite=Lax, and Secure when the issuer is https.

use axum::http::{header, HeaderMap};

pub(crate) const SESSION_COOKIE: &str = "mcpgate_session";
pub(crate) const CSRF_COOKIE: &str = "mcpgate_csrf";

/// The value of cookie `name`, if sent.
pub(crate) fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value. `max_age` in seconds.
pub(crate) fn set(name: &str, value: &str, path: &str, secure: bool, max_age: u64) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_build() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; mcpgate_csrf=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(get(&h, CSRF_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(get(&h, SESSION_COOKIE), None);
        let c = set(SESSION_COOKIE, "v", "", true, 60);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        assert!(c.contains("Path=/;"));
    }
}
