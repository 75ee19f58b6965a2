use rolegate::store::{Backend, migration_list};
use uuid::Uuid;

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

/// 0010 rebuilds `api_tokens` on SQLite (a CHECK constraint cannot be altered there): a
/// database upgraded from 0008 keeps every token, who minted whom, and each SCIM token's error
/// log (which the old table's drop would have cascaded into), and then stores service tokens.
#[tokio::test]
async fn sqlite_upgrade_to_service_tokens_keeps_tokens_and_their_error_logs() {
    use rolegate::domain::token::{self, TokenKind};
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    let dir = tempfile::tempdir().expect("dir");
    let before = dir.path().join("migrations");
    std::fs::create_dir(&before).expect("mkdir");
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&all).expect("migrations") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        if *name < *"0009" {
            std::fs::copy(all.join(name.as_ref()), before.join(name.as_ref())).expect("copy");
        }
    }
    let path = dir.path().join("old.db");
    let url = format!("sqlite://{}", path.display());
    let options = url
        .parse::<SqliteConnectOptions>()
        .expect("url")
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("open");
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .expect("migrator")
        .run(&pool)
        .await
        .expect("migrate to 0008");

    let (org, admin, scim) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let at = "2026-01-01T00:00:00+00:00";
    let scim_secret = "rg_scim_upgraded";
    sqlx::query(
        "INSERT INTO orgs (id, tenant_id, parent_id, name, created_at, updated_at) \
         VALUES ($1, $1, NULL, 'Acme', $2, $2)",
    )
    .bind(org)
    .bind(at)
    .execute(&pool)
    .await
    .expect("org");
    for (id, kind, secret, by) in [
        (admin, "admin", "rg_admin_upgraded", None),
        (scim, "scim", scim_secret, Some(admin)),
    ] {
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, org_id, kind, name, secret_hash, \
             secret_hint, created_at, created_by_token_id) \
             VALUES ($1, $2, $2, $3, 'old', $4, 'rg_…', $5, $6)",
        )
        .bind(id)
        .bind(org)
        .bind(kind)
        .bind(token::hash_secret(secret).to_vec())
        .bind(at)
        .bind(by)
        .execute(&pool)
        .await
        .expect("token");
    }
    sqlx::query(
        "INSERT INTO scim_request_errors (id, tenant_id, token_id, method, target, status, \
         detail, created_at) VALUES ($1, $2, $3, 'POST', '/Users', 409, 'taken', $4)",
    )
    .bind(Uuid::now_v7())
    .bind(org)
    .bind(scim)
    .bind(at)
    .execute(&pool)
    .await
    .expect("error row");
    pool.close().await;

    let store = rolegate::store::connect(&url, &Default::default())
        .await
        .expect("upgrade");
    let found = store
        .token_by_hash(&token::hash_secret(scim_secret))
        .await
        .expect("lookup")
        .expect("the SCIM token survives");
    assert_eq!(found.token.created_by_token_id, Some(admin));
    let errors = store.list_scim_errors(org, scim, 10).await.expect("errors");
    assert_eq!(errors.len(), 1, "the token's error log survives");
    assert_eq!(
        store.list_tokens(org, Some(org)).await.expect("list").len(),
        2
    );
    let (service, secret) = rolegate::auth::issue_token(
        store.as_ref(),
        &rolegate::store::Ctx::new(rolegate::domain::audit::Actor::Cli),
        org,
        rolegate::auth::TokenRequest {
            org_id: org,
            kind: TokenKind::Service,
            name: None,
            expires_in_days: None,
        },
        rolegate::auth::Minter::Operator,
    )
    .await
    .expect("a service token is stored");
    assert_eq!(service.kind, TokenKind::Service);
    assert!(secret.starts_with("rg_service_"));
    // No reference dangles after the rebuild, and a token's deletion still cascades into its
    // error log (the references name the new table).
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            url.parse::<SqliteConnectOptions>()
                .expect("url")
                .foreign_keys(true),
        )
        .await
        .expect("open");
    let dangling = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&pool)
        .await
        .expect("check");
    assert!(
        dangling.is_empty(),
        "{} dangling references",
        dangling.len()
    );
    sqlx::query("DELETE FROM api_tokens WHERE id = $1")
        .bind(scim)
        .execute(&pool)
        .await
        .expect("delete");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scim_request_errors")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(left, 0);
    pool.close().await;
}
