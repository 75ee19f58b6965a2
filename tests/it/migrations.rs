use rolegate::store::{Backend, migration_list};

use crate::common::TestDb;

#[test]
fn sqlite_and_postgres_migrations_are_in_lockstep() {
    let sqlite = migration_list(Backend::Sqlite);
    let postgres = migration_list(Backend::Postgres);
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite, postgres,
        "migrations/sqlite and migrations/postgres must list the same versions and names"
    );
    let files = |dir: &str| {
        let mut names: Vec<String> =
            std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
                .expect("dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
        names.sort();
        names
    };
    assert_eq!(files("migrations/sqlite"), files("migrations/postgres"));
}

/// Several instances starting at once on one PostgreSQL: every one comes up, the schema is
/// applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_on_one_postgres_migrate_once() {
    if !crate::common::db::postgres_enabled() {
        return;
    }
    let db = TestDb::empty_postgres().await;
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let url = db.url.clone();
        starts.spawn(async move {
            rolegate::store::connect(&url, &rolegate::store::StoreOptions::default())
                .await
                .map(|s| s.backend())
        });
    }
    while let Some(r) = starts.join_next().await {
        assert_eq!(
            r.expect("task").expect("instance starts"),
            Backend::Postgres
        );
    }
    let applied = db
        .raw_execute("SELECT version FROM _sqlx_migrations")
        .await
        .expect("migrations table");
    assert_eq!(applied as usize, migration_list(Backend::Postgres).len());
}

#[tokio::test]
async fn sqlite_file_is_created_on_first_start_and_memory_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("fresh.db");
    let url = format!("sqlite://{}", path.display());
    let store = rolegate::store::connect(&url, &Default::default())
        .await
        .expect("connect");
    store.ping().await.expect("ping");
    assert!(path.exists());
    assert!(
        rolegate::store::connect("sqlite::memory:", &Default::default())
            .await
            .is_err()
    );
}
