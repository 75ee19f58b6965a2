//! kill -9 during provisioning: the real binary serves concurrent SCIM clients on loopback, is
//! killed with SIGKILL while requests are in flight, and restarts on the same database. Every
//! write a client was told succeeded must be there, and no request may be half there: a user
//! without its membership of the token's org, a group with only some of the members it was
//! created with, a change without its audit record, an audit record without its change.
//!
//! Each client owns its users and groups and works sequentially, so what the database must
//! hold is computable: everything acknowledged, plus, for the one request a client had in
//! flight when the server died, either all of it or none of it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::common::{Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_rolegate");
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// IdPs provision with a few requests in flight per app.
const CLIENTS: usize = 4;
/// The server is killed once this many writes have been acknowledged.
const KILL_AFTER: usize = 120;
/// Most requests one client sends: bounds the run should the kill never come.
const MAX_REQUESTS: usize = 150;
/// Longest wait for the server to start, for one request, or for the clients to stop: each
/// takes a moment, so only a hang reaches it, and the test stays bounded in time.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The server process.

/// A `rolegate serve` child process, killed (SIGKILL) and reaped when dropped, so a failing
/// assertion leaves nothing running.
struct Server {
    child: Child,
    base: String,
    /// The last lines the server logged, for failure messages.
    log: Arc<Mutex<VecDeque<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    fn start(database_url: &str) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .env("ROLEGATE_DATABASE_URL", database_url)
            .env("ROLEGATE_BIND", "127.0.0.1:0")
            .env("ROLEGATE_LOG_FORMAT", "json")
            .env("ROLEGATE_SHUTDOWN_DELAY", "0")
            .env("ROLEGATE_SCIM_RATE_LIMIT", "0")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rolegate serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let lines = log.clone();
        // Drains the log for as long as the process lives (a full pipe would block it).
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "listening"
                    && let Some(addr) = v["addr"].as_str()
                {
                    let _ = addr_tx.send(addr.to_owned());
                }
                let mut lines = lines.lock().expect("log lock");
                if lines.len() == 50 {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            log,
            reader: Some(reader),
        };
        match addr_rx.recv_timeout(PATIENCE) {
            Ok(addr) => server.base = format!("http://{addr}/scim/v2"),
            Err(_) => panic!("the server did not start:\n{}", server.logs()),
        }
        server
    }

    fn logs(&self) -> String {
        let lines = self.log.lock().expect("log lock");
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// SIGKILL, then reap: no shutdown, no draining, no flushing.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a `rolegate` command against the database and returns its JSON output.
fn cli(database_url: &str, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .env("ROLEGATE_DATABASE_URL", database_url)
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).expect("the command prints JSON")
}

// ---------------------------------------------------------------------------------------------
// The clients.

/// A write a client sends.
#[derive(Debug, Clone)]
enum Write {
    CreateUser(String),
    CreateGroup(String, BTreeSet<Uuid>),
    AddMember(Uuid),
    RemoveMember(Uuid),
}

/// What one client was told, and the request it got no answer to.
#[derive(Debug, Default)]
struct Ledger {
    /// Acknowledged creates: id and userName.
    users: Vec<(Uuid, String)>,
    /// The client's own group (created first) and its members as acknowledged.
    group: Option<Uuid>,
    members: BTreeSet<Uuid>,
    /// Acknowledged creates of groups with members: id, displayName, members.
    groups: Vec<(Uuid, String, BTreeSet<Uuid>)>,
    /// The write that got no answer (the server died before or while handling it).
    in_flight: Option<Write>,
    /// Whether that write was cut off mid-request (rather than refused a connection).
    cut_off: bool,
    /// An answer no healthy server gives (a failure of the test, reported after the kill).
    unexpected: Option<String>,
}

struct Shared {
    base: String,
    token: String,
    acked: AtomicUsize,
    killed: AtomicBool,
}

