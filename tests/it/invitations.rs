//! Invitations end to end: the e-mail arrives at a real SMTP server (aiosmtpd on loopback),
//! its link is accepted, and the invitee becomes a member with the invited group.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use rolegate::config::ServeArgs;
use serde_json::{Value, json};

use crate::common::smtp::{ReceivedMail, SmtpSink};
use crate::common::{Backend, TestApp};

const PUBLIC_URL: &str = "https://rolegate.acme.example/";

async fn app_with_sink(backend: Backend) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start();
    let mut config = ServeArgs::for_tests();
    config.smtp_url = Some(sink.url().parse().expect("sink URL"));
    config.smtp_from = "Acme via rolegate <noreply@acme.example>".into();
    config.public_url = Some(PUBLIC_URL.parse().expect("url"));
    (TestApp::with_config(backend, config).await, sink)
}

/// The accept link in a received invitation, as a path on our router.
fn link_in(mail: &ReceivedMail) -> String {
    let start = mail
        .body
        .find(PUBLIC_URL)
        .unwrap_or_else(|| panic!("no link in {}", mail.body));
    let link: String = mail.body[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    // The e-mail opens the console's page; the API takes the same token at its own path.
    let path = link.trim_start_matches(PUBLIC_URL);
    let api = path
        .strip_prefix("console/")
        .unwrap_or_else(|| panic!("not the console's invitation page: {link}"));
    format!("/api/v1/{api}")
}

fn admin_path(path: &str) -> String {
    format!("/api/v1{path}")
}

/// Posts an invite body to the root org with the admin token.
async fn invite_to_root(app: &TestApp, body: Value) -> crate::common::http::Reply {
    app.call(
        Method::POST,
        &admin_path(&format!("/orgs/{}/invitations", app.org_id)),
        Some(&app.admin_token),
        Some(body),
    )
    .await
}

async fn invitation_email_arrives_and_its_link_makes_a_member(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let org = app.org_id;
    let product = app
        .call(
            Method::POST,
            &admin_path(&format!("/orgs/{org}/products")),
            Some(&app.admin_token),
            Some(json!({ "name": "Checkout" })),
        )
        .await
        .body;
    let developer = product["permission_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "Developer")
        .expect("preset")["id"]
        .clone();
    let prod_env = product["environments"]
        .as_array()
        .expect("envs")
        .iter()
        .find(|e| e["name"] == "Production")
        .expect("env")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let reply = app
        .call(Method::POST, &admin_path(&format!("/orgs/{org}/invitations")), Some(&app.admin_token), Some(json!({
            "emails": " ada@example.com, not-an-address, ADA@example.com ,bob@example.com, owner@acme.test",
            "product_id": product["id"],
            "permission_group_id": developer,
        })))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let results: Vec<(String, String)> = reply.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["email"].as_str().expect("e").to_owned(),
                r["status"].as_str().expect("s").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("ada@example.com", "invited"),
        ("not-an-address", "invalid"),
        ("ADA@example.com", "duplicate"),
        ("bob@example.com", "invited"),
        ("owner@acme.test", "already_member"),
    ]
    .iter()
    .map(|(e, s)| ((*e).to_owned(), (*s).to_owned()))
    .collect();
    assert_eq!(
        results, expected,
        "one result per address, in the order listed"
    );
    let ada = reply.body["results"]
        .as_array()
        .expect("r")
        .iter()
        .find(|r| r["email"] == "ada@example.com")
        .expect("ada");
    assert_eq!(ada["delivery"], "sent");
    assert!(
        !reply.text.contains("rg_inv_"),
        "the secret is only in the e-mail"
    );

    let mails = sink.wait_for_messages(2, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 2);
    let to_ada = mails
        .iter()
        .find(|m| m.to == "ada@example.com")
        .expect("mail to ada");
    assert_eq!(to_ada.mail_from, "noreply@acme.example");
    // It names who invites (the admin token's name), the org, the product and the group.
    assert_eq!(to_ada.subject, "test invited you to Acme");
    assert!(
        to_ada.body.starts_with(
            "test invited you to join Acme, with access to the product Checkout as Developer."
        ),
        "{}",
        to_ada.body
    );
    // The e-mail's link opens the console's invitation page (a person follows it); API
    // clients accept the same token at /api/v1/invitations/accept, where these tests use it.
    assert!(
        to_ada.body.contains(&format!(
            "{PUBLIC_URL}console/invitations/accept?token=rg_inv_"
        )),
        "{}",
        to_ada.body
    );
    let link = link_in(to_ada);
    assert!(
        link.starts_with("/api/v1/invitations/accept?token=rg_inv_"),
        "{link}"
    );

    // Pending list; a GET on the link shows it without using it up.
    let pending = app
        .call(
            Method::GET,
            &admin_path(&format!("/orgs/{org}/invitations?status=pending")),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(
        pending.body["invitations"].as_array().expect("list").len(),
        2
    );
    let view = app.call(Method::GET, &link, None, None).await;
    assert_eq!(
        (view.status, view.body["status"].as_str()),
        (StatusCode::OK, Some("pending"))
    );
    assert_eq!(view.body["org_name"], "Acme");

    // Accept: a member with the invited group, single-use.
    let accepted = app.call(Method::POST, &link, None, None).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    let user = accepted.body["user_id"].as_str().expect("user").to_owned();
    let again = app.call(Method::POST, &link, None, None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "single use");
    let eff = app
        .call(
            Method::GET,
            &admin_path(&format!(
                "/orgs/{org}/members/{user}/permissions?product={}",
                product["id"].as_str().expect("id")
            )),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(
        eff.body["environments"][&prod_env], "read_only",
        "the Developer preset: {}",
        eff.text
    );
    let members = app
        .call(
            Method::GET,
            &admin_path(&format!("/orgs/{org}/members?search=ada@")),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(members.body["members"][0]["user"]["source"], "invite");
    let listed = app
        .call(
            Method::GET,
            &admin_path(&format!("/orgs/{org}/invitations?status=accepted")),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(
        listed.body["invitations"][0]["accepted_user_id"],
        user.as_str()
    );

    // The audit log tells the story, and the stored mail keeps no live link.
    let audit = app
        .call(
            Method::GET,
            &admin_path("/audit?limit=100"),
            Some(&app.admin_token),
            None,
        )
        .await;
    for action in ["invitation.create", "mail.send", "invitation.accept"] {
        assert!(audit.text.contains(action), "audit lacks {action}");
    }
    assert!(!audit.text.contains("rg_inv_"));
}

async fn resend_kills_the_old_link_and_revoked_or_expired_links_fail_clearly(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let org = app.org_id;
    let invite = |emails: &str| {
        let body = json!({ "emails": emails });
        let app = &app;
        async move {
            app.call(
                Method::POST,
                &admin_path(&format!("/orgs/{org}/invitations")),
                Some(&app.admin_token),
                Some(body),
            )
            .await
            .body
        }
    };
    let first = invite("carol@example.com").await;
    let id = first["results"][0]["invitation"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let old_link = link_in(&sink.wait_for_messages(1, Duration::from_secs(10)).await[0]);

    let resent = app
        .call(
            Method::POST,
            &admin_path(&format!("/invitations/{id}/resend")),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.text);
    assert_eq!(resent.body["invitation"]["sent_count"], 2);
    let mails = sink.wait_for_messages(2, Duration::from_secs(10)).await;
    let new_link = link_in(&mails[1]);
    assert_ne!(old_link, new_link);
    // The old link died, and says why, on both the look and the accept.
    for method in [Method::GET, Method::POST] {
        let stale = app.call(method.clone(), &old_link, None, None).await;
        assert_eq!(stale.status, StatusCode::GONE, "{method}: {}", stale.text);
        assert_eq!(stale.body["error"]["code"], "invitation_replaced");
        assert!(
            stale.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("replaced by a newer invitation")),
            "{}",
            stale.text
        );
    }
    // Inviting the same address again also re-sends (one pending invitation per address).
    let again = invite("Carol@Example.com").await;
    assert_eq!(again["results"][0]["status"], "resent");
    let newest = link_in(&sink.wait_for_messages(3, Duration::from_secs(10)).await[2]);
    assert_eq!(
        app.call(Method::POST, &new_link, None, None).await.status,
        StatusCode::GONE,
        "every replaced link says so, not only the first"
    );

    let revoked = app
        .call(
            Method::DELETE,
            &admin_path(&format!("/invitations/{id}")),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(revoked.body["status"], "revoked");
    let gone = app.call(Method::POST, &newest, None, None).await;
    assert_eq!(
        (gone.status, gone.body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("invitation_revoked"))
    );
    let not_resendable = app
        .call(
            Method::POST,
            &admin_path(&format!("/invitations/{id}/resend")),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(not_resendable.status, StatusCode::CONFLICT);

    // Expired: the TTL passed (moved into the past directly in the database).
    let expiring = invite("dave@example.com").await;
    let dave_id = expiring["results"][0]["invitation"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let dave_link = link_in(&sink.wait_for_messages(4, Duration::from_secs(10)).await[3]);
    app.db_expire_invitations().await;
    let expired = app.call(Method::POST, &dave_link, None, None).await;
    assert_eq!(
        (expired.status, expired.body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("invitation_expired"))
    );
    let listed = app
        .call(
            Method::GET,
            &admin_path(&format!("/orgs/{org}/invitations?status=expired")),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(listed.body["invitations"][0]["id"], dave_id.as_str());
    assert_eq!(
        app.call(
            Method::GET,
            "/api/v1/invitations/accept?token=rg_inv_nonsense",
            None,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(Method::POST, "/api/v1/invitations/accept", None, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn without_smtp_invitations_are_logged_to_the_outbox(backend: Backend) {
    let app = TestApp::new(backend).await;
    let reply = invite_to_root(&app, json!({ "emails": "erin@example.com" })).await;
    assert_eq!(reply.body["results"][0]["delivery"], "logged");
    // An array is as good as the typed list, and answered in its order.
    let listed = invite_to_root(
        &app,
        json!({ "emails": ["zoe@example.com", "nope", "al@example.com"] }),
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let order: Vec<_> = listed.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| (r["email"].clone(), r["status"].clone()))
        .collect();
    assert_eq!(
        order,
        [
            (json!("zoe@example.com"), json!("invited")),
            (json!("nope"), json!("invalid")),
            (json!("al@example.com"), json!("invited")),
        ]
    );
    let bad: Value = app
        .call(
            Method::POST,
            &admin_path(&format!("/orgs/{}/invitations", app.org_id)),
            Some(&app.admin_token),
            Some(json!({ "emails": " , " })),
        )
        .await
        .body;
    assert_eq!(bad["error"]["fields"][0]["field"], "emails");
}

/// A relay that cannot take the mail (here: STARTTLS required of a sink without it) leaves the
/// invitation in place and says why, per address and on resend.
async fn a_failed_delivery_carries_its_reason(backend: Backend) {
    let sink = SmtpSink::start();
    let mut config = ServeArgs::for_tests();
    config.smtp_url = Some(
        format!("smtp://127.0.0.1:{}", sink.port())
            .parse()
            .expect("URL"),
    );
    let app = TestApp::with_config(backend, config).await;
    let reply = invite_to_root(&app, json!({ "emails": "erin@example.com" })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let result = &reply.body["results"][0];
    assert_eq!(result["status"], "invited", "{result}");
    assert_eq!(result["delivery"], "failed", "{result}");
    let reason = result["delivery_error"].as_str().expect("a reason");
    assert!(reason.contains("STARTTLS"), "{reason}");

    let id = result["invitation"]["id"].as_str().expect("id");
    let resent = app
        .call(
            Method::POST,
            &admin_path(&format!("/invitations/{id}/resend")),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(resent.body["delivery"], "failed", "{}", resent.text);
    assert!(resent.body["delivery_error"].is_string(), "{}", resent.text);
    assert!(sink.received().is_empty());
}

crate::on_both_backends!(
    a_failed_delivery_carries_its_reason,
    invitation_email_arrives_and_its_link_makes_a_member,
    resend_kills_the_old_link_and_revoked_or_expired_links_fail_clearly,
    without_smtp_invitations_are_logged_to_the_outbox,
);
