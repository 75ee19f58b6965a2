//! The SCIM edge around every handler: errors in SCIM form, per-token rate limiting, metrics
//! by operation and scimType, and the per-token log of failed requests for admins.

use axum::http::{Method, StatusCode};
use rolegate::config::ServeArgs;
use rolegate::domain::audit::Actor;
use rolegate::domain::token::TokenKind;
use rolegate::store::Ctx;

use crate::common::{Backend, TestApp};

fn assert_scim_error(reply: &crate::common::http::Reply, status: u16) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/scim+json");
    assert_eq!(
        reply.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(reply.body["status"], status.to_string());
}

async fn unsupported_calls_get_scim_errors_and_land_in_the_token_error_log(backend: Backend) {
    let app = TestApp::new(backend).await;
    let me = app.get("/scim/v2/Me", &app.scim_token).await;
    assert_scim_error(&me, 501);
    let write = app
        .call(
            Method::PUT,
            "/scim/v2/ServiceProviderConfig",
            Some(&app.scim_token),
            Some(serde_json::json!({})),
        )
        .await;
    assert_scim_error(&write, 405);
    let unknown = app
        .get(
            "/scim/v2/Nope?filter=userName%20eq%20%22ada%22",
            &app.scim_token,
        )
        .await;
    assert_scim_error(&unknown, 404);

    let token_id = app.scim_token_id().await;
    let log = app
        .get(
            &format!("/api/v1/tokens/{token_id}/errors"),
            &app.admin_token,
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    let errors = log.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[0]["status"], 404, "newest first");
    assert_eq!(
        errors[0]["target"],
        "/scim/v2/Nope?filter=userName%20eq%20%22ada%22"
    );
    assert_eq!(errors[0]["method"], "GET");
    assert!(errors[0]["request_id"].is_string());
    assert_eq!(errors[1]["status"], 405);
    assert_eq!(
        errors[2]["detail"].as_str().map(|d| d.contains("/Me")),
        Some(true)
    );

    // Unauthenticated failures belong to no token; another tenant cannot read this log.
    app.get("/scim/v2/Me", "rg_scim_wrong").await;
    assert_eq!(
        app.get(
            &format!("/api/v1/tokens/{token_id}/errors"),
            &app.admin_token
        )
        .await
        .body["errors"]
            .as_array()
            .expect("e")
            .len(),
        3
    );
    let (other, _) = app
        .store
        .create_org(&Ctx::new(Actor::Cli), "Other", "o@other.test")
        .await
        .expect("org");
    let other_admin = app.token(other.id, TokenKind::Admin).await;
    assert_eq!(
        app.get(&format!("/api/v1/tokens/{token_id}/errors"), &other_admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let metrics = app.call(Method::GET, "/metrics", None, None).await.text;
    assert!(
        metrics.contains(
            r#"rolegate_scim_requests_total{operation="GET /Me",status="501",scim_type=""}"#
        ),
        "{metrics}"
    );
}

async fn the_error_log_keeps_the_newest_hundred(backend: Backend) {
    let app = TestApp::new(backend).await;
    for i in 0..105 {
        app.get(&format!("/scim/v2/Missing{i}"), &app.scim_token)
            .await;
    }
    let token_id = app.scim_token_id().await;
    let log = app
        .get(
            &format!("/api/v1/tokens/{token_id}/errors?limit=100"),
            &app.admin_token,
        )
        .await;
    let errors = log.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 100);
    assert_eq!(errors[0]["target"], "/scim/v2/Missing104");
    assert_eq!(errors[99]["target"], "/scim/v2/Missing5");
    assert_eq!(
        app.get(
            &format!("/api/v1/tokens/{token_id}/errors?limit=0"),
            &app.admin_token
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn a_token_over_its_rate_gets_429_with_retry_after(backend: Backend) {
    let mut config = ServeArgs::for_tests();
    config.scim_rate_limit = 2;
    let app = TestApp::with_config(backend, config).await;
    let other_token = app.token(app.org_id, TokenKind::Scim).await;
    // A burst of twice the rate passes, then the token waits.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            app.get("/scim/v2/ServiceProviderConfig", &app.scim_token)
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..4], [200, 200, 200, 200]);
    assert!(statuses[4..].contains(&429), "{statuses:?}");
    let limited = app
        .get("/scim/v2/ServiceProviderConfig", &app.scim_token)
        .await;
    assert_scim_error(&limited, 429);
    assert!(
        limited.headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse::<u64>()
            .expect("secs")
            >= 1
    );
    assert_eq!(
        app.get("/scim/v2/ServiceProviderConfig", &other_token)
            .await
            .status,
        StatusCode::OK,
        "per token"
    );
}

fn bulk_of_users(names: &[&str]) -> serde_json::Value {
    let operations: Vec<serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            serde_json::json!({
                "method": "POST", "path": "/Users", "bulkId": format!("b{i}"),
                "data": {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": name,
                },
            })
        })
        .collect();
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": operations,
    })
}

/// A Bulk pays one rate-limit token per operation; one the budget cannot cover is refused
/// whole, before anything runs; and 429s are no provisioning errors: they are counted, not
/// logged.
async fn bulk_pays_per_operation_and_429s_stay_out_of_the_error_log(backend: Backend) {
    let mut config = ServeArgs::for_tests();
    config.scim_rate_limit = 1; // bursts of 2
    let app = TestApp::with_config(backend, config).await;
    let checker = app.token(app.org_id, TokenKind::Scim).await;

    // Larger than a whole burst: it runs on a full bucket, and the token then owes the rest.
    let big = app
        .scim(
            Method::POST,
            "/Bulk",
            Some(bulk_of_users(&[
                "u1@x.test",
                "u2@x.test",
                "u3@x.test",
                "u4@x.test",
                "u5@x.test",
            ])),
        )
        .await;
    assert_eq!(big.status, StatusCode::OK, "{}", big.text);
    let results = big.body["Operations"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    assert!(results.iter().all(|r| r["status"] == "201"), "{results:?}");

    let next = app.scim(Method::GET, "/Users", None).await;
    assert_scim_error(&next, 429);
    let wait: u64 = next.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!(
        wait >= 2,
        "three operations still owed at one a second: {wait}"
    );

    let refused = app
        .scim(
            Method::POST,
            "/Bulk",
            Some(bulk_of_users(&["late1@x.test", "late2@x.test"])),
        )
        .await;
    assert_scim_error(&refused, 429);
    let late = app
        .scim_as(
            &checker,
            Method::GET,
            "/Users?filter=userName%20sw%20%22late%22",
            None,
            &[],
        )
        .await;
    assert_eq!(late.status, StatusCode::OK, "{}", late.text);
    assert_eq!(
        late.body["totalResults"], 0,
        "nothing of a refused Bulk runs"
    );

    let token_id = app.scim_token_id().await;
    let log = app
        .get(
            &format!("/api/v1/tokens/{token_id}/errors"),
            &app.admin_token,
        )
        .await;
    assert_eq!(log.body["errors"], serde_json::json!([]), "{}", log.text);
    let metrics = app.call(Method::GET, "/metrics", None, None).await.text;
    assert!(
        metrics.contains("rolegate_scim_rate_limited_total "),
        "{metrics}"
    );
}

crate::on_both_backends!(
    bulk_pays_per_operation_and_429s_stay_out_of_the_error_log,
    unsupported_calls_get_scim_errors_and_land_in_the_token_error_log,
    the_error_log_keeps_the_newest_hundred,
    a_token_over_its_rate_gets_429_with_retry_after,
);
