//! The router, its layers, and serving with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::state::AppState;
use crate::{admin, ops, scim};

/// The whole HTTP surface. `main` and the tests build the service from this one function.
pub fn app(state: AppState) -> Router {
    let config = state.config.clone();
    let state_for_layers = state.clone();
    Router::new()
        .merge(ops::router())
        .nest("/scim/v2", scim::router(state.clone()))
        // Mounted at `admin::BASE_PATH` (`/api/v1`) by `admin::router()` itself, so that its
        // OpenAPI document's paths are the full ones.
        .merge(admin::router())
        .with_state(state)
        // One stack, outermost first: the headers every response carries; the request id and
        // client address, set before the span opens, with the span seeing the timeout's 408
        // and the panic's 500 like any other response.
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::map_response(security_headers))
                .layer(axum::middleware::from_fn_with_state(
                    state_for_layers,
                    ops::observe,
                ))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    config.request_timeout(),
                ))
                .layer(CatchPanicLayer::new())
                .layer(DefaultBodyLimit::max(config.body_limit)),
        )
}

/// On every response, errors and `/metrics` included: browsers must not guess a content type
/// (a JSON error echoing input must never be sniffed into HTML).
async fn security_headers(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Serves until `shutdown` resolves; then `/readyz` turns 503 at once, and after the configured
/// delay the server stops accepting and drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let lifecycle = state.lifecycle.clone();
    let delay = Duration::from_secs(state.config.shutdown_delay);
    let upkeep = state.metrics.spawn_upkeep();
    let router = app(state);
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        lifecycle.begin_shutdown();
        tracing::info!(
            delay_secs = delay.as_secs(),
            "shutdown requested: not ready, draining after delay"
        );
        tokio::time::sleep(delay).await;
    })
    .await;
    upkeep.abort();
    served
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
