//! SCIM provisioning as Okta and Entra drive it, over HTTP on loopback, against the real
//! `rolegate serve` run as a child process, so that its own memory can be read from
//! `/proc/<pid>/status`. SQLite always; PostgreSQL too when `DATABASE_URL` is set, each backend
//! on a database of its own. Prints figures and their targets; asserts what the responses say
//! (statuses, counts), never how fast they came.
//!
//! After the Okta-style run it measures what a hostile or merely large client costs: request
//! bodies as large as the body limit allows, full of member values (the time a 2 MiB POST of
//! ~90,000 members takes), and one `GET /Groups` of a 100,000-member group (seeded in bulk
//! with SQL) on a freshly started server, whose peak memory is compared with its memory before.
//!
//!     cargo bench --bench scim
//!     DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench scim
//!
//! Narrower runs while working on one figure: `SCIM_BENCH_BACKENDS=postgres` (or `sqlite`)
//! skips the other backend, `SCIM_BENCH_ONLY=users` stops after the users phase (creates
//! against the raw loop).

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use rolegate::domain::provisioning::ScimUserWrite;
use rolegate::domain::{Source, normalize, now};
use rolegate::scim_proto::schema::Schemas;
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{Connection, Executor, PgPool, SqlitePool};
use uuid::Uuid;

const USERS: usize = 10_000;
/// Memory is read after this many users and again after all of them.
const FIRST_MARK: usize = 1_000;
/// IdPs provision with limited concurrency (a few requests in flight per app), not hundreds.
const CLIENTS: usize = 4;
const GROUPS: usize = 100;
/// Members per PATCH when a large group is pushed in batches.
const BATCH: usize = 500;
const SMALL_GROUP_MEMBERS: usize = 10;
const ONE_MEMBER_ROUNDS: usize = 200;
const FULL_PAGE_GETS: usize = 20;
const SLIM_PAGE_GETS: usize = 200;
const LOOKUPS: usize = 1_000;
/// The service's default request body limit: the largest body a client can send.
const BODY_LIMIT: usize = 2 * 1024 * 1024;
/// Requests per large-body measurement.
const LARGE_BODIES: usize = 5;
/// Members of the group read for the memory figure.
const BIG_GROUP: usize = 100_000;
const BIG_GROUP_GETS: usize = 5;
/// Rows per multi-row insert when seeding in bulk (17 parameters a user row: well within both
/// backends' limits).
const SEED_ROWS: usize = 500;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let backends = std::env::var("SCIM_BENCH_BACKENDS").unwrap_or_default();
    let wanted = |backend: &str| backends.is_empty() || backends.contains(backend);
    if wanted("sqlite") {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("rolegate.db").display());
        bench("sqlite", url, dir.path().to_owned()).await;
    }

    if let Some(server) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|_| wanted("postgres"))
    {
        let dir = tempfile::tempdir().expect("tempdir");
        with_fresh_database(&server, |url| bench("postgres", url, dir.path().to_owned())).await;
    }
    println!("total runtime {:.0} s", started.elapsed().as_secs_f64());
}

/// Runs `body` on a database created for this run and drops it afterwards, also when `body`
/// panics (the panic is carried on once the database is gone). The `rolegate_t_` prefix is what
/// the project's test-script sweep removes should a run be killed before it gets here.
async fn with_fresh_database<F, Fut>(server: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let random = &Uuid::new_v4().simple().to_string()[..8];
    let name = format!("rolegate_t_{secs}_bench{random}");
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .expect("PostgreSQL at DATABASE_URL");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .expect("create database");
    let mut url = url::Url::parse(server).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    let outcome = tokio::spawn(body(url.to_string())).await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE \"{name}\" WITH (FORCE)"
        )))
        .await
        .expect("drop database");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn bench(label: &'static str, url: String, dir: PathBuf) {
    let started = Instant::now();
    let org = cli_org(&url, "Bench", "owner@bench.test");
    let token = cli_scim_token(&url, org);
    let server = Server::start(&url, &dir).await;
    let scim = Scim::new(&server.base, &token);
    let mut table = Table::new(label);
    let users = users_phase(&scim, &server, &url, &mut table).await;
    if std::env::var("SCIM_BENCH_ONLY").is_ok_and(|only| only == "users") {
        table.print();
        return;
    }
    groups_phase(&scim, &server, &users, &mut table).await;
    reads_phase(&scim, &server, &users, &mut table).await;
    large_bodies_phase(&scim, &users, &mut table).await;
    big_group_phase(&url, &dir, &mut table).await;
    table.row(
        "runtime",
        format!("{:.0} s", started.elapsed().as_secs_f64()),
        "",
    );
    table.print();
    server.report_log();
}

