//! The `rolegate` binary as an operator uses it: org and token commands, then `serve`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rolegate");

struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new() -> Self {
        Workdir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Runs the binary in the directory, on its default database (`rolegate.db` there).
    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("ROLEGATE_DATABASE_URL")
            .output()
            .expect("binary runs")
    }

    /// Runs the binary with these environment variables set (and the secret key ones
    /// cleared unless given).
    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("ROLEGATE_DATABASE_URL")
            .env_remove("ROLEGATE_SECRET_KEY")
            .env_remove("ROLEGATE_SECRET_KEY_FILE")
            .env_remove("ROLEGATE_SECRET_KEY_OLD");
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("binary runs")
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_and_help_on_every_command() {
    let w = Workdir::new();
    let version = w.run(&["--version"]);
    assert!(version.status.success());
    assert!(text(&version.stdout).starts_with("rolegate "));
    for cmd in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["org", "--help"],
        vec!["org", "create", "--help"],
        vec!["org", "add-owner", "--help"],
        vec!["org", "list", "--help"],
        vec!["token", "--help"],
        vec!["token", "create", "--help"],
        vec!["token", "list", "--help"],
        vec!["token", "revoke", "--help"],
        vec!["scim", "--help"],
        vec!["scim", "release", "--help"],
        vec!["outbox", "--help"],
        vec!["outbox", "list", "--help"],
        vec!["mappings", "--help"],
        vec!["mappings", "export", "--help"],
        vec!["mappings", "import", "--help"],
        vec!["oidc", "--help"],
        vec!["oidc", "add", "--help"],
        vec!["oidc", "list", "--help"],
        vec!["oidc", "update", "--help"],
        vec!["oidc", "remove", "--help"],
        vec!["keys", "--help"],
        vec!["keys", "rotate", "--help"],
    ] {
        let out = w.run(&cmd);
        assert!(out.status.success(), "{cmd:?}");
        assert!(text(&out.stdout).contains("Usage:"), "{cmd:?}");
    }
    assert!(
        !w.dir.path().join("rolegate.db").exists(),
        "help creates no database"
    );
}

