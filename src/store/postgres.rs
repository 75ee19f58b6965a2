//! PostgreSQL specifics: the production store, shared by any number of stateless instances.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::db::Pool;
use super::{StoreError, StoreOptions};

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

pub(super) async fn connect(url: &str, options: &StoreOptions) -> Result<Pool, StoreError> {
    let connect_options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?
        // Statements are prepared once per connection, and after five runs PostgreSQL may keep
        // a generic plan made while a table was small: a sequential scan that never goes away
        // as provisioning fills `users`. Planning each run with its parameters keeps the index
        // lookups (a few tens of microseconds a statement).
        .options([("plan_cache_mode", "force_custom_plan")]);
    if options.migrate {
        // On a connection of its own, without the statement deadline: a migration may take as
        // long as it takes. sqlx's migrator holds a PostgreSQL advisory lock while it runs, so
        // instances started together apply each migration once and the others wait, then find
        // nothing to do.
        // (A one-connection pool rather than a bare connection: `Migrator::run` is generic
        // over `Acquire`, which a `&mut` connection satisfies too narrowly for a spawned task.)
        let migrator_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect_options.clone())
            .await
            // sqlx's connect errors do not include the URL, so the password cannot leak here.
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let migrated = MIGRATOR.run(&migrator_pool).await;
        migrator_pool.close().await;
        migrated.map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
    }
    let pool_connect_options = match options.statement_timeout {
        // Set at connection start, so it holds for every statement of every checkout: the
        // server itself stops a statement that outlives the request that sent it.
        Some(limit) => {
            connect_options.options([("statement_timeout", limit.as_millis().max(1).to_string())])
        }
        None => connect_options,
    };
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(pool_connect_options)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok(Pool::Postgres(pool))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::{Db, assert_slow_statements_stop_at_the_deadline};

    /// Runs when `DATABASE_URL` names a PostgreSQL server (as the integration tests do). Needs
    /// no schema: it only sleeps and selects.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_past_its_deadline_is_stopped_and_the_pool_serves_on() {
        let Some(url) = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))
        else {
            eprintln!("DATABASE_URL not set: PostgreSQL variant not run");
            return;
        };
        let options = StoreOptions {
            max_connections: 2,
            migrate: false,
            statement_timeout: Some(Duration::from_millis(200)),
        };
        let db = Db::new(connect(&url, &options).await.expect("connects"));
        assert_slow_statements_stop_at_the_deadline(&db, "SELECT pg_sleep(5)").await;
    }
}
