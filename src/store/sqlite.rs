//! SQLite specifics: the embedded default, one instance, one writer at a time.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::SqliteConnection;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::db::Pool;
use super::{Opened, StoreError, StoreOptions};

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Virtual-machine steps between two looks at the clock: a statement that finishes sooner
/// never calls the handler, and one that runs on is stopped within microseconds of its deadline.
const STEPS_BETWEEN_CHECKS: i32 = 4096;

/// Arms the connection's deadline: statements it runs from now on are interrupted
/// (`SQLITE_INTERRUPT`) once `limit` has passed.
///
/// SQLite has no per-statement timeout, and the progress handler does not say which statement
/// is running, so the deadline counts from the moment the connection leaves the pool. A
/// checkout serves one request (a read handle or one write transaction) and no request may
/// outlive the request timeout, so a statement still running past it belongs to a request that
/// was already answered `408`.
async fn arm_deadline(conn: &mut SqliteConnection, limit: Duration) -> Result<(), sqlx::Error> {
    let deadline = Instant::now() + limit;
    conn.lock_handle()
        .await?
        .set_progress_handler(STEPS_BETWEEN_CHECKS, move || Instant::now() < deadline);
    Ok(())
}

pub(super) async fn connect(url: &str, options: &StoreOptions) -> Result<Opened, StoreError> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        // Each pooled connection would see its own empty database, and nothing would survive a
        // restart: a service must not run on it.
        return Err(StoreError::Other(
            "in-memory SQLite is not supported; use a file".into(),
        ));
    }
    let connect_options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Other(format!("invalid SQLite URL: {e}")))?
        .create_if_missing(options.create)
        // WAL lets readers go on while one writer commits.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        // Another process holding the write lock (e.g. `rolegate token create` next to a running
        // server) is waited for, not reported as SQLITE_BUSY.
        .busy_timeout(Duration::from_secs(30));
    let path = connect_options.get_filename().to_owned();
    check_path(&path, options.create)?;
    let cannot_open = |e: sqlx::Error| {
        StoreError::Unavailable(format!("cannot open {}: {e}", display_absolute(&path)))
    };
    let mut applied = Vec::new();
    if options.migrate {
        // On a connection of its own, without the statement deadline: a migration may take as
        // long as it takes.
        // (A one-connection pool rather than a bare connection: `Migrator::run` is generic
        // over `Acquire`, which a `&mut` connection satisfies too narrowly for a spawned task.)
        let migrator_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect_options.clone())
            .await
            .map_err(cannot_open)?;
        if !options.create && !has_schema(&migrator_pool).await? {
            migrator_pool.close().await;
            return Err(StoreError::Unavailable(format!(
                "{} holds no rolegate database; run `rolegate migrate` (or `rolegate serve`) \
                 with this database URL to create one",
                display_absolute(&path)
            )));
        }
        let migrated = run_migrations(&migrator_pool).await;
        migrator_pool.close().await;
        applied = migrated?;
    }
    let mut pool_options = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(Duration::from_secs(30))
        // A file cannot hang up: the ping sqlx sends before handing a connection out would be
        // one more trip to the connection's thread on every request.
        .test_before_acquire(false);
    if let Some(limit) = options.statement_timeout {
        pool_options = pool_options
            .after_connect(move |conn, _| Box::pin(arm_deadline(conn, limit)))
            .before_acquire(move |conn, _| {
                Box::pin(async move { arm_deadline(conn, limit).await.map(|()| true) })
            });
    }
    let pool = pool_options
        .connect_with(connect_options)
        .await
        .map_err(cannot_open)?;
    Ok(Opened {
        pool: Pool::Sqlite(pool),
        generic_plans: None,
        applied,
    })
}

/// Says which file is wrong, and why, before SQLite's own "unable to open database file" could.
fn check_path(path: &Path, create: bool) -> Result<(), StoreError> {
    if path.exists() {
        return Ok(());
    }
    if !create {
        return Err(StoreError::Unavailable(format!(
            "no database at {}: only `rolegate serve`, `rolegate migrate` and `rolegate org \
             create` create one; point --database-url (or ROLEGATE_DATABASE_URL) at the \
             service's database",
            display_absolute(path)
        )));
    }
    match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(StoreError::Unavailable(format!(
            "cannot create the database {}: the directory {} does not exist",
            display_absolute(path),
            display_absolute(dir)
        ))),
        _ => Ok(()),
    }
}

/// A relative path is shown as the absolute one it named, so "no database at rolegate.db"
/// also tells the operator which directory the command ran in.
fn display_absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// Applies what is pending and names what it applied.
async fn run_migrations(pool: &sqlx::SqlitePool) -> Result<Vec<(i64, String)>, StoreError> {
    let before: Vec<i64> = if has_schema(pool).await? {
        sqlx::query_scalar(super::APPLIED_MIGRATIONS)
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    MIGRATOR.run(pool).await.map_err(super::migration_failed)?;
    Ok(super::newly_applied(&MIGRATOR, &before))
}

async fn has_schema(pool: &sqlx::SqlitePool) -> Result<bool, StoreError> {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await?;
    Ok(found > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::{Db, assert_slow_statements_stop_at_the_deadline};

    /// Counts to fifty million: seconds of work, far past the test's deadline.
    const SLOW: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                        WHERE x < 50000000) SELECT COUNT(*) FROM c";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_past_its_deadline_is_stopped_and_the_pool_serves_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let options = StoreOptions {
            max_connections: 2,
            migrate: true,
            statement_timeout: Some(Duration::from_millis(200)),
            create: true,
        };
        let opened = connect(&url, &options).await.expect("connects");
        let db = Db::new(opened.pool, opened.generic_plans);
        assert_slow_statements_stop_at_the_deadline(&db, SLOW).await;
    }
}
