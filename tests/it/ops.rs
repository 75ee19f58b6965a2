//! Health, readiness, metrics, request ids, limits, shutdown, and secrets kept out of logs.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use clap::Parser;
use rolegate::config::ServeArgs;

use crate::common::http::Served;
use crate::common::{Backend, TestApp};

async fn health_readiness_and_metrics_answer(backend: Backend) {
    let app = TestApp::new(backend).await;
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (health.status, health.text.as_str()),
        (StatusCode::OK, "ok")
    );
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    app.get("/scim/v2/ServiceProviderConfig", &app.scim_token)
        .await;
    let created = app
        .scim(
            Method::POST,
            "/Users",
            Some(serde_json::json!({ "userName": "metrics@example.com" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let taken = app
        .scim(
            Method::POST,
            "/Users",
            Some(serde_json::json!({ "userName": "metrics@example.com" })),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    // No relay in tests: the invitation e-mail is logged, and counted as such.
    app.ok(
        Method::POST,
        &format!("/orgs/{}/invitations", app.org_id),
        Some(serde_json::json!({ "emails": "counted@example.com" })),
    )
    .await;
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4")
    );
    for needle in [
        "rolegate_http_requests_total{route=\"/scim/v2/ServiceProviderConfig\",method=\"GET\",status=\"200\"}",
        "rolegate_http_request_duration_seconds_bucket{route=\"/scim/v2/ServiceProviderConfig\",method=\"GET\",le=\"0.005\"}",
        "rolegate_db_pool_connections{state=\"in_use\"}",
        "rolegate_db_pool_saturation",
        "rolegate_scim_operations_total{resource=\"User\",outcome=\"created\"}",
        "rolegate_scim_operations_total{resource=\"User\",outcome=\"conflict\"}",
        "rolegate_scim_operations_total{resource=\"other\",outcome=\"read\"}",
        "rolegate_mail_total{outcome=\"logged\"}",
        // Every metric explains itself.
        "# HELP rolegate_http_requests_total ",
        "# HELP rolegate_http_request_duration_seconds ",
        "# HELP rolegate_db_pool_saturation ",
        "# HELP rolegate_scim_operations_total ",
        "# HELP rolegate_scim_requests_total ",
        "# HELP rolegate_mail_total ",
    ] {
        assert!(
            metrics.text.contains(needle),
            "metrics lack {needle}:\n{}",
            metrics.text
        );
    }
    // Requests are labelled by route template, never by raw path.
    assert!(!metrics.text.contains(&app.org_id.to_string()));
    app.store.close().await;
    assert_eq!(
        app.call(Method::GET, "/readyz", None, None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        app.call(Method::GET, "/healthz", None, None).await.status,
        StatusCode::OK,
        "liveness does not depend on the store"
    );
}

async fn request_ids_are_generated_or_propagated(backend: Backend) {
    let app = TestApp::new(backend).await;
    let generated = app.call(Method::GET, "/healthz", None, None).await;
    let id = generated.headers["x-request-id"].to_str().expect("ascii");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let mine = app
        .send(
            Request::get("/healthz")
                .header("x-request-id", "trace-me-123")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(mine.headers["x-request-id"], "trace-me-123");
}

async fn oversized_bodies_are_refused(backend: Backend) {
    let mut config = ServeArgs::for_tests();
    config.body_limit = 1024;
    let app = TestApp::with_config(backend, config).await;
    let big = serde_json::json!({ "kind": "scim", "name": "x".repeat(4096) });
    let reply = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin_token),
            Some(big),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
}

crate::on_both_backends!(
    health_readiness_and_metrics_answer,
    request_ids_are_generated_or_propagated,
    oversized_bodies_are_refused
);

/// Over real TCP: once shutdown begins, /readyz says 503 while requests are still served, and
/// the server then stops by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_503_before_draining_then_the_server_stops() {
    let mut config = ServeArgs::for_tests();
    config.shutdown_delay = 1;
    let app = TestApp::with_config(Backend::Sqlite, config).await;
    let mut server = Served::start(app.state.clone()).await;
    let base = server.base();
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("ready")
            .status(),
        200
    );
    server.shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("draining")
            .status(),
        503
    );
    let served = client
        .get(format!("{base}/scim/v2/ServiceProviderConfig"))
        .bearer_auth(&app.scim_token)
        .send()
        .await
        .expect("still serving");
    assert_eq!(served.status(), 200);
    server.stopped().await;
}

/// What `serve` starts beside the server it also stops: a background task registered with the
/// state runs while serving, sees the stop signal at shutdown, and is waited for (not aborted)
/// before `serve` returns, so nothing it started outlives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_the_background_tasks_it_started_and_waits_for_them() {
    let app = TestApp::new(Backend::Sqlite).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let saw_stop = Arc::new(AtomicBool::new(false));
    let mut state = app.state.clone();
    let (on_start, on_stop) = (started.clone(), saw_stop.clone());
    state.background.register("probe", move |mut stop| {
        let (started, saw_stop) = (on_start.clone(), on_stop.clone());
        async move {
            started.notify_one();
            stop.requested().await;
            // Still busy after the signal: only a serve that waits sees the flag set.
            tokio::time::sleep(Duration::from_millis(100)).await;
            saw_stop.store(true, Ordering::SeqCst);
        }
    });
    // The test app runs its own copy of the tasks, as a second instance would.
    let before = state.background.live();
    let server = Served::start(state.clone()).await;
    tokio::time::timeout(Duration::from_secs(5), started.notified())
        .await
        .expect("serve starts the background tasks");
    assert!(state.background.live() > before);
    assert!(
        !saw_stop.load(Ordering::SeqCst),
        "not stopped before shutdown"
    );
    server.stopped().await;
    assert!(
        saw_stop.load(Ordering::SeqCst),
        "the task saw the stop and was waited for"
    );
    assert_eq!(
        state.background.live(),
        before,
        "nothing serve started still runs"
    );
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs of authenticated requests, at the most verbose level, never contain a token secret.
#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = TestApp::new(Backend::Sqlite).await;
    app.get("/scim/v2/ServiceProviderConfig", &app.scim_token)
        .await;
    app.get(&format!("/api/v1/orgs/{}", app.org_id), &app.admin_token)
        .await;
    app.get("/scim/v2/ServiceProviderConfig", &app.admin_token)
        .await;
    let created = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin_token),
            Some(serde_json::json!({ "kind": "admin" })),
        )
        .await;
    let minted = created.body["token_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    app.get("/api/v1/tokens", &minted).await;
    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    assert!(
        logs.contains("request finished"),
        "the capture works: {logs}"
    );
    for secret in [&app.scim_token, &app.admin_token, &minted] {
        assert!(!logs.contains(secret.as_str()), "a token secret was logged");
        assert!(
            !logs.contains(&secret[9..]),
            "part of a token secret was logged"
        );
    }
}

