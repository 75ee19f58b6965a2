//! The router, its layers, and serving with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{admin, console, oidc, ops, scim, session};

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
        .merge(oidc::router())
        .merge(session::token::router())
        .merge(session::routes::router())
        .merge(console::router())
        .fallback(unmatched)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
        // One stack, outermost first: the headers every response carries; the request id and
        // client address, set before the span opens, with the span seeing the timeout's 408
        // and the panic's 500 like any other response; and, innermost, the body read in full
        // before any handler decides anything.
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::map_response(security_headers))
                .layer(axum::middleware::from_fn(admin_error_shape))
                .layer(axum::middleware::from_fn_with_state(
                    state_for_layers,
                    ops::observe,
                ))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    config.request_timeout(),
                ))
                .layer(CatchPanicLayer::new())
                .layer(DefaultBodyLimit::max(config.body_limit))
                .layer(axum::middleware::from_fn_with_state(
                    config.body_limit,
                    read_body_first,
                )),
        )
}

/// A path no route has. Under `/api/v1` it is answered in the admin API's error shape, like every
/// other admin API error; elsewhere a bare 404. (`/scim/v2` answers its own, as SCIM errors.)
async fn unmatched(uri: axum::http::Uri) -> Response {
    if is_admin_path(&uri) {
        ApiError::NoRoute.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// A path that exists, with a method it does not take (axum adds the `Allow` header).
async fn wrong_method(uri: axum::http::Uri) -> Response {
    if is_admin_path(&uri) {
        ApiError::MethodNotAllowed.into_response()
    } else {
        StatusCode::METHOD_NOT_ALLOWED.into_response()
    }
}

fn is_admin_path(uri: &axum::http::Uri) -> bool {
    let path = uri.path();
    path.strip_prefix(admin::BASE_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Under `/api/v1`, the answers the layers make themselves — the timeout's 408, a caught
/// panic's 500, a broken body's 400 — in the admin API's error shape, like every other error
/// there. Handlers' own errors are JSON already and pass untouched.
async fn admin_error_shape(request: Request, next: Next) -> Response {
    let admin = is_admin_path(request.uri());
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !admin || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let error = match status {
        StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::BAD_REQUEST => {
            // `read_body_first`'s own words about the body's framing: ours, safe to pass on.
            let text = axum::body::to_bytes(body, 1024).await.unwrap_or_default();
            ApiError::BadRequest(String::from_utf8_lossy(&text).trim().to_owned())
        }
        StatusCode::INTERNAL_SERVER_ERROR => {
            ApiError::Internal("a handler panicked (caught)".to_owned())
        }
        _ => return Response::from_parts(parts, body),
    };
    let mut mapped = error.into_response();
    if let Some(close) = parts.headers.get(header::CONNECTION) {
        mapped
            .headers_mut()
            .insert(header::CONNECTION, close.clone());
    }
    mapped
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

/// Reads the request body, up to `limit` bytes, before routing goes further, and hands the
/// handler the bytes.
///
/// Why: many answers are decided without looking at the body — an unknown path, a missing or
/// bad token, a rate limit. When a handler drops a body it did not read, hyper makes one
/// attempt to drain what has already arrived and otherwise stops reading the connection: it
/// sends the response and then closes the connection, without `Connection: close`. A client
/// that wrote the body after the head (most do, in two writes) finds its next request on that
/// keep-alive connection answered by a closed socket. Reading the body first means every
/// request is read to its end and the connection stays usable. It costs little: bodies are
/// bounded by the limit, every handler that takes one reads it whole anyway (JSON), and the
/// bytes are handed on, not copied again.
///
/// A body over the limit is not read past it: the handler gets a prefix just over the limit
/// and answers 413 in its own format, and the response says `Connection: close`, since the
/// rest of that body is still on the wire.
async fn read_body_first(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let (parts, mut body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        // Announced too large: the handler's limit answers 413 without reading.
        let response = next.run(Request::from_parts(parts, body)).await;
        return closing(response);
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    let mut over = false;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(frame) = frame else {
            // The framing itself is broken (or the client went away): nothing to keep alive.
            return closing(
                (
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )
                    .into_response(),
            );
        };
        // Trailers carry nothing any handler reads.
        if let Ok(data) = frame.into_data() {
            total += data.len();
            chunks.push(data);
            if total > limit {
                over = true;
                break;
            }
        }
    }
    let bytes = if chunks.len() == 1 {
        chunks.pop().unwrap_or_default()
    } else {
        Bytes::from(chunks.concat())
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if over { closing(response) } else { response }
}

fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// How long the state's background tasks get to return once asked to stop, before they are
/// aborted.
const BACKGROUND_STOP_GRACE: Duration = Duration::from_secs(5);

/// Serves until `shutdown` resolves; then `/readyz` turns 503 at once, and after the configured
/// delay the server stops accepting and drains in-flight requests. The state's background tasks
/// run from the start until the last request was answered (a request in flight may still need
/// what they keep up).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let lifecycle = state.lifecycle.clone();
    let delay = Duration::from_secs(state.config.shutdown_delay);
    let background = state.background.start();
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
    background.stop(BACKGROUND_STOP_GRACE).await;
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