/// The next write of client `c` after `done` of its writes: users created, added to its group
/// and sometimes removed again, and groups created with its latest three users as members.
fn next_write(c: usize, done: usize, ledger: &Ledger) -> Write {
    let last = |n: usize| -> BTreeSet<Uuid> {
        ledger
            .users
            .iter()
            .rev()
            .take(n)
            .map(|(id, _)| *id)
            .collect()
    };
    let user = || Write::CreateUser(format!("c{c}-u{done}@crash.example"));
    // Offset per client, so that the clients are at different writes when the server dies.
    match (done + c) % 7 {
        1 | 5 => match ledger.users.last() {
            Some((id, _)) if !ledger.members.contains(id) => Write::AddMember(*id),
            _ => user(),
        },
        3 if ledger.users.len() >= 3 => Write::CreateGroup(format!("c{c}-g{done}"), last(3)),
        6 => match ledger.members.iter().next() {
            Some(id) => Write::RemoveMember(*id),
            None => user(),
        },
        _ => user(),
    }
}

fn request_for(
    shared: &Shared,
    ledger: &Ledger,
    write: &Write,
) -> (reqwest::Method, String, Value) {
    let members = |ids: &BTreeSet<Uuid>| -> Vec<Value> {
        ids.iter().map(|id| json!({ "value": id })).collect()
    };
    let group = ledger.group.unwrap_or_default();
    let patch = |op: Value| json!({ "schemas": [PATCH_OP], "Operations": [op] });
    match write {
        Write::CreateUser(name) => (
            reqwest::Method::POST,
            format!("{}/Users", shared.base),
            json!({
                "schemas": [USER_SCHEMA],
                "userName": name,
                "emails": [{ "value": name, "type": "work", "primary": true }],
                "active": true,
            }),
        ),
        Write::CreateGroup(name, ids) => (
            reqwest::Method::POST,
            format!("{}/Groups", shared.base),
            json!({ "schemas": [GROUP_SCHEMA], "displayName": name, "members": members(ids) }),
        ),
        Write::AddMember(id) => (
            reqwest::Method::PATCH,
            format!("{}/Groups/{group}", shared.base),
            patch(json!({ "op": "add", "path": "members", "value": [{ "value": id }] })),
        ),
        Write::RemoveMember(id) => (
            reqwest::Method::PATCH,
            format!("{}/Groups/{group}", shared.base),
            patch(json!({ "op": "remove", "path": format!("members[value eq \"{id}\"]") })),
        ),
    }
}

/// Creates the client's own group, then writes until the server dies (or `MAX_REQUESTS`).
async fn client(c: usize, shared: Arc<Shared>) -> Ledger {
    let http = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("client");
    let mut ledger = Ledger::default();
    for done in 0..MAX_REQUESTS {
        let write = if done == 0 {
            Write::CreateGroup(format!("c{c}-own"), BTreeSet::new())
        } else {
            next_write(c, done, &ledger)
        };
        let (method, url, body) = request_for(&shared, &ledger, &write);
        let sent = http
            .request(method, url)
            .bearer_auth(&shared.token)
            .json(&body)
            .send()
            .await;
        let reply = match sent {
            Ok(reply) => reply,
            Err(e) => {
                if !shared.killed.load(Ordering::SeqCst) {
                    ledger.unexpected = Some(format!("{write:?} failed before the kill: {e}"));
                }
                ledger.cut_off = !e.is_connect();
                ledger.in_flight = Some(write);
                return ledger;
            }
        };
        let status = reply.status();
        // A reply cut off after its status line is as good as no reply.
        let Ok(text) = reply.text().await else {
            ledger.cut_off = true;
            ledger.in_flight = Some(write);
            return ledger;
        };
        if !status.is_success() {
            ledger.unexpected = Some(format!("{write:?} answered {status}: {text}"));
            return ledger;
        }
        let id = || -> Uuid {
            serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["id"].as_str().and_then(|s| s.parse().ok()))
                .expect("a created resource has an id")
        };
        match write {
            Write::CreateUser(name) => ledger.users.push((id(), name)),
            Write::CreateGroup(_, ids) if done == 0 => {
                assert!(ids.is_empty());
                ledger.group = Some(id());
            }
            Write::CreateGroup(name, ids) => ledger.groups.push((id(), name, ids)),
            Write::AddMember(user) => {
                ledger.members.insert(user);
            }
            Write::RemoveMember(user) => {
                ledger.members.remove(&user);
            }
        }
        shared.acked.fetch_add(1, Ordering::SeqCst);
    }
    ledger
}