#[test]
fn database_password_is_hidden_from_config_debug() {
    let cli = rolegate::config::Cli::parse_from([
        "rolegate",
        "--database-url",
        "postgres://rolegate:hunter2-secret@db.example:5432/rolegate",
        "serve",
    ]);
    let shown = format!("{cli:?}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
    assert!(shown.contains("db.example"));
}

/// A request that does not finish in time (here: a body that never arrives) is answered 408 —
/// under `/api/v1` in the admin API's error shape, like every error there.
#[tokio::test]
async fn slow_requests_time_out_with_408() {
    let mut config = ServeArgs::for_tests();
    config.request_timeout = 1;
    let app = TestApp::with_config(Backend::Sqlite, config).await;
    let never = futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let request = Request::post("/api/v1/tokens")
        .header("authorization", format!("Bearer {}", app.admin_token))
        .header("content-type", "application/json")
        .body(Body::from_stream(never))
        .expect("request");
    let reply = tokio::time::timeout(Duration::from_secs(10), app.send(request))
        .await
        .expect("answered");
    assert_eq!(reply.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(
        reply.body["error"]["code"], "request_timeout",
        "{}",
        reply.text
    );
}

/// jsonwebtoken panics at first use without exactly one crypto backend, and rustls without a
/// default provider: both are configured and work.
#[test]
fn crypto_backends_are_configured() {
    rolegate::install_crypto_provider();
    rolegate::install_crypto_provider();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    let key = jsonwebtoken::EncodingKey::from_secret(b"test-key");
    let claims = serde_json::json!({ "sub": "u1", "exp": 4_102_444_800u64 });
    let jwt = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign");
    let decoded = jsonwebtoken::decode::<serde_json::Value>(
        &jwt,
        &jsonwebtoken::DecodingKey::from_secret(b"test-key"),
        &jsonwebtoken::Validation::default(),
    )
    .expect("verify");
    assert_eq!(decoded.claims["sub"], "u1");
}
