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
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(connect_options)
        .await
        // sqlx's connect errors do not include the URL, so the password cannot leak from here.
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    if options.migrate {
        // sqlx's migrator holds a PostgreSQL advisory lock while it runs, so instances started
        // together apply each migration once and the others wait, then find nothing to do.
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
    }
    Ok(Pool::Postgres(pool))
}
