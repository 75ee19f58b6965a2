//! OIDC connections through the admin API (issue 12), against a real OpenID Provider on
//! loopback for discovery.

use axum::http::{Method, StatusCode};
use rolegate::domain::audit::Actor;
use rolegate::domain::token::TokenKind;
use rolegate::store::Ctx;
use serde_json::{Value, json};

use crate::common::oidc::{CLIENT_ID, CLIENT_SECRET, Provider};
use crate::common::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    connections_are_added_listed_changed_and_removed_and_the_secret_never_shows,
    a_provider_whose_discovery_fails_is_refused_with_the_reason,
    a_domain_is_claimed_by_one_connection_only_and_routes_discovery,
    a_connection_used_by_mapping_rules_cannot_be_removed,
    a_sub_orgs_token_does_not_reach_its_parents_connections,
);

pub fn provider() -> Provider {
    Provider::start(&["http://127.0.0.1:1/unused".to_owned()], json!({}))
}

pub async fn add_connection(app: &TestApp, org: &str, issuer: &str, extra: Value) -> Value {
    let mut body = json!({
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let reply = app
        .admin(
            Method::POST,
            &format!("/orgs/{org}/oidc-connections"),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body
}

async fn connections_are_added_listed_changed_and_removed_and_the_secret_never_shows(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let op = provider();
    let org = app.org_id.to_string();
    let created = add_connection(&app, &org, &op.issuer, json!({"require_mfa": true})).await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["issuer"], json!(op.issuer));
    assert_eq!(created["has_client_secret"], json!(true));
    assert_eq!(created["provisioning"], json!("hybrid"));
    assert_eq!(created["require_mfa"], json!(true));
    assert_eq!(created["scopes"], json!(["openid", "email", "profile"]));
    assert!(
        created["redirect_uri"]
            .as_str()
            .expect("redirect_uri")
            .ends_with(&format!("/auth/oidc/{id}/callback")),
        "{created}"
    );
    assert!(!created.to_string().contains(CLIENT_SECRET));

    let list = app
        .ok(Method::GET, &format!("/orgs/{org}/oidc-connections"), None)
        .await;
    assert_eq!(list["connections"][0]["id"], json!(id));
    assert!(!list.to_string().contains(CLIENT_SECRET));

    let rotated = "a-rotated-client-secret";
    let changed = app
        .ok(
            Method::PATCH,
            &format!("/oidc-connections/{id}"),
            Some(json!({"client_secret": rotated, "provisioning": "jit", "require_mfa": false})),
        )
        .await;
    assert_eq!(changed["provisioning"], json!("jit"));
    assert_eq!(changed["require_mfa"], json!(false));
    assert!(!changed.to_string().contains(rotated));
    // The rotated secret is what the connection now opens to.
    let material = app
        .store
        .find_oidc_connection(id.parse().expect("uuid"))
        .await
        .expect("connection");
    let (secret_id, sealed) = material.client_secret.expect("a sealed secret");
    let opened = app
        .state
        .keyring
        .open(secret_id.as_bytes(), &sealed)
        .expect("opens");
    assert_eq!(opened, rotated.as_bytes());
    assert!(
        !sealed
            .bytes
            .windows(rotated.len())
            .any(|w| w == rotated.as_bytes())
    );

    let audit = app.ok(Method::GET, "/audit", None).await;
    let text = audit.to_string();
    for action in ["oidc.connection.create", "oidc.connection.update"] {
        assert!(text.contains(action), "{action} audited: {text}");
    }
    assert!(!text.contains(CLIENT_SECRET) && !text.contains(rotated));

    let gone = app
        .admin(Method::DELETE, &format!("/oidc-connections/{id}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    let again = app
        .admin(Method::GET, &format!("/oidc-connections/{id}"), None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let audit = app.ok(Method::GET, "/audit", None).await;
    assert!(audit.to_string().contains("oidc.connection.delete"));
}

async fn a_provider_whose_discovery_fails_is_refused_with_the_reason(backend: Backend) {
    let app = TestApp::new(backend).await;
    let org = app.org_id;
    for (issuer, says) in [
        ("http://127.0.0.1:1", "cannot reach"),
        ("http://example.com", "https"),
    ] {
        let reply = app
            .admin(
                Method::POST,
                &format!("/orgs/{org}/oidc-connections"),
                Some(json!({"issuer": issuer, "client_id": "x", "client_secret": "y"})),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
        assert_eq!(reply.body["error"]["fields"][0]["field"], json!("issuer"));
        assert!(reply.text.contains(says), "{issuer}: {}", reply.text);
    }
    let op = provider();
    let reply = app
        .admin(
            Method::POST,
            &format!("/orgs/{org}/oidc-connections"),
            Some(json!({"issuer": op.issuer, "client_id": "x"})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(
        reply.body["error"]["fields"][0]["field"],
        json!("client_secret")
    );
}

async fn a_domain_is_claimed_by_one_connection_only_and_routes_discovery(backend: Backend) {
    let app = TestApp::new(backend).await;
    let op = provider();
    let created = add_connection(
        &app,
        &app.org_id.to_string(),
        &op.issuer,
        json!({"domains": ["Acme.test", "@acme-labs.test"]}),
    )
    .await;
    assert_eq!(created["domains"], json!(["acme-labs.test", "acme.test"]));

    // Another tenant claims one of them: refused, whoever asks.
    let (other, _) = app
        .store
        .create_org(&Ctx::new(Actor::Cli), "Globex", "owner@globex.test")
        .await
        .expect("org");
    let token = app.token(other.id, TokenKind::Admin).await;
    let reply = app
        .call(
            Method::POST,
            &format!("/api/v1/orgs/{}/oidc-connections", other.id),
            Some(&token),
            Some(json!({
                "issuer": op.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "domains": ["acme.test"],
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert!(reply.text.contains("acme.test"), "{}", reply.text);

    let found = app
        .call(
            Method::GET,
            "/auth/oidc/discover?email=jo%40ACME.test",
            None,
            None,
        )
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    assert_eq!(found.body["connection_id"], created["id"]);
    let id = created["id"].as_str().expect("id");
    assert_eq!(
        found.body["login_url"],
        json!(format!("/auth/oidc/{id}/login?login_hint=jo%40ACME.test"))
    );
    let none = app
        .call(
            Method::GET,
            "/auth/oidc/discover?email=jo%40nowhere.test",
            None,
            None,
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.text);
}

async fn a_connection_used_by_mapping_rules_cannot_be_removed(backend: Backend) {
    let app = TestApp::new(backend).await;
    let op = provider();
    let org = app.org_id;
    let created = add_connection(&app, &org.to_string(), &op.issuer, json!({})).await;
    let id = created["id"].as_str().expect("id");
    let document = json!({"version": 1, "rules": [
        {"name": "Engineers", "idp_group": "eng", "source": format!("oidc:{id}"),
         "grants": [{"org_role": "member"}]}
    ]});
    app.ok(
        Method::PUT,
        &format!("/orgs/{org}/mappings"),
        Some(document),
    )
    .await;
    let refused = app
        .admin(Method::DELETE, &format!("/oidc-connections/{id}"), None)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(refused.text.contains("Engineers"), "{}", refused.text);

    // A connection of another org (a sub-org's) may not be named by this org's rules.
    let sub = app.sub_org(&org.to_string(), "Payments").await;
    let theirs = add_connection(&app, &sub, &op.issuer, json!({})).await;
    let document = json!({"version": 1, "rules": [
        {"name": "Theirs", "idp_group": "eng", "source": format!("oidc:{}", theirs["id"].as_str().expect("id")),
         "grants": [{"org_role": "member"}]}
    ]});
    let reply = app
        .admin(
            Method::PUT,
            &format!("/orgs/{org}/mappings"),
            Some(document),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(
        reply.body["error"]["fields"][0]["field"],
        json!("/rules/0/source")
    );
}

async fn a_sub_orgs_token_does_not_reach_its_parents_connections(backend: Backend) {
    let app = TestApp::new(backend).await;
    let op = provider();
    let root = app.org_id.to_string();
    let sub = app.sub_org(&root, "Payments").await;
    let sibling = app.sub_org(&root, "Logistics").await;
    let parents = add_connection(&app, &root, &op.issuer, json!({})).await;
    let siblings = add_connection(&app, &sibling, &op.issuer, json!({})).await;
    let token = app
        .token(sub.parse().expect("uuid"), TokenKind::Admin)
        .await;
    for connection in [&parents, &siblings] {
        let id = connection["id"].as_str().expect("id");
        for method in [Method::GET, Method::DELETE] {
            let reply = app
                .call(
                    method.clone(),
                    &format!("/api/v1/oidc-connections/{id}"),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{method} {}",
                reply.text
            );
        }
    }
    for org in [&root, &sibling] {
        let reply = app
            .call(
                Method::GET,
                &format!("/api/v1/orgs/{org}/oidc-connections"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
    // Its own org's: reached.
    let own = add_connection(&app, &sub, &op.issuer, json!({})).await;
    let reply = app
        .call(
            Method::GET,
            &format!(
                "/api/v1/oidc-connections/{}",
                own["id"].as_str().expect("id")
            ),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}
