//! A port of Okta's "Okta SCIM 2.0 SPEC Test" Runscope collection, the 2024 version
//! (`exported_at: 1715608731`, 12 request steps), one test per step, named after the step.
//!
//! Source: `okta/okta-developer-docs`,
//! `packages/@okta/vuepress-site/.vuepress/public/standards/SCIM/SCIMFiles/Okta-SCIM-20-SPEC-Test.json`
//! (published at <https://developer.okta.com/standards/SCIM/SCIMFiles/Okta-SCIM-20-SPEC-Test.json>),
//! with the random variables of `Initial_Script_Spec.txt` in the same folder, and the guide
//! `docs/guides/scim-provisioning-integration-prepare/main/index.md` ("Test your SCIM API").
//!
//! Runscope runs the steps in order against one server, passing ids from step to step. Here each
//! test sets up on a fresh database what its step relies on (a user created with the body of
//! step 6, the create step), then sends exactly the step's request — method, path, query (the
//! filter percent-encoded as Runscope sends it) and headers — and makes every assertion the step
//! makes. Pauses between steps are not ported.
//!
//! Runscope's `equal` compares string forms (`"true"` matches `true`, `"0"` matches `0`); these
//! tests assert the JSON types RFC 7643/7644 define (a boolean `active`, numeric counts), which is
//! what those assertions accept and what Okta's own parsers rely on.
//!
//! Collection bug: step 11's last assertion is `has_value
//! urn:ietf:params:scim:api:messages:2.0:Error` with `"property": ""`. It is read as meant for
//! `schemas` (as step 12's identical assertion is).

use std::fmt::Write as _;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::http::{Reply, unlimited};
use crate::common::{Backend, TestApp};

const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// The Initial Script's fixed `InvalidUserEmail` (step 3).
const INVALID_USER_EMAIL: &str = "abcdefgh@atko.com";
/// The Initial Script's fixed `UserIdThatDoesNotExist` (step 4): not a UUID, as most servers'
/// ids are not.
const USER_ID_THAT_DOES_NOT_EXIST: &str = "010101001010101011001010101011";
/// The id step 12 hard-codes.
const HARD_CODED_MISSING_ID: &str = "00919288221112222";

/// The collection's `H-GET` header set, sent on every GET step (a content type on a GET
/// included). `Authorization: {{auth}}` is the harness's bearer token.
const H_GET: [(&str, &str); 4] = [
    ("Accept-Charset", "utf-8"),
    ("Content-Type", "application/scim+json; charset=utf-8"),
    ("Accept", "application/scim+json"),
    ("User-Agent", "OKTA SCIM Integration"),
];

/// The collection's `H-POST` header set (steps 6 and 8): plain `application/json`, no
/// User-Agent, no Accept-Charset.
const H_POST: [(&str, &str); 2] = [
    ("Content-Type", "application/json"),
    ("Accept", "application/scim+json; charset=utf-8"),
];

/// The Initial Script's random variables.
struct Variables {
    /// `randomGivenName`: `Runscope` + 3 digits.
    given_name: String,
    /// `randomFamilyName`: one upper-case letter, 8 lower-case letters, 3 digits.
    family_name: String,
    /// `randomEmail`, which is also `randomUsername`: `<given><family>@atko.com`.
    email: String,
}

impl Variables {
    /// Values shaped like the Initial Script's, drawn from the 74 bits of a UUIDv7 after its
    /// timestamp (`rand_a` and `rand_b`: random, or a randomly seeded counter), enough for the
    /// 10³·26⁹·10³ ≈ 2⁶² shapes. No RNG dependency needed.
    fn random() -> Variables {
        let bits = Uuid::now_v7().as_u128();
        let mut entropy = (bits & ((1 << 62) - 1)) | (((bits >> 64) & 0xFFF) << 62);
        let mut draw = |alphabet: &[u8]| {
            let n = alphabet.len() as u128;
            let c = alphabet[usize::try_from(entropy % n).expect("index")] as char;
            entropy /= n;
            c
        };
        const DIGITS: &[u8] = b"0123456789";
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
        let mut given_name = String::from("Runscope");
        (0..3).for_each(|_| given_name.push(draw(DIGITS)));
        let mut family_name = String::new();
        family_name.push(draw(UPPER));
        (0..8).for_each(|_| family_name.push(draw(LOWER)));
        (0..3).for_each(|_| family_name.push(draw(DIGITS)));
        let email = format!("{given_name}{family_name}@atko.com");
        Variables {
            given_name,
            family_name,
            email,
        }
    }

