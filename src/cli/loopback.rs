//! The loopback redirect listener (RFC 8252 §7.3): `GET /callback` on
//! 127.0.0.1, answering the browser with a short page and handing the
//! first response that carries our `state` to the login.

use super::pkce::{Expect, Rejection};
use super::Error;
use crate::domain::secret::AuthCode;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The redirect path.
pub(crate) const CALLBACK_PATH: &str = "/callback";

/// A bound listener, not yet serving.
#[derive(Debug)]
pub(crate) struct Listener {
    listener: TcpListener,
    pub addr: SocketAddr,
}

type Outcome = Result<AuthCode, Error>;

struct Shared {
    expect: Expect,
    done: Mutex<Option<oneshot::Sender<Outcome>>>,
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{title}</h1><p>{text}</p></body></html>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

async fn callback_get(State(sh): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let outcome = match sh.expect.check(&pairs) {
        Err(Rejection::Foreign) => {
            eprintln!("Ignored a redirect that does not belong to this login (state mismatch).");
            return page(
                StatusCode::BAD_REQUEST,
                "Unexpected request",
                "This response does not belong to the running mcpgate login.",
            );
        }
        Ok(code) => Ok(code),
        Err(Rejection::Failed(m)) => Err(Error::Login(m)),
    };
    let ok = outcome.is_ok();
    let sender = sh.done.lock().ok().and_then(|mut g| g.take());
    match sender {
        Some(tx) => {
            let _ = tx.send(outcome);
        }
        None => {
            return page(
                StatusCode::CONFLICT,
                "Already handled",
                "This login has already completed.",
            )
        }
    }
    if ok {
        page(
            StatusCode::OK,
            "Logged in",
            "mcpgate received the authorization. You can close this window.",
        )
    } else {
        page(
            StatusCode::BAD_REQUEST,
            "Login failed",
            "The authorization failed; see the terminal for details.",
        )
    }
}

// === impl Listener ===

impl Listener {
    /// Binds 127.0.0.1 on `port` (0: any free port).
    pub(crate) async fn bind(port: u16) -> Result<Self, Error> {
        let want = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind(want)
            .await
            .map_err(|e| Error::Login(format!("cannot listen on {want}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Login(format!("cannot listen on {want}: {e}")))?;
        Ok(Self { listener, addr })
    }

    /// `http://127.0.0.1:<port>/callback`.
    pub(crate) fn redirect_uri(&self) -> String {
        format!("http://{}{CALLBACK_PATH}", self.addr)
    }

    /// Serves until the first response with our `state` arrives, or
    /// `timeout` passes.
    pub(crate) async fn wait(self, expect: Expect, timeout: Duration) -> Result<AuthCode, Error> {
        let (tx, rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            expect,
            done: Mutex::new(Some(tx)),
        });
        let app = Router::new()
            .route(CALLBACK_PATH, get(callback_get))
            .with_state(shared);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(self.listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
        });
        let result = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::Login("the redirect listener stopped".into())),
            Err(_) => Err(Error::Login(format!(
                "no redirect within {} s",
                timeout.as_secs()
            ))),
        };
        // Let the browser's page finish, then stop.
        let _ = stop_tx.send(());
        let abort = server.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .is_err()
        {
            abort.abort();
        }
        result
    }
}
