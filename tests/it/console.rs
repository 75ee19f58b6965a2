//! The admin web console (`/console/`) through the real router: sign-in redirects, the
//! headers and markup every page keeps (CSP, no inline script or style), hashed assets, the
//! API's permissions on every form (a Viewer's forged POST is 403), CSRF, the Owner rule's
//! refusal shown on the page, and the invitation page that accepts and signs in (or sends to
//! SSO first).

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use rolegate::config::ServeArgs;
use rolegate::domain::session::csrf_token;
use rolegate::session::{self, NewSession, SignInMethod};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::common::http::Reply;
use crate::common::{Backend, TestApp};
use crate::session::{session_cookie, session_of};

const PUBLIC_URL: &str = "https://rolegate.acme.example/";
pub const ORIGIN: &str = "https://rolegate.acme.example";
const COOKIE_NAME: &str = "__Host-rolegate_session";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self' https: http://127.0.0.1:* \
                   http://localhost:*; frame-ancestors 'none'; base-uri 'none'";

pub async fn console_app(backend: Backend) -> TestApp {
    let mut config = ServeArgs::for_tests();
    config.public_url = Some(PUBLIC_URL.parse().expect("url"));
    TestApp::with_config(backend, config).await
}

/// A signed-in browser: the session cookie's secret.
pub struct Browser {
    pub secret: String,
}

impl Browser {
    pub async fn signed_in(app: &TestApp, email: &str) -> Browser {
        let tenant = app.store.find_org(app.org_id).await.expect("org").tenant_id;
        let user = app
            .store
            .find_user_by_email(tenant, email)
            .await
            .expect("lookup")
            .expect("user");
        let response = session::start(
            &app.state,
            &HeaderMap::new(),
            NewSession {
                user_id: user.id,
                method: SignInMethod::EmailLink,
                id_token: None,
            },
        )
        .await
        .expect("session")
        .redirect_to("/console/");
        Browser {
            secret: session_cookie(response.headers(), COOKIE_NAME).expect("cookie"),
        }
    }

