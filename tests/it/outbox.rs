//! The mail outbox through the admin API: undelivered mail listed with its error and its link
//! redacted, and retried — against a relay that is down and then comes back (a real SMTP
//! server, aiosmtpd on loopback), and in logged mode (no relay).

use std::time::Duration;

use axum::http::{Method, StatusCode};
use rolegate::config::ServeArgs;
use rolegate::domain::token::TokenKind;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::smtp::SmtpSink;
use crate::common::{Backend, TestApp};

/// The invitation secret in a mail body (`rg_inv_…`, up to the end of the link).
fn secret_in(body: &str) -> String {
    let start = body
        .find("rg_inv_")
        .unwrap_or_else(|| panic!("no link in {body}"));
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

fn accept_path(secret: &str) -> String {
    format!("/api/v1/invitations/accept?token={secret}")
}

/// A loopback port where nothing listens (bound, then let go).
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn mails(page: &Value) -> &Vec<Value> {
    page["mails"]
        .as_array()
        .unwrap_or_else(|| panic!("no mails in {page}"))
}

fn ids(page: &Value) -> Vec<&str> {
    mails(page)
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect()
}

async fn invite(app: &TestApp, org: &str, email: &str) -> Value {
    let reply = app
        .ok(
            Method::POST,
            &format!("/orgs/{org}/invitations"),
            Some(json!({ "emails": email })),
        )
        .await;
    reply["results"][0].clone()
}

async fn retry(app: &TestApp, token: &str, mail_id: &str) -> crate::common::http::Reply {
    app.call(
        Method::POST,
        &format!("/api/v1/outbox/{mail_id}/retry"),
        Some(token),
        None,
    )
    .await
}

/// The stored copy of a mail, behind the API (in logged mode it keeps the live link).
async fn stored_body(app: &TestApp, mail_id: &str) -> String {
    app.store
        .get_mail(app.org_id, mail_id.parse().expect("uuid"))
        .await
        .expect("stored mail")
        .body
}

/// The relay is down when the invitation goes out: `failed` with the reason, listed in the
/// outbox with the error and no link. The relay comes back; the retry sends a new, working
/// link, supersedes the failed mail, and cannot be repeated.
async fn a_failed_mail_is_listed_redacted_and_its_retry_delivers_a_working_link(backend: Backend) {
    let port = dead_port();
    let mut config = ServeArgs::for_tests();
    config.smtp_url = Some(
        format!("smtp://127.0.0.1:{port}?tls=none")
            .parse()
            .expect("URL"),
    );
    let app = TestApp::with_config(backend, config).await;
    let org = app.org_id.to_string();

    let result = invite(&app, &org, "ada@example.com").await;
    assert_eq!(result["delivery"], "failed", "{result}");
    let reason = result["delivery_error"].as_str().expect("a reason");
    assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
    let failed_id = result["mail_id"].as_str().expect("mail id").to_owned();
    let invitation_id = result["invitation"]["id"].as_str().expect("id").to_owned();

    let outbox = app
        .ok(Method::GET, &format!("/orgs/{org}/outbox"), None)
        .await;
    assert_eq!(ids(&outbox), [failed_id.as_str()], "{outbox}");
    let listed = &mails(&outbox)[0];
    assert_eq!(listed["status"], "failed");
    assert_eq!(listed["error"], reason);
    assert_eq!(listed["recipient"], "ada@example.com");
    assert_eq!(listed["invitation_id"], invitation_id.as_str());
    assert_eq!(listed["org_id"], org.as_str());
    assert_eq!(listed["retried_by"], Value::Null);
    let body = listed["body"].as_str().expect("body");
    assert!(body.contains("accept?token=[redacted]"), "{body}");
    assert!(!outbox.to_string().contains("rg_inv_"), "{outbox}");

    // The relay comes back on the port the URL names.
    let sink = SmtpSink::start_on(port);
    let retried = retry(&app, &app.admin_token, &failed_id).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert_eq!(retried.body["delivery"], "sent", "{}", retried.text);
    assert_eq!(retried.body["status"], "resent");
    assert_eq!(retried.body["invitation"]["id"], invitation_id.as_str());
    assert_eq!(retried.body["invitation"]["sent_count"], 2);
    assert!(
        !retried.text.contains("rg_inv_"),
        "the secret is only in the e-mail"
    );
    let newer_id = retried.body["mail_id"]
        .as_str()
        .expect("mail id")
        .to_owned();
    assert_ne!(newer_id, failed_id);

    let received = sink.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_tos, ["ada@example.com"]);
    let secret = secret_in(&received[0].body);

    // Nothing left to do; the failed mail names the one that superseded it.
    let undelivered = app
        .ok(Method::GET, &format!("/orgs/{org}/outbox"), None)
        .await;
    assert!(mails(&undelivered).is_empty(), "{undelivered}");
    let failed = app
        .ok(
            Method::GET,
            &format!("/orgs/{org}/outbox?status=failed"),
            None,
        )
        .await;
    assert_eq!(ids(&failed), [failed_id.as_str()]);
    assert_eq!(mails(&failed)[0]["retried_by"], newer_id.as_str());
    let sent = app
        .ok(
            Method::GET,
            &format!("/orgs/{org}/outbox?status=sent"),
            None,
        )
        .await;
    assert_eq!(ids(&sent), [newer_id.as_str()]);
    assert!(!sent.to_string().contains(&secret));

    // Retrying the old mail again, or the delivered one, is refused and says why.
    let again = retry(&app, &app.admin_token, &failed_id).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    let message = again.body["error"]["message"].as_str().expect("message");
    assert!(message.contains(&newer_id), "{message}");
    let delivered = retry(&app, &app.admin_token, &newer_id).await;
    assert_eq!(delivered.status, StatusCode::CONFLICT, "{}", delivered.text);
    assert!(delivered.text.contains("delivered"), "{}", delivered.text);
    assert_eq!(sink.received().len(), 1, "a refused retry sends nothing");

    // The new link works.
    let accepted = app
        .call(Method::POST, &accept_path(&secret), None, None)
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);

    let audit = app.ok(Method::GET, "/audit?action=mail.retry", None).await;
    assert_eq!(
        audit["events"][0]["target_id"],
        failed_id.as_str(),
        "{audit}"
    );
}