    fn username(&self) -> &str {
        &self.email
    }

    /// `randomUsernameCaps`: the whole address upper-cased, domain included.
    fn username_caps(&self) -> String {
        self.email.to_uppercase()
    }

    /// Step 6's body.
    fn create_body(&self) -> Value {
        json!({
            "schemas": [USER_SCHEMA],
            "userName": self.username(),
            "name": { "givenName": self.given_name, "familyName": self.family_name },
            "emails": [{ "primary": true, "value": self.email, "type": "work" }],
            "displayName": format!("{} {}", self.given_name, self.family_name),
            "active": true,
        })
    }

    /// Step 8's body: step 6's with `{{randomUsername}}` as the e-mail value (the same string).
    fn recreate_body(&self) -> Value {
        let mut body = self.create_body();
        body["emails"][0]["value"] = json!(self.username());
        body
    }
}

/// What Runscope puts on the wire for a step URL written with a raw filter
/// (`?filter=userName eq "…"`): the characters a URL query cannot hold literally are
/// percent-encoded — space as `%20`, `"` as `%22` (the WHATWG URL query percent-encode set:
/// controls, space, `"`, `#`, `<`, `>`, non-ASCII); `@` and `.` stay as they are.
fn runscope_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for b in raw.bytes() {
        if b <= b' ' || b >= 0x7f || matches!(b, b'"' | b'#' | b'<' | b'>') {
            write!(out, "%{b:02X}").expect("write to a String");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn filter_by_user_name(user_name: &str) -> String {
    format!(
        "/Users?filter={}",
        runscope_encode(&format!("userName eq \"{user_name}\""))
    )
}

async fn okta_app(backend: Backend) -> TestApp {
    TestApp::with_config(backend, unlimited()).await
}

async fn h_get(app: &TestApp, path: &str) -> Reply {
    app.scim_with(Method::GET, path, None, &H_GET).await
}

async fn h_post_user(app: &TestApp, body: Value) -> Reply {
    app.scim_with(Method::POST, "/Users", Some(body), &H_POST)
        .await
}

/// Setup: the user step 6 creates, created the way step 6 creates it. Returns its id.
async fn create_user(app: &TestApp, vars: &Variables) -> String {
    let created = h_post_user(app, vars.create_body()).await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "setup: {}",
        created.text
    );
    created.body["id"]
        .as_str()
        .expect("setup: the created user has an id")
        .to_owned()
}

/// Runscope's `not_empty`: the property exists and is neither null nor an empty string, array
/// or object (a boolean or a number is not empty).
fn assert_not_empty(reply: &Reply, pointer: &str) {
    let value = reply.body.pointer(pointer);
    let empty = match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Bool(_) | Value::Number(_)) => false,
    };
    assert!(!empty, "{pointer} is empty in {}", reply.text);
}

/// Runscope's `has_value` on `schemas`: the array holds this URN.
fn assert_schemas_has(reply: &Reply, urn: &str) {
    let schemas = reply.body["schemas"]
        .as_array()
        .unwrap_or_else(|| panic!("schemas is not an array in {}", reply.text));
    assert!(
        schemas.iter().any(|s| s == urn),
        "schemas lacks {urn} in {}",
        reply.text
    );
}

/// Runscope's `is_a_number`.
fn assert_is_a_number(reply: &Reply, property: &str) {
    assert!(
        reply.body[property].is_number(),
        "{property} is not a number in {}",
        reply.text
    );
}

/// Step 1: `GET /Users?count=1&startIndex=1` is a ListResponse whose first resource has what
/// Okta reads from a user (id, name, userName, active, first e-mail). The guide's precondition
/// ("Create at least one user in your SCIM server before running the Okta SCIM API test
/// suite") is met with step 6's body.
async fn required_test_test_users_endpoint(backend: Backend) {
    let app = okta_app(backend).await;
    let vars = Variables::random();
    let id = create_user(&app, &vars).await;

    let reply = h_get(&app, "/Users?count=1&startIndex=1").await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_not_empty(&reply, "/Resources");
    assert_schemas_has(&reply, LIST_RESPONSE_SCHEMA);
    assert_is_a_number(&reply, "itemsPerPage");
    assert_is_a_number(&reply, "startIndex");
    assert_is_a_number(&reply, "totalResults");
    assert_not_empty(&reply, "/Resources/0/id");
    assert_not_empty(&reply, "/Resources/0/name/familyName");
    assert_not_empty(&reply, "/Resources/0/name/givenName");
    assert_not_empty(&reply, "/Resources/0/userName");
    assert_not_empty(&reply, "/Resources/0/active");
    assert_not_empty(&reply, "/Resources/0/emails/0/value");
    // The step extracts `ISVUserid` from here; with one user it is ours.
    assert_eq!(reply.body["Resources"][0]["id"], id.as_str());
}