/// Steps 1–2: users the Okta way, then the raw-SQL ceiling on the same database.
async fn users_phase(scim: &Scim, server: &Server, url: &str, table: &mut Table) -> Vec<User> {
    let provisioned = provision_users(scim, server.pid).await;
    table.row(
        format!("users created/s (GET filter + POST, {CLIENTS} clients, keep-alive)"),
        format!("{:.0}", provisioned.rate),
        "",
    );
    let (first, last) = (&provisioned.first, &provisioned.last);
    table.row(
        format!("users created/s, first / last {FIRST_MARK}"),
        format!("{:.0} / {:.0}", first.rate, last.rate),
        "",
    );
    table.row(
        format!("GET /Users?filter (Okta's pre-create lookup) p50, first / last {FIRST_MARK}"),
        format!("{} / {}", ms(first.get.p50), ms(last.get.p50)),
        "",
    );
    table.row(
        format!("POST /Users p50, first / last {FIRST_MARK}"),
        format!("{} / {}", ms(first.post.p50), ms(last.post.p50)),
        "",
    );
    table.row(
        format!("POST /Users p99, first / last {FIRST_MARK}"),
        format!("{} / {}", ms(first.post.p99), ms(last.post.p99)),
        "",
    );
    let (at_1k, at_10k) = (provisioned.at_first_mark, provisioned.at_end);
    table.memory(&format!("{FIRST_MARK} users"), at_1k);
    table.memory(&format!("{USERS} users"), at_10k);
    table.row(
        format!("peak RSS ratio {USERS} / {FIRST_MARK} users"),
        format!("{:.2}", at_10k.hwm_kib as f64 / at_1k.hwm_kib as f64),
        "< 1.5",
    );

    // A second tenant on the same database, so the raw rows meet the same indexes and disk
    // without colliding with the users the service created.
    let raw_org = cli_org(url, "Raw", "owner@raw.test");
    let raw = raw_ceiling(url, raw_org, Rows::Bare).await;
    table.row(
        format!("raw SQL inserts/s (users + memberships, 1 tx each, {CLIENTS} tasks)"),
        format!("{raw:.0}"),
        "",
    );
    table.row(
        "HTTP / raw",
        format!("{:.0} %", 100.0 * provisioned.rate / raw),
        ">= 50 %",
    );
    // The same, with the two rows every write of the service must add in its transaction
    // (the audit event and the cache invalidation): the ceiling of the store for this change.
    let audited_org = cli_org(url, "Raw audited", "owner@raw-audited.test");
    let audited = raw_ceiling(url, audited_org, Rows::Audited).await;
    table.row(
        format!("raw SQL inserts/s (+ audit event + invalidation, 1 tx each, {CLIENTS} tasks)"),
        format!("{audited:.0}"),
        "",
    );
    table.row(
        "HTTP / raw with audit",
        format!("{:.0} %", 100.0 * provisioned.rate / audited),
        "",
    );

    table.memory("raw inserts (server idle)", server.memory());
    provisioned.users
}

/// Steps 3–4: groups, one of them with every user, and single-member changes to it.
async fn groups_phase(scim: &Scim, server: &Server, users: &[User], table: &mut Table) {
    let groups = create_groups(scim).await;
    let big = &groups[0];
    let batches = fill_big_group(scim, big, users).await;
    table.row(
        format!(
            "PATCH add {BATCH} members, mean / max ({} batches)",
            USERS / BATCH
        ),
        format!("{} / {}", ms(batches.mean), ms(batches.max)),
        "",
    );
    fill_small_groups(scim, &groups[1..], users).await;
    table.memory("groups filled", server.memory());

    let (removes, adds) = one_member_rounds(scim, big, users).await;
    table.row(
        format!("PATCH remove 1 of {USERS} members, p50 / p99"),
        format!("{} / {}", ms(removes.p50), ms(removes.p99)),
        "< 10 ms",
    );
    table.row(
        format!("PATCH add 1 to {USERS} members, p50 / p99"),
        format!("{} / {}", ms(adds.p50), ms(adds.p99)),
        "< 10 ms",
    );

    table.memory("1-member PATCHes", server.memory());
}

/// Steps 5–6: the reads an IdP's import and its pre-create lookups make.
async fn reads_phase(scim: &Scim, server: &Server, users: &[User], table: &mut Table) {
    let (full, bytes) = list_groups_with_members(scim).await;
    table.row(
        format!("GET /Groups ({GROUPS} groups, one of {USERS} members), p50 / p99 / max"),
        format!("{} / {} / {}", ms(full.p50), ms(full.p99), ms(full.max)),
        "p50 < 30 ms (SQLite); << 600 ms (Okta)",
    );
    table.row(
        "GET /Groups response size",
        format!("{:.1} KiB", bytes as f64 / 1024.0),
        "",
    );
    table.memory("GET /Groups with members", server.memory());
    let slim = list_groups_without_members(scim).await;
    table.row(
        "GET /Groups?excludedAttributes=members, p50 / p99",
        format!("{} / {}", ms(slim.p50), ms(slim.p99)),
        "",
    );

    let lookups = user_name_lookups(scim, users).await;
    table.row(
        "GET /Users?filter=userName eq (upper-cased), p50 / p99",
        format!("{} / {}", ms(lookups.p50), ms(lookups.p99)),
        "p99 < 5 ms",
    );

    table.memory("userName lookups (end)", server.memory());
}

