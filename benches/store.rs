//! Write-path and token-lookup figures on SQLite and (with `DATABASE_URL`) PostgreSQL.
//! Prints figures; asserts nothing about speed.
//!
//!     cargo bench --bench store
//!     DATABASE_URL=postgres://postgres@127.0.0.1/test cargo bench --bench store

use std::sync::Arc;
use std::time::{Duration, Instant};

use rolegate::domain::audit::Actor;
use rolegate::domain::token::{self, TokenKind};
use rolegate::store::{self, Ctx, NewToken, Store, StoreOptions};
use sqlx::{Connection, Executor};
use uuid::Uuid;

const SEQUENTIAL_WRITES: usize = 500;
const CONCURRENT_TASKS: usize = 50;
const WRITES_PER_TASK: usize = 20;
const LOOKUPS: usize = 2_000;

fn ctx() -> Ctx {
    Ctx::new(Actor::Cli)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn run(label: &str, store: Arc<dyn Store>) {
    let (org, _) = store
        .create_org(&ctx(), "Bench", "owner@bench.test")
        .await
        .expect("org");

    let started = Instant::now();
    for i in 0..SEQUENTIAL_WRITES {
        store
            .add_owner(&ctx(), org.id, org.id, &format!("seq{i}@bench.test"))
            .await
            .expect("write");
    }
    let sequential = SEQUENTIAL_WRITES as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..CONCURRENT_TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            for i in 0..WRITES_PER_TASK {
                store
                    .add_owner(&ctx(), org.id, org.id, &format!("c{t}-{i}@bench.test"))
                    .await
                    .expect("write");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    let concurrent = (CONCURRENT_TASKS * WRITES_PER_TASK) as f64 / started.elapsed().as_secs_f64();

    let minted = token::mint(TokenKind::Scim, [5; token::SECRET_BYTES]);
    let new = NewToken::from_minted(org.id, TokenKind::Scim, "bench".into(), &minted, None);
    store
        .create_token(&ctx(), org.id, new)
        .await
        .expect("token");
    let mut samples = Vec::with_capacity(LOOKUPS);
    for _ in 0..LOOKUPS {
        let started = Instant::now();
        let hash = token::hash_secret(&minted.secret);
        store
            .token_by_hash(&hash)
            .await
            .expect("lookup")
            .expect("found");
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "{label:<10} audited writes/s sequential {sequential:>7.0} | {CONCURRENT_TASKS} concurrent writers {concurrent:>7.0} | \
         token lookup p50 {:>6.3} ms p99 {:>6.3} ms",
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
    );
    store.close().await;
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    run(
        "sqlite",
        store::connect(&url, &StoreOptions::default())
            .await
            .expect("sqlite"),
    )
    .await;

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
        run(
            "postgres",
            store::connect(url.as_str(), &StoreOptions::default())
                .await
                .expect("postgres"),
        )
        .await;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE \"{name}\" WITH (FORCE)"
            )))
            .await
            .expect("drop");
    }
}
