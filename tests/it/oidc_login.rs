//! OIDC sign-in against the real loopback OpenID Provider: login → provider → callback → the
//! person linked or created, their group claims mapped, each refusal with its code and page.

use axum::http::{Method, StatusCode, header};
use rolegate::config::ServeArgs;
use serde_json::{Value, json};
use url::Url;

use crate::common::http::{Reply, request};
use crate::common::oidc::{Browser, Provider, Returned, account, set_cookies};
use crate::common::{Backend, TestApp};
use crate::oidc::add_connection;
use crate::on_both_backends;

on_both_backends!(
    a_mapped_group_claim_gives_the_product_permission_after_login,
    the_group_set_is_replaced_at_the_next_login_and_new_signing_keys_are_fetched,
    a_state_is_good_for_one_callback_only_and_for_ten_minutes,
    return_to_is_only_a_path_of_this_service,
    a_sub_org_connection_cannot_link_a_root_member_by_email,
    jit_creates_scim_only_refuses_and_hybrid_links_a_verified_email,
    an_unverified_email_does_not_link_an_existing_person,
    the_providers_answer_must_name_its_issuer_and_carry_the_right_verifier,
    require_mfa_refuses_a_single_factor_and_overage_signs_in_without_groups,
    a_provider_error_is_a_page_with_its_code,
    the_providers_back_channel_logout_ends_the_session_once,
    signing_out_ends_the_providers_session_too,
    private_key_jwt_is_what_the_real_provider_takes,
    an_owner_mapped_from_a_group_claim_counts_for_the_owner_rule,
);

pub const PUBLIC_URL: &str = "http://127.0.0.1:8080/";

/// An app, a provider with these accounts, and a connection of `org` (root by default).
pub struct Sso {
    pub app: TestApp,
    pub op: Provider,
    pub id: String,
}

pub async fn sso(backend: Backend, accounts: Value, connection: Value) -> Sso {
    let mut config = ServeArgs::for_tests();
    config.public_url = Some(Url::parse(PUBLIC_URL).expect("url"));
    let app = TestApp::with_config(backend, config).await;
    let org = app.org_id.to_string();
    sso_in(app, &org, accounts, connection).await
}

pub async fn sso_in(app: TestApp, org: &str, accounts: Value, connection: Value) -> Sso {
    let mut op = Provider::start(&[format!("{PUBLIC_URL}placeholder")], accounts);
    let created = add_connection(&app, org, &op.issuer, connection).await;
    op.allow_redirect_uri(created["redirect_uri"].as_str().expect("redirect_uri"))
        .await;
    Sso {
        app,
        op,
        id: created["id"].as_str().expect("id").to_owned(),
    }
}

impl Sso {
    pub async fn login(&self, hint: &str, return_to: Option<&str>) -> Reply {
        let mut path = format!("/auth/oidc/{}/login?login_hint={hint}", self.id);
        if let Some(r) = return_to {
            path.push_str(&format!(
                "&return_to={}",
                url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
            ));
        }
        self.app.call(Method::GET, &path, None, None).await
    }

    /// Login, then the provider: where it sends the browser back.
    pub async fn returned(&self, hint: &str) -> Returned {
        self.returned_in(&mut Browser::default(), hint).await
    }

