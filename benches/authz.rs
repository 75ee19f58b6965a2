//! The cached resolver: what a permission answer costs from the cache, on a miss, from the pure
//! resolver alone, for a batch, and — on PostgreSQL — how long a write through one instance
//! takes to reach another's cache. Prints figures beside their targets (issue 11); asserts
//! what the answers say, never how fast they came.
//!
//!     cargo bench --bench authz
//!     DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench authz
//!
//! `AUTHZ_BENCH_KEEP_DATABASE=1` keeps the PostgreSQL database it made, and prints its URL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rolegate::authz::Resolver;
use rolegate::background::Background;
use rolegate::config::ServeArgs;
use rolegate::domain::audit::Actor;
use rolegate::domain::mapping::{Grant, RuleSource};
use rolegate::domain::mapping_document::{Mappings, RuleSpec};
use rolegate::domain::org::OrgRole;
use rolegate::domain::permission::{EnvAccess, Role};
use rolegate::domain::resolve::resolve_product;
use rolegate::domain::token::TokenKind;
use rolegate::domain::{Source, now};
use rolegate::state::AppState;
use rolegate::store::{
    self, Ctx, Invalidation, NewEnvironment, OwnerRule, ProductAccess, Store, StoreOptions,
};
use sqlx::{Connection, Executor};
use uuid::Uuid;

/// The shape the targets name: a user in 50 groups, under 200 rules.
const GROUPS: usize = 50;
const RULES: usize = 200;
const BATCH: usize = 1_000;
const HITS: usize = 200_000;
const MISSES: usize = 2_000;
const MISS_WARM_UP: usize = 30;
const PURE: usize = 20_000;
const PROPAGATIONS: usize = 50;
const HTTP_CLIENTS: usize = 4;
const HTTP_RUN: Duration = Duration::from_secs(3);

fn ctx() -> Ctx {
    Ctx::new(Actor::Cli)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn figures(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    (percentile(samples, 0.50), percentile(samples, 0.99))
}

struct World {
    tenant: Uuid,
    product: Uuid,
    env: Uuid,
    user: Uuid,
    others: Vec<Uuid>,
}

/// An org with one product, a user in 50 SCIM groups (seeded with SQL: the SCIM edge is not
/// what is measured here), 200 mapping rules of which 50 match the user, and 1,000 more
/// members for the batch.
async fn world(store: &Arc<dyn Store>, url: &str) -> World {
    let (org, _) = store
        .create_org(&ctx(), "Bench", "owner@bench.test")
        .await
        .expect("org");
    let product = store
        .create_product(
            &ctx(),
            org.id,
            org.id,
            "Web",
            &[
                NewEnvironment {
                    name: "dev".into(),
                    restricted: false,
                },
                NewEnvironment {
                    name: "prod".into(),
                    restricted: true,
                },
            ],
        )
        .await
        .expect("product");
    let member = |email: String| {
        let store = store.clone();
        async move {
            let user = store
                .ensure_user(&ctx(), org.id, &email, Source::Manual)
                .await
                .expect("user");
            store
                .set_membership(&ctx(), org.id, org.id, user.id, None, OwnerRule::Enforce)
                .await
                .expect("member");
            user.id
        }
    };
    let user = member("ada@bench.test".into()).await;
    let mut others = Vec::with_capacity(BATCH);
    for i in 0..BATCH {
        others.push(member(format!("user{i}@bench.test")).await);
    }

    let mut statements = Vec::new();
    let at = now().to_rfc3339();
    let postgres = url.starts_with("postgres");
    let id = |u: Uuid| {
        if postgres {
            format!("'{u}'::uuid")
        } else {
            format!("X'{}'", u.simple())
        }
    };
    let time = |t: &str| {
        if postgres {
            format!("'{t}'::timestamptz")
        } else {
            format!("'{t}'")
        }
    };
    for g in 0..GROUPS {
        let group = Uuid::now_v7();
        statements.push(format!(
            "INSERT INTO groups (id, tenant_id, org_id, display_name, display_name_norm, source, \
             created_at, updated_at) VALUES ({}, {}, {}, 'Group {g}', 'group {g}', 'scim', {}, {})",
            id(group),
            id(org.id),
            id(org.id),
            time(&at),
            time(&at)
        ));
        statements.push(format!(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_kind, created_at) \
             VALUES ({}, {}, {}, 'user', {})",
            id(org.id),
            id(group),
            id(user),
            time(&at)
        ));
    }
    execute(url, &statements).await;

    // 200 rules: every fourth matches one of the user's groups; each gives a product role.
    let roles = [Role::Viewer, Role::Editor, Role::Publisher];
    let rules = (0..RULES)
        .map(|r| RuleSpec {
            name: format!("rule {r}"),
            idp_group: if r % 4 == 0 {
                format!("Group {}", r / 4)
            } else {
                format!("Elsewhere {r}")
            },
            source: RuleSource::Any,
            priority: i32::try_from(r % 7).unwrap_or_default(),
            enabled: true,
            grants: vec![Grant::ProductRole {
                product_id: product.product.id,
                role: roles[r % roles.len()],
            }],
        })
        .collect();
    store
        .replace_mappings(
            &ctx(),
            org.id,
            org.id,
            &Mappings {
                default: Some(vec![Grant::OrgRole {
                    org_id: org.id,
                    role: OrgRole::Member,
                }]),
                rules,
            },
            None,
        )
        .await
        .expect("mappings");
    World {
        tenant: org.id,
        product: product.product.id,
        env: product.environments[0].id,
        user,
        others,
    }
}

