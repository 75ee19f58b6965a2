//! PostgreSQL specifics: the production store, shared by any number of stateless instances.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use super::db::Pool;
use super::{Opened, StoreError, StoreOptions};

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

pub(super) async fn connect(url: &str, options: &StoreOptions) -> Result<Opened, StoreError> {
    let connect_options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?
        // Statements are prepared once per connection, and after five runs PostgreSQL may keep
        // a generic plan made while a table was small: a sequential scan (or a walk of the
        // wrong index) that never goes away as provisioning fills `users`. Planning each run
        // with its parameters keeps the index lookups. Measured (2026-12-04): generic plans
        // halve the server's work on a SCIM create, but runs split in two — in some, a plan made
        // early kept a fraction of the requests 10× slower to the end — and a 500-member insert
        // ran 3–10× slower; bounding their age (`DISCARD PLANS`) did not remove the split.
        // The exception is the provisioning hot path, on connections of its own and only once
        // `users` is long enough for any plan of it to be the right one (`db::GenericPlans`).
        .options([("plan_cache_mode", "force_custom_plan")]);
    probe(&connect_options).await?;
    let mut applied = Vec::new();
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
        if !options.create && !has_schema(&migrator_pool).await? {
            migrator_pool.close().await;
            return Err(StoreError::Unavailable(format!(
                "database \"{}\" at {} holds no rolegate schema; run `rolegate migrate` (or \
                 `rolegate serve`) with this database URL first",
                connect_options.get_database().unwrap_or("postgres"),
                server(&connect_options)
            )));
        }
        let migrated = run_migrations(&migrator_pool).await;
        migrator_pool.close().await;
        applied = migrated?;
    }
    let pool_connect_options = match options.statement_timeout {
        // Set at connection start, so it holds for every statement of every checkout: the
        // server itself stops a statement that outlives the request that sent it.
        Some(limit) => {
            connect_options.options([("statement_timeout", limit.as_millis().max(1).to_string())])
        }
        None => connect_options,
    };
    let generic_share = generic_plan_connections(options.max_connections);
    let pool = pool_options(options.max_connections.max(2) - generic_share)
        .connect_with(
            pool_connect_options
                .clone()
                .application_name(APPLICATION_NAME),
        )
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    // Opens its connections only once the hot statements are sent to it (`GenericPlans`).
    let generic_plans = (generic_share > 0).then(|| {
        pool_options(generic_share).connect_lazy_with(
            pool_connect_options
                .application_name(GENERIC_PLANS_APPLICATION_NAME)
                .options([("plan_cache_mode", "force_generic_plan")]),
        )
    });
    Ok(Opened {
        pool: Pool::Postgres(pool),
        generic_plans,
        applied,
    })
}

/// How the service's connections show in `pg_stat_activity`.
const APPLICATION_NAME: &str = "rolegate";
/// How the connections that plan the hot statements once show there.
pub const GENERIC_PLANS_APPLICATION_NAME: &str = "rolegate generic plans";

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings every connection it hands out: a round trip before each request's first
        // statement. One used a moment ago is alive; one idle a while may have been cut (a
        // server restart, a proxy's idle timeout), and is pinged as before.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// The share of the configured connections kept for statements planned once
/// ([`super::db::GenericPlans`]): a third, none below four in all. When they are all busy,
/// those statements take the main pool's, so the share bounds nothing but the reuse of plans.
fn generic_plan_connections(max_connections: u32) -> u32 {
    if max_connections >= 4 {
        max_connections / 3
    } else {
        0
    }
}

/// A pooled connection idle at least this long is pinged before it is handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// How long the first connection may take before the server counts as not answering.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens one connection before any pool does, because a pool that cannot connect only says
/// "pool timed out" after its acquire timeout; the first connection's own error says what to
/// do (create the database, start the server, fix the port or the password).
async fn probe(options: &PgConnectOptions) -> Result<(), StoreError> {
    let attempt = tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect_with(options)).await;
    match attempt {
        Ok(Ok(conn)) => {
            // Closing politely only saves the server a log line; a failure here changes nothing.
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(StoreError::Unavailable(explain_connect_error(options, &e))),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer from PostgreSQL at {} within {} s",
            server(options),
            PROBE_TIMEOUT.as_secs()
        ))),
    }
}

fn server(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// The operator's next step for the usual ways a first connection fails. sqlx's errors never
/// include the URL, so no password can leak through the fallback.
fn explain_connect_error(options: &PgConnectOptions, e: &sqlx::Error) -> String {
    let at = server(options);
    let database = options.get_database().unwrap_or(options.get_username());
    let user = options.get_username();
    match e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("3D000") => format!(
                "database \"{database}\" does not exist at {at}; create it: createdb -h {} -p {} \
                 -U {user} {database}",
                options.get_host(),
                options.get_port()
            ),
            Some("28P01") | Some("28000") => format!(
                "PostgreSQL at {at} refused user \"{user}\": {}",
                db.message()
            ),
            _ => format!("cannot connect to PostgreSQL at {at}: {}", db.message()),
        },
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused at {at}: is PostgreSQL running there, on that port?")
        }
        other => format!("cannot connect to PostgreSQL at {at}: {other}"),
    }
}