    /// [`Sso::returned`] in this browser, which keeps the provider's cookies.
    pub async fn returned_in(&self, browser: &mut Browser, hint: &str) -> Returned {
        let login = self.login(hint, None).await;
        assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text);
        let location = login.headers[header::LOCATION].to_str().expect("location");
        assert!(location.starts_with(&self.op.issuer), "{location}");
        for param in [
            "code_challenge_method=S256",
            "state=",
            "nonce=",
            "login_hint=",
        ] {
            assert!(location.contains(param), "{param} in {location}");
        }
        let binding_cookie = set_cookies(&login.headers)
            .into_iter()
            .next()
            .expect("the login's browser cookie");
        let callback = browser.through_provider(location, PUBLIC_URL).await;
        Returned {
            callback,
            binding_cookie,
        }
    }

    pub async fn callback(&self, returned: &Returned) -> Reply {
        let mut req = request(Method::GET, &returned.callback, None, None, None);
        req.headers_mut().insert(
            header::COOKIE,
            returned.binding_cookie.parse().expect("cookie"),
        );
        self.app.send(req).await
    }

    pub async fn sign_in(&self, hint: &str) -> Reply {
        let returned = self.returned(hint).await;
        self.callback(&returned).await
    }

    /// The id of the user with this e-mail, as the admin API lists them.
    pub async fn user_id(&self, email: &str) -> Option<String> {
        let users = self
            .app
            .ok(Method::GET, &format!("/users?search={email}"), None)
            .await;
        users["users"]
            .as_array()
            .expect("users")
            .iter()
            .find(|u| u["email"] == json!(email))
            .map(|u| u["id"].as_str().expect("id").to_owned())
    }

    pub async fn audit_actions(&self) -> String {
        self.app
            .ok(Method::GET, "/audit?limit=1000", None)
            .await
            .to_string()
    }
}

/// A completed sign-in: 303 to `to` with a session cookie.
pub fn assert_signed_in(reply: &Reply, to: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SEE_OTHER,
        "{} {:?}",
        reply.text,
        reply.headers.get("x-rolegate-error")
    );
    assert_eq!(reply.headers[header::LOCATION], to);
    assert!(
        set_cookies(&reply.headers)
            .iter()
            .any(|c| c.contains("session") && !c.ends_with('=')),
        "a session cookie: {:?}",
        reply.headers
    );
}

/// A refusal page: the status, the code in the page and its header, no session.
pub fn assert_refused(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.headers["x-rolegate-error"], code, "{}", reply.text);
    assert!(reply.text.contains(&format!(">{code}<")), "{}", reply.text);
    assert!(
        reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    // The console's frame loads its own script; nothing else runs (a provider's error text is
    // shown escaped).
    assert_eq!(
        reply.text.matches("<script").count(),
        reply
            .text
            .matches("<script src=\"/console/assets/console.")
            .count(),
        "{}",
        reply.text
    );
    assert!(
        !set_cookies(&reply.headers)
            .iter()
            .any(|c| c.contains("session")),
        "no session on a refusal"
    );
}

async fn mapped_permission(s: &Sso, user: &str, product: &str) -> Value {
    s.app
        .ok(
            Method::GET,
            &format!("/authz/explain?user_id={user}&product_id={product}"),
            None,
        )
        .await
}

/// A product and a rule `oidc:<connection>` mapping `group` to the Editor role on it.
async fn map_group(s: &Sso, group: &str) -> String {
    let org = s.app.org_id.to_string();
    let product = s.app.product(&org).await;
    let product_id = product["id"].as_str().expect("id").to_owned();
    s.app
        .ok(
            Method::PUT,
            &format!("/orgs/{org}/mappings"),
            Some(json!({"version": 1, "rules": [
                {"name": "Editors", "idp_group": group, "source": format!("oidc:{}", s.id),
                 "grants": [{"product": product_id, "role": "editor"}]}
            ]})),
        )
        .await;
    product_id
}

fn editor_via_rule(explained: &Value) -> bool {
    explained.to_string().contains("Editors") && explained.to_string().contains("manage_resources")
}

async fn a_mapped_group_claim_gives_the_product_permission_after_login(backend: Backend) {
    let s = sso(
        backend,
        json!({"alice": account("alice@acme.test", true, &["eng"])}),
        json!({"provisioning": "jit"}),
    )
    .await;
    let product = map_group(&s, "eng").await;
    let reply = s.sign_in("alice").await;
    assert_signed_in(&reply, "/console/");
    let user = s
        .user_id("alice@acme.test")
        .await
        .expect("created at login");
    let explained = mapped_permission(&s, &user, &product).await;
    assert!(editor_via_rule(&explained), "{explained}");
    let audit = s.audit_actions().await;
    assert!(
        audit.contains("oidc.login") && audit.contains("oidc_login"),
        "{audit}"
    );
}

