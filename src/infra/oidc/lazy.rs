//! An OIDC provider whose discovery may fail at start-up: the issuer still
//! starts (other providers keep working), logins through this provider
//! answer "unavailable", and discovery is retried in the background with
//! capped exponential backoff until it succeeds. A provider that answers
//! but is misconfigured (issuer mismatch) still fails start-up.

use super::{OidcIdp, OidcSettings};
use crate::domain::clock::Clock;
use crate::issue::upstream::{UpstreamAuthRequest, UpstreamError, UpstreamIdp, UpstreamUser};
use async_trait::async_trait;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// First retry delay; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub struct LazyOidc {
    id: String,
    display_name: String,
    ready: Arc<OnceLock<OidcIdp>>,
}

impl LazyOidc {
    /// Discovers now; on an availability failure, returns a provider that
    /// keeps retrying in a background task (on the current runtime).
    pub async fn start(
        settings: OidcSettings,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, UpstreamError> {
        let ready = Arc::new(OnceLock::new());
        let me = Self {
            id: settings.id.clone(),
            display_name: settings.display_name.clone(),
            ready: ready.clone(),
        };
        match OidcIdp::discover_with_clock(settings.clone(), http.clone(), clock.clone()).await {
            Ok(idp) => {
                let _ = ready.set(idp);
            }
            Err(UpstreamError::Unavailable(e)) => {
                tracing::warn!(provider = %me.id, error = %e, "OIDC discovery failed; retrying in the background");
                tokio::spawn(retry(settings, http, clock, Arc::downgrade(&ready)));
            }
            Err(e) => return Err(e),
        }
        Ok(me)
    }

    fn get(&self) -> Result<&OidcIdp, UpstreamError> {
        self.ready.get().ok_or_else(|| {
            UpstreamError::Unavailable(format!("provider {} is not reachable yet", self.id))
        })
    }
}

async fn retry(
    settings: OidcSettings,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    ready: std::sync::Weak<OnceLock<OidcIdp>>,
) {
    let mut wait = FIRST_BACKOFF;
    loop {
        tokio::time::sleep(wait).await;
        // The issuer is gone: stop.
        let Some(slot) = ready.upgrade() else { return };
        match OidcIdp::discover_with_clock(settings.clone(), http.clone(), clock.clone()).await {
            Ok(idp) => {
                tracing::info!(provider = %settings.id, "OIDC discovery succeeded");
                let _ = slot.set(idp);
                return;
            }
            Err(e) => {
                tracing::warn!(provider = %settings.id, error = %e, retry_in = ?wait, "OIDC discovery failed");
            }
        }
        wait = (wait * 2).min(MAX_BACKOFF);
    }
}

#[async_trait]
impl UpstreamIdp for LazyOidc {
    fn id(&self) -> &str {
        &self.id
    }

    fn display_name(&self) -> &str {
        &self.display_name
    }

    fn authorize_url(&self, req: &UpstreamAuthRequest) -> Result<String, UpstreamError> {
        self.get()?.authorize_url(req)
    }

    async fn exchange(
        &self,
        code: &str,
        req: &UpstreamAuthRequest,
    ) -> Result<UpstreamUser, UpstreamError> {
        self.get()?.exchange(code, req).await
    }
}