/// Step 7: bodies as large as the limit allows, full of member values (a security review
/// found 90,000 distinct values held a worker for 17 s while they were de-duplicated
/// pairwise), and a User PATCH as full of e-mails.
async fn large_bodies_phase(scim: &Scim, users: &[User], table: &mut Table) {
    // Short distinct values naming nobody: as many as fit, refused with 400 naming the first.
    let short = || (0..).map(|i: u64| format!("m{i:x}"));
    let (body, n) = fill_members(|m| group_body("Nobody", m), short());
    let nobody = repeat_large(
        scim,
        Method::POST,
        "/Groups",
        &body,
        StatusCode::BAD_REQUEST,
    )
    .await;
    table.row(
        format!("POST /Groups, 2 MiB: {n} distinct members naming nobody (400), p50 / max"),
        format!("{} / {}", ms(nobody.p50), ms(nobody.max)),
        "well under 1 s",
    );
    // The users' ids, each repeated, as many as fit: stored once each, answered with the
    // whole group (its members streamed).
    let ids = || users.iter().cycle().map(|u| u.id.clone());
    let mut samples = Vec::with_capacity(LARGE_BODIES);
    let mut n = 0;
    for round in 0..LARGE_BODIES {
        let (body, count) = fill_members(|m| group_body(&format!("Everyone {round}"), m), ids());
        n = count;
        let reply = scim
            .expect(Method::POST, "/Groups", Some(&body), StatusCode::CREATED)
            .await;
        let members = reply.body["members"].as_array().map_or(0, Vec::len);
        assert_eq!(members, users.len(), "each member once");
        samples.push(reply.elapsed);
    }
    let real = Stats::of(samples);
    table.row(
        format!(
            "POST /Groups, 2 MiB: {n} members, {} distinct users (201), p50 / max",
            users.len()
        ),
        format!("{} / {}", ms(real.p50), ms(real.max)),
        "well under 1 s",
    );
    let target = scim
        .expect(
            Method::POST,
            "/Groups",
            Some(&group_body("Patched", Vec::new())),
            StatusCode::CREATED,
        )
        .await;
    let path = format!("/Groups/{}", target.body["id"].as_str().expect("id"));
    let (body, n) = fill_members(add_members_body, ids());
    let patched = repeat_large(scim, Method::PATCH, &path, &body, StatusCode::NO_CONTENT).await;
    table.row(
        format!("PATCH /Groups add, 2 MiB: {n} members (204), p50 / max"),
        format!("{} / {}", ms(patched.p50), ms(patched.max)),
        "well under 1 s",
    );
    let (body, n) = fill_members(add_members_body, short());
    let nobody = repeat_large(scim, Method::PATCH, &path, &body, StatusCode::BAD_REQUEST).await;
    table.row(
        format!("PATCH /Groups add, 2 MiB: {n} members naming nobody (400), p50 / max"),
        format!("{} / {}", ms(nobody.p50), ms(nobody.max)),
        "well under 1 s",
    );

    // A User PATCH adding as many distinct e-mails as fit (each compared with those before).
    let user = format!("/Users/{}", users[0].id);
    let emails = (0..).map(|i: u64| format!("e{i:x}@x.test"));
    let (body, n) = fill_members(
        |values| {
            json!({ "schemas": [PATCH_SCHEMA], "Operations": [
                { "op": "add", "path": "emails", "value": values }
            ] })
        },
        emails,
    );
    let reply = scim
        .expect(Method::PATCH, &user, Some(&body), StatusCode::OK)
        .await;
    let kept = reply.body["emails"].as_array().map_or(0, Vec::len);
    assert_eq!(
        kept,
        n + 1,
        "each new e-mail once, beside the one the user had"
    );
    table.row(
        format!("PATCH /Users add, 2 MiB: {n} distinct e-mails (200)"),
        ms(reply.elapsed),
        "",
    );
}

fn group_body(name: &str, members: Vec<Value>) -> Value {
    json!({ "schemas": [GROUP_SCHEMA], "displayName": name, "members": members })
}

fn add_members_body(members: Vec<Value>) -> Value {
    json!({ "schemas": [PATCH_SCHEMA], "Operations": [
        { "op": "add", "path": "members", "value": members }
    ] })
}

/// `{"value": …}` for each value, as many as fit in `BODY_LIMIT` bytes once wrapped; the body
/// and how many went in.
fn fill_members(
    wrap: impl Fn(Vec<Value>) -> Value,
    values: impl Iterator<Item = String>,
) -> (Value, usize) {
    let mut size = wrap(Vec::new()).to_string().len();
    let mut members = Vec::new();
    for v in values {
        let member = json!({ "value": v });
        let extra = member.to_string().len() + usize::from(!members.is_empty());
        if size + extra > BODY_LIMIT {
            break;
        }
        size += extra;
        members.push(member);
    }
    let n = members.len();
    (wrap(members), n)
}

async fn repeat_large(
    scim: &Scim,
    method: Method,
    path: &str,
    body: &Value,
    expected: StatusCode,
) -> Stats {
    let mut samples = Vec::with_capacity(LARGE_BODIES);
    for _ in 0..LARGE_BODIES {
        let reply = scim
            .expect(method.clone(), path, Some(body), expected)
            .await;
        samples.push(reply.elapsed);
    }
    Stats::of(samples)
}