async fn the_group_set_is_replaced_at_the_next_login_and_new_signing_keys_are_fetched(
    backend: Backend,
) {
    let mut s = sso(
        backend,
        json!({"alice": account("alice@acme.test", true, &["eng"])}),
        json!({}),
    )
    .await;
    let product = map_group(&s, "eng").await;
    assert_signed_in(&s.sign_in("alice").await, "/console/");
    let user = s.user_id("alice@acme.test").await.expect("user");
    assert!(editor_via_rule(
        &mapped_permission(&s, &user, &product).await
    ));
    // The provider restarts: a new signing key (an unknown kid, so the JWKS is fetched again)
    // and alice is no longer in `eng`.
    s.op.restart_with(json!({"alice": account("alice@acme.test", true, &["sales"])}));
    assert_signed_in(&s.sign_in("alice").await, "/console/");
    assert_eq!(
        s.user_id("alice@acme.test").await,
        Some(user.clone()),
        "the same person"
    );
    let explained = mapped_permission(&s, &user, &product).await;
    assert!(!editor_via_rule(&explained), "eng is gone: {explained}");
}

async fn a_state_is_good_for_one_callback_only_and_for_ten_minutes(backend: Backend) {
    let s = sso(
        backend,
        json!({"alice": account("alice@acme.test", true, &[])}),
        json!({}),
    )
    .await;
    let returned = s.returned("alice").await;
    assert_signed_in(&s.callback(&returned).await, "/console/");
    assert_refused(
        &s.callback(&returned).await,
        StatusCode::BAD_REQUEST,
        "state_unknown",
    );

    let returned = s.returned("alice").await;
    s.app
        .raw_execute("UPDATE oidc_logins SET expires_at = '2000-01-01T00:00:00+00:00'")
        .await
        .expect("expire");
    assert_refused(
        &s.callback(&returned).await,
        StatusCode::BAD_REQUEST,
        "login_expired",
    );

    // Another browser (without the login's cookie) cannot complete it.
    let mut returned = s.returned("alice").await;
    returned.binding_cookie = "rolegate_oidc=someone-elses".into();
    assert_refused(
        &s.callback(&returned).await,
        StatusCode::BAD_REQUEST,
        "state_not_this_browser",
    );
}

async fn return_to_is_only_a_path_of_this_service(backend: Backend) {
    let s = sso(
        backend,
        json!({"alice": account("alice@acme.test", true, &[])}),
        json!({}),
    )
    .await;
    for bad in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
    ] {
        assert_refused(
            &s.login("alice", Some(bad)).await,
            StatusCode::BAD_REQUEST,
            "bad_return_to",
        );
    }
    let login = s.login("alice", Some("/console/products?x=1")).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let location = login.headers[header::LOCATION].to_str().expect("location");
    let binding_cookie = set_cookies(&login.headers).remove(0);
    let callback = Browser::default()
        .through_provider(location, PUBLIC_URL)
        .await;
    let reply = s
        .callback(&Returned {
            callback,
            binding_cookie,
        })
        .await;
    assert_signed_in(&reply, "/console/products?x=1");
}

async fn a_sub_org_connection_cannot_link_a_root_member_by_email(backend: Backend) {
    let mut config = ServeArgs::for_tests();
    config.public_url = Some(Url::parse(PUBLIC_URL).expect("url"));
    let app = TestApp::with_config(backend, config).await;
    let sub = app.sub_org(&app.org_id.to_string(), "Payments").await;
    // The sub-org's IdP asserts the root Owner's address, verified.
    let s = sso_in(
        app,
        &sub,
        json!({"mallory": account("owner@acme.test", true, &[])}),
        json!({"provisioning": "hybrid"}),
    )
    .await;
    assert_refused(
        &s.sign_in("mallory").await,
        StatusCode::FORBIDDEN,
        "account_not_linkable",
    );
    let audit = s.audit_actions().await;
    assert!(audit.contains("oidc.login.refused"), "{audit}");
    assert!(!audit.contains("\"oidc.login\""), "{audit}");
}