/// Step 2: `GET /Users/{{ISVUserid}}` returns that user with the same attributes.
async fn required_test_get_users_id(backend: Backend) {
    let app = okta_app(backend).await;
    let vars = Variables::random();
    create_user(&app, &vars).await;
    // `ISVUserid` is what step 1's listing names first.
    let listed = h_get(&app, "/Users?count=1&startIndex=1").await;
    let isv_user_id = listed.body["Resources"][0]["id"]
        .as_str()
        .expect("setup: step 1 yields ISVUserid")
        .to_owned();

    let reply = h_get(&app, &format!("/Users/{isv_user_id}")).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_not_empty(&reply, "/id");
    assert_not_empty(&reply, "/name/familyName");
    assert_not_empty(&reply, "/name/givenName");
    assert_not_empty(&reply, "/userName");
    assert_not_empty(&reply, "/active");
    assert_not_empty(&reply, "/emails/0/value");
    assert_eq!(reply.body["id"], isv_user_id.as_str());
}

/// Step 3: a `userName eq` filter that matches nobody is 200 with an empty ListResponse, not a
/// 404. A user exists, so the empty answer comes from the filter.
async fn required_test_test_invalid_user_by_username(backend: Backend) {
    let app = okta_app(backend).await;
    create_user(&app, &Variables::random()).await;

    let reply = h_get(&app, &filter_by_user_name(INVALID_USER_EMAIL)).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_schemas_has(&reply, LIST_RESPONSE_SCHEMA);
    assert_eq!(reply.body["totalResults"], 0, "{}", reply.text);
}

/// Step 4: an id the server never issued (and not even a UUID) is a 404 SCIM Error with a
/// detail.
async fn required_test_test_invalid_user_by_id(backend: Backend) {
    let app = okta_app(backend).await;
    create_user(&app, &Variables::random()).await;

    let reply = h_get(&app, &format!("/Users/{USER_ID_THAT_DOES_NOT_EXIST}")).await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_not_empty(&reply, "/detail");
    assert_schemas_has(&reply, ERROR_SCHEMA);
}

/// Step 5: before step 6 creates it, the random user is not found: 200, `totalResults` 0 (a
/// number: the step uses `equal_number`). Another user exists, so the filter does the work.
async fn required_test_make_sure_random_user_doesnt_exist(backend: Backend) {
    let app = okta_app(backend).await;
    create_user(&app, &Variables::random()).await;
    let vars = Variables::random();

    let reply = h_get(&app, &filter_by_user_name(vars.username())).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.body["totalResults"].is_number(), "{}", reply.text);
    assert_eq!(reply.body["totalResults"], 0, "{}", reply.text);
    assert_schemas_has(&reply, LIST_RESPONSE_SCHEMA);
}

/// Step 6: POST /Users sent as `application/json` creates the user: 201 echoing active,
/// names, userName and the core User schema.
async fn required_test_create_okta_user_with_realistic_values(backend: Backend) {
    let app = okta_app(backend).await;
    let vars = Variables::random();

    let reply = h_post_user(&app, vars.create_body()).await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["active"], true, "{}", reply.text);
    assert_not_empty(&reply, "/id");
    assert_eq!(reply.body["name"]["familyName"], vars.family_name.as_str());
    assert_eq!(reply.body["name"]["givenName"], vars.given_name.as_str());
    assert_schemas_has(&reply, USER_SCHEMA);
    assert_eq!(reply.body["userName"], vars.username());
    // The step extracts `randomUserEmail` from `emails[0].value`.
    assert_eq!(reply.body["emails"][0]["value"], vars.email.as_str());
}

/// Step 7: `GET /Users/{{idUserOne}}` reads back what step 6 wrote.
async fn required_test_verify_that_user_was_created(backend: Backend) {
    let app = okta_app(backend).await;
    let vars = Variables::random();
    let id_user_one = create_user(&app, &vars).await;

    let reply = h_get(&app, &format!("/Users/{id_user_one}")).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["userName"], vars.username());
    assert_eq!(reply.body["name"]["familyName"], vars.family_name.as_str());
    assert_eq!(reply.body["name"]["givenName"], vars.given_name.as_str());
}