/// Step 8: a group of `BIG_GROUP` members (users and members seeded in bulk with SQL, in an
/// org of its own) read with one `GET /Groups` from a server started for it: its peak memory
/// against its memory just before, then how long such reads take.
async fn big_group_phase(url: &str, dir: &Path, table: &mut Table) {
    let org = cli_org(url, "Big", "owner@big.test");
    let token = cli_scim_token(url, org);
    let db = RawDb::connect(url).await;
    let seeding = Instant::now();
    let writes: Vec<ScimUserWrite> = (0..BIG_GROUP)
        .map(|i| {
            rolegate::scim_proto::resource::user_input(
                &Schemas::default(),
                &okta_user(i, "big.test"),
            )
            .expect("valid Okta user")
        })
        .collect();
    let users = db.seed_users(org, &writes).await;
    drop(writes);

    let dir = dir.join("big");
    std::fs::create_dir_all(&dir).expect("server dir");
    let server = Server::start(url, &dir).await;
    let scim = Scim::new(&server.base, &token);
    let created = scim
        .expect(
            Method::POST,
            "/Groups",
            Some(&group_body(&format!("{BIG_GROUP} members"), Vec::new())),
            StatusCode::CREATED,
        )
        .await;
    let group = Uuid::parse_str(created.body["id"].as_str().expect("id")).expect("uuid");
    db.seed_members(org, group, &users).await;
    db.analyze().await;
    db.close().await;
    table.row(
        format!("seed {BIG_GROUP} users and group members (bulk SQL)"),
        format!("{:.1} s", seeding.elapsed().as_secs_f64()),
        "",
    );

    // Warm the server up (connections, caches) without reading members.
    for _ in 0..3 {
        scim.expect(
            Method::GET,
            "/Groups?excludedAttributes=members",
            None,
            StatusCode::OK,
        )
        .await;
    }
    let before = server.memory();
    let reply = scim
        .expect(Method::GET, "/Groups", None, StatusCode::OK)
        .await;
    let after = server.memory();
    let members = reply.body["Resources"][0]["members"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(members, BIG_GROUP, "every member");
    table.memory("start + warm-up (before GET)", before);
    table.memory(&format!("one GET /Groups ({BIG_GROUP} members)"), after);
    table.row(
        format!("GET /Groups ({BIG_GROUP} members): peak VmHWM − VmRSS before"),
        mib(after.hwm_kib.saturating_sub(before.rss_kib)),
        "< 50 MiB",
    );
    let first = reply.elapsed;
    let bytes = reply.bytes;
    let mut samples = vec![first];
    for _ in 1..BIG_GROUP_GETS {
        let reply = scim
            .expect(Method::GET, "/Groups", None, StatusCode::OK)
            .await;
        samples.push(reply.elapsed);
    }
    let gets = Stats::of(samples);
    table.row(
        format!(
            "GET /Groups ({BIG_GROUP} members, {:.1} MiB), p50 / max",
            bytes as f64 / 1024.0 / 1024.0
        ),
        format!("{} / {}", ms(gets.p50), ms(gets.max)),
        "",
    );
    table.memory(
        &format!("{BIG_GROUP_GETS} GET /Groups ({BIG_GROUP} members)"),
        server.memory(),
    );
    server.report_log();
}

// --- The server under test ---------------------------------------------------------------

/// The running `rolegate serve`; killed when dropped, so a panic anywhere in a run does not
/// leave it behind.
struct Server {
    child: Child,
    pid: u32,
    base: String,
    log: PathBuf,
}

impl Server {
    async fn start(url: &str, dir: &Path) -> Server {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let log = dir.join("server.log");
        let out = File::create(&log).expect("server log");
        let err = out.try_clone().expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_rolegate"))
            .arg("serve")
            .env("ROLEGATE_DATABASE_URL", url)
            .env("ROLEGATE_BIND", format!("127.0.0.1:{port}"))
            .env("ROLEGATE_PUBLIC_URL", format!("{base}/"))
            // The per-token limit would measure the limiter, not the service.
            .env("ROLEGATE_SCIM_RATE_LIMIT", "0")
            .env("ROLEGATE_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start rolegate serve");
        let pid = child.id();
        let mut server = Server {
            child,
            pid,
            base,
            log,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&mut self) {
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let url = format!("{}/healthz", self.base);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("rolegate serve exited with {status}:\n{}", self.log_text());
            }
            if let Ok(r) = probe.get(&url).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rolegate serve not healthy in 30 s:\n{}", self.log_text());
    }

    fn memory(&self) -> Memory {
        memory(self.pid)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server logs at warn: anything it wrote during the run is worth seeing.
    fn report_log(&self) {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let errors = lines.iter().filter(|l| l.contains("\"ERROR\"")).count();
        let warnings = lines.iter().filter(|l| l.contains("\"WARN\"")).count();
        println!(
            "server log: {} lines ({errors} error, {warnings} warn)",
            lines.len()
        );
        for line in lines.iter().take(5) {
            println!("  {}", truncate(line, 300));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port the kernel just handed out; the short window before the server binds it is
/// acceptable on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[derive(Debug, Clone, Copy)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

/// VmRSS is resident memory now; VmHWM its peak since the process started (Linux only).
fn memory(pid: u32) -> Memory {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from /proc/{pid}/status"))
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// One operator command of the real binary; each prints one JSON value.
fn cli(url: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rolegate"))
        .args(args)
        .env("ROLEGATE_DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run rolegate");
    assert!(
        out.status.success(),
        "rolegate {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rolegate prints JSON")
}

fn cli_org(url: &str, name: &str, owner: &str) -> Uuid {
    let out = cli(url, &["org", "create", "--name", name, "--owner", owner]);
    out["org_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .expect("org_id")
}

fn cli_scim_token(url: &str, org: Uuid) -> String {
    let org = org.to_string();
    let out = cli(
        url,
        &[
            "token", "create", "--org", &org, "--kind", "scim", "--name", "bench",
        ],
    );
    out["token"].as_str().expect("token").to_owned()
}

// --- The SCIM client ---------------------------------------------------------------------

/// What Okta holds: one HTTP client (connections kept alive) and a bearer token.
#[derive(Clone)]
struct Scim {
    http: reqwest::Client,
    base: String,
    auth: String,
}

struct Reply {
    status: StatusCode,
    body: Value,
    bytes: usize,
    /// Until the last byte of the body arrived; parsing it is the client's cost.
    elapsed: Duration,
}

impl Scim {
    fn new(base: &str, token: &str) -> Scim {
        Scim {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client"),
            base: format!("{base}/scim/v2"),
            auth: format!("Bearer {token}"),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header(AUTHORIZATION, &self.auth)
            .header(ACCEPT, "application/scim+json");
        if let Some(body) = body {
            // Okta sends SCIM bodies as application/json.
            request = request
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(serde_json::to_vec(body).expect("JSON body"));
        }
        let started = Instant::now();
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let raw = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: body: {e}"));
        let elapsed = started.elapsed();
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: {status}, not JSON ({e}): {}",
                    truncate(&String::from_utf8_lossy(&raw), 300)
                )
            })
        };
        Reply {
            status,
            body,
            bytes: raw.len(),
            elapsed,
        }
    }

    /// Sends and insists on `expected`, showing what came instead.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        expected: StatusCode,
    ) -> Reply {
        let reply = self.send(method.clone(), path, body).await;
        assert_eq!(
            reply.status,
            expected,
            "{method} {path}: {}",
            truncate(&reply.body.to_string(), 500)
        );
        reply
    }
}

/// Percent-encodes a query value the way Okta does (spaces as %20, never `+`).
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn user_name_filter(user_name: &str) -> String {
    format!(
        "/Users?filter={}&startIndex=1&count=100",
        encode(&format!("userName eq \"{user_name}\""))
    )
}

/// The body Okta's SCIM 2.0 connector posts for a new user (its docs' sample, our values).
fn okta_user(i: usize, domain: &str) -> Value {
    let email = format!("user{i:05}@{domain}");
    json!({
        "schemas": [USER_SCHEMA],
        "userName": email,
        "name": { "givenName": format!("Given{i}"), "familyName": format!("Family{i}") },
        "emails": [{ "primary": true, "value": email, "type": "work" }],
        "displayName": format!("Given{i} Family{i}"),
        "locale": "en-US",
        "externalId": format!("00u{i:017x}"),
        "groups": [],
        "password": "placeholder",
        "active": true
    })
}

fn members_value(users: &[User]) -> Value {
    Value::Array(users.iter().map(|u| json!({ "value": u.id })).collect())
}

fn patch_body(operation: Value) -> Value {
    json!({ "schemas": [PATCH_SCHEMA], "Operations": [operation] })
}

// --- The workloads -----------------------------------------------------------------------

#[derive(Clone)]
struct User {
    user_name: String,
    id: String,
}

struct Provisioned {
    users: Vec<User>,
    rate: f64,
    at_first_mark: Memory,
    at_end: Memory,
    /// The first and the last `FIRST_MARK` users, in the order the server created them: a
    /// per-user cost that grows with the number of users shows as a gap between the two.
    first: Window,
    last: Window,
}

struct Window {
    rate: f64,
    get: Stats,
    post: Stats,
}

/// One user's create as the server saw it: its place in the creation order, when it was done,
/// and what its two requests took.
struct Created {
    order: usize,
    done: Instant,
    get: Duration,
    post: Duration,
}

/// Okta's create: look the userName up first (to link rather than duplicate), then POST.
async fn provision_users(scim: &Scim, pid: u32) -> Provisioned {
    let created = Arc::new(AtomicUsize::new(0));
    let at_first_mark = Arc::new(OnceLock::new());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (scim, created, at_first_mark) = (scim.clone(), created.clone(), at_first_mark.clone());
        tasks.spawn(async move {
            let mut mine = Vec::with_capacity(USERS / CLIENTS + 1);
            for i in (client..USERS).step_by(CLIENTS) {
                let body = okta_user(i, "bench.test");
                let user_name = body["userName"].as_str().expect("userName").to_owned();
                let found = scim
                    .expect(
                        Method::GET,
                        &user_name_filter(&user_name),
                        None,
                        StatusCode::OK,
                    )
                    .await;
                assert_eq!(found.body["totalResults"], 0, "{user_name} before create");
                let reply = scim
                    .expect(Method::POST, "/Users", Some(&body), StatusCode::CREATED)
                    .await;
                let id = reply.body["id"].as_str().expect("id").to_owned();
                let order = created.fetch_add(1, Ordering::SeqCst);
                if order + 1 == FIRST_MARK {
                    let _ = at_first_mark.set(memory(pid));
                }
                let timing = Created {
                    order,
                    done: Instant::now(),
                    get: found.elapsed,
                    post: reply.elapsed,
                };
                mine.push((i, User { user_name, id }, timing));
            }
            mine
        });
    }
    let mut users = Vec::with_capacity(USERS);
    while let Some(done) = tasks.join_next().await {
        users.extend(done.expect("client task"));
    }
    let rate = USERS as f64 / started.elapsed().as_secs_f64();
    let at_end = memory(pid);
    users.sort_by_key(|(_, _, t)| t.order);
    let timings: Vec<&Created> = users.iter().map(|(_, _, t)| t).collect();
    let first = window(&timings[..FIRST_MARK], started);
    let last_start = timings[USERS - FIRST_MARK - 1].done;
    let last = window(&timings[USERS - FIRST_MARK..], last_start);
    users.sort_by_key(|(i, _, _)| *i);
    Provisioned {
        users: users.into_iter().map(|(_, u, _)| u).collect(),
        rate,
        at_first_mark: *at_first_mark.get().expect("memory at the first mark"),
        at_end,
        first,
        last,
    }
}

fn window(creates: &[&Created], since: Instant) -> Window {
    let until = creates.iter().map(|c| c.done).max().expect("creates");
    Window {
        rate: creates.len() as f64 / (until - since).as_secs_f64(),
        get: Stats::of(creates.iter().map(|c| c.get).collect()),
        post: Stats::of(creates.iter().map(|c| c.post).collect()),
    }
}

/// The two rows a create cannot do without, written straight from this process: the ceiling
/// the service's create (which also looks up, audits and invalidates) is measured against.
const INSERT_USER: &str = "INSERT INTO users (id, tenant_id, user_name, user_name_norm, email, \
    email_norm, external_id, external_id_norm, display_name, active, source, attributes, \
    attributes_cmp, scim_org_id, created_at, updated_at, version) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 1)";
const INSERT_MEMBERSHIP: &str = "INSERT INTO memberships (tenant_id, org_id, user_id, role, \
    source, created_at, updated_at) VALUES ($1, $2, $3, NULL, $4, $5, $6)";

/// Binds and runs both inserts in `$tx`; the bind calls are the same on either backend.
macro_rules! insert_raw_user {
    ($tx:expr, $org:expr, $user:expr) => {{
        let (id, at, user): (Uuid, _, &ScimUserWrite) = (Uuid::now_v7(), now(), $user);
        sqlx::query(INSERT_USER)
            .bind(id)
            .bind($org)
            .bind(user.user_name.as_str())
            .bind(normalize(&user.user_name))
            .bind(user.email.as_deref())
            .bind(user.email.as_deref().map(normalize))
            .bind(user.external_id.as_deref())
            .bind(user.external_id.as_deref().map(normalize))
            .bind(user.display_name.as_deref())
            .bind(user.active)
            .bind(Source::Scim.as_str())
            .bind(Json(Value::Object(user.attributes.clone())))
            .bind(Json(user.attributes_cmp.clone()))
            .bind($org)
            .bind(at)
            .bind(at)
            .execute(&mut *$tx)
            .await
            .expect("raw user insert");
        sqlx::query(INSERT_MEMBERSHIP)
            .bind($org)
            .bind($org)
            .bind(id)
            .bind(Source::Scim.as_str())
            .bind(at)
            .bind(at)
            .execute(&mut *$tx)
            .await
            .expect("raw membership insert");
    }};
}

/// What the raw loop writes per user.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// The user and its membership.
    Bare,
    /// Those, an audit event and an invalidation, as the service's write door adds.
    Audited,
}

const INSERT_AUDIT: &str = "INSERT INTO audit_events (id, tenant_id, org_id, product_id, \
    actor_kind, actor_id, actor_name, action, target_kind, target_id, before, after, warning, \
    request_id, created_at) VALUES ($1, $2, $3, NULL, 'scim_token', NULL, 'raw', \
    'scim.user.create', 'user', $4, NULL, $5, NULL, NULL, $6)";
const INSERT_INVALIDATION: &str =
    "INSERT INTO invalidations (tenant_id, user_id, created_at) VALUES ($1, $2, $3)";

/// The audit event and invalidation rows in `$tx`, as the write door writes them.
macro_rules! insert_raw_audit {
    ($tx:expr, $org:expr, $user:expr) => {{
        let (at, user): (_, &ScimUserWrite) = (now(), $user);
        sqlx::query(INSERT_AUDIT)
            .bind(Uuid::now_v7())
            .bind($org)
            .bind($org)
            .bind(user.user_name.as_str())
            .bind(Json(Value::Object(user.attributes.clone())))
            .bind(at)
            .execute(&mut *$tx)
            .await
            .expect("raw audit insert");
        sqlx::query(INSERT_INVALIDATION)
            .bind($org)
            .bind(Option::<Uuid>::None)
            .bind(at)
            .execute(&mut *$tx)
            .await
            .expect("raw invalidation insert");
    }};
}

#[derive(Clone)]
enum RawDb {
    /// With the service's discipline: one writer at a time in the process, `BEGIN IMMEDIATE`.
    Sqlite(SqlitePool, Arc<tokio::sync::Mutex<()>>),
    Postgres(PgPool),
}

impl RawDb {
    async fn connect(url: &str) -> RawDb {
        if url.starts_with("sqlite:") {
            // The service's connection settings (src/store/sqlite.rs), so only the layers above
            // the SQL differ.
            let options = SqliteConnectOptions::from_str(url)
                .expect("SQLite URL")
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30));
            let pool = SqlitePoolOptions::new()
                .max_connections(CLIENTS as u32)
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .expect("SQLite");
            RawDb::Sqlite(pool, Arc::new(tokio::sync::Mutex::new(())))
        } else {
            // No ping before each transaction (sqlx's default): the service pings only
            // connections idle for a while, and the ceiling should not pay more than it.
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(CLIENTS as u32)
                .test_before_acquire(false)
                .connect(url)
                .await
                .expect("PostgreSQL");
            RawDb::Postgres(pool)
        }
    }

    async fn insert(&self, org: Uuid, user: &ScimUserWrite, rows: Rows) {
        match self {
            RawDb::Sqlite(pool, writer) => {
                let _gate = writer.lock().await;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                insert_raw_user!(tx, org, user);
                if rows == Rows::Audited {
                    insert_raw_audit!(tx, org, user);
                }
                tx.commit().await.expect("commit");
            }
            RawDb::Postgres(pool) => {
                let mut tx = pool.begin().await.expect("begin");
                insert_raw_user!(tx, org, user);
                if rows == Rows::Audited {
                    insert_raw_audit!(tx, org, user);
                }
                tx.commit().await.expect("commit");
            }
        }
    }

    async fn close(&self) {
        match self {
            RawDb::Sqlite(pool, _) => pool.close().await,
            RawDb::Postgres(pool) => pool.close().await,
        }
    }

    /// The users, SCIM-provisioned into `org` (a root org: its own tenant), with their
    /// memberships, a few hundred rows per statement in one transaction; their ids.
    async fn seed_users(&self, org: Uuid, writes: &[ScimUserWrite]) -> Vec<Uuid> {
        let at = now();
        let rows: Vec<(Uuid, &ScimUserWrite)> =
            writes.iter().map(|w| (Uuid::now_v7(), w)).collect();
        macro_rules! seed {
            ($db:ty, $tx:expr) => {{
                for chunk in rows.chunks(SEED_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO users (id, tenant_id, user_name, user_name_norm, email, \
                         email_norm, external_id, external_id_norm, display_name, active, \
                         source, attributes, attributes_cmp, scim_org_id, created_at, \
                         updated_at, version) ",
                    );
                    q.push_values(chunk, |mut b, (id, u)| {
                        b.push_bind(*id)
                            .push_bind(org)
                            .push_bind(u.user_name.clone())
                            .push_bind(normalize(&u.user_name))
                            .push_bind(u.email.clone())
                            .push_bind(u.email.as_deref().map(normalize))
                            .push_bind(u.external_id.clone())
                            .push_bind(u.external_id.as_deref().map(normalize))
                            .push_bind(u.display_name.clone())
                            .push_bind(u.active)
                            .push_bind(Source::Scim.as_str())
                            .push_bind(Json(Value::Object(u.attributes.clone())))
                            .push_bind(Json(u.attributes_cmp.clone()))
                            .push_bind(org)
                            .push_bind(at)
                            .push_bind(at)
                            .push_bind(1i64);
                    });
                    q.build().execute(&mut *$tx).await.expect("seed users");
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO memberships (tenant_id, org_id, user_id, role, source, \
                         created_at, updated_at) ",
                    );
                    q.push_values(chunk, |mut b, (id, _)| {
                        b.push_bind(org)
                            .push_bind(org)
                            .push_bind(*id)
                            .push_bind(Option::<String>::None)
                            .push_bind(Source::Scim.as_str())
                            .push_bind(at)
                            .push_bind(at);
                    });
                    q.build()
                        .execute(&mut *$tx)
                        .await
                        .expect("seed memberships");
                }
            }};
        }
        match self {
            RawDb::Sqlite(pool, writer) => {
                let _gate = writer.lock().await;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                seed!(sqlx::Sqlite, tx);
                tx.commit().await.expect("commit");
            }
            RawDb::Postgres(pool) => {
                let mut tx = pool.begin().await.expect("begin");
                seed!(sqlx::Postgres, tx);
                tx.commit().await.expect("commit");
            }
        }
        rows.into_iter().map(|(id, _)| id).collect()
    }

    /// Statistics for the planner after a bulk load, as autovacuum gathers them within a
    /// minute of one (the development PostgreSQL runs without autovacuum; planned without
    /// statistics, a chunk of a 100,000-member group was a bitmap scan of the rest of the group
    /// and a sort, 30 ms instead of 6 ms). SQLite plans without statistics, as the service runs.
    async fn analyze(&self) {
        if let RawDb::Postgres(pool) = self {
            sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
        }
    }

    /// These users into `group`, in one transaction.
    async fn seed_members(&self, org: Uuid, group: Uuid, users: &[Uuid]) {
        let at = now();
        macro_rules! seed {
            ($db:ty, $tx:expr) => {{
                for chunk in users.chunks(SEED_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO group_members (tenant_id, group_id, member_id, \
                         member_kind, created_at) ",
                    );
                    q.push_values(chunk, |mut b, id| {
                        b.push_bind(org)
                            .push_bind(group)
                            .push_bind(*id)
                            .push_bind("user")
                            .push_bind(at);
                    });
                    q.build()
                        .execute(&mut *$tx)
                        .await
                        .expect("seed group members");
                }
            }};
        }
        match self {
            RawDb::Sqlite(pool, writer) => {
                let _gate = writer.lock().await;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                seed!(sqlx::Sqlite, tx);
                tx.commit().await.expect("commit");
            }
            RawDb::Postgres(pool) => {
                let mut tx = pool.begin().await.expect("begin");
                seed!(sqlx::Postgres, tx);
                tx.commit().await.expect("commit");
            }
        }
    }
}