async fn jit_creates_scim_only_refuses_and_hybrid_links_a_verified_email(backend: Backend) {
    let accounts = json!({
        "new": account("new@acme.test", true, &[]),
        "scimmed": account("scimmed@acme.test", true, &[]),
        "member": account("member@acme.test", true, &[]),
    });
    // scim_only: nobody SCIM has not provisioned.
    let s = sso(
        backend,
        accounts.clone(),
        json!({"provisioning": "scim_only"}),
    )
    .await;
    assert_refused(
        &s.sign_in("new").await,
        StatusCode::FORBIDDEN,
        "not_provisioned",
    );
    assert_eq!(s.user_id("new@acme.test").await, None);
    assert!(s.audit_actions().await.contains("not_provisioned"));
    let created = s
        .app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "scimmed@acme.test",
                "emails": [{"value": "scimmed@acme.test", "primary": true}],
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_signed_in(&s.sign_in("scimmed").await, "/console/");
    assert_eq!(
        s.user_id("scimmed@acme.test").await.as_deref(),
        created.body["id"].as_str(),
        "linked to the SCIM user"
    );

    // jit: created at first login, a member of the connection's org.
    let org = s.app.org_id;
    s.app
        .ok(
            Method::PATCH,
            &format!("/oidc-connections/{}", s.id),
            Some(json!({"provisioning": "jit"})),
        )
        .await;
    assert_signed_in(&s.sign_in("new").await, "/console/");
    let id = s.user_id("new@acme.test").await.expect("created");
    let members = s
        .app
        .ok(Method::GET, &format!("/orgs/{org}/members?limit=100"), None)
        .await;
    assert!(members.to_string().contains(&id), "{members}");

    // hybrid: a member the admin added is linked by the verified address, not duplicated.
    s.app
        .ok(
            Method::PATCH,
            &format!("/oidc-connections/{}", s.id),
            Some(json!({"provisioning": "hybrid"})),
        )
        .await;
    let member = s.app.user("member@acme.test").await;
    s.app
        .ok(
            Method::PUT,
            &format!("/orgs/{org}/members/{member}"),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_signed_in(&s.sign_in("member").await, "/console/");
    assert_eq!(s.user_id("member@acme.test").await, Some(member));
    let audit = s.audit_actions().await;
    assert!(audit.contains("\"linked_by\":\"email\""), "{audit}");
}

async fn an_unverified_email_does_not_link_an_existing_person(backend: Backend) {
    let s = sso(
        backend,
        json!({"eve": account("member@acme.test", false, &[])}),
        json!({"provisioning": "hybrid"}),
    )
    .await;
    let member = s.app.user("member@acme.test").await;
    s.app
        .ok(
            Method::PUT,
            &format!("/orgs/{}/members/{member}", s.app.org_id),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_refused(
        &s.sign_in("eve").await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    );
}

async fn the_providers_answer_must_name_its_issuer_and_carry_the_right_verifier(backend: Backend) {
    let s = sso(
        backend,
        json!({"alice": account("alice@acme.test", true, &[])}),
        json!({}),
    )
    .await;
    // RFC 9207: the provider advertises `iss`; an answer naming another issuer is a mix-up.
    let mut returned = s.returned("alice").await;
    assert!(returned.callback.contains("iss="), "{}", returned.callback);
    let iss = url::form_urlencoded::byte_serialize(s.op.issuer.as_bytes()).collect::<String>();
    returned.callback = returned
        .callback
        .replace(&format!("iss={iss}"), "iss=https%3A%2F%2Fevil.example");
    assert_refused(
        &s.callback(&returned).await,
        StatusCode::BAD_REQUEST,
        "iss_mismatch",
    );
    let mut returned = s.returned("alice").await;
    returned.callback = returned.callback.replace(&format!("&iss={iss}"), "");
    assert_refused(
        &s.callback(&returned).await,
        StatusCode::BAD_REQUEST,
        "iss_missing",
    );

    // A wrong PKCE verifier: the provider refuses the code.
    let returned = s.returned("alice").await;
    s.app
        .raw_execute("UPDATE oidc_logins SET pkce_verifier = 'not-the-verifier-not-the-verifier-not-the-verifier-0123'")
        .await
        .expect("tamper");
    let reply = s.callback(&returned).await;
    assert_refused(&reply, StatusCode::BAD_REQUEST, "token_exchange_failed");
    assert!(reply.text.contains("invalid_grant"), "{}", reply.text);
}

async fn require_mfa_refuses_a_single_factor_and_overage_signs_in_without_groups(backend: Backend) {
    let mut pwd_only = account("pwd@acme.test", true, &["eng"]);
    pwd_only["amr"] = json!(["pwd"]);
    let mut with_otp = account("otp@acme.test", true, &["eng"]);
    with_otp["amr"] = json!(["pwd", "otp"]);
    let mut overage = account("many@acme.test", true, &[]);
    overage["hasgroups"] = json!(true);
    overage["amr"] = json!(["mfa"]);
    let s = sso(
        backend,
        json!({"pwd": pwd_only, "otp": with_otp, "many": overage}),
        json!({"require_mfa": true, "provisioning": "jit"}),
    )
    .await;
    let reply = s.sign_in("pwd").await;
    assert_refused(&reply, StatusCode::FORBIDDEN, "mfa_required");
    assert!(reply.text.contains("multi-factor"), "{}", reply.text);
    assert_signed_in(&s.sign_in("otp").await, "/console/");
    let product = map_group(&s, "eng").await;
    assert_signed_in(&s.sign_in("many").await, "/console/");
    let many = s.user_id("many@acme.test").await.expect("user");
    assert!(!editor_via_rule(
        &mapped_permission(&s, &many, &product).await
    ));
    let audit = s.audit_actions().await;
    assert!(audit.contains("group_overage"), "{audit}");
}

async fn a_provider_error_is_a_page_with_its_code(backend: Backend) {
    let s = sso(backend, json!({}), json!({})).await;
    // No such account: the provider answers access_denied to the redirect URI.
    let reply = s.sign_in("nobody").await;
    assert_refused(&reply, StatusCode::BAD_REQUEST, "provider_error");
    assert!(reply.text.contains("access_denied"), "{}", reply.text);
    // An unknown connection, a missing state.
    let reply = s
        .app
        .call(
            Method::GET,
            &format!("/auth/oidc/{}/login", uuid::Uuid::new_v4()),
            None,
            None,
        )
        .await;
    assert_refused(&reply, StatusCode::NOT_FOUND, "unknown_connection");
    let reply = s
        .app
        .call(
            Method::GET,
            &format!("/auth/oidc/{}/callback?code=x", s.id),
            None,
            None,
        )
        .await;
    assert_refused(&reply, StatusCode::BAD_REQUEST, "missing_state");
}

/// The session id a sign-in set, checked the way every request checks it.
async fn session_valid(app: &TestApp, reply: &Reply) -> bool {
    let cookie = set_cookies(&reply.headers)
        .into_iter()
        .find(|c| c.contains("session") && !c.contains("csrf"))
        .expect("session cookie");
    let (_, value) = cookie.split_once('=').expect("name=value");
    let hash = rolegate::domain::session::hash_secret(value);
    app.state.sessions.check(&hash).await.is_ok()
}

async fn the_providers_back_channel_logout_ends_the_session_once(backend: Backend) {
    let mut config = ServeArgs::for_tests();
    config.public_url = Some(Url::parse(PUBLIC_URL).expect("url"));
    let app = TestApp::with_config(backend, config).await;
    // The provider posts its logout_token over real HTTP.
    let served = crate::common::http::Served::start(app.state.clone()).await;
    let mut op = Provider::start_with(json!({
        "clients": [{
            "client_id": crate::common::oidc::CLIENT_ID,
            "client_secret": crate::common::oidc::CLIENT_SECRET,
            "redirect_uris": [format!("{PUBLIC_URL}placeholder")],
            "backchannel_logout_uri": format!("{}/auth/oidc/backchannel-logout", served.base()),
        }],
        "accounts": {"alice": account("alice@acme.test", true, &[])},
    }));
    let org = app.org_id.to_string();
    let created = add_connection(&app, &org, &op.issuer, json!({})).await;
    op.allow_redirect_uri(created["redirect_uri"].as_str().expect("uri"))
        .await;
    let s = Sso {
        app,
        op,
        id: created["id"].as_str().expect("id").to_owned(),
    };
    let reply = s.sign_in("alice").await;
    assert_signed_in(&reply, "/console/");
    assert!(session_valid(&s.app, &reply).await);

    let sent = s.op.backchannel_logout("alice").await;
    assert_eq!(
        sent["sent"],
        json!([crate::common::oidc::CLIENT_ID]),
        "{sent}"
    );
    assert!(
        !session_valid(&s.app, &reply).await,
        "ended by the provider's logout"
    );

    // The same logout_token again: its jti was seen.
    let replay = reqwest::Client::new()
        .post(format!("{}/auth/oidc/backchannel-logout", served.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(sent["body"].as_str().expect("the form sent").to_owned())
        .send()
        .await
        .expect("answer");
    assert_eq!(replay.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: Value = replay.json().await.expect("json");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("jti"),
        "{body}"
    );
    served.stopped().await;
}

/// RP-initiated logout: signing out here ends the session and sends the browser to the
/// provider's end-session endpoint with the session's ID token as the hint; the real provider
/// accepts it (it refuses a hint it did not issue or a post-logout URI not registered), signs
/// its own session out, and sends the browser back to our signed-out page.
async fn signing_out_ends_the_providers_session_too(backend: Backend) {
    let mut config = ServeArgs::for_tests();
    config.public_url = Some(Url::parse(PUBLIC_URL).expect("url"));
    let app = TestApp::with_config(backend, config).await;
    let signed_out = format!("{}auth/signed-out", PUBLIC_URL);
    let mut op = Provider::start_with(json!({
        "clients": [{
            "client_id": crate::common::oidc::CLIENT_ID,
            "client_secret": crate::common::oidc::CLIENT_SECRET,
            "redirect_uris": [format!("{PUBLIC_URL}placeholder")],
            "post_logout_redirect_uris": [signed_out],
        }],
        "accounts": {"alice": account("alice@acme.test", true, &[])},
    }));
    let created = add_connection(&app, &app.org_id.to_string(), &op.issuer, json!({})).await;
    assert_eq!(created["post_logout_redirect_uri"], json!(signed_out));
    op.allow_redirect_uri(created["redirect_uri"].as_str().expect("uri"))
        .await;
    let s = Sso {
        app,
        op,
        id: created["id"].as_str().expect("id").to_owned(),
    };
    let mut browser = Browser::default();
    let returned = s.returned_in(&mut browser, "alice").await;
    let reply = s.callback(&returned).await;
    assert_signed_in(&reply, "/console/");
    let session = set_cookies(&reply.headers)
        .into_iter()
        .find(|c| c.contains("session") && !c.contains("csrf"))
        .expect("session cookie");
    let secret = session.split_once('=').expect("name=value").1.to_owned();

    let logout = || logout_request(&session, &secret);
    let out = s.app.send(logout()).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.text);
    assert!(!session_valid(&s.app, &reply).await, "ended here");
    let location = out.headers[header::LOCATION].to_str().expect("location");
    assert!(location.starts_with(&s.op.issuer), "{location}");
    let end = Url::parse(location).expect("url");
    let params: std::collections::HashMap<_, _> = end.query_pairs().into_owned().collect();
    assert_eq!(params["client_id"], crate::common::oidc::CLIENT_ID);
    assert_eq!(params["post_logout_redirect_uri"], signed_out);
    assert_eq!(
        params["id_token_hint"].split('.').count(),
        3,
        "the ID token the session began with"
    );
    assert_eq!(browser.sign_out_at_provider(location).await, signed_out);

    // Where the provider sends the browser back to: the console's sign-in, saying so.
    let back = s
        .app
        .call(Method::GET, "/auth/signed-out", None, None)
        .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    let sign_in = back.headers[header::LOCATION].to_str().expect("location");
    let page = s.app.call(Method::GET, sign_in, None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("You are signed out."), "{}", page.text);

    // Ended for good: signing out again (the cookie now names nothing) lands here, not at
    // the provider.
    let again = s.app.send(logout()).await;
    assert_eq!(again.headers[header::LOCATION], "/auth/signed-out");
}

/// `private_key_jwt` against oidc-provider itself: the connection's public key is registered
/// for the client (as an admin pastes it into Okta or Entra), the client secret is not, and the
/// provider — which checks the assertion's signature, `iss`/`sub`, `aud`, `exp` and `jti` — hands
/// out the tokens only for a good assertion: the sign-in completes.
async fn private_key_jwt_is_what_the_real_provider_takes(backend: Backend) {
    let mut s = sso(
        backend,
        json!({"alice": account("alice@acme.test", true, &[])}),
        json!({"client_auth": "private_key_jwt", "provisioning": "jit"}),
    )
    .await;
    let shown = s
        .app
        .ok(Method::GET, &format!("/oidc-connections/{}", s.id), None)
        .await;
    let public_jwk = shown["public_jwk"].clone();
    assert_eq!(public_jwk["kty"], "EC", "{shown}");
    assert!(public_jwk.get("d").is_none(), "never the private part");
    s.op.restart_changed(|config| {
        let client = &mut config["clients"][0];
        client["token_endpoint_auth_method"] = json!("private_key_jwt");
        client["jwks"] = json!({ "keys": [public_jwk] });
        if let Some(fields) = client.as_object_mut() {
            fields.remove("client_secret");
        }
    });
    let reply = s.sign_in("alice").await;
    assert_signed_in(&reply, "/console/");
    assert!(s.user_id("alice@acme.test").await.is_some());
}

/// `POST /auth/logout` with the session cookie (`name=value`) and its CSRF token.
fn logout_request(cookie: &str, secret: &str) -> axum::http::Request<axum::body::Body> {
    let mut logout = request(Method::POST, "/auth/logout", None, None, None);
    let headers = logout.headers_mut();
    headers.insert(header::COOKIE, cookie.parse().expect("cookie"));
    headers.insert(
        "origin",
        PUBLIC_URL.trim_end_matches('/').parse().expect("origin"),
    );
    headers.insert(
        "x-csrf-token",
        rolegate::domain::session::csrf_token(secret)
            .parse()
            .expect("token"),
    );
    logout
}

async fn an_owner_mapped_from_a_group_claim_counts_for_the_owner_rule(backend: Backend) {
    let s = sso(
        backend,
        json!({"alice": account("alice@acme.test", true, &["admins"])}),
        json!({"provisioning": "jit"}),
    )
    .await;
    let org = s.app.org_id.to_string();
    s.app
        .ok(
            Method::PUT,
            &format!("/orgs/{org}/mappings"),
            Some(json!({"version": 1, "rules": [
                {"name": "Admins", "idp_group": "admins", "source": format!("oidc:{}", s.id),
                 "grants": [{"org_role": "owner"}]}
            ]})),
        )
        .await;
    let owner = s.user_id("owner@acme.test").await.expect("the first Owner");
    // The only Owner: removing them is refused.
    let refused = s
        .app
        .admin(
            Method::DELETE,
            &format!("/orgs/{org}/members/{owner}"),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    // Alice's group claim makes her an Owner through the rule: now the first one may go.
    assert_signed_in(&s.sign_in("alice").await, "/console/");
    let removed = s
        .app
        .admin(
            Method::DELETE,
            &format!("/orgs/{org}/members/{owner}"),
            None,
        )
        .await;
    assert!(removed.status.is_success(), "{}", removed.text);
}
