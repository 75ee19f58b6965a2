//! The console's IdP pages through the real router: the mapping editor (rules, default, the
//! document with its errors, per-rule changes) that always previews before "Apply" with the
//! preview's ETag, the Owner rule flagged on the preview, export and import; SCIM tokens (the
//! secret shown once, revoke, the error log); SSO connections. Each page keeps its API route's
//! requirement: a member gets no form and a forged POST is refused.

use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::http::Reply;
use crate::common::{Backend, TestApp};
use crate::console::{Browser, ORIGIN, assert_console_page, console_app, viewer};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

async fn scim_user(app: &TestApp, email: &str) -> String {
    let reply = app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({ "schemas": [USER], "userName": email,
                         "emails": [{ "value": email, "primary": true }] })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["id"].as_str().expect("id").to_owned()
}

async fn scim_group(app: &TestApp, name: &str, members: &[&str]) {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    let reply = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({ "schemas": [GROUP], "displayName": name, "members": members })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

/// The value of the (first) hidden input `name` in a page, unescaped.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + marker.len();
    let end = html[at..].find('"').expect("end of value") + at;
    html[at..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The message a 303 leaves for the next page, decoded: `("done"|"refused", text)`.
fn flash(reply: &Reply) -> (String, String) {
    let value = crate::session::session_cookie(&reply.headers, "rolegate_flash").expect("flash");
    url::form_urlencoded::parse(value.as_bytes())
        .next()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .expect("flash pair")
}

async fn mappings(app: &TestApp) -> Reply {
    app.admin(Method::GET, &format!("/orgs/{}/mappings", app.org_id), None)
        .await
}

/// A rule added from the form is previewed (who gains what), applied with the preview's ETag,
/// listed on the page; a stale ETag is refused with a message; disabling previews the loss.
async fn a_rule_added_on_the_mappings_page_is_previewed_then_applied(backend: Backend) {
    let app = console_app(backend).await;
    let root = app.org_id.to_string();
    let product = app.product(&root).await;
    let product_id = product["id"].as_str().expect("id").to_owned();
    let u1 = scim_user(&app, "u1@acme.test").await;
    scim_group(&app, "Engineering", &[&u1]).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let path = format!("/console/orgs/{root}/mappings");

    let page = owner.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_console_page(&page);
    assert!(page.text.contains("No rules."), "{}", page.text);
    assert!(page.text.contains("Add a rule"));
    assert!(
        page.text.contains("name=\"document\""),
        "the document editor"
    );
    assert!(
        page.text.contains("role editor on product Checkout"),
        "grant choices"
    );

    let grant = json!({ "product": product_id, "role": "editor" }).to_string();
    let preview = owner
        .post(
            &app,
            &format!("{path}/preview"),
            &[
                ("op", "add"),
                ("name", "eng"),
                ("idp_group", "Engineering"),
                ("source", "any"),
                ("grant", &grant),
                ("priority", "5"),
            ],
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
    assert_console_page(&preview);
    assert!(
        preview.text.contains("Users affected: <strong>1</strong>"),
        "{}",
        preview.text
    );
    assert!(preview.text.contains("u1@acme.test"), "the user's row");
    assert!(preview.text.contains("product Checkout"));
    assert!(
        preview.text.contains("manage resources"),
        "the gained capability"
    );
    assert!(
        preview.text.contains("data-filter=\"changes\""),
        "a live filter on the changes"
    );
    assert!(!preview.text.contains("id=\"owner-rule\""), "no violation");
    assert_eq!(hidden(&preview.text, "etag"), "0");
    assert_eq!(
        mappings(&app).await.body["rules"],
        json!([]),
        "nothing applied by the preview"
    );

    let document = hidden(&preview.text, "document");
    let applied = owner
        .post(
            &app,
            &format!("{path}/apply"),
            &[("document", &document), ("etag", "0")],
        )
        .await;
    assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.text);
    assert_eq!(flash(&applied).0, "done");
    let stored = mappings(&app).await;
    assert_eq!(stored.headers["etag"], "\"1\"");
    assert_eq!(
        stored.body["rules"],
        json!([{ "name": "eng", "idp_group": "Engineering", "source": "any", "priority": 5,
                 "enabled": true, "grants": [{ "product": "Checkout", "role": "editor" }] }])
    );
    let page = owner.get(&app, &path).await;
    assert!(page.text.contains("<td>eng</td>"), "{}", page.text);
    assert!(page.text.contains("<td>Engineering</td>"));
    assert!(page.text.contains("role editor on product Checkout"));

    // The same preview applied again names version 0: refused, said so, nothing changed.
    let stale = owner
        .post(
            &app,
            &format!("{path}/apply"),
            &[("document", &document), ("etag", "0")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::SEE_OTHER);
    let (kind, text) = flash(&stale);
    assert_eq!(kind, "refused");
    assert!(text.contains("changed since"), "{text}");
    assert_eq!(mappings(&app).await.headers["etag"], "\"1\"");

    // Disabling is a loss for u1, previewed, then applied.
    let disable = owner
        .post(
            &app,
            &format!("{path}/preview"),
            &[("op", "disable"), ("rule", "eng")],
        )
        .await;
    assert_eq!(disable.status, StatusCode::OK, "{}", disable.text);
    assert!(
        disable.text.contains("Losses: <strong>"),
        "{}",
        disable.text
    );
    let applied = owner
        .post(
            &app,
            &format!("{path}/apply"),
            &[
                ("document", &hidden(&disable.text, "document")),
                ("etag", &hidden(&disable.text, "etag")),
            ],
        )
        .await;
    assert_eq!(applied.status, StatusCode::SEE_OTHER);
    assert_eq!(mappings(&app).await.body["rules"][0]["enabled"], false);
}

/// A document that does not read, or names what does not exist, comes back in the editor with
/// every error at its JSON Pointer; nothing is applied.
async fn an_invalid_document_is_shown_with_its_errors(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let path = format!("/console/orgs/{}/mappings/preview", app.org_id);
    let document = json!({ "version": 1, "rules": [{ "name": "eng", "idp_group": "E",
        "grants": [{ "product": "Nope", "role": "viewer" }] }] })
    .to_string();
    let refused = owner
        .post(
            &app,
            &path,
            &[("op", "edit"), ("etag", "0"), ("document", &document)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_console_page(&refused);
    assert!(
        refused.text.contains("id=\"document-errors\""),
        "{}",
        refused.text
    );
    assert!(refused.text.contains("/rules/0/grants/0/product"));
    assert!(refused.text.contains("Nope"), "the typed document is kept");

    let broken = owner
        .post(
            &app,
            &path,
            &[
                ("op", "edit"),
                ("etag", "0"),
                ("document", "{\"version\": 1,"),
            ],
        )
        .await;
    assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        broken.text.contains("not a JSON document"),
        "{}",
        broken.text
    );
    assert_eq!(mappings(&app).await.headers["etag"], "\"0\"");
}

/// Removing the rule behind a sub-org's only Owner: the preview flags the Owner rule and its
/// Apply is disabled; forcing it anyway is refused (409) on the page.
async fn the_owner_rule_is_flagged_on_the_preview_and_apply_refused(backend: Backend) {
    let app = console_app(backend).await;
    let root = app.org_id.to_string();
    let payments = app.sub_org(&root, "Payments").await;
    let carol = scim_user(&app, "carol@acme.test").await;
    scim_group(&app, "Payments Owners", &[&carol]).await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{root}/mappings"),
        Some(json!({ "version": 1,
            "rules": [{ "name": "payments-owners", "idp_group": "Payments Owners",
                        "grants": [{ "org": "Payments", "org_role": "owner" }] }] })),
    )
    .await;
    let boss = app
        .ok(
            Method::GET,
            &format!("/orgs/{root}/members?search=owner@acme.test"),
            None,
        )
        .await["members"][0]["user"]["id"]
        .as_str()
        .expect("owner")
        .to_owned();
    app.ok(
        Method::PUT,
        &format!("/orgs/{payments}/members/{boss}"),
        Some(json!({ "role": "member" })),
    )
    .await;

    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let path = format!("/console/orgs/{root}/mappings");
    let preview = owner
        .post(
            &app,
            &format!("{path}/preview"),
            &[("op", "delete"), ("rule", "payments-owners")],
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
    assert!(
        preview.text.contains("id=\"owner-rule\""),
        "{}",
        preview.text
    );
    assert!(preview.text.contains("Payments (1 Owner(s) now, 0 after)"));
    assert!(
        preview
            .text
            .contains("<button type=\"submit\" disabled>Apply</button>")
    );

    let forced = owner
        .post(
            &app,
            &format!("{path}/apply"),
            &[
                ("document", &hidden(&preview.text, "document")),
                ("etag", &hidden(&preview.text, "etag")),
            ],
        )
        .await;
    assert_eq!(forced.status, StatusCode::CONFLICT, "{}", forced.text);
    assert_console_page(&forced);
    assert!(forced.text.contains("owner_rule"), "{}", forced.text);
    assert_eq!(
        mappings(&app).await.headers["etag"],
        "\"1\"",
        "nothing applied"
    );
}

/// Export downloads the document as `GET …/mappings` answers it; a pasted YAML import goes to
/// the preview.
async fn export_downloads_the_document_and_import_previews_it(backend: Backend) {
    let app = console_app(backend).await;
    let root = app.org_id.to_string();
    app.product(&root).await;
    let document = json!({ "version": 1,
        "default": { "grants": [{ "product": "Checkout", "role": "viewer" }] },
        "rules": [{ "name": "eng", "idp_group": "Engineering", "source": "scim", "priority": 3,
                    "enabled": true, "grants": [{ "org_role": "member" }] }] });
    app.ok(
        Method::PUT,
        &format!("/orgs/{root}/mappings"),
        Some(document.clone()),
    )
    .await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let path = format!("/console/orgs/{root}/mappings");

    let page = owner.get(&app, &path).await;
    assert!(
        page.text.contains("role viewer on product Checkout"),
        "the default"
    );
    assert!(
        page.text.contains("data-load-into=\"import-document\""),
        "a file picker for the import, filled in by the console's script"
    );
    assert!(page.text.contains("org role member in this org"));

    let json_file = owner.get(&app, &format!("{path}/export?format=json")).await;
    assert_eq!(json_file.status, StatusCode::OK);
    assert_eq!(json_file.headers[CONTENT_TYPE], "application/json");
    let disposition = json_file.headers[CONTENT_DISPOSITION]
        .to_str()
        .expect("ascii");
    assert!(
        disposition.starts_with("attachment; filename="),
        "{disposition}"
    );
    let exported: Value = serde_json::from_str(&json_file.text).expect("json");
    assert_eq!(exported, mappings(&app).await.body);
    assert!(
        json_file.text.ends_with("}\n"),
        "pretty, as the CLI writes it"
    );

    let yaml_file = owner.get(&app, &format!("{path}/export?format=yaml")).await;
    assert_eq!(yaml_file.status, StatusCode::OK);
    assert!(
        yaml_file.text.contains("idp_group: Engineering"),
        "{}",
        yaml_file.text
    );
    let imported = owner
        .post(
            &app,
            &format!("{path}/preview"),
            &[
                ("op", "import"),
                ("format", "yaml"),
                ("etag", "1"),
                ("document", &yaml_file.text),
            ],
        )
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
    assert!(imported.text.contains("Users affected: <strong>0</strong>"));
    let carried: Value = serde_json::from_str(&hidden(&imported.text, "document")).expect("json");
    assert_eq!(
        carried, exported,
        "the YAML is carried as its JSON document"
    );
}

/// A member who is no Owner gets no mappings page, and forged changes are refused; a POST
/// without the CSRF token is refused too.
async fn a_member_cannot_see_or_change_the_mappings(backend: Backend) {
    let app = console_app(backend).await;
    let (viewer, _) = viewer(&app).await;
    let path = format!("/console/orgs/{}/mappings", app.org_id);
    let page = viewer.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text);
    assert!(!page.text.contains("name=\"document\""));
    let document = json!({ "version": 1, "rules": [] }).to_string();
    for (route, fields) in [
        (
            "preview",
            vec![("op", "edit"), ("document", document.as_str())],
        ),
        (
            "apply",
            vec![("document", document.as_str()), ("etag", "0")],
        ),
    ] {
        let forged = viewer.post(&app, &format!("{path}/{route}"), &fields).await;
        assert_eq!(
            forged.status,
            StatusCode::FORBIDDEN,
            "{route}: {}",
            forged.text
        );
    }
    let export = viewer.get(&app, &format!("{path}/export")).await;
    assert_eq!(export.status, StatusCode::FORBIDDEN);

    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let no_token = owner
        .post_with(
            &app,
            &format!("{path}/apply"),
            &[("document", &document), ("etag", "0")],
            false,
            Some(ORIGIN),
        )
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert_eq!(
        mappings(&app).await.headers["etag"],
        "\"0\"",
        "nothing applied"
    );
}

/// The text of the element with `id`, up to its closing tag.
fn element_text(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {html}"))
        + marker.len();
    let end = html[at..].find('<').expect("end of element") + at;
    html[at..end].to_owned()
}

/// An Owner creates a SCIM token: its secret is shown once with the SCIM base URL and works;
/// its failed requests show on its error page; revoking (after the confirmation page) stops it.
async fn an_owner_creates_a_scim_token_sees_its_errors_and_revokes_it(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let path = format!("/console/orgs/{}/tokens", app.org_id);
    let page = owner.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_console_page(&page);
    assert!(page.text.contains("id=\"tokens\""), "{}", page.text);
    assert!(page.text.contains("<td>scim</td>") && page.text.contains("<td>admin</td>"));
    assert!(page.text.contains("Create SCIM token"));

    let created = owner
        .post(
            &app,
            &path,
            &[("name", "Okta provisioning"), ("expires_in_days", "30")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_console_page(&created);
    let secret = element_text(&created.text, "token-secret");
    assert!(!secret.is_empty());
    assert!(
        created.text.contains(&format!("data-copy=\"{secret}\"")),
        "a copy button"
    );
    assert_eq!(
        element_text(&created.text, "scim-base-url"),
        "https://rolegate.acme.example/scim/v2"
    );
    let works = app.scim_as(&secret, Method::GET, "/Users", None, &[]).await;
    assert_eq!(works.status, StatusCode::OK, "{}", works.text);
    let again = owner.get(&app, &path).await;
    assert!(again.text.contains("Okta provisioning"));
    assert!(
        !again.text.contains(&secret),
        "the secret is never shown again"
    );

    let listed = app.ok(Method::GET, "/tokens", None).await;
    let token = listed["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["name"] == "Okta provisioning")
        .expect("the new token")
        .clone();
    assert_eq!(token["kind"], "scim");
    assert!(token["expires_at"].is_string());
    let id = token["id"].as_str().expect("id");

    let bad = app
        .scim_as(
            &secret,
            Method::POST,
            "/Users",
            Some(json!({ "schemas": [USER] })),
            &[],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    let errors = owner
        .get(&app, &format!("/console/tokens/{id}/errors"))
        .await;
    assert_eq!(errors.status, StatusCode::OK, "{}", errors.text);
    assert_console_page(&errors);
    assert!(
        errors.text.contains("POST /scim/v2/Users"),
        "{}",
        errors.text
    );
    assert!(errors.text.contains("<td>400"), "{}", errors.text);

    let confirm = owner
        .get(&app, &format!("/console/tokens/{id}/revoke"))
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm.text.contains("Revoke Okta provisioning?"),
        "{}",
        confirm.text
    );
    let revoked = owner
        .post(&app, &format!("/console/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.text);
    assert_eq!(
        flash(&revoked),
        ("done".into(), "Revoked Okta provisioning.".into())
    );
    let refused = app.scim_as(&secret, Method::GET, "/Users", None, &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let page = owner.get(&app, &path).await;
    assert!(page.text.contains("revoked "), "{}", page.text);
}

/// A member who is no Owner gets no token pages, and forged creates and revokes are refused;
/// so is a revoke without the CSRF token.
async fn a_member_cannot_see_create_or_revoke_tokens(backend: Backend) {
    let app = console_app(backend).await;
    let (viewer, _) = viewer(&app).await;
    let path = format!("/console/orgs/{}/tokens", app.org_id);
    let page = viewer.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text);
    assert!(!page.text.contains("Create SCIM token"));
    let forged = viewer.post(&app, &path, &[("name", "mine")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);
    let token = app.scim_token_id().await;
    let forged = viewer
        .post(&app, &format!("/console/tokens/{token}/revoke"), &[])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);
    let errors = viewer
        .get(&app, &format!("/console/tokens/{token}/errors"))
        .await;
    assert_eq!(errors.status, StatusCode::FORBIDDEN);
    // As the API answers the same user: the error log is the Owner's, like the tokens.
    let api = viewer
        .get(&app, &format!("/api/v1/tokens/{token}/errors"))
        .await;
    assert_eq!(api.status, StatusCode::FORBIDDEN, "{}", api.text);

    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let no_token = owner
        .post_with(
            &app,
            &format!("/console/tokens/{token}/revoke"),
            &[],
            false,
            Some(ORIGIN),
        )
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let listed = app.ok(Method::GET, "/tokens", None).await;
    assert!(
        listed["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .all(|t| t["revoked_at"].is_null() && t["name"] != "mine"),
        "{listed}"
    );
    let works = app.scim(Method::GET, "/Users", None).await;
    assert_eq!(works.status, StatusCode::OK);
}

/// An Owner adds a connection (discovery fetched at once; its failure shown), sees the URIs to
/// register with copy buttons and never the secret, changes it keeping the stored secret, and
/// removes it — refused, naming the rules, while a mapping rule uses it.
async fn an_owner_adds_changes_and_removes_an_sso_connection(backend: Backend) {
    use crate::common::oidc::{CLIENT_ID, CLIENT_SECRET};
    let app = console_app(backend).await;
    let op = crate::oidc::provider();
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let org = app.org_id;
    let path = format!("/console/orgs/{org}/connections");
    let page = owner.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_console_page(&page);
    assert!(page.text.contains("No connections."));
    assert!(
        page.text
            .contains("https://rolegate.acme.example/auth/oidc/backchannel-logout")
    );
    assert!(
        page.text
            .contains("data-copy=\"https://rolegate.acme.example/auth/signed-out\"")
    );

    let unreachable = owner
        .post(
            &app,
            &path,
            &[
                ("issuer", "http://127.0.0.1:1"),
                ("client_id", "x"),
                ("client_secret", "y"),
            ],
        )
        .await;
    assert_eq!(
        unreachable.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unreachable.text
    );
    assert_console_page(&unreachable);
    assert!(
        unreachable.text.contains("cannot reach"),
        "{}",
        unreachable.text
    );

    let added = owner
        .post(
            &app,
            &path,
            &[
                ("issuer", &op.issuer),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("groups_claim", "roles"),
                ("scopes", "openid email"),
                ("provisioning", "jit"),
                ("domains", "acme.test, acme.example"),
                ("require_mfa", "on"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text);
    assert_eq!(flash(&added).0, "done");
    let listed = app
        .ok(Method::GET, &format!("/orgs/{org}/oidc-connections"), None)
        .await;
    let c = &listed["connections"][0];
    let id = c["id"].as_str().expect("id").to_owned();
    assert_eq!(c["groups_claim"], "roles");
    assert_eq!(c["provisioning"], "jit");
    assert_eq!(c["domains"], json!(["acme.example", "acme.test"]));
    assert_eq!(c["require_mfa"], true);
    assert_eq!(c["has_client_secret"], true);

    let page = owner.get(&app, &path).await;
    let redirect = format!("https://rolegate.acme.example/auth/oidc/{id}/callback");
    assert!(
        page.text.contains(&format!("data-copy=\"{redirect}\"")),
        "{}",
        page.text
    );
    assert!(page.text.contains("acme.example, acme.test"));
    assert!(
        !page.text.contains(CLIENT_SECRET),
        "the secret is never shown"
    );
    assert!(
        page.text
            .contains("type=\"password\" name=\"client_secret\"")
    );

    let saved = owner
        .post(
            &app,
            &format!("/console/connections/{id}/update"),
            &[
                ("client_id", CLIENT_ID),
                ("client_secret", ""),
                ("groups_claim", "groups"),
                ("scopes", "openid email profile"),
                ("provisioning", "hybrid"),
                ("domains", "acme.test"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let c = app
        .ok(Method::GET, &format!("/oidc-connections/{id}"), None)
        .await;
    assert_eq!(c["provisioning"], "hybrid");
    assert_eq!(c["require_mfa"], false, "an unticked box turns it off");
    assert_eq!(c["domains"], json!(["acme.test"]));
    assert_eq!(
        c["has_client_secret"], true,
        "an empty secret keeps the stored one"
    );

    app.ok(
        Method::PUT,
        &format!("/orgs/{org}/mappings"),
        Some(
            json!({ "version": 1, "rules": [{ "name": "Engineers", "idp_group": "eng",
            "source": format!("oidc:{id}"), "grants": [{ "org_role": "member" }] }] }),
        ),
    )
    .await;
    let refused = owner
        .post(&app, &format!("/console/connections/{id}/delete"), &[])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_console_page(&refused);
    assert!(refused.text.contains("Engineers"), "{}", refused.text);
    app.ok(
        Method::PUT,
        &format!("/orgs/{org}/mappings"),
        Some(json!({ "version": 1, "rules": [] })),
    )
    .await;
    let removed = owner
        .post(&app, &format!("/console/connections/{id}/delete"), &[])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.text);
    let listed = app
        .ok(Method::GET, &format!("/orgs/{org}/oidc-connections"), None)
        .await;
    assert_eq!(listed["connections"], json!([]));
}

/// A member who is no Owner gets no connections page; forged adds, changes and removals are
/// refused.
async fn a_member_cannot_see_or_change_sso_connections(backend: Backend) {
    let app = console_app(backend).await;
    let op = crate::oidc::provider();
    let created =
        crate::oidc::add_connection(&app, &app.org_id.to_string(), &op.issuer, json!({})).await;
    let id = created["id"].as_str().expect("id");
    let (viewer, _) = viewer(&app).await;
    let path = format!("/console/orgs/{}/connections", app.org_id);
    let page = viewer.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text);
    assert!(!page.text.contains("client_secret"));
    let forged = viewer
        .post(&app, &path, &[("issuer", &op.issuer), ("client_id", "x")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);
    for action in ["update", "delete"] {
        let forged = viewer
            .post(
                &app,
                &format!("/console/connections/{id}/{action}"),
                &[("client_id", "evil")],
            )
            .await;
        assert_eq!(
            forged.status,
            StatusCode::FORBIDDEN,
            "{action}: {}",
            forged.text
        );
    }
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let no_token = owner
        .post_with(
            &app,
            &format!("/console/connections/{id}/delete"),
            &[],
            false,
            Some(ORIGIN),
        )
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let c = app
        .ok(Method::GET, &format!("/oidc-connections/{id}"), None)
        .await;
    assert_ne!(c["client_id"], "evil", "nothing changed");
}

crate::on_both_backends!(
    a_rule_added_on_the_mappings_page_is_previewed_then_applied,
    an_invalid_document_is_shown_with_its_errors,
    the_owner_rule_is_flagged_on_the_preview_and_apply_refused,
    export_downloads_the_document_and_import_previews_it,
    a_member_cannot_see_or_change_the_mappings,
    an_owner_creates_a_scim_token_sees_its_errors_and_revokes_it,
    a_member_cannot_see_create_or_revoke_tokens,
    an_owner_adds_changes_and_removes_an_sso_connection,
    a_member_cannot_see_or_change_sso_connections,
);
