//! Concurrent writers: none fails (no SQLITE_BUSY), none is lost.

use std::collections::HashSet;
use std::sync::Arc;

use rolegate::domain::Source;
use rolegate::domain::audit::Actor;
use rolegate::domain::group::{GroupMember, MemberKind};
use rolegate::domain::token::{self, TokenKind};
use rolegate::store::{AuditQuery, Ctx, NewGroup, NewToken, Store};
use tokio::task::JoinSet;

use crate::common::{Backend, TestDb};

const WRITERS: usize = 50;

fn ctx() -> Ctx {
    Ctx::new(Actor::Cli)
}

/// 50 writers at once, each a mix of writes (a user via add_owner, a token, a group membership),
/// all succeed and all land.
async fn fifty_concurrent_writers_all_succeed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let (org, _) = store
        .create_org(&ctx(), "Acme", "owner@acme.test")
        .await
        .expect("org");
    let group = store
        .create_group(
            &ctx(),
            org.id,
            NewGroup {
                display_name: "Everyone".into(),
                external_id: None,
                source: Source::Scim,
            },
        )
        .await
        .expect("group");
    let mut tasks = JoinSet::new();
    for i in 0..WRITERS {
        let store = store.clone();
        tasks.spawn(async move {
            let user = store
                .add_owner(&ctx(), org.id, org.id, &format!("user{i}@acme.test"))
                .await?;
            let minted = token::mint(
                TokenKind::Scim,
                [u8::try_from(i).expect("small"); token::SECRET_BYTES],
            );
            let new =
                NewToken::from_minted(org.id, TokenKind::Scim, format!("t{i}"), &minted, None);
            store.create_token(&ctx(), org.id, new).await?;
            store
                .add_group_members(
                    &ctx(),
                    org.id,
                    group.id,
                    &[GroupMember {
                        id: user.id,
                        kind: MemberKind::User,
                    }],
                )
                .await?;
            Ok::<_, rolegate::store::StoreError>(user.id)
        });
    }
    let mut users = HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        let user = joined
            .expect("task")
            .unwrap_or_else(|e| panic!("a concurrent writer failed: {e}"));
        users.insert(user);
    }
    assert_eq!(users.len(), WRITERS);
    let members: HashSet<_> = store
        .list_group_members(org.id, group.id)
        .await
        .expect("members")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(members, users, "no member lost or doubled");
    assert_eq!(
        store.list_tokens(org.id, None).await.expect("tokens").len(),
        WRITERS
    );
    let audit = store
        .list_audit(
            org.id,
            &AuditQuery {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .expect("audit");
    // create_org: 3, group: 1, per writer: user.create + set_role + token + add_members.
    assert_eq!(audit.len(), 3 + 1 + WRITERS * 4);
}

crate::on_both_backends!(fifty_concurrent_writers_all_succeed);

/// Two stores on one SQLite file, as when `rolegate token create` runs next to a live server:
/// the in-process writer queue cannot help across pools, `BEGIN IMMEDIATE` + the busy timeout
/// must.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sqlite_pools_on_one_file_do_not_report_busy() {
    let db = TestDb::new(Backend::Sqlite).await;
    let first = db.store().await;
    let second = db.store().await;
    let (org, _) = first
        .create_org(&ctx(), "Acme", "owner@acme.test")
        .await
        .expect("org");
    let mut tasks = JoinSet::new();
    for i in 0..WRITERS {
        let store: Arc<dyn Store> = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.spawn(async move {
            store
                .add_owner(&ctx(), org.id, org.id, &format!("u{i}@acme.test"))
                .await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined
            .expect("task")
            .unwrap_or_else(|e| panic!("writer failed: {e}"));
    }
    assert_eq!(
        first
            .list_members(org.id, org.id, &crate::store::all_members())
            .await
            .expect("members")
            .len(),
        WRITERS + 1
    );
}
