//! The console in a real browser: a real rolegate on a loopback port with a real SMTP sink, and
//! `tests/browser/console.mjs` driving Debian's Chromium (playwright-core) through it — login
//! link, org tree, members, inviting two addresses (both e-mails checked here, at the sink),
//! the invitee accepting in a browser of their own and landing signed in, a Viewer with no
//! invite form whose forged POST is refused, the product pages (a permission group's matrix
//! changed, a member's explanation, the change in the audit log), single sign-on through the
//! real loopback OpenID Provider found by the e-mail's domain, and signing out at the provider
//! too (RP-initiated logout, its confirm page); every page screenshotted at 375 and 1440 px into
//! `target/console-screenshots/` and checked with axe-core (no serious or critical violation).
//!
//! Without `/usr/bin/chromium` the test says so and passes, unless `CI=true`: then it fails.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use axum::http::Method;
use rolegate::config::ServeArgs;
use rolegate::domain::audit::Actor;
use rolegate::store::Ctx;
use serde_json::{Value, json};

use crate::common::http::Served;
use crate::common::smtp::SmtpSink;
use crate::common::{Backend, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether the browser test can run here; `false` after saying why it is skipped. Under
/// `CI=true` a missing browser is a failure, never a skip.
fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{CHROMIUM} is missing and CI=true: run scripts/browser-setup (apt-get install chromium)"
    );
    eprintln!(
        "SKIPPED console browser test: {CHROMIUM} is missing (scripts/browser-setup installs it)"
    );
    false
}

/// `scripts/browser-setup` (npm ci of playwright-core and axe-core, once): the script's path.
fn browser_script() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/browser-setup"))
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/browser-setup");
    assert!(
        out.status.success(),
        "scripts/browser-setup failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
}

/// A one-time login link for `email` in the root org, minted as `rolegate console login-link`
/// mints it.
async fn login_link(app: &TestApp, public_url: &url::Url, email: &str) -> String {
    let tenant = app.store.find_org(app.org_id).await.expect("org").tenant_id;
    let user = app
        .store
        .find_user_by_email(tenant, email)
        .await
        .expect("lookup")
        .expect("user");
    let (url, _) = rolegate::session::routes::mint_link(
        app.store.as_ref(),
        public_url,
        &Ctx::new(Actor::Cli),
        tenant,
        user.id,
        app.org_id,
        "login_link",
    )
    .await
    .expect("login link");
    url.to_string()
}

