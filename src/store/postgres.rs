//! PostgreSQL specifics: the production store, shared by any number of stateless instances.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use super::db::Pool;
use super::{StoreError, StoreOptions};

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

pub(super) async fn connect(url: &str, options: &StoreOptions) -> Result<Pool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
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
