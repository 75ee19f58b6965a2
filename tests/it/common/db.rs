use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rolegate::store::{self, Store, StoreOptions};
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgConnection};
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Whether the PostgreSQL variants run. Under `CI=true` a missing `DATABASE_URL` is an error,
/// never a silent skip.
pub fn postgres_enabled() -> bool {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => true,
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but DATABASE_URL does not point at PostgreSQL"
            );
            eprintln!("DATABASE_URL not set: PostgreSQL variant not run");
            false
        }
    }
}

/// A database of its own for one test; removed when dropped.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

const PREFIX: &str = "rolegate_t_";

fn pg_server_url() -> String {
    std::env::var("DATABASE_URL").expect("DATABASE_URL")
}

fn with_database(server: &str, name: &str) -> String {
    let mut url = Url::parse(server).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A name that changes whenever a PostgreSQL migration changes, so a stale template is never
/// cloned.
fn template_name() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("migrations dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    for f in files {
        hasher.update(f.file_name().expect("name").as_encoded_bytes());
        hasher.update(std::fs::read(&f).expect("migration file"));
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("rolegate_tpl_{hex}")
}

/// The migrated template for this checkout's migrations, built once. Its name carries the
/// migrations' hash and when it was made; other checkouts (another branch, an older commit)
/// may be testing against the same server at the same time with their own template, so only
/// templates older than a day are dropped, never the one another run is cloning right now.
async fn ensure_template(admin: &mut PgConnection) -> String {
    let prefix = template_name();
    // Test processes run in parallel (nextest runs one per test): one builds, the rest wait.
    admin
        .execute("SELECT pg_advisory_lock(727274)")
        .await
        .expect("lock");
    let templates: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'rolegate\\_tpl\\_%'")
            .fetch_all(&mut *admin)
            .await
            .expect("list templates");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut current = None;
    for (name,) in templates {
        let made = name.rsplit('_').next().and_then(|t| t.parse::<u64>().ok());
        if name.starts_with(&format!("{prefix}_")) && made.is_some() {
            current = Some(name);
        } else if made.is_none_or(|t| now.saturating_sub(t) > 24 * 3600) {
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await
                .expect("drop old template");
        }
    }
    let name = match current {
        Some(name) => name,
        None => {
            let name = format!("{prefix}_{now}");
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .await
                .expect("create template");
            store::migrate(&with_database(&pg_server_url(), &name))
                .await
                .expect("migrate template");
            name
        }
    };
    admin
        .execute("SELECT pg_advisory_unlock(727274)")
        .await
        .expect("unlock");
    name
}

/// Drops databases of earlier runs that were not cleaned up (a killed run); CI's PostgreSQL
/// keeps its state between runs. Names carry their creation time.
async fn sweep_leftovers(admin: &mut PgConnection) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'rolegate\\_t\\_%'")
            .fetch_all(&mut *admin)
            .await
            .expect("list test databases");
    for (name,) in rows {
        let created = name
            .trim_start_matches(PREFIX)
            .split('_')
            .next()
            .and_then(|s| s.parse::<u64>().ok());
        if created.is_none_or(|t| now.saturating_sub(t) > 2 * 3600) {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await;
        }
    }
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("rolegate.db").display());
                TestDb {
                    backend,
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
            Backend::Postgres => Self::postgres(true).await,
        }
    }

    /// An empty PostgreSQL database with no migrations applied (for migration tests).
    pub async fn empty_postgres() -> TestDb {
        Self::postgres(false).await
    }

    /// A new PostgreSQL database: a clone of the migrated template, or empty.
    async fn postgres(migrated: bool) -> TestDb {
        let server = pg_server_url();
        let mut admin = PgConnection::connect(&server)
            .await
            .expect("PostgreSQL reachable at DATABASE_URL");
        let template = if migrated {
            let template = ensure_template(&mut admin).await;
            sweep_leftovers(&mut admin).await;
            format!(" TEMPLATE \"{template}\"")
        } else {
            String::new()
        };
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let name = format!(
            "{PREFIX}{secs}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE \"{name}\"{template}"
            )))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        TestDb {
            backend: Backend::Postgres,
            url: with_database(&server, &name),
            _dir: None,
            pg: Some((server, name)),
        }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        store::connect(&self.url, &StoreOptions::default())
            .await
            .expect("store connects")
    }

    /// Raw SQL against the test database, bypassing the store (to prove what the store forbids).
    pub async fn raw_execute(&self, statement: &str) -> Result<u64, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(statement.to_owned());
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await?;
                Ok(sqlx::query(sql).execute(&mut c).await?.rows_affected())
            }
            Backend::Postgres => {
                let mut c = PgConnection::connect(&self.url).await?;
                Ok(sqlx::query(sql).execute(&mut c).await?.rows_affected())
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime; a thread of its own may block on its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&server).await {
                    let _ = admin
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}
