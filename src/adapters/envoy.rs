//! Envoy `envoy.service.auth.v3.Authorization/Check` (ext_authz gRPC).

use super::verifier_state::{RequestIds, VerifierState};
use crate::verify::authorizer::Decision;
use crate::verify::decision::Verdict;
use crate::verify::request::AuthzRequest;
use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, HeaderAppendAction, HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The ext_authz service.
#[derive(Clone)]
pub(crate) struct EnvoyAuthz(pub Arc<VerifierState>);

#[tonic::async_trait]
impl Authorization for EnvoyAuthz {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let started = std::time::Instant::now();
        let req = request.into_inner();
        let http = req
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let Some(http) = http else {
            return Err(Status::invalid_argument("missing attributes.request.http"));
        };
        let h = &http.headers;
        // With `encode_raw_headers`, Envoy sends `header_map` (one entry
        // per header line) instead of `headers` (duplicates joined by `,`).
        let raw = http
            .header_map
            .as_ref()
            .map(|m| m.headers.as_slice())
            .unwrap_or(&[]);
        let mut ambiguous = false;
        let mut get = |k: &str| {
            let (v, twice) = one_header(h, raw, k);
            ambiguous |= twice;
            v
        };
        let authorization = get("authorization");
        let mcp_method = get("mcp-method");
        let mcp_name = get("mcp-name");
        let protocol_version = get("mcp-protocol-version");
        let partial = get("x-envoy-auth-partial-body").is_some_and(|v| v == "true");
        let authority = get(":authority");
        let host = if http.host.is_empty() {
            authority.unwrap_or("")
        } else {
            &http.host
        };
        // The body as Envoy buffered it (`with_request_body`); a truncated
        // one is no body at all (the strongest scopes apply).
        let body = if partial {
            None
        } else if !http.raw_body.is_empty() {
            Some(http.raw_body.as_slice())
        } else {
            Some(http.body.as_bytes()).filter(|b| !b.is_empty())
        };
        let areq = AuthzRequest {
            method: &http.method,
            host,
            path: &http.path,
            unverified_authorization: authorization,
            mcp_method,
            mcp_name,
            protocol_version,
            body,
            ambiguous,
        };
        let d = self.0.authorizer.check(&areq).await;
        // Correlation ids, for the log only (never part of the decision).
        let id = |k: &str| one_header(h, raw, k).0;
        let ids = RequestIds {
            request_id: id("x-request-id").or(Some(http.id.as_str()).filter(|i| !i.is_empty())),
            traceparent: id("traceparent"),
        };
        self.0.metrics.decision_took("grpc", started.elapsed());
        self.0.record("grpc", &areq, ids, &d);
        Ok(Response::new(to_check_response(&self.0, d)))
    }
}

/// The value of header `k` (lower case), and whether it is ambiguous:
/// several lines in `header_map` (Envoy's `encode_raw_headers`), a `,` from
/// Envoy's join of duplicates in `headers`, or a value that is not UTF-8.
/// The first copy is returned either way; deciders refuse ambiguity.
fn one_header<'a>(
    h: &'a std::collections::HashMap<String, String>,
    raw: &'a [envoy_types::pb::envoy::config::core::v3::HeaderValue],
    k: &str,
) -> (Option<&'a str>, bool) {
    if let Some(v) = h.get(k) {
        return (Some(v.as_str()), v.contains(','));
    }
    let mut it = raw.iter().filter(|hv| hv.key.eq_ignore_ascii_case(k));
    let Some(hv) = it.next() else {
        return (None, false);
    };
    let twice = it.next().is_some();
    if hv.raw_value.is_empty() {
        (Some(hv.value.as_str()), twice)
    } else {
        match std::str::from_utf8(&hv.raw_value) {
            Ok(v) => (Some(v), twice),
            Err(_) => (None, true),
        }
    }
}

/// Encodes a decision for Envoy.
pub(crate) fn to_check_response(st: &VerifierState, d: Decision<'_>) -> CheckResponse {
    match d.verdict {
        Verdict::Allow(identity) => {
            let mut ok = OkHttpResponseBuilder::new();
            let values = identity.as_ref().map(|v| &v.header_values);
            for (i, name) in st.headers.identity.iter().enumerate() {
                match values.and_then(|v| v[i].as_deref()) {
                    Some(v) => {
                        ok.add_header(
                            name.as_str(),
                            v,
                            Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
                            false,
                        );
                    }
                    None => {
                        ok.remove_header(name.as_str());
                    }
                }
            }
            if st.headers.remove_authorization {
                ok.remove_header("authorization");
            }
            let mut resp = CheckResponse::with_status(Status::ok(""));
            resp.set_http_response(ok);
            resp
        }
        Verdict::Deny(deny) => {
            let (code, grpc) = match deny.status {
                400 => (
                    HttpStatusCode::BadRequest,
                    Status::invalid_argument("bad request"),
                ),
                401 => (
                    HttpStatusCode::Unauthorized,
                    Status::unauthenticated("unauthorized"),
                ),
                403 => (
                    HttpStatusCode::Forbidden,
                    Status::permission_denied("forbidden"),
                ),
                _ => (
                    HttpStatusCode::ServiceUnavailable,
                    Status::unavailable("unavailable"),
                ),
            };
            let mut denied = DeniedHttpResponseBuilder::new();
            denied.set_http_status(code);
            if let Some(ch) = deny.challenge {
                denied.add_header("www-authenticate", ch, None, false);
            }
            let mut resp = CheckResponse::with_status(grpc);
            resp.set_http_response(denied);
            resp
        }
    }
}