/// Inserts per second with raw SQL, same concurrency as the HTTP run, while the server idles.
async fn raw_ceiling(url: &str, org: Uuid, rows: Rows) -> f64 {
    // The documents are built the service's way, before the clock starts: request parsing is
    // part of what the HTTP figure pays for, not the database's ceiling.
    let writes: Arc<Vec<ScimUserWrite>> = Arc::new(
        (0..USERS)
            .map(|i| {
                rolegate::scim_proto::resource::user_input(
                    &Schemas::default(),
                    &okta_user(i, "raw.test"),
                )
                .expect("valid Okta user")
            })
            .collect(),
    );
    let db = RawDb::connect(url).await;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (db, writes) = (db.clone(), writes.clone());
        tasks.spawn(async move {
            for i in (client..USERS).step_by(CLIENTS) {
                db.insert(org, &writes[i], rows).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("raw task");
    }
    let rate = USERS as f64 / started.elapsed().as_secs_f64();
    db.close().await;
    rate
}

async fn create_groups(scim: &Scim) -> Vec<String> {
    let mut ids = Vec::with_capacity(GROUPS);
    for n in 0..GROUPS {
        let body = json!({ "schemas": [GROUP_SCHEMA], "displayName": format!("Group {n}"), "members": [] });
        let reply = scim
            .expect(Method::POST, "/Groups", Some(&body), StatusCode::CREATED)
            .await;
        ids.push(reply.body["id"].as_str().expect("group id").to_owned());
    }
    ids
}

/// Every user into one group, a batch at a time, as Okta's group push does.
async fn fill_big_group(scim: &Scim, group: &str, users: &[User]) -> Stats {
    let path = format!("/Groups/{group}");
    let mut samples = Vec::with_capacity(USERS / BATCH);
    for batch in users.chunks(BATCH) {
        let body =
            patch_body(json!({ "op": "add", "path": "members", "value": members_value(batch) }));
        let reply = scim
            .expect(Method::PATCH, &path, Some(&body), StatusCode::NO_CONTENT)
            .await;
        samples.push(reply.elapsed);
    }
    Stats::of(samples)
}

/// Ten members per remaining group, so a page of groups carries realistic member lists.
async fn fill_small_groups(scim: &Scim, groups: &[String], users: &[User]) {
    for (n, group) in groups.iter().enumerate() {
        let first = n * SMALL_GROUP_MEMBERS % users.len();
        let members = &users[first..(first + SMALL_GROUP_MEMBERS).min(users.len())];
        let body =
            patch_body(json!({ "op": "add", "path": "members", "value": members_value(members) }));
        scim.expect(
            Method::PATCH,
            &format!("/Groups/{group}"),
            Some(&body),
            StatusCode::NO_CONTENT,
        )
        .await;
    }
}

/// What an IdP sends when one person leaves or joins a large group: one member, by id.
async fn one_member_rounds(scim: &Scim, group: &str, users: &[User]) -> (Stats, Stats) {
    let path = format!("/Groups/{group}");
    let mut rng = Rng(0x5eed_0001);
    let (mut removes, mut adds) = (Vec::new(), Vec::new());
    for _ in 0..ONE_MEMBER_ROUNDS {
        let user = &users[rng.below(users.len())];
        let remove = patch_body(json!({
            "op": "remove",
            "path": format!("members[value eq \"{}\"]", user.id)
        }));
        let reply = scim
            .expect(Method::PATCH, &path, Some(&remove), StatusCode::NO_CONTENT)
            .await;
        removes.push(reply.elapsed);
        let add =
            patch_body(json!({ "op": "add", "path": "members", "value": [{ "value": user.id }] }));
        let reply = scim
            .expect(Method::PATCH, &path, Some(&add), StatusCode::NO_CONTENT)
            .await;
        adds.push(reply.elapsed);
    }
    (Stats::of(removes), Stats::of(adds))
}

/// The default page, members included: what a client that asks for nothing less gets.
async fn list_groups_with_members(scim: &Scim) -> (Stats, usize) {
    let mut samples = Vec::with_capacity(FULL_PAGE_GETS);
    let mut bytes = 0;
    for _ in 0..FULL_PAGE_GETS {
        let reply = scim
            .expect(Method::GET, "/Groups", None, StatusCode::OK)
            .await;
        check_group_page(&reply.body, true);
        samples.push(reply.elapsed);
        bytes = reply.bytes;
    }
    (Stats::of(samples), bytes)
}

async fn list_groups_without_members(scim: &Scim) -> Stats {
    let mut samples = Vec::with_capacity(SLIM_PAGE_GETS);
    for _ in 0..SLIM_PAGE_GETS {
        let reply = scim
            .expect(
                Method::GET,
                "/Groups?excludedAttributes=members",
                None,
                StatusCode::OK,
            )
            .await;
        check_group_page(&reply.body, false);
        samples.push(reply.elapsed);
    }
    Stats::of(samples)
}

fn check_group_page(page: &Value, with_members: bool) {
    assert_eq!(page["totalResults"], GROUPS, "groups in the page");
    let groups = page["Resources"].as_array().expect("Resources");
    assert_eq!(groups.len(), GROUPS, "groups in the page");
    for g in groups {
        let members = g.get("members").and_then(Value::as_array).map(Vec::len);
        let expected = match (with_members, g["displayName"].as_str()) {
            (false, _) => None,
            (true, Some("Group 0")) => Some(USERS),
            (true, _) => Some(SMALL_GROUP_MEMBERS),
        };
        assert_eq!(members, expected, "members of {}", g["displayName"]);
    }
}

/// Okta and Entra match users by userName before every create or link; case must not matter
/// (userName is caseExact=false, RFC 7643 §4.1.1).
async fn user_name_lookups(scim: &Scim, users: &[User]) -> Stats {
    let mut rng = Rng(0x5eed_0002);
    let mut samples = Vec::with_capacity(LOOKUPS);
    for _ in 0..LOOKUPS {
        let user = &users[rng.below(users.len())];
        let path = user_name_filter(&user.user_name.to_uppercase());
        let reply = scim.expect(Method::GET, &path, None, StatusCode::OK).await;
        assert_eq!(reply.body["totalResults"], 1, "{path}");
        assert_eq!(reply.body["Resources"][0]["id"], user.id.as_str(), "{path}");
        samples.push(reply.elapsed);
    }
    Stats::of(samples)
}

// --- Figures -----------------------------------------------------------------------------

struct Stats {
    mean: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        samples.sort();
        Stats {
            mean: samples.iter().sum::<Duration>() / samples.len() as u32,
            p50: percentile(&samples, 0.50),
            p99: percentile(&samples, 0.99),
            max: samples[samples.len() - 1],
        }
    }
}

/// Nearest-rank on sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// A fixed-seed xorshift: the same users are picked on every run, without a rand dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

struct Table {
    label: &'static str,
    rows: Vec<[String; 3]>,
}

impl Table {
    fn new(label: &'static str) -> Table {
        Table {
            label,
            rows: Vec::new(),
        }
    }

    fn row(&mut self, metric: impl Into<String>, figure: String, target: &str) {
        self.rows.push([metric.into(), figure, target.to_owned()]);
    }

    fn memory(&mut self, after: &str, m: Memory) {
        self.row(
            format!("server VmRSS / VmHWM after {after}"),
            format!("{} / {}", mib(m.rss_kib), mib(m.hwm_kib)),
            "",
        );
    }

    fn print(&self) {
        let width = |c: usize| self.rows.iter().map(|r| r[c].len()).max().unwrap_or(0);
        let (w0, w1) = (width(0).max(6), width(1).max(6));
        println!();
        println!(
            "== {} (indicative: shared 2-core machine, other builds may run) ==",
            self.label
        );
        println!("{:<w0$}  {:>w1$}  target", "metric", "figure");
        for [metric, figure, target] in &self.rows {
            println!("{metric:<w0$}  {figure:>w1$}  {target}");
        }
    }
}