async fn execute(url: &str, statements: &[String]) {
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.expect("pg");
        for s in statements {
            c.execute(sqlx::AssertSqlSafe(s.clone()))
                .await
                .expect("seed");
        }
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
        for s in statements {
            c.execute(sqlx::AssertSqlSafe(s.clone()))
                .await
                .expect("seed");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn run(label: &str, url: &str) {
    let store = store::connect(url, &StoreOptions::default())
        .await
        .expect("store");
    let w = world(&store, url).await;
    let resolver = Resolver::new(store.clone(), Duration::from_secs(300));

    // The answer the figures are about: 50 matching rules give the user Publisher.
    let answer = resolver
        .product(w.tenant, w.user, w.product)
        .await
        .expect("answer");
    assert_eq!(answer.access(w.env), EnvAccess::Full);

    let mut hits = Vec::with_capacity(HITS);
    for _ in 0..HITS {
        let started = Instant::now();
        let answer = resolver
            .product(w.tenant, w.user, w.product)
            .await
            .expect("hit");
        hits.push(started.elapsed());
        std::hint::black_box(answer);
    }
    let (hit50, hit99) = figures(&mut hits);

    let mut misses = Vec::with_capacity(MISSES);
    // The first loads prepare the statements on the pool's connections; those are not timed.
    for round in 0..MISSES + MISS_WARM_UP {
        resolver.apply(&Invalidation {
            epoch: 0,
            tenant_id: w.tenant,
            users: Some(vec![w.user]),
        });
        let started = Instant::now();
        let answer = resolver
            .product(w.tenant, w.user, w.product)
            .await
            .expect("miss");
        if round >= MISS_WARM_UP {
            misses.push(started.elapsed());
        }
        assert_eq!(answer.access(w.env), EnvAccess::Full);
    }
    let (miss50, miss99) = figures(&mut misses);

    // The miss's own read alone (the tenant's shared part given): what the store costs of it.
    let facts = store.tenant_facts(w.tenant).await.expect("facts");
    let mut reads = Vec::with_capacity(MISSES);
    for round in 0..MISSES + MISS_WARM_UP {
        let started = Instant::now();
        let read = store
            .user_snapshots_with(w.tenant, &[w.user], &facts)
            .await
            .expect("read");
        if round >= MISS_WARM_UP {
            reads.push(started.elapsed());
        }
        assert_eq!(read.len(), 1);
    }
    let (read50, read99) = figures(&mut reads);
    // The floor under any read: one `SELECT 1` through the same pool.
    let mut pings = Vec::with_capacity(MISSES);
    for round in 0..MISSES + MISS_WARM_UP {
        let started = Instant::now();
        store.ping().await.expect("ping");
        if round >= MISS_WARM_UP {
            pings.push(started.elapsed());
        }
    }
    let (ping50, ping99) = figures(&mut pings);

    let snapshot = store
        .user_snapshots(w.tenant, &[w.user])
        .await
        .expect("snapshot")
        .pop()
        .expect("user");
    assert_eq!(snapshot.groups.len(), GROUPS);
    assert_eq!(snapshot.rules.len(), RULES);
    let product = store
        .product_snapshots(w.tenant, &[w.product])
        .await
        .expect("product")
        .pop()
        .expect("product");
    let mut pure = Vec::with_capacity(PURE);
    for _ in 0..PURE {
        let started = Instant::now();
        std::hint::black_box(resolve_product(&snapshot, &product));
        pure.push(started.elapsed());
    }
    let (pure50, pure99) = figures(&mut pure);

    // A 1,000-question batch (1,000 users, one product): cold after a tenant-wide
    // invalidation, then warm.
    resolver.apply(&Invalidation {
        epoch: 0,
        tenant_id: w.tenant,
        users: None,
    });
    let started = Instant::now();
    let cold = resolver
        .products(w.tenant, &w.others, &[w.product])
        .await
        .expect("batch");
    let batch_cold = started.elapsed();
    assert_eq!(cold.len(), BATCH);
    let started = Instant::now();
    let warm = resolver
        .products(w.tenant, &w.others, &[w.product])
        .await
        .expect("batch");
    let batch_warm = started.elapsed();
    assert_eq!(warm.len(), BATCH);

    println!(
        "{label:<8} cached check p50 {:>6.3} µs p99 {:>6.3} µs (target p50 < 1 µs) | \
         miss (load + resolve; 50 groups, 200 rules) p50 {:>6.3} ms p99 {:>6.3} ms (target < 2 ms) | \
         of it the user's read p50 {:>6.3} ms p99 {:>6.3} ms | \
         a `SELECT 1` p50 {:>6.3} ms p99 {:>6.3} ms | \
         pure resolve p50 {:>6.1} µs p99 {:>6.1} µs | \
         1,000-user batch cold {:>7.2} ms warm {:>6.2} ms",
        us(hit50),
        us(hit99),
        ms(miss50),
        ms(miss99),
        ms(read50),
        ms(read99),
        ms(ping50),
        ms(ping99),
        us(pure50),
        us(pure99),
        ms(batch_cold),
        ms(batch_warm),
    );

    http(label, &store, &w).await;
    if url.starts_with("postgres") {
        propagation(url, &store, &w).await;
    }
    store.close().await;
}

/// Permission checks over HTTP against a cheap authenticated route (`GET /api/v1/orgs/{org}`:
/// the token's reach and one org read; `/me` is for signed-in users), served by this process
/// on loopback: what answering a check adds to a request's cost. Both authenticate the same
/// admin token.
async fn http(label: &str, store: &Arc<dyn Store>, w: &World) {
    let state = AppState::new(store.clone(), ServeArgs::for_tests()).expect("state");
    let (_, secret) = rolegate::auth::issue_token(
        store.as_ref(),
        &ctx(),
        w.tenant,
        rolegate::auth::TokenRequest {
            org_id: w.tenant,
            kind: TokenKind::Admin,
            name: Some("bench"),
            expires_in_days: None,
        },
        rolegate::auth::Minter::Operator,
    )
    .await
    .expect("token");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rolegate::app::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let check = serde_json::json!({
        "user_id": w.user, "product_id": w.product,
        "action": "flag_edit", "environment_id": w.env,
    });
    let org = w.tenant;
    let rate = |post: bool| {
        let (client, base, secret, check) =
            (client.clone(), base.clone(), secret.clone(), check.clone());
        async move {
            let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..HTTP_CLIENTS {
                let (client, base, secret, check, done) = (
                    client.clone(),
                    base.clone(),
                    secret.clone(),
                    check.clone(),
                    done.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    while started.elapsed() < HTTP_RUN {
                        let request = if post {
                            client.post(format!("{base}/authz/check")).json(&check)
                        } else {
                            client.get(format!("{base}/orgs/{org}"))
                        };
                        let reply = request.bearer_auth(&secret).send().await.expect("request");
                        assert!(reply.status().is_success(), "{}", reply.status());
                        if post {
                            let body: serde_json::Value = reply.json().await.expect("json");
                            assert_eq!(body["allowed"], true, "{body}");
                        } else {
                            reply.bytes().await.expect("body");
                        }
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }));
            }
            for task in tasks {
                task.await.expect("client");
            }
            done.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
        }
    };
    // Warm the token's bookkeeping, the connections and the cache.
    rate(true).await;
    let noop = rate(false).await;
    let checks = rate(true).await;
    println!(
        "{label:<8} HTTP ({HTTP_CLIENTS} clients, keep-alive, {:.0} s each): checks/s {checks:>6.0} | \
         GET /orgs/{{org}}/s {noop:>6.0} | checks / org read {:>3.0} % (target >= 70 %)",
        HTTP_RUN.as_secs_f64(),
        checks / noop * 100.0
    );
    let _ = stop.send(());
    server.await.expect("server").expect("serve");
}

/// A write through one store (instance A) until another instance's cache (B, its own pool,
/// cache and listener) answers the new value.
async fn propagation(url: &str, a: &Arc<dyn Store>, w: &World) {
    let b_store = store::connect(url, &StoreOptions::default())
        .await
        .expect("store");
    let b = Resolver::new(b_store.clone(), Duration::from_secs(300));
    let mut tasks = Background::default();
    let listening = b.clone();
    tasks.register("listener", move |stop| listening.clone().run_listener(stop));
    let running = tasks.start();
    while !b.listening() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let subject = w.others[0];
    let mut samples = Vec::with_capacity(PROPAGATIONS);
    for round in 0..PROPAGATIONS {
        let role = if round % 2 == 0 {
            Role::Editor
        } else {
            Role::Viewer
        };
        let want = if role == Role::Editor {
            EnvAccess::Full
        } else {
            EnvAccess::ReadOnly
        };
        // B holds the old answer.
        b.product(w.tenant, subject, w.product).await.expect("b");
        let started = Instant::now();
        a.set_product_access(
            &ctx(),
            w.tenant,
            w.product,
            subject,
            &ProductAccess {
                permission_groups: Vec::new(),
                role: Some(role),
                source: Source::Manual,
            },
        )
        .await
        .expect("write");
        loop {
            let answer = b.product(w.tenant, subject, w.product).await.expect("b");
            if answer.access(w.env) == want {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never arrived");
            tokio::task::yield_now().await;
        }
        samples.push(started.elapsed());
    }
    let (p50, p99) = figures(&mut samples);
    println!(
        "postgres cross-instance propagation (write committed → other cache answers) p50 {:>6.2} ms \
         p99 {:>6.2} ms (target p99 < 50 ms)",
        ms(p50),
        ms(p99)
    );
    running.stop(Duration::from_secs(5)).await;
    b_store.close().await;
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    run("sqlite", &url).await;

    if let Ok(server) = std::env::var("DATABASE_URL") {
        let name = format!("rolegate_bench_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&server)
            .await
            .expect("PostgreSQL");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .expect("create");
        let mut url = url::Url::parse(&server).expect("url");
        url.set_path(&format!("/{name}"));
        run("postgres", url.as_str()).await;
        // Kept on request, to study the resolver's statements on the bench's data (EXPLAIN).
        if std::env::var_os("AUTHZ_BENCH_KEEP_DATABASE").is_some() {
            println!("postgres database kept: {url}");
        } else {
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE \"{name}\" WITH (FORCE)"
                )))
                .await
                .expect("drop");
        }
    }
}