// ---------------------------------------------------------------------------------------------
// Reading the database behind the server's back.

enum Db {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

/// One query, written once for both backends (`$1` works on both).
macro_rules! rows {
    ($db:expr, $row:ty, $sql:expr, $bind:expr) => {
        match $db {
            Db::Sqlite(c) => {
                sqlx::query_as::<_, $row>($sql)
                    .bind($bind)
                    .fetch_all(&mut *c)
                    .await
            }
            Db::Postgres(c) => {
                sqlx::query_as::<_, $row>($sql)
                    .bind($bind)
                    .fetch_all(&mut *c)
                    .await
            }
        }
        .expect($sql)
    };
}

/// What the database holds for the org (its own tenant, as a root org).
struct Stored {
    /// SCIM users: id → userName.
    users: HashMap<Uuid, String>,
    /// Users with a membership of the org.
    org_members: BTreeSet<Uuid>,
    /// SCIM groups: id → displayName.
    groups: HashMap<Uuid, String>,
    /// group id → member ids.
    group_members: HashMap<Uuid, BTreeSet<Uuid>>,
    /// Audit events in the order they were written: action, target id, `after`.
    audit: Vec<(String, Option<String>, Option<Value>)>,
}

async fn read_stored(db: &TestDb, org: Uuid) -> Stored {
    let mut conn = match db.backend {
        Backend::Sqlite => Db::Sqlite(
            sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("SQLite"),
        ),
        Backend::Postgres => Db::Postgres(
            sqlx::PgConnection::connect(&db.url)
                .await
                .expect("PostgreSQL"),
        ),
    };
    let users = rows!(
        &mut conn,
        (Uuid, String),
        "SELECT id, user_name FROM users WHERE scim_org_id = $1",
        org
    );
    let org_members = rows!(
        &mut conn,
        (Uuid,),
        "SELECT user_id FROM memberships WHERE org_id = $1",
        org
    );
    let groups = rows!(
        &mut conn,
        (Uuid, String),
        "SELECT id, display_name FROM groups WHERE org_id = $1",
        org
    );
    let members = rows!(
        &mut conn,
        (Uuid, Uuid),
        "SELECT group_id, member_id FROM group_members WHERE tenant_id = $1",
        org
    );
    let audit = rows!(
        &mut conn,
        (Uuid, String, Option<String>, Option<Json<Value>>),
        "SELECT id, action, target_id, after FROM audit_events WHERE tenant_id = $1 ORDER BY id",
        org
    );
    let mut group_members: HashMap<Uuid, BTreeSet<Uuid>> = HashMap::new();
    for (group, member) in members {
        group_members.entry(group).or_default().insert(member);
    }
    Stored {
        users: users.into_iter().collect(),
        org_members: org_members.into_iter().map(|(id,)| id).collect(),
        groups: groups.into_iter().collect(),
        group_members,
        audit: audit
            .into_iter()
            .map(|(_, action, target, after)| (action, target, after.map(|j| j.0)))
            .collect(),
    }
}

fn ids_in(after: &Value, key: &str) -> BTreeSet<Uuid> {
    after["members"][key]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The test.

async fn acknowledged_writes_survive_kill_9_and_none_is_half_applied(backend: Backend) {
    let db = TestDb::new(backend).await;
    let url = db.url.clone();
    let (org, token) = tokio::task::spawn_blocking(move || {
        cli(&url, &["migrate"]);
        let org = cli(
            &url,
            &[
                "org",
                "create",
                "--name",
                "Crash",
                "--owner",
                "owner@crash.example",
            ],
        );
        let org_id = org["org_id"].as_str().expect("org_id").to_owned();
        let token = cli(
            &url,
            &["token", "create", "--org", &org_id, "--kind", "scim"],
        );
        let token = token["token"].as_str().expect("token").to_owned();
        (org_id.parse::<Uuid>().expect("a UUID"), token)
    })
    .await
    .expect("setup");

    let mut server = tokio::task::block_in_place(|| Server::start(&db.url));
    let shared = Arc::new(Shared {
        base: server.base.clone(),
        token,
        acked: AtomicUsize::new(0),
        killed: AtomicBool::new(false),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(client(c, shared.clone())))
        .collect();
    let started = Instant::now();
    while shared.acked.load(Ordering::SeqCst) < KILL_AFTER
        && !clients.iter().all(|c| c.is_finished())
        && started.elapsed() < PATIENCE
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    shared.killed.store(true, Ordering::SeqCst);
    tokio::task::block_in_place(|| server.kill());
    let acked_at_kill = shared.acked.load(Ordering::SeqCst);
    let mut ledgers = Vec::new();
    for c in clients {
        ledgers.push(
            tokio::time::timeout(PATIENCE, c)
                .await
                .expect("a client stops once the server is gone")
                .expect("a client does not panic"),
        );
    }
    let logs = server.logs();
    for l in &ledgers {
        assert!(l.unexpected.is_none(), "{:?}\n{logs}", l.unexpected);
    }
    assert!(
        acked_at_kill >= KILL_AFTER,
        "killed after {acked_at_kill} acknowledged writes"
    );
    let cut_off = ledgers.iter().filter(|l| l.cut_off).count();
    assert!(
        cut_off >= 1,
        "no request was in flight when the server died: {ledgers:?}"
    );

    eprintln!(
        "{backend:?}: killed after {acked_at_kill} acknowledged writes, {cut_off} of {CLIENTS} \
         requests cut off in flight: {:?}",
        ledgers.iter().map(|l| &l.in_flight).collect::<Vec<_>>()
    );

    // Restart on the same database; it must come up and answer.
    let server = tokio::task::block_in_place(|| Server::start(&db.url));
    let stored = read_stored(&db, org).await;

    // Every acknowledged user, with its membership and its audit record.
    let audited = |action: &str, id: Uuid| {
        stored
            .audit
            .iter()
            .filter(|(a, target, _)| a == action && target.as_deref() == Some(&id.to_string()))
            .count()
    };
    for l in &ledgers {
        for (id, name) in &l.users {
            assert_eq!(stored.users.get(id), Some(name), "acknowledged user {name}");
        }
    }
    // No user half there, none unaccounted for.
    let asked: BTreeSet<&str> = ledgers
        .iter()
        .flat_map(|l| {
            let in_flight = match &l.in_flight {
                Some(Write::CreateUser(name)) => Some(name.as_str()),
                _ => None,
            };
            l.users.iter().map(|(_, n)| n.as_str()).chain(in_flight)
        })
        .collect();
    for (id, name) in &stored.users {
        assert!(asked.contains(name.as_str()), "user {name} nobody created");
        assert!(
            stored.org_members.contains(id),
            "user {name} without its org membership"
        );
        assert_eq!(
            audited("scim.user.create", *id),
            1,
            "user {name} and its audit record"
        );
    }
    let user_creates = stored
        .audit
        .iter()
        .filter(|(a, _, _)| a == "scim.user.create")
        .count();
    assert_eq!(
        user_creates,
        stored.users.len(),
        "an audit record without its user"
    );

    // Each client's own group: its acknowledged members, give or take the write in flight.
    for l in &ledgers {
        let group = l.group.expect("each client created its group");
        let have = stored
            .group_members
            .get(&group)
            .cloned()
            .unwrap_or_default();
        let mut with_in_flight = l.members.clone();
        match &l.in_flight {
            Some(Write::AddMember(id)) => {
                with_in_flight.insert(*id);
            }
            Some(Write::RemoveMember(id)) => {
                with_in_flight.remove(id);
            }
            _ => {}
        }
        assert!(
            have == l.members || have == with_in_flight,
            "group {group}: {have:?}, acknowledged {:?}, in flight {:?}",
            l.members,
            l.in_flight
        );
    }
    // Groups created with members: all of them or (in flight) none of it.
    for l in &ledgers {
        for (id, name, members) in &l.groups {
            assert_eq!(
                stored.groups.get(id),
                Some(name),
                "acknowledged group {name}"
            );
            assert_eq!(
                stored.group_members.get(id),
                Some(members),
                "group {name} with all its members"
            );
        }
        if let Some(Write::CreateGroup(name, members)) = &l.in_flight {
            let found: Vec<&Uuid> = stored
                .groups
                .iter()
                .filter(|(_, n)| *n == name)
                .map(|(id, _)| id)
                .collect();
            for id in found {
                let have = stored.group_members.get(id).cloned().unwrap_or_default();
                assert_eq!(&have, members, "in-flight group {name}: all or nothing");
            }
        }
    }
    // Every group's audit trail replays to exactly its members: no change without its record,
    // no record without its change.
    for (group, name) in &stored.groups {
        let target = group.to_string();
        let mut replayed = BTreeSet::new();
        let mut creates = 0;
        for (action, t, after) in &stored.audit {
            if t.as_deref() != Some(target.as_str()) {
                continue;
            }
            let after = after.clone().unwrap_or_default();
            match action.as_str() {
                "scim.group.create" => creates += 1,
                "scim.group.update" => {}
                _ => continue,
            }
            let added = ids_in(&after, "added_ids");
            if after["members"].is_object() {
                // Ids are sampled in the record; these groups are small enough for all of them.
                assert_eq!(after["members"]["added"], json!(added.len()), "{after}");
            }
            replayed.extend(added);
            for removed in ids_in(&after, "removed_ids") {
                replayed.remove(&removed);
            }
        }
        assert_eq!(creates, 1, "group {name} and its create record");
        let have = stored.group_members.get(group).cloned().unwrap_or_default();
        assert_eq!(
            have, replayed,
            "group {name}: members against its audit trail"
        );
    }
    for (action, target, _) in &stored.audit {
        if action.starts_with("scim.group.") {
            let id: Uuid = target.as_deref().unwrap_or_default().parse().expect("id");
            assert!(
                stored.groups.contains_key(&id),
                "{action} of a missing group"
            );
        }
    }

    // The restarted server answers normally: lists what is stored, creates, changes.
    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", shared.token);
    let listed: Value = http
        .get(format!("{}/Users?count=1000", server.base))
        .header("Authorization", &auth)
        .send()
        .await
        .expect("GET /Users")
        .json()
        .await
        .expect("a ListResponse");
    assert_eq!(
        listed["totalResults"],
        json!(stored.users.len()),
        "{listed}"
    );
    let created = http
        .post(format!("{}/Users", server.base))
        .header("Authorization", &auth)
        .json(&json!({ "schemas": [USER_SCHEMA], "userName": "after@crash.example" }))
        .send()
        .await
        .expect("POST /Users");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let after: Value = created.json().await.expect("the user");
    let group = ledgers[0].group.expect("a group");
    let added = http
        .patch(format!("{}/Groups/{group}", server.base))
        .header("Authorization", &auth)
        .json(&json!({ "schemas": [PATCH_OP], "Operations": [
            { "op": "add", "path": "members", "value": [{ "value": after["id"] }] }
        ] }))
        .send()
        .await
        .expect("PATCH /Groups");
    assert_eq!(added.status(), reqwest::StatusCode::NO_CONTENT);
    let landed = ledgers
        .iter()
        .filter(|l| match &l.in_flight {
            Some(Write::CreateUser(name)) => stored.users.values().any(|n| n == name),
            Some(Write::CreateGroup(name, _)) => stored.groups.values().any(|n| n == name),
            Some(Write::AddMember(id)) => l
                .group
                .and_then(|g| stored.group_members.get(&g))
                .is_some_and(|m| m.contains(id)),
            Some(Write::RemoveMember(id)) => l
                .group
                .and_then(|g| stored.group_members.get(&g))
                .is_none_or(|m| !m.contains(id)),
            None => false,
        })
        .count();
    eprintln!(
        "{backend:?}: after the restart {} users, {} groups, {} audit records, all consistent; \
         {landed} of the unanswered writes had landed whole, the others not at all",
        stored.users.len(),
        stored.groups.len(),
        stored.audit.len()
    );
    drop(server);
}

crate::on_both_backends!(acknowledged_writes_survive_kill_9_and_none_is_half_applied);
