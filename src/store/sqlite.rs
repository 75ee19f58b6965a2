//! SQLite specifics: the embedded default, one instance, one writer at a time.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::db::Pool;
use super::{StoreError, StoreOptions};

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

pub(super) async fn connect(url: &str, options: &StoreOptions) -> Result<Pool, StoreError> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        // Each pooled connection would see its own empty database, and nothing would survive a
        // restart: a service must not run on it.
        return Err(StoreError::Other(
            "in-memory SQLite is not supported; use a file".into(),
        ));
    }
    let connect_options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Other(format!("invalid SQLite URL: {e}")))?
        .create_if_missing(true)
        // WAL lets readers go on while one writer commits.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        // Another process holding the write lock (e.g. `rolegate token create` next to a running
        // server) is waited for, not reported as SQLITE_BUSY.
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(connect_options)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    if options.migrate {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
    }
    Ok(Pool::Sqlite(pool))
}
