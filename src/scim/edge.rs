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

/// The resource a SCIM route works on, for a label with few values.
fn resource_of(route: &str) -> &'static str {
    let path = route.trim_start_matches("/scim/v2");
    if path.starts_with("/Users") {
        "User"
    } else if path.starts_with("/Groups") {
        "Group"
    } else if path.starts_with("/Bulk") {
        "Bulk"
    } else {
        "other"
    }
}

/// What the IdP makes of an answer, as its provisioning log shows it: a change made, a read, or
/// an error it reports to its admin (`conflict`, `not_found`, `rejected`) or retries by itself
/// (`throttled`, `failed`).
fn idp_outcome(method: &str, status: StatusCode) -> &'static str {
    match status.as_u16() {
        201 => "created",
        200..=299 | 304 => match method {
            "DELETE" => "deleted",
            "PATCH" | "PUT" => "updated",
            _ => "read",
        },
        409 => "conflict",
        404 => "not_found",
        429 => "throttled",
        400..=499 => "rejected",
        _ => "failed",
    }
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
    metrics::counter!(
        "rolegate_scim_operations_total",
        "resource" => resource_of(&route),
        "outcome" => idp_outcome(&method, status)
    )
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

#[cfg(test)]
mod tests {
    use super::{idp_outcome, resource_of};
    use axum::http::StatusCode;

    #[test]
    fn answers_map_to_what_the_idp_shows() {
        for (method, status, outcome) in [
            ("POST", 201, "created"),
            ("PATCH", 200, "updated"),
            ("PATCH", 204, "updated"),
            ("PUT", 200, "updated"),
            ("DELETE", 204, "deleted"),
            ("GET", 200, "read"),
            ("GET", 304, "read"),
            ("POST", 200, "read"),
            ("POST", 409, "conflict"),
            ("GET", 404, "not_found"),
            ("PATCH", 400, "rejected"),
            ("PUT", 412, "rejected"),
            ("GET", 429, "throttled"),
            ("POST", 500, "failed"),
            ("POST", 503, "failed"),
        ] {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(idp_outcome(method, status), outcome, "{method} {status}");
        }
        assert_eq!(resource_of("/scim/v2/Users/{id}"), "User");
        assert_eq!(resource_of("/scim/v2/Groups"), "Group");
        assert_eq!(resource_of("/scim/v2/Bulk"), "Bulk");
        assert_eq!(resource_of("unmatched"), "other");
    }
}
