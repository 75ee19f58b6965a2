//! Schema extensions the operator configures (`ROLEGATE_SCIM_SCHEMA_EXTENSIONS`): discovered,
//! stored, returned, filtered, sorted and PATCHed like the built-in ones, while attributes of
//! schemas nobody configured stay ignored.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::http::unlimited;
use crate::common::{Backend, TestApp};

const ACME: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";

fn extension_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("extensions.json");
    let config = json!([{
        "resourceType": "User",
        "schema": {
            "id": ACME,
            "name": "AcmeUser",
            "description": "Acme's own user attributes",
            "attributes": [
                { "name": "badge", "type": "string", "caseExact": true },
                { "name": "clearance", "type": "integer" },
                { "name": "hired", "type": "dateTime" },
                { "name": "remote", "type": "boolean" },
                { "name": "sites", "type": "complex", "multiValued": true, "subAttributes": [
                    { "name": "value", "type": "string" },
                    { "name": "primary", "type": "boolean" }
                ] }
            ]
        }
    }]);
    std::fs::write(&path, config.to_string()).expect("write config");
    path
}

async fn user(app: &TestApp, name: &str, acme: Value) -> String {
    let reply = app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ACME],
                "userName": name,
                ACME: acme,
                "urn:example:unconfigured:2.0:User": { "shoeSize": 44 },
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["id"].as_str().expect("id").to_owned()
}

async fn names(app: &TestApp, query: &str) -> Vec<String> {
    let reply = app
        .scim(Method::GET, &format!("/Users?{query}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
    reply.body["Resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|u| u["userName"].as_str().expect("userName").to_owned())
        .collect()
}

fn q(filter: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    format!("filter={encoded}")
}

async fn configured_extension_attributes_are_discovered_stored_returned_and_filtered(
    backend: Backend,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = unlimited();
    config.scim_schema_extensions = Some(extension_file(&dir));
    let app = TestApp::with_config(backend, config).await;

    let schemas = app.scim(Method::GET, "/Schemas", None).await;
    assert!(
        schemas.body["Resources"]
            .as_array()
            .expect("schemas")
            .iter()
            .any(|s| s["id"] == ACME && s["attributes"][1]["type"] == "integer")
    );
    let user_type = app.scim(Method::GET, "/ResourceTypes/User", None).await;
    assert_eq!(
        user_type.body["schemaExtensions"][1],
        json!({ "schema": ACME, "required": false })
    );

    let ada = user(
        &app,
        "ada",
        json!({ "badge": "A-7", "clearance": 5, "hired": "2019-06-01T09:00:00+02:00", "remote": "True",
                "sites": [{ "value": "Paris", "primary": true }] }),
    )
    .await;
    user(
        &app,
        "bob",
        json!({ "badge": "b-9", "clearance": 2, "hired": "2021-01-01T00:00:00Z", "remote": false }),
    )
    .await;
    let got = app.scim(Method::GET, &format!("/Users/{ada}"), None).await;
    assert_eq!(
        got.body["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User", ACME])
    );
    assert_eq!(got.body[ACME]["clearance"], 5);
    assert_eq!(
        got.body[ACME]["remote"], true,
        "string booleans become booleans"
    );
    assert_eq!(
        got.body[ACME]["hired"], "2019-06-01T09:00:00+02:00",
        "kept as sent"
    );
    assert!(got.body.get("urn:example:unconfigured:2.0:User").is_none());

    assert_eq!(
        names(&app, &q(&format!("{ACME}:clearance gt 3"))).await,
        ["ada"]
    );
    assert_eq!(
        names(&app, &q("clearance le 5 and remote eq false")).await,
        ["bob"]
    );
    assert_eq!(names(&app, &q("badge eq \"A-7\"")).await, ["ada"]);
    assert!(
        names(&app, &q("badge eq \"a-7\"")).await.is_empty(),
        "caseExact"
    );
    assert_eq!(
        names(&app, &q("hired lt \"2019-06-01T08:00:00Z\"")).await,
        ["ada"],
        "compared as instants, not as text"
    );
    assert_eq!(
        names(&app, &q("sites[value eq \"paris\" and primary eq true]")).await,
        ["ada"]
    );
    assert_eq!(
        names(&app, &format!("sortBy={ACME}:clearance")).await,
        ["bob", "ada"]
    );

    let patched = app
        .scim(
            Method::PATCH,
            &format!("/Users/{ada}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    { "op": "replace", "path": format!("{ACME}:badge"), "value": "A-8" },
                    { "op": "add", "value": { format!("{ACME}:clearance"): "7" } }
                ]
            })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body[ACME]["badge"], "A-8");
    assert_eq!(patched.body[ACME]["clearance"], 7);
    let bad = app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({ "userName": "carol", ACME: { "clearance": "high" } })),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["scimType"], "invalidValue");
}

async fn an_unreadable_or_invalid_extension_file_stops_the_start(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        r#"[{"schema": {"id": "not-a-urn", "attributes": []}}]"#,
    )
    .expect("write");
    let db = crate::common::TestDb::new(backend).await;
    let store = db.store().await;
    let mut config = unlimited();
    config.scim_schema_extensions = Some(path);
    let error = rolegate::state::AppState::new(store.clone(), config)
        .err()
        .expect("refused");
    assert!(error.to_string().contains("URN"), "{error}");
    let mut config = unlimited();
    config.scim_schema_extensions = Some(dir.path().join("missing.json"));
    assert!(rolegate::state::AppState::new(store, config).is_err());
}

/// The schema is part of each service's state: two services in one process, one with the
/// extension and one without, each answer by their own configuration, in either order.
async fn two_services_in_one_process_keep_their_own_schemas(backend: Backend) {
    let plain = TestApp::new(backend).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = unlimited();
    config.scim_schema_extensions = Some(extension_file(&dir));
    let extended = TestApp::with_config(backend, config).await;
    let plain_again = TestApp::new(backend).await;

    let advertised = |reply: &crate::common::http::Reply| {
        reply.body["Resources"]
            .as_array()
            .expect("schemas")
            .iter()
            .any(|s| s["id"] == ACME)
    };
    for (app, expected) in [(&plain, false), (&extended, true), (&plain_again, false)] {
        let schemas = app.scim(Method::GET, "/Schemas", None).await;
        assert_eq!(advertised(&schemas), expected, "{}", schemas.text);
    }

    user(&extended, "ext@example.com", json!({ "badge": "B-1" })).await;
    let reply = extended
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22ext%40example.com%22",
            None,
        )
        .await;
    assert_eq!(
        reply.body["Resources"][0][ACME]["badge"], "B-1",
        "{}",
        reply.text
    );

    // Without the extension the same body is accepted, and its unknown schema ignored.
    user(&plain, "plain@example.com", json!({ "badge": "B-2" })).await;
    let reply = plain
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22plain%40example.com%22",
            None,
        )
        .await;
    assert!(
        reply.body["Resources"][0].get(ACME).is_none(),
        "{}",
        reply.text
    );
    let reply = plain
        .scim(
            Method::GET,
            &format!("/Users?{}", q(&format!("{ACME}:badge eq \"B-2\""))),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.body["scimType"], "invalidFilter", "{}", reply.text);
}

crate::on_both_backends!(
    configured_extension_attributes_are_discovered_stored_returned_and_filtered,
    an_unreadable_or_invalid_extension_file_stops_the_start,
    two_services_in_one_process_keep_their_own_schemas,
);
