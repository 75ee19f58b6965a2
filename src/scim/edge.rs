//! What every SCIM request goes through besides its handler: per-token rate limiting (the
//! buckets are `crate::rate_limit`), metrics by operation and `scimType`, and the per-token log
//! of failed requests that lets an admin see why Okta or Entra shows a provisioning error. A
//! request refused by the rate limit is not logged there: Okta and Entra retry it after
//! `Retry-After`, it is no provisioning error, and a client hammering the limit would otherwise
//! push every real error out of the log. It is counted in `rolegate_scim_rate_limited_total`
//! instead.

use std::sync::{Arc, OnceLock};

use axum::extract::{MatchedPath, OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

use crate::auth::Principal;
use crate::domain::provisioning::{MAX_TARGET_CHARS, ScimRequestError};
use crate::state::AppState;

/// Set by the `ScimClient` extractor, read by [`observe`] once the handler has answered: the
/// token behind the request, if it authenticated.
#[derive(Clone, Default)]
pub(crate) struct CallerSlot(Arc<OnceLock<Principal>>);

impl CallerSlot {
    pub(crate) fn set(&self, principal: &Principal) {
        let _ = self.0.set(principal.clone());
    }
}

/// Marks a route whose handler pays the rate limit itself, by the amount of work it is asked
/// for (`/Bulk`: one per operation), instead of the `ScimClient` extractor's one per request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PricedPerOperation;

/// Carried by every SCIM error response, for the metrics and the error log.
#[derive(Clone, Debug)]
pub(crate) struct ErrorInfo {
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

pub(crate) async fn observe(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    // The URI as the IdP sent it: inside the nested router, `uri()` lacks the `/scim/v2` prefix.
    let uri = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().clone(), |o| o.0.clone());
    let target: String = uri
        .path_and_query()
        .map_or("", |pq| pq.as_str())
        .chars()
        .take(MAX_TARGET_CHARS)
        .collect();
    let request_id = crate::request::request_id(request.extensions());
    let response = next.run(request).await;
    let status = response.status();
    let info = response.extensions().get::<ErrorInfo>().cloned();
    let scim_type = info.as_ref().and_then(|i| i.scim_type).unwrap_or("");
    let operation = format!("{method} {}", route.trim_start_matches("/scim/v2"));
    metrics::counter!("rolegate_scim_requests_total", "operation" => operation, "status" => status.as_u16().to_string(), "scim_type" => scim_type)
        .increment(1);
    let caller = slot.0.get();
    if status == StatusCode::TOO_MANY_REQUESTS {
        // A token over its rate (a 429 without a caller is the failed-credential limit,
        // counted in `rolegate_auth_failures_total`). One series, not one per token: bounded.
        if caller.is_some() {
            metrics::counter!("rolegate_scim_rate_limited_total").increment(1);
        }
    } else if (status.is_client_error() || status.is_server_error())
        && let Some(principal) = caller
    {
        let entry = ScimRequestError {
            id: Uuid::now_v7(),
            token_id: principal.token.id,
            method,
            target,
            status: status.as_u16(),
            scim_type: info.as_ref().and_then(|i| i.scim_type).map(str::to_owned),
            detail: info.map_or_else(
                || status.canonical_reason().unwrap_or("error").to_owned(),
                |i| i.detail,
            ),
            request_id,
            created_at: crate::domain::now(),
        };
        if let Err(error) = state
            .store
            .record_scim_error(principal.tenant_id(), &entry)
            .await
        {
            tracing::warn!(%error, "could not record the SCIM error");
        }
    }
    response
}