/// Applies what is pending and names what it applied.
async fn run_migrations(pool: &sqlx::PgPool) -> Result<Vec<(i64, String)>, StoreError> {
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

async fn has_schema(pool: &sqlx::PgPool) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::{Db, assert_slow_statements_stop_at_the_deadline};

    /// `DATABASE_URL` when it names a PostgreSQL server (as the integration tests do).
    fn postgres_url() -> Option<String> {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"));
        if url.is_none() {
            eprintln!("DATABASE_URL not set: PostgreSQL variant not run");
        }
        url
    }

    /// Runs when `DATABASE_URL` names a PostgreSQL server (as the integration tests do). Needs
    /// no schema: it only sleeps and selects.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_past_its_deadline_is_stopped_and_the_pool_serves_on() {
        let Some(url) = postgres_url() else {
            return;
        };
        let options = StoreOptions {
            max_connections: 2,
            migrate: false,
            statement_timeout: Some(Duration::from_millis(200)),
            create: true,
        };
        let opened = connect(&url, &options).await.expect("connects");
        let db = Db::new(opened.pool, opened.generic_plans);
        assert_slow_statements_stop_at_the_deadline(&db, "SELECT pg_sleep(5)").await;
    }

    /// The SCIM hot path takes a connection that plans once only when `users` is long enough
    /// and one is free; when all of those are busy it takes one of the others at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_hot_path_plans_once_when_it_may_and_never_waits_for_it() {
        let Some(url) = postgres_url() else {
            return;
        };
        let options = StoreOptions {
            max_connections: 4,
            migrate: false,
            statement_timeout: None,
            create: true,
        };
        let opened = connect(&url, &options).await.expect("connects");
        let db = Db::new(opened.pool, opened.generic_plans);
        let Pool::Postgres(main) = &db.pool else {
            panic!("a PostgreSQL URL opens a PostgreSQL pool");
        };
        let planning = async |conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>| -> String {
            sqlx::query_scalar("SELECT current_setting('plan_cache_mode')")
                .fetch_one(&mut **conn)
                .await
                .expect("setting")
        };
        let hot = || tokio::time::timeout(Duration::from_secs(2), db.postgres_planned_once(main));

        // No `users` table here: never measured long enough.
        let mut short = hot().await.expect("no wait").expect("connection");
        assert_eq!(planning(&mut short).await, "force_custom_plan");
        drop(short);

        db.generic_plans
            .as_ref()
            .expect("a share from four connections up")
            .assume_long_enough();
        let mut planned_once = hot().await.expect("no wait").expect("connection");
        assert_eq!(planning(&mut planned_once).await, "force_generic_plan");
        // The share of four is one connection, and it is taken.
        let mut busy = hot().await.expect("no wait").expect("connection");
        assert_eq!(planning(&mut busy).await, "force_custom_plan");
        drop((planned_once, busy));
        db.close().await;
    }

    /// The pool no longer pings every connection it hands out: one cut while idle a while is
    /// found before use and replaced unseen; one cut a moment after use costs one failed
    /// statement at most, and the pool serves on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_pool_connection_is_replaced() {
        let Some(url) = postgres_url() else {
            return;
        };
        let options = StoreOptions {
            max_connections: 2,
            migrate: false,
            statement_timeout: None,
            create: true,
        };
        let Pool::Postgres(pool) = connect(&url, &options).await.expect("connects").pool else {
            panic!("a PostgreSQL URL opens a PostgreSQL pool");
        };
        let mut admin = PgConnection::connect(&url).await.expect("admin connection");
        let backend = || sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()").fetch_one(&pool);
        let mut cut = async |pid: i32| {
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .execute(&mut admin)
                .await
                .expect("terminate");
            let started = std::time::Instant::now();
            while sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
            )
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .expect("pg_stat_activity")
                > 0
            {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "backend {pid} lingers"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };

        let first = backend().await.expect("serves");
        cut(first).await;
        tokio::time::sleep(PING_WHEN_IDLE_FOR + Duration::from_millis(200)).await;
        let second = backend()
            .await
            .expect("a connection idle past the ping age is checked first");
        assert_ne!(second, first);

        // Cut right after use: this statement may fail (nothing checks the connection first),
        // the next one must be served by a new connection.
        cut(second).await;
        let _may_fail = backend().await;
        let third = backend()
            .await
            .expect("the pool serves on after one failure at most");
        assert_ne!(third, second);
        pool.close().await;
    }
}