async fn an_owner_runs_the_members_page_in_a_real_browser(backend: Backend) {
    if !browser_available() {
        return;
    }
    let script = browser_script();
    let sink = SmtpSink::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let public_url: url::Url = format!("{base}/").parse().expect("url");
    let mut config = ServeArgs::for_tests();
    config.public_url = Some(public_url.clone());
    config.smtp_url = Some(sink.url().parse().expect("sink URL"));
    let app = TestApp::with_config(backend, config).await;
    let served = Served::start_on(listener, app.state.clone());

    // A product (its presets give the invite form its choices) and a Viewer on it.
    let org = app.org_id.to_string();
    let product = app.product(&org).await;
    let viewer = app.user("viewer@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{org}/members/{viewer}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    app.ok(
        Method::PUT,
        &format!(
            "/products/{}/members/{viewer}",
            product["id"].as_str().expect("id")
        ),
        Some(json!({ "role": "viewer" })),
    )
    .await;

    // Single sign-on through the real loopback provider for the org's e-mail domain: the
    // console's SSO form finds it by the address (home-realm discovery), and the provider
    // signs the person in by the `login_hint` it is given (its accounts are keyed by it).
    let mut provider = crate::common::oidc::Provider::start_with(json!({
        "clients": [{
            "client_id": crate::common::oidc::CLIENT_ID,
            "client_secret": crate::common::oidc::CLIENT_SECRET,
            "redirect_uris": [format!("{base}/placeholder")],
            "post_logout_redirect_uris": [format!("{base}/auth/signed-out")],
        }],
        "accounts": {
            "sam@acme.test": crate::common::oidc::account("sam@acme.test", true, &["Engineering"]),
        },
    }));
    let connection = crate::oidc::add_connection(
        &app,
        &org,
        &provider.issuer,
        json!({ "domains": ["acme.test"], "provisioning": "jit" }),
    )
    .await;
    provider
        .allow_redirect_uri(connection["redirect_uri"].as_str().expect("redirect_uri"))
        .await;

    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/console-screenshots")
        .join(match backend {
            Backend::Sqlite => "",
            Backend::Postgres => "postgres",
        });
    let mut child = Command::new("node")
        .arg(&script)
        .env("ROLEGATE_BASE", &base)
        .env("ORG_ID", &org)
        .env(
            "OWNER_LOGIN_URL",
            login_link(&app, &public_url, "owner@acme.test").await,
        )
        .env(
            "VIEWER_LOGIN_URL",
            login_link(&app, &public_url, "viewer@acme.test").await,
        )
        .env("SCREENSHOTS", &shots)
        .env("SSO_EMAIL", "sam@acme.test")
        .env("ISSUER", &provider.issuer)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs tests/browser/console.mjs");
    let mut to_script = child.stdin.take().expect("stdin");
    let from_script = child.stdout.take().expect("stdout");
    let (send, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(from_script).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });

    let mut done: Option<Value> = None;
    loop {
        let next = {
            let lines = &lines;
            tokio::task::block_in_place(|| lines.recv_timeout(Duration::from_secs(180)))
        };
        let Ok(line) = next else {
            break;
        };
        let message: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("the script said {line:?}: {e}"));
        if message["done"] == true {
            done = Some(message);
            break;
        }
        assert_eq!(message["need"], "invitation", "{message}");
        let email = message["email"].as_str().expect("email");
        let mails = sink.wait_for_messages(2, Duration::from_secs(20)).await;
        let mail = mails
            .iter()
            .find(|m| m.rcpt_tos == vec![email.to_owned()])
            .unwrap_or_else(|| panic!("no invitation to {email} at the sink: {mails:?}"));
        let start = mail.body.find(&base).expect("a link in the mail");
        let link: String = mail.body[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        writeln!(to_script, "{link}").expect("answer the script");
    }
    drop(to_script);
    let status = tokio::task::block_in_place(|| child.wait()).expect("the script ends");
    served.stopped().await;
    assert!(
        status.success(),
        "tests/browser/console.mjs failed: {status}"
    );
    let done = done.expect("the script finished its walk");

    // Both invitations reached the SMTP sink, each with the console's invitation link.
    let mails = sink.received();
    for email in ["ada@acme.test", "bob@acme.test"] {
        let mail = mails
            .iter()
            .find(|m| m.rcpt_tos == vec![email.to_owned()])
            .unwrap_or_else(|| panic!("no mail to {email}"));
        assert!(
            mail.body
                .contains(&format!("{base}/console/invitations/accept?token=rg_inv_")),
            "{}",
            mail.body
        );
    }
    // Ada accepted in the browser: a member now, signed in by the invitation.
    let members = app
        .ok(
            Method::GET,
            &format!("/orgs/{org}/members?search=ada"),
            None,
        )
        .await;
    assert_eq!(members["members"][0]["user"]["email"], "ada@acme.test");
    let audit = app
        .ok(Method::GET, "/audit?action=invitation.accept", None)
        .await;
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(1), "{audit}");
    // Sam signed in through the provider: created at first login (jit), by the provider.
    let sso = app.ok(Method::GET, "/audit?action=oidc.login", None).await;
    assert!(sso.to_string().contains("sam@acme.test"), "{sso}");
    // Every page, both widths.
    let pages = done["pages"].as_array().expect("pages");
    assert!(pages.len() >= 7, "{done}");
    for page in pages {
        for width in [375, 1440] {
            let shot = shots.join(format!("{}-{width}.png", page.as_str().expect("name")));
            assert!(shot.exists(), "no screenshot {}", shot.display());
        }
    }
}

crate::on_both_backends!(an_owner_runs_the_members_page_in_a_real_browser);
