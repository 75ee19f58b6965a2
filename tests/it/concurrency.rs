//! Concurrent writers: none fails (no SQLITE_BUSY), none is lost.

use std::collections::HashSet;
use std::sync::Arc;

use rolegate::domain::audit::Actor;
use rolegate::domain::provisioning::ScimScope;
use rolegate::domain::token::{self, TokenKind};
use rolegate::scim_proto::schema::Schemas;
use rolegate::store::{
    AuditQuery, Ctx, MemberRef, MembershipChange, NewToken, ScimGroupWrite, Store,
};
use tokio::task::JoinSet;

use crate::common::{Backend, TestDb};

const WRITERS: usize = 50;

fn ctx() -> Ctx {
    Ctx::new(Actor::Cli)
}

/// 50 writers at once, each a mix of writes (an Owner via add_owner, a SCIM user, a token, a
/// group membership), all succeed and all land.
async fn fifty_concurrent_writers_all_succeed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let (org, _) = store
        .create_org(&ctx(), "Acme", "owner@acme.test")
        .await
        .expect("org");
    let scope = ScimScope {
        tenant_id: org.id,
        org_id: org.id,
    };
    let group = store
        .scim_create_group(
            &ctx(),
            scope,
            &ScimGroupWrite {
                display_name: "Everyone".into(),
                external_id: None,
            },
            &[],
        )
        .await
        .expect("group");
    let mut tasks = JoinSet::new();
    for i in 0..WRITERS {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .add_owner(&ctx(), org.id, org.id, &format!("owner{i}@acme.test"))
                .await?;
            let input = rolegate::scim_proto::resource::user_input(
                &Schemas::default(),
                &serde_json::json!({
                    "userName": format!("user{i}@acme.test")
                }),
            )
            .expect("valid user");
            let user = store.scim_create_user(&ctx(), scope, &input).await?;
            let minted = token::mint(
                TokenKind::Scim,
                [u8::try_from(i).expect("small"); token::SECRET_BYTES],
            );
            let new =
                NewToken::from_minted(org.id, TokenKind::Scim, format!("t{i}"), &minted, None);
            store.create_token(&ctx(), org.id, new).await?;
            store
                .scim_update_group(
                    &ctx(),
                    scope,
                    group.id,
                    None,
                    None,
                    &[MembershipChange::Add(vec![MemberRef {
                        id: user.id,
                        kind: None,
                    }])],
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
        .scim_group_members(scope, &[group.id])
        .await
        .expect("members")
        .into_iter()
        .map(|(_, m)| m.id)
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
    // create_org: 3, group: 1, per writer: owner user.create + set_role, SCIM user, token,
    // group update.
    assert_eq!(audit.len(), 3 + 1 + WRITERS * 5);
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
