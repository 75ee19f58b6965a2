//! What every SCIM request goes through besides its handler: per-token rate limiting, metrics
//! by operation and `scimType`, and the per-token log of failed requests that lets an admin see
//! why Okta or Entra shows a provisioning error.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use moka::sync::Cache;
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
    if (status.is_client_error() || status.is_server_error())
        && let Some(principal) = slot.0.get()
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

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// A token bucket per SCIM token: `per_second` sustained, bursts up to twice that. Per
/// instance: N instances allow N times the rate.
pub struct ScimRateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Cache<Uuid, Arc<Mutex<Bucket>>>,
}

impl ScimRateLimiter {
    /// `per_second == 0` disables limiting.
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second);
        ScimRateLimiter {
            per_second,
            burst: (per_second * 2.0).max(1.0),
            buckets: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    /// Takes one request's worth; on refusal, how long until one is available.
    pub fn take(&self, token: Uuid) -> Result<(), Duration> {
        self.take_at(token, Instant::now())
    }

    fn take_at(&self, token: Uuid, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let bucket = self.buckets.get_with(token, || {
            Arc::new(Mutex::new(Bucket {
                tokens: self.burst,
                refilled: now,
            }))
        });
        let mut b = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.refilled = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_burst_then_the_sustained_rate() {
        let limiter = ScimRateLimiter::new(10);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(limiter.take_at(a, t0).is_ok());
        }
        let wait = limiter.take_at(a, t0).expect_err("burst used up");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        assert!(
            limiter.take_at(b, t0).is_ok(),
            "other tokens have their own bucket"
        );
        assert!(
            limiter.take_at(a, t0 + Duration::from_millis(100)).is_ok(),
            "one more after 1/rate"
        );
        assert!(limiter.take_at(a, t0 + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn zero_disables_limiting() {
        let limiter = ScimRateLimiter::new(0);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| limiter.take_at(Uuid::nil(), t0).is_ok()));
    }
}