    pub async fn get(&self, app: &TestApp, path: &str) -> Reply {
        app.send(
            Request::builder()
                .uri(path)
                .header(COOKIE, format!("{COOKIE_NAME}={}", self.secret))
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }

    /// A form POST from a console page: the Origin and the csrf field as a browser sends them.
    pub async fn post(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Reply {
        self.post_with(app, path, fields, true, Some(ORIGIN)).await
    }

    pub async fn post_with(
        &self,
        app: &TestApp,
        path: &str,
        fields: &[(&str, &str)],
        csrf: bool,
        origin: Option<&str>,
    ) -> Reply {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        if csrf {
            form.append_pair("csrf", &csrf_token(&self.secret));
        }
        for (k, v) in fields {
            form.append_pair(k, v);
        }
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(COOKIE, format!("{COOKIE_NAME}={}", self.secret))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(origin) = origin {
            builder = builder.header("origin", origin);
        }
        app.send(builder.body(Body::from(form.finish())).expect("request"))
            .await
    }
}

async fn anonymous_get(app: &TestApp, path: &str) -> Reply {
    app.send(
        Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request"),
    )
    .await
}

/// A member of the root org with only the built-in Viewer role on a product.
pub async fn viewer(app: &TestApp) -> (Browser, String) {
    let org = app.org_id.to_string();
    let user = app.user("viewer@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{org}/members/{user}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    let product = app.product(&org).await;
    let product_id = product["id"].as_str().expect("id");
    app.ok(
        Method::PUT,
        &format!("/products/{product_id}/members/{user}"),
        Some(json!({ "role": "viewer" })),
    )
    .await;
    (Browser::signed_in(app, "viewer@acme.test").await, user)
}

/// What every console page keeps: the policy, no framing, not cached, and markup with no
/// inline script, style or event handler.
pub fn assert_console_page(reply: &Reply) {
    assert_eq!(reply.headers["content-security-policy"], CSP);
    assert_eq!(reply.headers["x-frame-options"], "DENY");
    assert_eq!(reply.headers["referrer-policy"], "same-origin");
    assert_eq!(reply.headers[CACHE_CONTROL], "no-store");
    let html = &reply.text;
    assert!(
        html.starts_with("<!DOCTYPE html><html lang=\"en\">"),
        "{html}"
    );
    for (at, _) in html.match_indices("<script") {
        let tag: String = html[at..].chars().take_while(|c| *c != '>').collect();
        assert!(
            tag.contains(" src=\"/console/assets/"),
            "inline script: {tag}"
        );
    }
    assert!(!html.contains("<style"), "inline style element");
    assert!(!html.contains(" style="), "style attribute");
    let lower = html.to_ascii_lowercase();
    for handler in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " onerror=",
        "javascript:",
    ] {
        assert!(!lower.contains(handler), "inline handler {handler}");
    }
    assert!(html.contains("<main id=\"main\""), "main landmark");
    assert!(html.contains("href=\"#main\""), "skip link");
}

async fn signed_out_pages_redirect_to_sign_in(backend: Backend) {
    let app = console_app(backend).await;
    let home = anonymous_get(&app, "/console/").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(
        home.headers[LOCATION],
        "/console/sign-in?return_to=%2Fconsole%2F"
    );
    let deep = anonymous_get(&app, &format!("/console/orgs/{}/members?q=ada", app.org_id)).await;
    assert_eq!(deep.status, StatusCode::SEE_OTHER);
    let location = deep.headers[LOCATION].to_str().expect("ascii");
    assert_eq!(
        location,
        format!(
            "/console/sign-in?return_to=%2Fconsole%2Forgs%2F{}%2Fmembers%3Fq%3Dada",
            app.org_id
        )
    );
    // A made-up session is no session.
    let stale = Browser {
        secret: "made-up".into(),
    };
    assert_eq!(
        stale.get(&app, "/console/").await.status,
        StatusCode::SEE_OTHER
    );

    let sign_in = anonymous_get(&app, "/console/sign-in?return_to=%2Fconsole%2Forgs").await;
    assert_eq!(sign_in.status, StatusCode::OK);
    assert_console_page(&sign_in);
    assert!(
        sign_in.text.contains("action=\"/auth/email\""),
        "{}",
        sign_in.text
    );
    assert!(sign_in.text.contains("action=\"/console/sign-in/sso\""));
    assert!(
        sign_in.text.contains("value=\"/console/orgs\""),
        "return_to kept"
    );
    // return_to never leaves the console.
    let away = anonymous_get(
        &app,
        "/console/sign-in?return_to=https%3A%2F%2Fevil.example%2F",
    )
    .await;
    assert!(!away.text.contains("evil.example"), "{}", away.text);

    // SSO by domain: no connection for it is said on the page.
    let none = anonymous_get(&app, "/console/sign-in/sso?email=ada%40nowhere.example").await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert!(none.text.contains("No single sign-on"), "{}", none.text);
}

async fn sso_sign_in_goes_to_the_domains_connection(backend: Backend) {
    let app = console_app(backend).await;
    let connection = connection_for(&app, app.org_id, &["acme.test"]).await;
    let reply = anonymous_get(
        &app,
        "/console/sign-in/sso?email=ada%40acme.test&return_to=%2Fconsole%2Forgs",
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    assert_eq!(
        reply.headers[LOCATION],
        format!(
            "/auth/oidc/{connection}/login?return_to=%2Fconsole%2Forgs&login_hint=ada%40acme.test"
        )
    );
}

async fn pages_carry_the_csp_and_no_inline_script(backend: Backend) {
    let app = console_app(backend).await;
    let sub = app.sub_org(&app.org_id.to_string(), "Payments").await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    for path in [
        "/console/".to_owned(),
        format!("/console/orgs/{}", app.org_id),
        format!("/console/orgs/{sub}"),
        format!("/console/orgs/{}/members", app.org_id),
        format!("/console/orgs/{sub}/members"),
    ] {
        let page = owner.get(&app, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        assert_console_page(&page);
        assert!(
            page.text.contains("owner@acme.test"),
            "{path}: the signed-in user"
        );
        assert!(
            page.text.contains("action=\"/auth/logout\""),
            "{path}: sign-out"
        );
    }
    let home = owner.get(&app, "/console/").await;
    assert!(
        home.text.contains("Acme") && home.text.contains("Payments"),
        "{}",
        home.text
    );
    let org = owner.get(&app, &format!("/console/orgs/{sub}")).await;
    assert!(
        org.text.contains("Owner, inherited from Acme"),
        "the role and where it comes from: {}",
        org.text
    );
    let missing = owner.get(&app, "/console/no-such-page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.headers["content-security-policy"], CSP);
    let other = owner
        .get(&app, &format!("/console/orgs/{}", Uuid::now_v7()))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

async fn assets_are_served_under_their_hash(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let page = owner.get(&app, "/console/").await;
    for ext in ["css", "js"] {
        let marker = "/console/assets/console.";
        let start = page
            .text
            .match_indices(marker)
            .map(|(at, _)| at)
            .find(|at| {
                page.text[*at..]
                    .split('"')
                    .next()
                    .is_some_and(|u| u.ends_with(ext))
            })
            .unwrap_or_else(|| panic!("no {ext} asset in {}", page.text));
        let url: String = page.text[start..]
            .split('"')
            .next()
            .expect("url")
            .to_owned();
        let asset = anonymous_get(&app, &url).await;
        assert_eq!(asset.status, StatusCode::OK, "{url}");
        assert_eq!(
            asset.headers[CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let digest = Sha256::digest(asset.text.as_bytes());
        let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
        assert_eq!(url, format!("/console/assets/console.{hex}.{ext}"));
        assert!(
            asset.headers[CONTENT_TYPE]
                .to_str()
                .expect("ascii")
                .starts_with(if ext == "css" {
                    "text/css"
                } else {
                    "text/javascript"
                })
        );
    }
    let stale = anonymous_get(&app, "/console/assets/console.0000000000.css").await;
    assert_eq!(stale.status, StatusCode::NOT_FOUND);
}

async fn a_viewer_sees_no_invite_form_and_a_forged_invite_is_refused(backend: Backend) {
    let app = console_app(backend).await;
    let (viewer, _) = viewer(&app).await;
    let path = format!("/console/orgs/{}/members", app.org_id);
    let page = viewer.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("owner@acme.test"), "members are listed");
    assert!(
        !page.text.contains("/invite\""),
        "no invite form: {}",
        page.text
    );
    assert!(!page.text.contains("Send invitation"), "no invite button");
    assert!(!page.text.contains("/role\""), "no role forms");
    assert!(!page.text.contains("/remove\""), "no remove forms");
    let org_page = viewer
        .get(&app, &format!("/console/orgs/{}", app.org_id))
        .await;
    assert!(!org_page.text.contains("/sub-orgs\""), "no create form");
    assert!(!org_page.text.contains("/rename\""), "no rename form");

    let forged = viewer
        .post(
            &app,
            &format!("{path}/invite"),
            &[("emails", "eve@acme.test")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);
    let forged_role = viewer
        .post(
            &app,
            &format!("{path}/{}/role", Uuid::now_v7()),
            &[("role", "owner")],
        )
        .await;
    assert_eq!(forged_role.status, StatusCode::FORBIDDEN);
    let invitations = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/invitations", app.org_id),
            None,
        )
        .await;
    assert_eq!(invitations["invitations"], json!([]));
}

async fn a_post_without_the_csrf_token_or_from_elsewhere_is_refused(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let path = format!("/console/orgs/{}/members/invite", app.org_id);
    let fields = [("emails", "eve@acme.test")];
    let no_token = owner
        .post_with(&app, &path, &fields, false, Some(ORIGIN))
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert!(
        no_token.text.contains("cross-site request refused"),
        "{}",
        no_token.text
    );
    let elsewhere = owner
        .post_with(&app, &path, &fields, true, Some("https://evil.example"))
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    let no_origin = owner.post_with(&app, &path, &fields, true, None).await;
    assert_eq!(no_origin.status, StatusCode::FORBIDDEN);
    let invitations = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/invitations", app.org_id),
            None,
        )
        .await;
    assert_eq!(invitations["invitations"], json!([]), "nothing was invited");
    // Signed out, a POST goes to sign in and changes nothing.
    let anonymous = Browser {
        secret: "none".into(),
    }
    .post(&app, &path, &fields)
    .await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
}

async fn the_owner_rule_refusal_is_shown_on_the_members_page(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let tenant = app.store.find_org(app.org_id).await.expect("org").tenant_id;
    let me = app
        .store
        .find_user_by_email(tenant, "owner@acme.test")
        .await
        .expect("lookup")
        .expect("user");
    let path = format!("/console/orgs/{}/members", app.org_id);
    let refused = owner
        .post(
            &app,
            &format!("{path}/{}/role", me.id),
            &[("role", "member")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_console_page(&refused);
    assert!(refused.text.contains("role=\"status\""));
    assert!(refused.text.contains("owner_rule"), "{}", refused.text);
    assert!(
        refused.text.contains("Invite team members"),
        "the page itself, re-rendered"
    );

    // A change that goes through: 303 back, the result shown once on the next page.
    let dev = app.user("dev@acme.test").await;
    let done = owner
        .post(&app, &format!("{path}/{dev}/role"), &[("role", "member")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let flash = crate::session::session_cookie(&done.headers, "rolegate_flash").expect("flash");
    let next = app
        .send(
            Request::builder()
                .uri(&path)
                .header(
                    COOKIE,
                    format!("{COOKIE_NAME}={}; rolegate_flash={flash}", owner.secret),
                )
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert!(next.text.contains("Role changed."), "{}", next.text);
    assert!(next.text.contains("dev@acme.test"));
}

async fn an_owner_invites_from_the_members_page_with_a_result_per_address(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let path = format!("/console/orgs/{}/members", app.org_id);
    let reply = owner
        .post(
            &app,
            &format!("{path}/invite"),
            &[
                ("emails", "ada@acme.test, not-an-address, ada@acme.test"),
                ("access", ""),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        reply.text.contains("ada@acme.test: invited"),
        "{}",
        reply.text
    );
    assert!(reply.text.contains("not-an-address: not an e-mail address"));
    assert!(reply.text.contains("listed more than once"));
    // Pending, with resend and revoke.
    let listed = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/invitations", app.org_id),
            None,
        )
        .await;
    let invitation = listed["invitations"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let page = owner.get(&app, &path).await;
    assert!(
        page.text
            .contains(&format!("/invitations/{invitation}/resend"))
    );
    let resent = owner
        .post(
            &app,
            &format!("{path}/invitations/{invitation}/resend"),
            &[],
        )
        .await;
    assert_eq!(resent.status, StatusCode::SEE_OTHER, "{}", resent.text);
    let revoked = owner
        .post(
            &app,
            &format!("{path}/invitations/{invitation}/revoke"),
            &[],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.text);
    let after = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/invitations", app.org_id),
            None,
        )
        .await;
    assert_eq!(after["invitations"][0]["status"], "revoked");
    // The e-mail's link opens the console's invitation page.
    let outbox = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/outbox?status=all", app.org_id),
            None,
        )
        .await;
    assert!(
        outbox
            .to_string()
            .contains("https://rolegate.acme.example/console/invitations/accept?token="),
        "{outbox}"
    );
}

async fn the_invitation_page_accepts_and_signs_the_invitee_in(backend: Backend) {
    let app = console_app(backend).await;
    let secret = app.invitation_link(app.org_id, "ada@acme.test").await;
    let path = format!("/console/invitations/accept?token={secret}");
    // Looking uses nothing up.
    for _ in 0..2 {
        let page = anonymous_get(&app, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_console_page_headers_only(&page);
        assert!(
            page.text.contains("You are invited to Acme"),
            "{}",
            page.text
        );
        assert!(page.text.contains("ada@acme.test"));
        assert!(page.text.contains("<form method=\"post\""));
    }
    let post = |origin: Option<&'static str>| {
        let mut builder = Request::builder().method(Method::POST).uri(path.clone());
        if let Some(origin) = origin {
            builder = builder.header("origin", origin);
        }
        builder.body(Body::empty()).expect("request")
    };
    let cross = app.send(post(Some("https://evil.example"))).await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let accepted = app.send(post(Some(ORIGIN))).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.text);
    assert_eq!(accepted.headers[LOCATION], "/console/");
    let cookie = session_cookie(&accepted.headers, COOKIE_NAME).expect("session cookie");
    let session = session_of(&app, &cookie).await.expect("a live session");
    assert_eq!(session.method, "invitation");
    let members = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/members?search=ada", app.org_id),
            None,
        )
        .await;
    assert_eq!(
        members["members"][0]["user"]["id"],
        session.user_id.to_string()
    );
    // The new member's console.
    let home = Browser { secret: cookie }.get(&app, "/console/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text.contains("ada@acme.test"));
    // Used once.
    let again = app.send(post(Some(ORIGIN))).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    let bogus = anonymous_get(&app, "/console/invitations/accept?token=rg_inv_bogus").await;
    assert_eq!(bogus.status, StatusCode::NOT_FOUND);
}

fn assert_console_page_headers_only(reply: &Reply) {
    assert_eq!(reply.headers["content-security-policy"], CSP);
    assert_eq!(reply.headers["x-frame-options"], "DENY");
    assert_eq!(reply.headers[CACHE_CONTROL], "no-store");
}

/// A connection stored directly (no provider is asked): enough for routing to its login.
async fn connection_for(app: &TestApp, org: Uuid, domains: &[&str]) -> Uuid {
    use rolegate::domain::oidc::{ClientAuth, Provisioning};
    let tenant = app.store.find_org(org).await.expect("org").tenant_id;
    app.store
        .create_oidc_connection(
            &rolegate::store::Ctx::new(rolegate::domain::audit::Actor::Cli),
            tenant,
            rolegate::store::NewConnection {
                org_id: org,
                issuer: "https://idp.acme.example".into(),
                client_id: "rolegate".into(),
                client_auth: ClientAuth::ClientSecretBasic,
                client_secret: None,
                signing_key: None,
                public_jwk: None,
                groups_claim: "groups".into(),
                scopes: vec!["openid".into(), "email".into()],
                provisioning: Provisioning::Hybrid,
                require_mfa: false,
                domains: domains.iter().map(|d| (*d).to_owned()).collect(),
                allowed_tenants: Vec::new(),
                metadata: json!({
                    "issuer": "https://idp.acme.example",
                    "authorization_endpoint": "https://idp.acme.example/auth"
                }),
            },
        )
        .await
        .expect("connection")
        .id
}

async fn under_require_sso_the_invitee_is_sent_to_the_orgs_sso(backend: Backend) {
    let app = console_app(backend).await;
    let sub = app.sub_org(&app.org_id.to_string(), "Payments").await;
    let connection = connection_for(&app, app.org_id, &["acme.test"]).await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{}/settings", app.org_id),
        Some(json!({ "require_sso": true })),
    )
    .await;
    let secret = app
        .invitation_link(sub.parse().expect("uuid"), "bob@acme.test")
        .await;
    let reply = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri(format!("/console/invitations/accept?token={secret}"))
                .header("origin", ORIGIN)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    assert_eq!(
        reply.headers[LOCATION],
        format!("/auth/oidc/{connection}/login?return_to=%2Fconsole%2F&login_hint=bob%40acme.test")
    );
    assert!(
        session_cookie(&reply.headers, COOKIE_NAME).is_none(),
        "no session without SSO"
    );
    // Accepted all the same.
    let members = app
        .ok(
            Method::GET,
            &format!("/orgs/{sub}/members?search=bob"),
            None,
        )
        .await;
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(1),
        "{members}"
    );
}

async fn an_owner_changes_a_members_permission_group_on_a_product(backend: Backend) {
    let app = console_app(backend).await;
    let (viewer, user) = viewer(&app).await;
    let org = app.org_id;
    let products = app
        .ok(Method::GET, &format!("/orgs/{org}/products"), None)
        .await;
    let product = products["products"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let groups = app
        .ok(
            Method::GET,
            &format!("/products/{product}/permission-groups"),
            None,
        )
        .await;
    let developer = groups["permission_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "Developer")
        .expect("the Developer preset")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/console/orgs/{org}/members");
    // The Viewer sees their grant, and no form to change it.
    let seen = viewer.get(&app, &path).await;
    assert!(
        seen.text.contains("Permission group on Checkout"),
        "{}",
        seen.text
    );
    assert!(
        !seen.text.contains("/access\""),
        "no access forms for a viewer"
    );
    let forged = viewer
        .post(
            &app,
            &format!("{path}/{user}/access"),
            &[("product", &product), ("group", &developer)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);

    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let page = owner.get(&app, &path).await;
    assert!(
        page.text.contains(&format!("{path}/{user}/access")),
        "{}",
        page.text
    );
    let changed = owner
        .post(
            &app,
            &format!("{path}/{user}/access"),
            &[("product", &product), ("group", &developer)],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.text);
    assert_eq!(
        changed.headers[LOCATION],
        format!("{path}?product={product}")
    );
    let permissions = app
        .ok(
            Method::GET,
            &format!("/orgs/{org}/members/{user}/permissions?product={product}"),
            None,
        )
        .await;
    assert_eq!(
        permissions["capabilities"],
        json!(["manage_resources"]),
        "{permissions}"
    );
}

async fn a_mapped_owner_is_shown_with_the_idp_group_behind_the_role(backend: Backend) {
    let app = console_app(backend).await;
    let root = app.org_id.to_string();
    let payments = app.sub_org(&root, "Payments").await;
    let carol = app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "carol@acme.test",
                "emails": [{ "value": "carol@acme.test", "primary": true }],
            })),
        )
        .await;
    let carol = carol.body["id"].as_str().expect("id").to_owned();
    let group = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Payments Owners",
                "members": [{ "value": carol }],
            })),
        )
        .await;
    assert!(group.status.is_success(), "{}", group.text);
    app.ok(
        Method::PUT,
        &format!("/orgs/{root}/mappings"),
        Some(json!({
            "version": 1,
            "rules": [{ "name": "payments-owners", "idp_group": "Payments Owners",
                        "grants": [{ "org": "Payments", "org_role": "owner" }] }],
        })),
    )
    .await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let page = owner.get(&app, &format!("/console/orgs/{payments}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text
            .contains("Owner, mapped from IdP group Payments Owners"),
        "the resolver's explanation, not the membership row's: {}",
        page.text
    );
    assert!(
        page.text.contains("Owner, inherited from Acme"),
        "{}",
        page.text
    );
}

crate::on_both_backends!(
    a_mapped_owner_is_shown_with_the_idp_group_behind_the_role,
    an_owner_changes_a_members_permission_group_on_a_product,
    signed_out_pages_redirect_to_sign_in,
    sso_sign_in_goes_to_the_domains_connection,
    pages_carry_the_csp_and_no_inline_script,
    assets_are_served_under_their_hash,
    a_viewer_sees_no_invite_form_and_a_forged_invite_is_refused,
    a_post_without_the_csrf_token_or_from_elsewhere_is_refused,
    the_owner_rule_refusal_is_shown_on_the_members_page,
    an_owner_invites_from_the_members_page_with_a_result_per_address,
    the_invitation_page_accepts_and_signs_the_invitee_in,
    under_require_sso_the_invitee_is_sent_to_the_orgs_sso,
);