#[test]
fn org_and_token_commands_print_json_and_fail_cleanly() {
    let w = Workdir::new();
    let migrated = w.run(&["migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let org = w.json(&[
        "org",
        "create",
        "--name",
        "Acme",
        "--owner",
        "boss@acme.test",
    ]);
    let org_id = org["org_id"].as_str().expect("org_id");
    let scim = w.json(&[
        "token",
        "create",
        "--org",
        org_id,
        "--kind",
        "scim",
        "--name",
        "Okta",
        "--expires-in",
        "30",
    ]);
    assert!(
        scim["token"]
            .as_str()
            .expect("token")
            .starts_with("rg_scim_")
    );
    assert!(scim["id"].is_string() && scim["expires_at"].is_string());
    let admin = w.json(&["token", "create", "--org", org_id, "--kind", "admin"]);
    assert!(
        admin["token"]
            .as_str()
            .expect("token")
            .starts_with("rg_admin_")
    );
    let service = w.json(&["token", "create", "--org", org_id, "--kind", "service"]);
    assert!(
        service["token"]
            .as_str()
            .expect("token")
            .starts_with("rg_service_")
    );
    assert_eq!(service["kind"], "service");
    let list = w.json(&["token", "list", "--org", org_id]);
    assert_eq!(list.as_array().expect("array").len(), 3);
    assert!(
        !list
            .to_string()
            .contains(scim["token"].as_str().expect("token")),
        "list never shows secrets"
    );
    let revoked = w.json(&["token", "revoke", "--id", scim["id"].as_str().expect("id")]);
    assert!(revoked["revoked_at"].is_string());
    let owner = w.json(&[
        "org",
        "add-owner",
        "--org",
        org_id,
        "--email",
        "second@acme.test",
    ]);
    assert_eq!(owner["role"], "owner");

    for (args, expected) in [
        (
            vec!["org", "create", "--name", "X", "--owner", "not-an-email"],
            "invalid owner",
        ),
        (
            vec!["org", "create", "--name", "  ", "--owner", "a@b.test"],
            "invalid name",
        ),
        (
            vec![
                "token",
                "create",
                "--org",
                "0190f0f0-0000-7000-8000-000000000000",
                "--kind",
                "scim",
            ],
            "org not found",
        ),
        (
            vec![
                "token",
                "revoke",
                "--id",
                "0190f0f0-0000-7000-8000-000000000000",
            ],
            "token not found",
        ),
        (
            vec!["token", "create", "--org", org_id, "--kind", "root"],
            "invalid value",
        ),
    ] {
        let out = w.run(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "errors print nothing on stdout");
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// `rolegate scim release` hands a person held by one org's SCIM over (audited), and says
/// clearly when there is nothing to release.
#[test]
fn scim_release_hands_a_provisioned_person_over() {
    use rolegate::domain::audit::Actor;
    use rolegate::domain::provisioning::{ScimScope, ScimUserWrite};
    use rolegate::store::{AuditQuery, Ctx, StoreOptions};

    let w = Workdir::new();
    let org = w.json(&[
        "org",
        "create",
        "--name",
        "Acme",
        "--owner",
        "boss@acme.test",
    ]);
    let root: uuid::Uuid = org["org_id"].as_str().expect("id").parse().expect("uuid");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = format!("sqlite://{}", w.dir.path().join("rolegate.db").display());
    let (a, b, user) = runtime.block_on(async {
        let store = rolegate::store::connect(&url, &StoreOptions::default())
            .await
            .expect("store");
        let ctx = Ctx::new(Actor::Cli);
        let a = store
            .create_sub_org(&ctx, root, root, "A")
            .await
            .expect("a");
        let b = store
            .create_sub_org(&ctx, root, root, "B")
            .await
            .expect("b");
        let user = store
            .scim_create_user(
                &ctx,
                ScimScope {
                    tenant_id: root,
                    org_id: a.id,
                },
                &ScimUserWrite {
                    user_name: "mover@acme.test".into(),
                    external_id: Some("okta-1".into()),
                    active: true,
                    attributes: serde_json::Map::new(),
                    attributes_cmp: serde_json::json!({}),
                    display_name: None,
                    email: Some("mover@acme.test".into()),
                },
            )
            .await
            .expect("scim user");
        store.close().await;
        (a.id, b.id, user.id)
    });
    let (user_s, b_s) = (user.to_string(), b.to_string());
    let released = w.json(&["scim", "release", "--user", &user_s, "--to-org", &b_s]);
    assert_eq!(released["released_from_org_id"], a.to_string());
    assert_eq!(released["to_org_id"], b_s);
    assert_eq!(released["membership_removed"], true);

    let audited = runtime.block_on(async {
        let store = rolegate::store::connect(&url, &StoreOptions::default())
            .await
            .expect("store");
        let query = AuditQuery {
            action: Some("scim.user.release".into()),
            limit: 10,
            ..Default::default()
        };
        let events = store.list_audit(root, &query).await.expect("audit");
        store.close().await;
        events.len()
    });
    assert_eq!(audited, 1);

    for (args, expected) in [
        (
            vec!["scim", "release", "--user", user_s.as_str()],
            "not_held",
        ),
        (
            vec![
                "scim",
                "release",
                "--user",
                "0190f0f0-0000-7000-8000-000000000000",
            ],
            "user not found",
        ),
    ] {
        let out = w.run(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// The README's flow against the real binary: tokens work where they should, are refused where
/// they should not, revoked ones get 401 — and with logs at trace level, no secret is printed.
#[test]
fn serve_enforces_token_kinds_and_logs_no_secret() {
    let w = Workdir::new();
    let org = w.json(&[
        "org",
        "create",
        "--name",
        "Acme",
        "--owner",
        "boss@acme.test",
    ]);
    let org_id = org["org_id"].as_str().expect("org_id").to_owned();
    let scim = w.json(&["token", "create", "--org", &org_id, "--kind", "scim"])["token"]
        .as_str()
        .expect("t")
        .to_owned();
    let admin = w.json(&["token", "create", "--org", &org_id, "--kind", "admin"]);
    let admin_secret = admin["token"].as_str().expect("t").to_owned();
    let service = w.json(&["token", "create", "--org", &org_id, "--kind", "service"])["token"]
        .as_str()
        .expect("t")
        .to_owned();
    let owner_id = org["owner_user_id"].as_str().expect("owner").to_owned();

    // A relay nobody answers on: the start-up check must say so, and the start go on.
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let relay = format!("smtp://127.0.0.1:{closed_port}?tls=none");
    let mut server = Command::new(BIN)
        .args(["serve"])
        .current_dir(w.dir.path())
        .env_remove("ROLEGATE_DATABASE_URL")
        .env("ROLEGATE_SMTP_URL", &relay)
        .env("ROLEGATE_BIND", "127.0.0.1:0")
        .env("ROLEGATE_LOG_FORMAT", "json")
        .env("ROLEGATE_SHUTDOWN_DELAY", "0")
        .env("RUST_LOG", "trace")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stderr = server.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut logs = String::new();
    let addr = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server logs 'listening'");
        logs.push_str(&line);
        logs.push('\n');
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["message"] == "listening"
        {
            // One line tells the operator what this instance is: where it answers, what it
            // stores in, where its mail goes, how fast an IdP may provision.
            let addr = v["addr"].as_str().expect("addr").to_owned();
            assert_eq!(v["public_url"], format!("http://{addr}/"), "{line}");
            assert!(
                v["database"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("sqlite://")),
                "{line}"
            );
            assert_eq!(v["mail"], relay.as_str(), "{line}");
            assert_eq!(v["scim_rate_limit"], 100, "{line}");
            break addr;
        }
    };
    let base = format!("http://{addr}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let statuses = rt.block_on(async {
        let c = reqwest::Client::new();
        let get = |path: String, token: String| {
            let c = c.clone();
            async move {
                c.get(path)
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("request")
                    .status()
                    .as_u16()
            }
        };
        let spc = format!("{base}/scim/v2/ServiceProviderConfig");
        let org_url = format!("{base}/api/v1/orgs/{org_id}");
        let health = c
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz")
            .status()
            .as_u16();
        vec![
            health,
            get(spc.clone(), scim.clone()).await,
            get(org_url.clone(), scim.clone()).await,
            get(org_url.clone(), admin_secret.clone()).await,
            get(spc.clone(), admin_secret.clone()).await,
            get(spc.clone(), "rg_scim_wrong".into()).await,
            get(
                format!("{base}/api/v1/authz/explain?user_id={owner_id}"),
                service.clone(),
            )
            .await,
            get(org_url.clone(), service.clone()).await,
            get(spc.clone(), service.clone()).await,
        ]
    });
    assert_eq!(statuses, [200, 200, 403, 200, 403, 401, 200, 403, 403]);

    // Revoke through the CLI while the server runs (same SQLite file): the server, which
    // keeps the token in its cache, hears of it at its next poll of the invalidations.
    w.json(&["token", "revoke", "--id", admin["id"].as_str().expect("id")]);
    let refused_after = rt.block_on(async {
        let started = Instant::now();
        loop {
            let status = reqwest::Client::new()
                .get(format!("{base}/api/v1/orgs/{org_id}"))
                .bearer_auth(&admin_secret)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16();
            if status == 401 || started.elapsed() > Duration::from_secs(5) {
                return (status, started.elapsed());
            }
            assert_eq!(status, 200);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(
        refused_after.0, 401,
        "still taken after {:?}",
        refused_after.1
    );

    // SIGTERM: a clean stop.
    let pid = server.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = server.wait().expect("exit");
    assert!(status.success(), "graceful exit, got {status:?}");
    reader.join().expect("reader");
    logs.extend(lines_rx.try_iter().map(|l| l + "\n"));
    assert!(
        logs.contains("request finished") && logs.contains("stopped"),
        "{logs}"
    );
    assert!(
        logs.contains("SMTP relay check failed") && logs.contains(&closed_port.to_string()),
        "{logs}"
    );
    for secret in [&scim, &admin_secret, &service] {
        assert!(
            !logs.contains(secret.as_str()),
            "a token secret reached the log"
        );
    }
}

fn refused(w: &Workdir, args: &[&str], expected: &[&str]) {
    let out = w.run(args);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(
        out.stdout.is_empty(),
        "{args:?}: errors print nothing on stdout"
    );
    for part in expected {
        assert!(stderr.contains(part), "{args:?}: {part:?} not in {stderr}");
    }
}

const SOME_ID: &str = "0190f0f0-0000-7000-8000-000000000000";

/// Only `serve`, `migrate` and `org create` make a database; every other command run where
/// there is none says where it looked instead of answering from a fresh empty one.
#[test]
fn commands_refuse_a_missing_database_and_name_the_one_they_used() {
    let w = Workdir::new();
    let path = std::path::absolute(w.dir.path().join("rolegate.db"))
        .expect("absolute")
        .display()
        .to_string();
    for args in [
        vec!["token", "list", "--org", SOME_ID],
        vec!["token", "create", "--org", SOME_ID, "--kind", "scim"],
        vec!["token", "revoke", "--id", SOME_ID],
        vec!["org", "add-owner", "--org", SOME_ID, "--email", "a@b.test"],
        vec!["scim", "release", "--user", SOME_ID],
        vec!["outbox", "list", "--org", SOME_ID],
        vec!["mappings", "export", "--org", SOME_ID],
        vec!["mappings", "import", "--org", SOME_ID, "--file", "m.json"],
        vec![
            "mappings",
            "import",
            "--org",
            SOME_ID,
            "--file",
            "m.yaml",
            "--dry-run",
        ],
    ] {
        refused(&w, &args, &["no database at", &path, "rolegate migrate"]);
        assert!(
            !w.dir.path().join("rolegate.db").exists(),
            "{args:?} created a database"
        );
    }

    // An empty file where the database should be is not a database either.
    std::fs::write(w.dir.path().join("rolegate.db"), b"").expect("touch");
    refused(
        &w,
        &["token", "list", "--org", SOME_ID],
        &["holds no rolegate database", &path],
    );
    std::fs::remove_file(w.dir.path().join("rolegate.db")).expect("rm");

    // `migrate` creates it and says what it applied; a second run has nothing to do.
    let first = w.json(&["migrate"]);
    assert_eq!(first["status"], "migrated", "{first}");
    assert_eq!(first["database"], format!("sqlite://{path}"), "{first}");
    let applied = first["applied"].as_array().expect("applied");
    assert_eq!(
        applied.len(),
        rolegate::store::migration_list(rolegate::store::Backend::Sqlite).len()
    );
    assert_eq!(applied[0]["version"], 1);
    let again = w.json(&["migrate"]);
    assert_eq!(again["status"], "up to date", "{again}");
    assert_eq!(again["applied"], serde_json::json!([]));

    // Not found names the database looked in.
    refused(
        &w,
        &["token", "list", "--org", SOME_ID],
        &["org not found in the database", &path],
    );
    refused(
        &w,
        &["token", "revoke", "--id", SOME_ID],
        &["token not found in the database", &path],
    );

    // A file in a directory that does not exist: named, with the directory.
    let missing_dir = w.dir.path().join("nowhere");
    let url = format!("sqlite://{}", missing_dir.join("x.db").display());
    refused(
        &w,
        &["--database-url", &url, "migrate"],
        &[
            "the directory",
            &missing_dir.display().to_string(),
            "does not exist",
        ],
    );

    // `org create` may start from nothing.
    let fresh = Workdir::new();
    let org = fresh.json(&[
        "org",
        "create",
        "--name",
        "Acme",
        "--owner",
        "boss@acme.test",
    ]);
    assert!(org["org_id"].is_string(), "{org}");
}

/// Values the parser refuses are explained with the form it expects.
#[test]
fn malformed_ids_and_addresses_are_explained() {
    let w = Workdir::new();
    refused(
        &w,
        &["token", "list", "--org", "nope"],
        &["expected an org id (a UUID"],
    );
    refused(
        &w,
        &["token", "revoke", "--id", "42"],
        &["expected a token id (a UUID"],
    );
    refused(
        &w,
        &["scim", "release", "--user", "ada@acme.test"],
        &["expected a user id (a UUID"],
    );
    refused(
        &w,
        &["serve", "--bind", "localhost:18482"],
        &[
            "expected IP:PORT such as 127.0.0.1:8080",
            "127.0.0.1 or [::1]",
        ],
    );
    assert!(!w.dir.path().join("rolegate.db").exists());
}

/// PostgreSQL that is not there, or not rolegate's, says what to do rather than timing out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_failures_say_what_to_do() {
    if !crate::common::db::postgres_enabled() {
        return;
    }
    let w = Workdir::new();
    let server = url::Url::parse(&std::env::var("DATABASE_URL").expect("DATABASE_URL"))
        .expect("DATABASE_URL is a URL");
    let host = server.host_str().expect("host").to_owned();
    let port = server.port().unwrap_or(5432);

    let mut missing = server.clone();
    missing.set_path("/rolegate_no_such_database");
    refused(
        &w,
        &[
            "--database-url",
            missing.as_str(),
            "token",
            "list",
            "--org",
            SOME_ID,
        ],
        &[
            "database \"rolegate_no_such_database\" does not exist",
            "createdb -h",
            &format!("{host}:{port}"),
        ],
    );

    // A port nobody listens on: refused at once, not after a pool's timeout.
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let mut refused_url = server.clone();
    refused_url.set_host(Some("127.0.0.1")).expect("host");
    refused_url.set_port(Some(closed_port)).expect("port");
    let started = std::time::Instant::now();
    refused(
        &w,
        &["--database-url", refused_url.as_str(), "migrate"],
        &[&format!("connection refused at 127.0.0.1:{closed_port}")],
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no pool timeout"
    );

    // An existing database without rolegate's schema: only `migrate` may set it up.
    let empty = crate::common::TestDb::empty_postgres().await;
    refused(
        &w,
        &[
            "--database-url",
            &empty.url,
            "token",
            "list",
            "--org",
            SOME_ID,
        ],
        &["holds no rolegate schema", "rolegate migrate"],
    );
    let migrated = w.json(&["--database-url", &empty.url, "migrate"]);
    assert_eq!(migrated["status"], "migrated", "{migrated}");
    refused(
        &w,
        &[
            "--database-url",
            &empty.url,
            "token",
            "list",
            "--org",
            SOME_ID,
        ],
        &["org not found in the database postgres://"],
    );
}

/// A root org's name is asked twice only on purpose; `org list` shows the tenants.
#[test]
fn org_create_refuses_a_taken_root_name_unless_told_and_org_list_shows_them() {
    let w = Workdir::new();
    let first = w.json(&["org", "create", "--name", "Acme", "--owner", "a@acme.test"]);
    let first_id = first["org_id"].as_str().expect("org_id").to_owned();
    refused(
        &w,
        &[
            "org",
            "create",
            "--name",
            " ACME ",
            "--owner",
            "b@acme.test",
        ],
        &[
            "named \"Acme\" already exists",
            &first_id,
            "--allow-duplicate-name",
        ],
    );
    let second = w.json(&[
        "org",
        "create",
        "--name",
        "acme",
        "--owner",
        "b@acme.test",
        "--allow-duplicate-name",
    ]);
    let other = w.json(&[
        "org",
        "create",
        "--name",
        "Globex",
        "--owner",
        "g@globex.test",
    ]);
    let listed = w.json(&["org", "list"]);
    let names: Vec<(&str, &str)> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|o| {
            (
                o["org_id"].as_str().expect("id"),
                o["name"].as_str().expect("name"),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (first_id.as_str(), "Acme"),
            (second["org_id"].as_str().expect("id"), "acme"),
            (other["org_id"].as_str().expect("id"), "Globex"),
        ]
    );
}

/// `outbox list` shows what still needs doing by default, every mail on request, and never a
/// link, though a logged mail's stored copy keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_list_shows_undelivered_mail_without_its_link() {
    use rolegate::domain::audit::Actor;
    use rolegate::domain::outbox::MailStatus;
    use rolegate::store::{Ctx, InvitationTarget, NewInvitation, OutboxMail};

    let w = Workdir::new();
    let org = w.json(&[
        "org",
        "create",
        "--name",
        "Acme",
        "--owner",
        "boss@acme.test",
    ]);
    let org_id: uuid::Uuid = org["org_id"]
        .as_str()
        .expect("org id")
        .parse()
        .expect("uuid");
    let url = format!("sqlite://{}", w.dir.path().join("rolegate.db").display());
    let store = rolegate::store::connect(&url, &Default::default())
        .await
        .expect("store");
    let (secret, token_hash) = rolegate::domain::invitation::mint_secret([9; 32]);
    let ctx = Ctx::new(Actor::Cli);
    let invited = store
        .invite(
            &ctx,
            org_id,
            &InvitationTarget {
                org_id,
                product_id: None,
                permission_group_id: None,
                role: None,
                expires_at: rolegate::domain::now() + chrono::Duration::days(1),
            },
            &[NewInvitation {
                email: "ada@acme.test".into(),
                token_hash,
            }],
            None,
        )
        .await
        .expect("invite");
    let invitation_id = match &invited[0].1 {
        rolegate::store::InviteOutcome::Invited(i) => i.id,
        other => panic!("{other:?}"),
    };
    let mut ids = Vec::new();
    for status in [MailStatus::Sent, MailStatus::Logged] {
        let mail = OutboxMail {
            org_id,
            invitation_id: Some(invitation_id),
            recipient: "ada@acme.test".into(),
            subject: "Join Acme".into(),
            body: format!("Accept: https://rg.example/api/v1/invitations/accept?token={secret}"),
            status,
            error: None,
            retry_of: None,
        };
        ids.push(
            store
                .record_mail(&ctx, org_id, &mail)
                .await
                .expect("record"),
        );
    }
    store.close().await;

    let org_arg = org_id.to_string();
    let undelivered = w.json(&["outbox", "list", "--org", &org_arg]);
    let listed = undelivered.as_array().expect("array");
    assert_eq!(listed.len(), 1, "{undelivered}");
    assert_eq!(listed[0]["id"], ids[1].to_string());
    assert_eq!(listed[0]["status"], "logged");
    assert_eq!(
        listed[0]["body"],
        "Accept: https://rg.example/api/v1/invitations/accept?token=[redacted]"
    );
    let all = w.json(&["outbox", "list", "--org", &org_arg, "--status", "all"]);
    assert_eq!(all.as_array().expect("array").len(), 2, "{all}");
    assert!(!all.to_string().contains(&secret), "{all}");
    refused(
        &w,
        &["outbox", "list", "--org", SOME_ID],
        &["org not found in the database"],
    );
}

/// `mappings export` and `import`, the stable interface: JSON and YAML exports that re-import
/// to the same document byte for byte, every error of a bad file as `{path, message}` on
/// stderr with nothing applied, and `--dry-run` that shows the change and applies nothing —
/// exiting 1 when the change would leave an org without an Owner.
#[test]
fn mappings_export_and_import_round_trip_and_refuse_bad_documents() {
    use rolegate::domain::audit::Actor;
    use rolegate::store::{Ctx, NewEnvironment, StoreOptions};

    let w = Workdir::new();
    let org = w.json(&[
        "org",
        "create",
        "--name",
        "Acme",
        "--owner",
        "boss@acme.test",
    ]);
    let root: uuid::Uuid = org["org_id"].as_str().expect("id").parse().expect("uuid");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = format!("sqlite://{}", w.dir.path().join("rolegate.db").display());
    runtime.block_on(async {
        let store = rolegate::store::connect(&url, &StoreOptions::default())
            .await
            .expect("store");
        let ctx = Ctx::new(Actor::Cli);
        let payments = store
            .create_sub_org(&ctx, root, root, "Payments")
            .await
            .expect("sub-org");
        // A member who is no Owner: what a default grant changes shows on them.
        let ada = store
            .ensure_user(
                &ctx,
                root,
                "ada@acme.test",
                rolegate::domain::Source::Manual,
            )
            .await
            .expect("user");
        store
            .set_membership(
                &ctx,
                root,
                root,
                ada.id,
                Some(rolegate::domain::org::OrgRole::Member),
                rolegate::store::OwnerRule::Enforce,
            )
            .await
            .expect("member");
        for (org, name) in [(root, "Web"), (payments.id, "PayWeb")] {
            store
                .create_product(
                    &ctx,
                    root,
                    org,
                    name,
                    &[NewEnvironment {
                        name: "prod".into(),
                        restricted: true,
                    }],
                )
                .await
                .expect("product");
        }
        store.close().await;
    });
    let root_s = root.to_string();
    let file = |name: &str, content: &str| {
        let path = w.dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        path.display().to_string()
    };
    let export = |format: &str| {
        let out = w.run(&["mappings", "export", "--org", &root_s, "--format", format]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };

    let empty = export("json");
    assert_eq!(
        empty, "{\n  \"version\": 1,\n  \"default\": null,\n  \"rules\": []\n}\n",
        "pretty JSON with a trailing newline"
    );
    let document = serde_json::json!({
        "version": 1,
        "default": { "grants": [{ "product": "web", "role": "viewer" }] },
        "rules": [
            { "name": "owners", "idp_group": "Payments Owners", "source": "scim",
              "grants": [{ "org": "Payments", "org_role": "owner" }] },
            { "name": "eng", "idp_group": "Engineering", "priority": 10, "enabled": false,
              "grants": [{ "product": "PayWeb", "permission_group": "Developer" },
                         { "org": "payments", "module_roles": { "feature_flags": "write" } }] },
        ],
    });
    let imported = w.json(&[
        "mappings",
        "import",
        "--org",
        &root_s,
        "--file",
        &file("m.json", &document.to_string()),
    ]);
    assert_eq!(
        imported,
        serde_json::json!({ "org_id": root_s, "version": 1, "rules": 2, "default_grants": 1 })
    );
    let json_export = export("json");
    let yaml_export = export("yaml");
    assert!(
        yaml_export.contains("idp_group: Payments Owners"),
        "{yaml_export}"
    );
    let again = w.json(&[
        "mappings",
        "import",
        "--org",
        &root_s,
        "--file",
        &file("exported.yml", &yaml_export),
    ]);
    assert_eq!(again["version"], 2);
    assert_eq!(
        export("json"),
        json_export,
        "JSON → YAML → JSON byte-identical"
    );
    assert_eq!(export("yaml"), yaml_export);

    // Every error of a bad file, at its pointer, on stderr; nothing applied.
    let bad = serde_json::json!({
        "version": 1,
        "rules": [{ "name": "eng", "idp_group": "Engineering",
                    "grants": [{ "product": "Web", "role": "editor" },
                               { "product": "Mobile", "role": "editor" }] },
                  { "name": "x", "idp_group": "X", "source": "ldap", "grants": [] }],
    });
    let yaml_bad = "version: 1\nrules:\n  - name: eng\n    idp_group: Engineering\n    grants:\n      - product: Web\n        role: editor\n        expires: never\n";
    for (name, content, pointers) in [
        (
            "bad.json",
            bad.to_string(),
            vec!["/rules/0/grants/1/product", "/rules/1/source"],
        ),
        (
            "bad.yaml",
            yaml_bad.to_owned(),
            vec!["/rules/0/grants/0/expires"],
        ),
        ("broken.json", "{\"version\": 1,".to_owned(), vec![""]),
    ] {
        let path = file(name, &content);
        for dry_run in [false, true] {
            let mut args = vec!["mappings", "import", "--org", root_s.as_str(), "--file"];
            args.push(&path);
            if dry_run {
                args.push("--dry-run");
            }
            let out = w.run(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
            let errors: Vec<serde_json::Value> = serde_json::from_slice(&out.stderr)
                .unwrap_or_else(|e| {
                    panic!(
                        "{args:?}: stderr is no JSON array ({e}): {}",
                        text(&out.stderr)
                    )
                });
            let got: Vec<&str> = errors
                .iter()
                .map(|e| {
                    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
                    e["path"].as_str().expect("path")
                })
                .collect();
            assert_eq!(got, pointers, "{args:?}");
        }
    }
    assert_eq!(export("json"), json_export, "nothing applied");

    // The dry run shows who would gain what and applies nothing.
    let preview = w.run(&[
        "mappings",
        "import",
        "--org",
        &root_s,
        "--file",
        &file(
            "viewers.json",
            r#"{"version": 1, "default": {"grants": [{"product": "Web", "role": "publisher"}]}}"#,
        ),
        "--dry-run",
    ]);
    assert!(preview.status.success(), "{}", text(&preview.stderr));
    let preview: serde_json::Value = serde_json::from_slice(&preview.stdout).expect("preview");
    assert_eq!(preview["summary"]["users_affected"], 1, "{preview}");
    assert_eq!(preview["owner_rule_violations"], serde_json::json!([]));
    assert_eq!(preview["next"], serde_json::Value::Null);
    assert_eq!(export("json"), json_export, "a dry run applies nothing");

    // A default that makes everyone unmatched an explicit `member` of Payments overrides
    // boss's inherited Ownership there (the nearest level wins): Payments would have no Owner.
    let orphaning = file(
        "orphaning.json",
        r#"{"version": 1, "default": {"grants": [{"org": "Payments", "org_role": "member"}]}}"#,
    );
    let out = w.run(&[
        "mappings",
        "import",
        "--org",
        &root_s,
        "--file",
        &orphaning,
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let preview: serde_json::Value = serde_json::from_slice(&out.stdout).expect("preview");
    assert_eq!(
        preview["owner_rule_violations"][0]["name"], "Payments",
        "{preview}"
    );
    assert!(
        text(&out.stderr).contains("owner_rule"),
        "{}",
        text(&out.stderr)
    );
    // Applied for real, it is refused the same way.
    refused_mappings(
        &w,
        &["mappings", "import", "--org", &root_s, "--file", &orphaning],
    );
    assert_eq!(export("json"), json_export, "nothing applied");

    // Audited as the command line.
    let events = runtime.block_on(async {
        let store = rolegate::store::connect(&url, &StoreOptions::default())
            .await
            .expect("store");
        let query = rolegate::store::AuditQuery {
            action: Some("mapping.replace".into()),
            limit: 10,
            ..Default::default()
        };
        let events = store.list_audit(root, &query).await.expect("audit");
        store.close().await;
        events
    });
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.actor_kind == "cli"));
    refused(
        &w,
        &["mappings", "export", "--org", SOME_ID],
        &["org not found in the database"],
    );
}

fn refused_mappings(w: &Workdir, args: &[&str]) {
    let out = w.run(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("owner_rule") && stderr.contains("Payments"),
        "{args:?}: {stderr}"
    );
}

fn json_of(out: &Output, what: &str) -> Value {
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[test]
fn oidc_commands_seal_the_client_secret_and_keys_rotate_reseals_it() {
    use crate::common::oidc::{CLIENT_SECRET, Provider};
    let op = Provider::start(&["http://127.0.0.1:1/cb".to_owned()], serde_json::json!({}));
    let w = Workdir::new();
    let org = w.json(&[
        "org",
        "create",
        "--name",
        "Acme",
        "--owner",
        "owner@acme.test",
    ]);
    let org = org["org_id"].as_str().expect("org_id").to_owned();
    let add = [
        "oidc",
        "add",
        "--org",
        &org,
        "--issuer",
        &op.issuer,
        "--client-id",
        "rolegate",
        "--client-secret",
        CLIENT_SECRET,
        "--domains",
        "acme.test",
        "--provisioning",
        "jit",
    ];
    // Without a key nothing can be sealed: refused, saying what to set.
    let refused = w.run_env(&add, &[]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("ROLEGATE_SECRET_KEY"),
        "{}",
        text(&refused.stderr)
    );

    let old_key = crate::common::oidc::test_key_base64();
    let added = json_of(
        &w.run_env(&add, &[("ROLEGATE_SECRET_KEY", &old_key)]),
        "oidc add",
    );
    let id = added["connection_id"]
        .as_str()
        .expect("connection_id")
        .to_owned();
    assert_eq!(
        added["redirect_uri"],
        serde_json::json!(format!("http://127.0.0.1:8080/auth/oidc/{id}/callback"))
    );
    assert_eq!(added["provisioning"], serde_json::json!("jit"));
    assert!(!added.to_string().contains(CLIENT_SECRET));
    let db = std::fs::read(w.dir.path().join("rolegate.db")).expect("database file");
    assert!(
        !db.windows(CLIENT_SECRET.len())
            .any(|w| w == CLIENT_SECRET.as_bytes()),
        "the secret is not in the database in the clear"
    );

    // Discovery that fails stops the command with the reason.
    let unreachable = w.run_env(
        &[
            "oidc",
            "add",
            "--org",
            &org,
            "--issuer",
            "http://127.0.0.1:1",
            "--client-id",
            "x",
            "--client-secret",
            "y",
        ],
        &[("ROLEGATE_SECRET_KEY", &old_key)],
    );
    assert!(!unreachable.status.success());
    assert!(
        text(&unreachable.stderr).contains("discovery failed"),
        "{}",
        text(&unreachable.stderr)
    );

    // Sealed secrets exist: a start or a command without the key is refused, and says why.
    for args in [
        vec!["oidc", "list", "--org", &org],
        vec!["serve", "--bind", "127.0.0.1:0"],
    ] {
        let out = w.run_env(&args, &[]);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains("encrypted"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    let new_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    let rotated = json_of(
        &w.run_env(
            &["keys", "rotate"],
            &[
                ("ROLEGATE_SECRET_KEY", &new_key),
                ("ROLEGATE_SECRET_KEY_OLD", &old_key),
            ],
        ),
        "keys rotate",
    );
    assert_eq!(rotated["resealed"], serde_json::json!(1));
    // After the rotation the old key alone no longer opens anything; the new one does.
    let stale = w.run_env(
        &["oidc", "list", "--org", &org],
        &[("ROLEGATE_SECRET_KEY", &old_key)],
    );
    assert!(!stale.status.success());
    assert!(
        text(&stale.stderr).contains("neither"),
        "{}",
        text(&stale.stderr)
    );
    let listed = json_of(
        &w.run_env(
            &["oidc", "list", "--org", &org],
            &[("ROLEGATE_SECRET_KEY", &new_key)],
        ),
        "oidc list",
    );
    assert_eq!(listed[0]["id"], serde_json::json!(id));
    let removed = json_of(
        &w.run_env(
            &["oidc", "remove", "--id", &id],
            &[("ROLEGATE_SECRET_KEY", &new_key)],
        ),
        "oidc remove",
    );
    assert_eq!(removed["id"], serde_json::json!(id));
}
