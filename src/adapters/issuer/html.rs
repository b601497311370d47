//! Server-rendered pages (login, consent, error): every interpolated value is
//! HTML-escaped; pages cannot be framed, cached or run scripts.

use crate::issue::login::{ConsentView, LoginView};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}\
form{margin:1rem 0}label{display:block;margin:.5rem 0}input[type=text],input[type=password]{width:100%;padding:.4rem}\
button,a.btn{padding:.5rem 1rem;margin:.3rem .3rem .3rem 0}.err{color:#b00}.muted{color:#666;font-size:.9em}code{word-break:break-all}";

fn secure(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let pairs = [
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    for (k, v) in pairs {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let doc = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title>\
<style>{STYLE}</style></head><body>{body}</body></html>",
        text(title)
    );
    secure((status, Html(doc)).into_response())
}

/// A 303 redirect (also after POSTs, RFC 9700 §4.11).
pub(super) fn see_other(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(v) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut().insert(header::LOCATION, v);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(_) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Bad redirect.",
        ),
    }
}

pub(super) fn error_page(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<h1>Authorization error</h1><p class=\"err\">{}</p><p class=\"muted\">Error code: <code>{}</code></p>",
        text(message),
        text(code)
    );
    page(status, "Authorization error", &body)
}

/// The login page: username/password form (field names `req`, `csrf`,
/// `username`, `password`, POSTed to `login_url`) and upstream links.
pub(super) fn login_page(v: &LoginView, csrf: &str, login_url: &str) -> Response {
    let mut body = format!(
        "<h1>Sign in</h1><p>to continue to <strong>{}</strong></p>",
        text(&v.client_name)
    );
    if let Some(e) = &v.error {
        body.push_str(&format!("<p class=\"err\">{}</p>", text(e)));
    }
    if let Some(name) = &v.static_provider {
        body.push_str(&format!(
            "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"req\" value=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<label>Username <input type=\"text\" name=\"username\" autocomplete=\"username\" required autofocus></label>\
<label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\">Sign in with {}</button></form>",
            attr(login_url),
            attr(&v.request_id),
            attr(csrf),
            text(name)
        ));
    }
    for (id, name) in &v.upstreams {
        let href = format!(
            "{login_url}?req={}&provider={}",
            url::form_urlencoded::byte_serialize(v.request_id.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        );
        body.push_str(&format!(
            "<p><a class=\"btn\" href=\"{}\">Continue with {}</a></p>",
            attr(&href),
            text(name)
        ));
    }
    let status = if v.error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    page(status, "Sign in", &body)
}

/// The consent page (field names `req`, `csrf`, `decision` =
/// `approve`|`deny`, POSTed to `consent_url`).
pub(super) fn consent_page(v: &ConsentView, csrf: &str, consent_url: &str) -> Response {
    let scopes = if v.scopes.is_empty() {
        "<li>basic access</li>".to_owned()
    } else {
        v.scopes
            .iter()
            .map(|s| format!("<li><code>{}</code></li>", text(s)))
            .collect()
    };
    let unverified = if v.name_unverified {
        " <span class=\"muted\">(name chosen by the application, not verified)</span>"
    } else {
        ""
    };
    let who = match (&v.user, &v.next_provider) {
        (Some(u), _) => format!(" as <strong>{}</strong>", text(u)),
        (None, Some(p)) => format!(
            ". You will sign in with <strong>{}</strong> after approving",
            text(p)
        ),
        (None, None) => String::new(),
    };
    let local = if v.redirect_local {
        "<p class=\"err\">This address is on your own computer: any program running there \
could receive the access. Approve only if you just started this application.</p>"
    } else {
        ""
    };
    let body = format!(
        "<h1>Allow access?</h1>\
<p><strong>{}</strong>{unverified} wants to access <code>{}</code>{who}.</p>\
<p>After you approve, you will be sent to <strong>{}</strong>: <code>{}</code></p>{local}\
<p class=\"muted\">Client ID: <code>{}</code></p><p>Requested permissions:</p><ul>{}</ul>\
<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"req\" value=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        text(&v.client_name),
        text(&v.resource),
        text(&v.redirect_host),
        text(&v.redirect_uri),
        text(&v.client_id),
        scopes,
        attr(consent_url),
        attr(&v.request_id),
        attr(csrf),
    );
    page(StatusCode::OK, "Allow access?", &body)
}

/// The logout confirmation (field `csrf`, POSTed to `logout_url`).
pub(super) fn logout_page(csrf: &str, logout_url: &str, signed_in: bool) -> Response {
    let state = if signed_in {
        "You are signed in to this authorization server."
    } else {
        "You are not signed in."
    };
    let body = format!(
        "<h1>Sign out?</h1><p>{state}</p>\
<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<button type=\"submit\">Sign out</button></form>",
        attr(logout_url),
        attr(csrf),
    );
    page(StatusCode::OK, "Sign out?", &body)
}

pub(super) fn logged_out_page() -> Response {
    page(
        StatusCode::OK,
        "Signed out",
        "<h1>Signed out</h1><p>Applications you approved keep their access until it expires \
or you revoke it; the next authorization asks you to sign in again.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn escapes_everything() {
        let v = ConsentView {
            request_id: "r\"><script>".into(),
            client_id: "c".into(),
            client_name: "<script>alert(1)</script>".into(),
            name_unverified: true,
            redirect_host: "evil.example".into(),
            redirect_uri: "https://evil.example/cb?<x>".into(),
            redirect_local: false,
            scopes: vec!["<b>".into()],
            resource: "https://rs/mcp".into(),
            user: Some("u".into()),
            next_provider: None,
        };
        let r = consent_page(&v, "t", "/consent");
        assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let s = String::from_utf8(body.to_vec()).unwrap();
        assert!(!s.contains("<script>"));
        assert!(s.contains("&lt;script&gt;"));
        assert!(s.contains("evil.example"));
    }
}
