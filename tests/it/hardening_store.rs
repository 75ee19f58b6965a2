//! Store and team-model hardening (issue 8, the LOW items): invitation acceptance under the
//! Owner rule, invitation limits, statement deadlines, database text kept from clients, two
//! races under real concurrency, tenant scoping of every statement, and unknown permission
//! groups — on both backends, through the real router where a client can see the behaviour.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use rolegate::domain::audit::Actor;
use rolegate::domain::token::TokenKind;
use rolegate::store::{Ctx, StoreOptions};
use serde_json::{Value, json};

use crate::common::http::Reply;
use crate::common::{Backend, TestApp, TestDb};

/// The statement deadline is for requests: migrations run without it, however short it is.
async fn a_tiny_statement_deadline_never_cuts_off_migrations(backend: Backend) {
    // Empty on both backends (`TestDb::new` clones an already migrated PostgreSQL template).
    let db = match backend {
        Backend::Sqlite => TestDb::new(backend).await,
        Backend::Postgres => TestDb::empty_postgres().await,
    };
    let options = StoreOptions {
        max_connections: 2,
        migrate: true,
        statement_timeout: Some(Duration::from_millis(1)),
    };
    let store = rolegate::store::connect(&db.url, &options)
        .await
        .expect("a fresh database migrates under a 1 ms statement deadline");
    store.close().await;
    // The schema is all there: a store without the deadline writes to it.
    let store = db.store().await;
    store
        .create_org(&Ctx::new(Actor::Cli), "Acme", "owner@acme.test")
        .await
        .expect("migrated schema");
}

/// What a database says about a refused write: its words must not reach a client.
const DATABASE_WORDING: [&str; 10] = [
    "UNIQUE",
    "FOREIGN",
    "constraint",
    "violates",
    "_fkey",
    "_key",
    "api_tokens",
    "users.",
    "orgs",
    "environments",
];

fn assert_in_our_words(text: &str) {
    for word in DATABASE_WORDING {
        assert!(!text.contains(word), "{word:?} reached the client: {text}");
    }
}

async fn database_wording_never_reaches_a_client(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id;
    let sub = admin_ok(
        &app,
        Method::POST,
        "/orgs",
        Some(json!({ "name": "Payments", "parent_id": root })),
    )
    .await;
    let sub = sub["id"].as_str().expect("id").to_owned();
    // The sub-org is empty as far as the API checks, but a token still names it: the database's
    // foreign key refuses the delete, and says so in its own words.
    app.token(sub.parse().expect("uuid"), TokenKind::Scim).await;
    let refused = admin(&app, Method::DELETE, &format!("/orgs/{sub}"), None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(
        refused.body["error"]["message"], "conflicts with existing data",
        "{}",
        refused.text
    );
    assert_in_our_words(&refused.text);

    // A uniqueness rule the store names keeps its sentence.
    let product = admin_ok(
        &app,
        Method::POST,
        &format!("/orgs/{root}/products"),
        Some(json!({ "name": "Checkout" })),
    )
    .await;
    let taken = admin(
        &app,
        Method::POST,
        &format!(
            "/products/{}/environments",
            product["id"].as_str().expect("id")
        ),
        Some(json!({ "name": "production" })),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
    assert_eq!(
        taken.body["error"]["message"],
        "environment name already used in this product"
    );
    assert_in_our_words(&taken.text);

    // The SCIM edge: a taken userName is `uniqueness`, in our words.
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ada@acme.test",
    });
    let first = app.scim(Method::POST, "/Users", Some(user.clone())).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = app.scim(Method::POST, "/Users", Some(user)).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.body["scimType"], "uniqueness");
    assert_in_our_words(&again.text);
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Reply {
    app.call(
        method,
        &format!("/api/v1{path}"),
        Some(&app.admin_token),
        body,
    )
    .await
}

async fn admin_ok(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Value {
    let reply = admin(app, method.clone(), path, body).await;
    assert!(
        reply.status.is_success(),
        "{method} {path}: {} {}",
        reply.status,
        reply.text
    );
    reply.body
}

crate::on_both_backends!(
    a_tiny_statement_deadline_never_cuts_off_migrations,
    database_wording_never_reaches_a_client,
);