/// Without a relay each mail is `logged`: the stored copy keeps the live link for the operator,
/// the API never shows it. A retry (still logged) kills the old link; a resend supersedes the
/// mail just as a retry does. The list pages newest first.
async fn logged_mail_is_listed_without_its_link_and_a_retry_replaces_it(backend: Backend) {
    let app = TestApp::new(backend).await;
    let org = app.org_id.to_string();
    let first = invite(&app, &org, "erin@example.com").await;
    assert_eq!(first["delivery"], "logged");
    let logged_id = first["mail_id"].as_str().expect("mail id").to_owned();
    let old_secret = secret_in(&stored_body(&app, &logged_id).await);

    let outbox = app
        .ok(Method::GET, &format!("/orgs/{org}/outbox"), None)
        .await;
    assert_eq!(ids(&outbox), [logged_id.as_str()]);
    assert_eq!(mails(&outbox)[0]["status"], "logged");
    assert_eq!(mails(&outbox)[0]["error"], Value::Null);
    let body = mails(&outbox)[0]["body"].as_str().expect("body");
    assert!(body.contains("accept?token=[redacted]"), "{body}");
    assert!(!outbox.to_string().contains(&old_secret), "{outbox}");

    let retried = retry(&app, &app.admin_token, &logged_id).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert_eq!(retried.body["delivery"], "logged");
    let newer_id = retried.body["mail_id"].as_str().expect("id").to_owned();
    let new_secret = secret_in(&stored_body(&app, &newer_id).await);
    assert_ne!(new_secret, old_secret);
    let stale = app
        .call(Method::POST, &accept_path(&old_secret), None, None)
        .await;
    assert_eq!(
        (stale.status, stale.body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("invitation_replaced")),
        "{}",
        stale.text
    );
    let look = app
        .call(Method::GET, &accept_path(&new_secret), None, None)
        .await;
    assert_eq!(look.status, StatusCode::OK, "{}", look.text);

    // A resend's mail supersedes the retry's.
    let invitation_id = first["invitation"]["id"].as_str().expect("id");
    let resent = app
        .ok(
            Method::POST,
            &format!("/invitations/{invitation_id}/resend"),
            None,
        )
        .await;
    let resent_id = resent["mail_id"].as_str().expect("mail id").to_owned();
    let undelivered = app
        .ok(Method::GET, &format!("/orgs/{org}/outbox"), None)
        .await;
    assert_eq!(ids(&undelivered), [resent_id.as_str()], "{undelivered}");
    let superseded = retry(&app, &app.admin_token, &newer_id).await;
    assert_eq!(
        superseded.status,
        StatusCode::CONFLICT,
        "{}",
        superseded.text
    );
    assert!(superseded.text.contains(&resent_id), "{}", superseded.text);

    // Every mail, newest first, a page at a time.
    let all = app
        .ok(Method::GET, &format!("/orgs/{org}/outbox?status=all"), None)
        .await;
    assert_eq!(
        ids(&all),
        [resent_id.as_str(), newer_id.as_str(), logged_id.as_str()]
    );
    assert_eq!(all["next"], Value::Null);
    let mut paged = Vec::new();
    let mut before = String::new();
    loop {
        let page = app
            .ok(
                Method::GET,
                &format!("/orgs/{org}/outbox?status=logged&limit=2{before}"),
                None,
            )
            .await;
        paged.extend(ids(&page).into_iter().map(str::to_owned));
        match page["next"].as_str() {
            Some(next) => before = format!("&before={next}"),
            None => break,
        }
    }
    assert_eq!(
        paged,
        [resent_id.clone(), newer_id.clone(), logged_id.clone()]
    );
    assert!(!all.to_string().contains("rg_inv_"), "{all}");
    let bad = app
        .admin(Method::GET, &format!("/orgs/{org}/outbox?limit=0"), None)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert_eq!(bad.body["error"]["fields"][0]["field"], "limit");
}

