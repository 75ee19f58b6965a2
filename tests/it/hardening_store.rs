//! Store and team-model hardening (issue 8, the LOW items): invitation acceptance under the
//! Owner rule, invitation limits, statement deadlines, database text kept from clients, two
//! races under real concurrency, tenant scoping of every statement, and unknown permission
//! groups — on both backends, through the real router where a client can see the behaviour.

use std::time::Duration;

use rolegate::domain::audit::Actor;
use rolegate::store::{Ctx, StoreOptions};

use crate::common::{Backend, TestDb};

/// The statement deadline is for requests: migrations run without it, however short it is.
async fn a_tiny_statement_deadline_never_cuts_off_migrations(backend: Backend) {
    // Empty on both backends (`TestDb::new` clones an already migrated PostgreSQL template).
    let db = match backend {
        Backend::Sqlite => TestDb::new(backend).await,
        Backend::Postgres => TestDb::empty_postgres().await,
    };
    let options = StoreOptions {
        max_connections: 2,
        migrate: true,
        statement_timeout: Some(Duration::from_millis(1)),
    };
    let store = rolegate::store::connect(&db.url, &options)
        .await
        .expect("a fresh database migrates under a 1 ms statement deadline");
    store.close().await;
    // The schema is all there: a store without the deadline writes to it.
    let store = db.store().await;
    store
        .create_org(&Ctx::new(Actor::Cli), "Acme", "owner@acme.test")
        .await
        .expect("migrated schema");
}

crate::on_both_backends!(a_tiny_statement_deadline_never_cuts_off_migrations);
