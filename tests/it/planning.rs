//! PostgreSQL plans the provisioning hot path — a SCIM create and the `userName eq` lookup
//! before it — once per connection, but only once `users` is long enough for every plan it
//! makes to use the unique indexes. A plan made while the table is a few pages long walks
//! whichever index PostgreSQL happened to price first, for as long as the connection keeps it;
//! this checks none is kept: early on the hot path stays on connections that plan each run,
//! and after the table grows it moves to the ones that plan once, which walk only the unique
//! lookups' indexes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::common::db::postgres_enabled;
use crate::common::{Backend, TestApp};

/// Indexes of `users` a plan made on a table of a page or two may walk instead of the unique
/// lookups' (their first column is the tenant, or the SCIM org in `ORDER BY id` order).
const WRONG_INDEXES: [&str; 3] = ["users_external_id", "users_tenant_id", "users_scim_org"];
/// The unique lookups' indexes: userName in the tenant, e-mail in the tenant.
const RIGHT_INDEXES: [&str; 2] = ["users_tenant_id_user_name_norm_key", "users_email"];

/// Okta's create: look the userName up, then POST it.
async fn provision(app: &TestApp, prefix: &str, n: usize) {
    for i in 0..n {
        let user_name = format!("{prefix}{i}@acme.test");
        let lookup = app
            .scim(
                Method::GET,
                &format!("/Users?filter=userName%20eq%20%22{user_name}%22"),
                None,
            )
            .await;
        assert_eq!(lookup.status, StatusCode::OK, "{}", lookup.text);
        assert_eq!(lookup.body["totalResults"], 0);
        let created = app
            .scim(
                Method::POST,
                "/Users",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": user_name,
                    "emails": [{"value": user_name, "primary": true}],
                    "active": true,
                })),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
}

/// Index scans of `users` by index, once every backend has reported its own: an idle
/// backend may keep its counts for seconds, one that exits reports them first, so this reads
/// after the service's pools are closed, until the counts hold still.
async fn index_scans(admin: &mut PgConnection) -> BTreeMap<String, i64> {
    let read = async |admin: &mut PgConnection| -> BTreeMap<String, i64> {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT indexrelname::text, idx_scan FROM pg_stat_user_indexes \
             WHERE relname = 'users'",
        )
        .fetch_all(admin)
        .await
        .expect("index statistics")
        .into_iter()
        .collect()
    };
    let started = Instant::now();
    let mut last = read(admin).await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = read(admin).await;
        if now == last && planned_once_connections(admin).await == 0 {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "index statistics keep moving"
        );
        last = now;
    }
}

async fn planned_once_connections(admin: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(rolegate::store::GENERIC_PLANS_APPLICATION_NAME)
    .fetch_one(admin)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_path_is_planned_once_only_on_a_table_long_enough_to_plan_it_right() {
    if !postgres_enabled() {
        return;
    }
    let app = TestApp::new(Backend::Postgres).await;
    let mut admin = PgConnection::connect(app.database_url())
        .await
        .expect("admin connection");

    // A table of a page or two: each run is planned with its parameters.
    const EARLY: i64 = 10;
    provision(&app, "early", EARLY as usize).await;
    assert_eq!(
        planned_once_connections(&mut admin).await,
        0,
        "no plan is kept from a table this short"
    );

    // Past the threshold (about 30 users a page), without the service.
    app.raw_execute(&format!(
        "INSERT INTO users (id, tenant_id, user_name, user_name_norm, email, email_norm, source, \
         created_at, updated_at) SELECT gen_random_uuid(), '{org}', 'grown' || i || '@acme.test', \
         'grown' || i || '@acme.test', 'grown' || i || '@acme.test', 'grown' || i || '@acme.test', \
         'manual', now(), now() FROM generate_series(1, 2500) AS i",
        org = app.org_id
    ))
    .await
    .expect("grow users");
    // The service looks at the table's length at most once a second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    const LATE: i64 = 100;
    provision(&app, "late", LATE as usize).await;
    assert!(
        planned_once_connections(&mut admin).await > 0,
        "the hot path moved to the connections that plan it once"
    );

    app.store.close().await;
    let scans = index_scans(&mut admin).await;
    let walked = |name: &str| scans.get(name).copied().unwrap_or(0);
    for index in RIGHT_INDEXES {
        assert!(
            walked(index) >= LATE,
            "{index} walked {} times for {LATE} creates after the table grew: {scans:?}",
            walked(index)
        );
    }
    // Runs planned with their parameters on the short table may walk them (about three per
    // early create); a kept plan would walk them on every late one.
    let wrong: i64 = WRONG_INDEXES.iter().map(|index| walked(index)).sum();
    assert!(
        wrong < 3 * EARLY + LATE / 2,
        "the tenant-wide indexes were walked {wrong} times: {scans:?}"
    );
}