/// A sub-org's token lists its own subtree's mail and retries it; the parent's and the
/// sibling's are not found. Mail of an accepted or revoked invitation is not retried.
async fn outbox_reach_is_the_subtree_and_dead_invitations_are_not_retried(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let payments = app.sub_org(&root, "Payments").await;
    let checkout = app.sub_org(&payments, "Checkout").await;
    let growth = app.sub_org(&root, "Growth").await;
    let mail_of = |result: &Value| result["mail_id"].as_str().expect("mail id").to_owned();
    let to_root = mail_of(&invite(&app, &root, "root@example.com").await);
    let to_payments = invite(&app, &payments, "pay@example.com").await;
    let to_checkout = mail_of(&invite(&app, &checkout, "check@example.com").await);
    let to_growth = mail_of(&invite(&app, &growth, "grow@example.com").await);
    let payments_token = app
        .token(payments.parse().expect("uuid"), TokenKind::Admin)
        .await;

    let own = app
        .get(&format!("/api/v1/orgs/{payments}/outbox"), &payments_token)
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    let mut seen = ids(&own.body);
    seen.sort_unstable();
    let mut expected = vec![mail_of(&to_payments), to_checkout.clone()];
    expected.sort();
    assert_eq!(
        seen, expected,
        "its own org and the one below, nothing else"
    );
    let below = app
        .get(&format!("/api/v1/orgs/{checkout}/outbox"), &payments_token)
        .await;
    assert_eq!(ids(&below.body), [to_checkout.as_str()]);
    let everything = app
        .ok(Method::GET, &format!("/orgs/{root}/outbox"), None)
        .await;
    assert_eq!(
        mails(&everything).len(),
        4,
        "the root token sees the tenant"
    );

    for org in [&root, &growth] {
        let reply = app
            .get(&format!("/api/v1/orgs/{org}/outbox"), &payments_token)
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
        assert_eq!(reply.body["error"]["code"], "not_found", "{}", reply.text);
    }
    for mail in [&to_root, &to_growth] {
        let reply = retry(&app, &payments_token, mail).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    }
    let unknown = retry(&app, &payments_token, &Uuid::now_v7().to_string()).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let retried = retry(&app, &payments_token, &to_checkout).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);

    // Revoked: refused, and nothing is reissued.
    let invitation = to_payments["invitation"]["id"].as_str().expect("id");
    app.ok(Method::DELETE, &format!("/invitations/{invitation}"), None)
        .await;
    let revoked = retry(&app, &payments_token, &mail_of(&to_payments)).await;
    assert_eq!(revoked.status, StatusCode::CONFLICT, "{}", revoked.text);
    assert!(revoked.text.contains("revoked"), "{}", revoked.text);

    // Accepted: refused.
    let newer = mail_of(&retried.body);
    let secret = secret_in(&stored_body(&app, &newer).await);
    let accepted = app
        .call(Method::POST, &accept_path(&secret), None, None)
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    let done = retry(&app, &payments_token, &newer).await;
    assert_eq!(done.status, StatusCode::CONFLICT, "{}", done.text);
    assert!(done.text.contains("accepted"), "{}", done.text);
}

crate::on_both_backends!(
    a_failed_mail_is_listed_redacted_and_its_retry_delivers_a_working_link,
    logged_mail_is_listed_without_its_link_and_a_retry_replaces_it,
    outbox_reach_is_the_subtree_and_dead_invitations_are_not_retried,
);
