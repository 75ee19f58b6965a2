//! Operations: health, readiness, Prometheus metrics and the per-request span.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::Instrument;

use crate::auth::AuthFailure;
use crate::domain::token::{hash_secret, hashes_match};
use crate::request::{self, REQUEST_ID_HEADER, RequestMeta};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
}

/// Liveness: the process answers. Deliberately does not touch the database.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers and we are not shutting down.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.lifecycle.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    // Without the listener, cached answers could miss another instance's writes.
    if !state.resolver.listening() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not listening for invalidations",
        );
    }
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: store unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store timed out"),
    }
}

async fn render_metrics(State(state): State<AppState>, parts: Parts) -> Response {
    if let Some(refused) = refuse_metrics(&state, &parts) {
        return refused;
    }
    let pool = state.store.pool_stats();
    let in_use = pool.open.saturating_sub(pool.idle);
    metrics::gauge!("rolegate_db_pool_connections", "state" => "in_use").set(f64::from(in_use));
    metrics::gauge!("rolegate_db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!("rolegate_db_pool_max_connections").set(f64::from(pool.max));
    metrics::gauge!("rolegate_db_pool_saturation")
        .set(f64::from(in_use) / f64::from(pool.max.max(1)));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// With `ROLEGATE_METRICS_TOKEN` set, the answer to a scrape without that bearer token: 401
/// with a challenge, or 429 for an address that keeps failing (counted like any credential).
fn refuse_metrics(state: &AppState, parts: &Parts) -> Option<Response> {
    let expected = state.config.metrics_token.as_ref()?;
    let presented = crate::auth::bearer(parts);
    // Comparing digests, in constant time, leaks neither the token nor its length.
    let hash = presented.map(hash_secret);
    if hash.is_some_and(|h| hashes_match(&hash_secret(expected.expose()), &h)) {
        return None;
    }
    let addr = request::client_addr(&parts.extensions);
    let reason = if presented.is_some() {
        "invalid metrics token"
    } else {
        "missing bearer token"
    };
    let failure = match state.auth.gate(addr, hash.as_ref()) {
        Err(failure) => failure,
        Ok(()) => state.auth.reject(addr, hash, reason),
    };
    Some(match failure {
        AuthFailure::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            "too many failed attempts",
        )
            .into_response(),
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required for /metrics",
        )
            .into_response(),
    })
}

/// The edge of every request: works out its id and client address once (see
/// [`crate::request`]), wraps it in a span (matched route, request id, client address), logs
/// its outcome, echoes the id, and records request metrics by matched route, never by raw path
/// (which would explode the label set).
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let request_id = request::accept_request_id(request.headers().get(REQUEST_ID_HEADER));
    let client_addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| {
            request::client_ip(peer.ip(), request.headers(), &state.config.trusted_proxies)
        });
    // Accepted ids are visible ASCII, so they always make a header value.
    let id_header = HeaderValue::from_str(&request_id).ok();
    if let Some(v) = &id_header {
        request.headers_mut().insert(REQUEST_ID_HEADER, v.clone());
    }
    request.extensions_mut().insert(RequestMeta {
        request_id: request_id.clone(),
        client_addr,
    });
    let span = tracing::info_span!("request", %method, %route, %request_id, %client_addr);
    let quiet = matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics");
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Some(v) = id_header {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let elapsed = started.elapsed();
    let status = response.status();
    span.in_scope(|| {
        let ms = elapsed.as_secs_f64() * 1000.0;
        if quiet {
            tracing::debug!(status = status.as_u16(), ms, "request finished");
        } else if status.is_server_error() {
            tracing::error!(status = status.as_u16(), ms, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), ms, "request finished");
        }
    });
    let status_label = status.as_u16().to_string();
    metrics::counter!("rolegate_http_requests_total", "route" => route.clone(), "method" => method.to_string(), "status" => status_label)
        .increment(1);
    metrics::histogram!("rolegate_http_request_duration_seconds", "route" => route, "method" => method.to_string())
        .record(elapsed.as_secs_f64());
    response
}
