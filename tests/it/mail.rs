//! Outgoing e-mail against a real SMTP server (aiosmtpd, `conformance/smtp_sink.py`).

use std::time::Duration;

use rolegate::mail::{Delivery, MailError, Mailer, OutgoingMail, SmtpUrl};

use crate::common::smtp::SmtpSink;

const FROM: &str = "Rolegate <noreply@rolegate.example>";
/// Longer than a 76-character line, so lettre sends it quoted-printable, where `=` itself is
/// escaped (`=3D`) and the line is soft-broken: the link survives only if both are undone.
const ACCEPT_URL: &str = "https://rolegate.example/invitations/accept?token=rg_inv_abc=def&x=1\
                          &org=0190f3a2-7c1e-7d4b-9a55-3e2f1c0b9d88&next=%2Fteams%3Fview%3Dall";

fn invitation(body: String) -> OutgoingMail {
    OutgoingMail {
        to: "ada@example.com".into(),
        subject: "You are invited to Acme on rolegate".into(),
        text_body: body,
    }
}

#[tokio::test]
async fn mail_reaches_a_real_smtp_server_with_the_link_intact() {
    let sink = SmtpSink::start();
    let url: SmtpUrl = sink.url().parse().expect("sink URL");
    let mailer = Mailer::new(Some(url), FROM).expect("mailer");
    let body = format!("Hello Ada,\n\nAccept the invitation:\n{ACCEPT_URL}\n\nrolegate\n");

    let delivery = mailer.send(&invitation(body.clone())).await.expect("sent");

    assert_eq!(delivery, Delivery::Sent);
    let received = sink.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1, "exactly one message");
    let mail = &received[0];
    assert_eq!(mail.mail_from, "noreply@rolegate.example");
    assert_eq!(mail.rcpt_tos, ["ada@example.com"]);
    assert_eq!(mail.to, "ada@example.com");
    assert_eq!(mail.subject, "You are invited to Acme on rolegate");
    assert_eq!(mail.transfer_encoding, "quoted-printable", "{}", mail.raw);
    assert!(
        !mail.raw.contains(ACCEPT_URL),
        "the link was expected encoded on the wire"
    );
    assert!(mail.body.contains(ACCEPT_URL), "{}", mail.body);
    assert_eq!(mail.body.trim_end(), body.trim_end());
}

#[tokio::test]
async fn mail_body_that_lettre_base64_encodes_arrives_intact() {
    let sink = SmtpSink::start();
    let mailer = Mailer::new(Some(sink.url().parse().expect("URL")), FROM).expect("mailer");
    let body = format!("Здравствуйте, Ада! Приглашение в команду «Акме»:\n{ACCEPT_URL}\n");

    mailer.send(&invitation(body.clone())).await.expect("sent");

    let received = sink.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].transfer_encoding, "base64");
    assert_eq!(received[0].body.trim_end(), body.trim_end());
}

#[tokio::test]
async fn mail_smtp_scheme_refuses_a_server_without_starttls() {
    let sink = SmtpSink::start();
    // smtp:// without tls=none: STARTTLS is required, and this server does not offer it.
    let url: SmtpUrl = format!("smtp://127.0.0.1:{}", sink.port())
        .parse()
        .expect("URL");
    let mailer = Mailer::new(Some(url), FROM).expect("mailer");

    let result = mailer
        .send(&invitation(format!("Accept: {ACCEPT_URL}\n")))
        .await;

    let error = result.expect_err("must not send in clear text");
    assert!(matches!(error, MailError::Smtp { .. }), "{error:?}");
    assert!(error.to_string().contains("STARTTLS"), "{error}");
    // Give a message that slipped through time to land before asserting none did.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sink.received().is_empty(), "nothing reached the server");
}

/// The start-up check connects as a send would: a relay that works passes, one that cannot do
/// STARTTLS or is not there fails with the reason, and nothing is sent either way.
#[tokio::test]
async fn mail_the_relay_check_reports_what_a_send_would_hit() {
    let sink = SmtpSink::start();
    let working = Mailer::new(Some(sink.url().parse().expect("URL")), FROM).expect("mailer");
    working
        .check()
        .await
        .expect("a plaintext loopback sink passes");

    let starttls: SmtpUrl = format!("smtp://127.0.0.1:{}", sink.port())
        .parse()
        .expect("URL");
    let error = Mailer::new(Some(starttls), FROM)
        .expect("mailer")
        .check()
        .await
        .expect_err("no STARTTLS");
    assert!(error.to_string().contains("STARTTLS"), "{error}");

    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let closed: SmtpUrl = format!("smtp://127.0.0.1:{closed_port}?tls=none")
        .parse()
        .expect("URL");
    let error = Mailer::new(Some(closed), FROM)
        .expect("mailer")
        .check()
        .await
        .expect_err("nobody listens");
    assert!(
        error.to_string().contains(&closed_port.to_string()),
        "{error}"
    );
    assert!(sink.received().is_empty(), "a check sends nothing");

    // Without a relay there is nothing to check.
    Mailer::new(None, FROM)
        .expect("mailer")
        .check()
        .await
        .expect("log mode");
}