/// Step 8: POSTing the same userName again is 409. Okta checks only the status; RFC 7644 §3.3
/// also asks for `scimType: uniqueness` in a SCIM Error, checked here too.
async fn required_test_expect_failure_when_recreating_user_with_same_values(backend: Backend) {
    let app = okta_app(backend).await;
    let vars = Variables::random();
    create_user(&app, &vars).await;

    let reply = h_post_user(&app, vars.recreate_body()).await;

    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_schemas_has(&reply, ERROR_SCHEMA);
    assert_eq!(reply.body["scimType"], "uniqueness", "{}", reply.text);
}

/// Step 9: the upper-cased userName (domain included) filter is 200. Okta checks only the
/// status; userName is `caseExact: false` (RFC 7643 §4.1.1), so the user must also be found.
async fn required_test_username_case_sensitivity_check(backend: Backend) {
    let app = okta_app(backend).await;
    let vars = Variables::random();
    let id = create_user(&app, &vars).await;
    assert_ne!(vars.username_caps(), vars.username());

    let reply = h_get(&app, &filter_by_user_name(&vars.username_caps())).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["totalResults"], 1, "{}", reply.text);
    assert_eq!(reply.body["Resources"][0]["id"], id.as_str());
    assert_eq!(reply.body["Resources"][0]["userName"], vars.username());
}

/// Step 10: `GET /Groups` is 200, and its post-response script's checks hold: `totalResults` is
/// a JSON number (the script compares with `===`), and `Resources` is an array when it is >= 1.
/// The step's `response_time < 600 ms` is not asserted: speed is measured in the benches, never
/// asserted in tests. One group exists so the `>= 1` branch is the one exercised.
async fn optional_test_verify_groups_endpoint(backend: Backend) {
    let app = okta_app(backend).await;
    let group = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({ "displayName": Variables::random().given_name })),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "setup: {}", group.text);

    let reply = h_get(&app, "/Groups").await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let max = reply.body["totalResults"]
        .as_u64()
        .unwrap_or_else(|| panic!("totalResults is not a number in {}", reply.text));
    assert!(max >= 1, "{}", reply.text);
    assert!(reply.body["Resources"].is_array(), "{}", reply.text);
}

/// Step 11: a request whose `Authorization` is the literal `non-token` is 401 with a SCIM Error
/// carrying a detail and `status: "401"`.
async fn required_test_check_status_401(backend: Backend) {
    let app = okta_app(backend).await;
    let vars = Variables::random();
    create_user(&app, &vars).await;
    // Built by hand: the harness would add its own bearer token.
    let mut request = Request::builder().method(Method::GET).uri(format!(
        "/scim/v2{}",
        filter_by_user_name(&vars.username_caps())
    ));
    for (name, value) in H_GET {
        request = request.header(name, value);
    }
    let request = request
        .header("Authorization", "non-token")
        .body(Body::empty())
        .expect("request");

    let reply = app.send(request).await;

    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert_not_empty(&reply, "/detail");
    assert_eq!(reply.body["status"], "401", "{}", reply.text);
    // The collection's `"property": ""` (see the module documentation), read as `schemas`.
    assert_schemas_has(&reply, ERROR_SCHEMA);
}

/// Step 12: the hard-coded id `00919288221112222` is a 404 SCIM Error with a detail and
/// `status: "404"` (a string, RFC 7644 §3.12).
async fn required_test_check_status_404(backend: Backend) {
    let app = okta_app(backend).await;
    create_user(&app, &Variables::random()).await;

    let reply = h_get(&app, &format!("/Users/{HARD_CODED_MISSING_ID}")).await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_not_empty(&reply, "/detail");
    assert_eq!(reply.body["status"], "404", "{}", reply.text);
    assert_schemas_has(&reply, ERROR_SCHEMA);
}

crate::on_both_backends!(
    required_test_test_users_endpoint,
    required_test_get_users_id,
    required_test_test_invalid_user_by_username,
    required_test_test_invalid_user_by_id,
    required_test_make_sure_random_user_doesnt_exist,
    required_test_create_okta_user_with_realistic_values,
    required_test_verify_that_user_was_created,
    required_test_expect_failure_when_recreating_user_with_same_values,
    required_test_username_case_sensitivity_check,
    optional_test_verify_groups_endpoint,
    required_test_check_status_401,
    required_test_check_status_404,
);
