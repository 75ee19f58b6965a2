//! Every `Store` method, on both backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use rolegate::domain::Source;
use rolegate::domain::audit::Actor;
use rolegate::domain::group::{GroupMember, MemberKind};
use rolegate::domain::org::OrgRole;
use rolegate::domain::permission::{Module, ModuleLevel};
use rolegate::domain::provisioning::ScimScope;
use rolegate::domain::token::{self, TokenKind};
use rolegate::scim_proto::schema::Schemas;
use rolegate::store::{
    AuditQuery, Ctx, MemberQuery, MemberRef, MembershipChange, NewToken, OwnerRule, ScimGroupWrite,
    ScimHeld, Store, StoreError,
};
use uuid::Uuid;

use crate::common::{Backend, TestDb};

fn cli() -> Ctx {
    Ctx::new(Actor::Cli)
}

fn admin_ctx() -> Ctx {
    Ctx::new(Actor::AdminToken {
        id: Uuid::now_v7(),
        name: "ops".into(),
    })
    .with_request_id(Some("req-42".into()))
}

fn new_token(org_id: Uuid, kind: TokenKind, seed: u8) -> (NewToken, String) {
    let minted = token::mint(kind, [seed; token::SECRET_BYTES]);
    (
        NewToken::from_minted(org_id, kind, format!("t{seed}"), &minted, None),
        minted.secret,
    )
}

pub fn all_members() -> MemberQuery {
    MemberQuery {
        limit: 1000,
        ..Default::default()
    }
}

async fn setup(backend: Backend) -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    (db, store)
}

async fn reports_backend_pool_and_reachability(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let expected = match backend {
        Backend::Sqlite => rolegate::store::Backend::Sqlite,
        Backend::Postgres => rolegate::store::Backend::Postgres,
    };
    assert_eq!(store.backend(), expected);
    store.ping().await.expect("ping");
    let stats = store.pool_stats();
    assert_eq!(stats.max, 10);
    assert!(stats.open >= 1 && stats.idle <= stats.open);
    store.close().await;
    assert!(
        store.ping().await.is_err(),
        "a closed store must not answer"
    );
}

async fn create_org_makes_a_tenant_with_an_audited_owner(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let (org, owner) = store
        .create_org(&cli(), "Acme", "Boss@Acme.test")
        .await
        .expect("create");
    assert!(org.is_root());
    assert_eq!(org.tenant_id, org.id);
    assert_eq!(owner.tenant_id, org.id);
    assert_eq!(owner.user_name, "Boss@Acme.test");
    assert_eq!(owner.source, Source::Manual);
    let members = store
        .list_members(org.id, org.id, &all_members())
        .await
        .expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].effective.role, OrgRole::Owner);
    assert!(members[0].effective.direct);
    assert_eq!(members[0].user.id, owner.id);
    let events = store
        .list_audit(
            org.id,
            &AuditQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("audit");
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["membership.set_role", "user.create", "org.create"],
        "newest first"
    );
    assert!(
        events
            .iter()
            .all(|e| e.actor_kind == "cli" && e.tenant_id == org.id)
    );
    let created = events
        .iter()
        .find(|e| e.action == "org.create")
        .expect("org.create");
    assert_eq!(
        created.after.as_ref().and_then(|a| a["name"].as_str()),
        Some("Acme")
    );
}

async fn get_org_and_find_org_respect_tenants(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let (a, _) = store.create_org(&cli(), "A", "a@a.test").await.expect("a");
    let (b, _) = store.create_org(&cli(), "B", "b@b.test").await.expect("b");
    assert_eq!(store.get_org(a.id, a.id).await.expect("own org"), a);
    assert!(
        matches!(store.get_org(a.id, b.id).await, Err(StoreError::NotFound)),
        "other tenant's org is not found"
    );
    assert_eq!(store.find_org(b.id).await.expect("find"), b);
    assert!(matches!(
        store.find_org(Uuid::now_v7()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.list_members(a.id, b.id, &all_members()).await,
        Err(StoreError::NotFound)
    ));
}

async fn add_owner_reuses_the_person_and_audits_the_change(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let (org, first) = store
        .create_org(&cli(), "Acme", "Élodie@Exämple.test")
        .await
        .expect("org");
    // The same person, differently cased (non-ASCII letters too): no second user.
    let again = store
        .add_owner(&admin_ctx(), org.id, org.id, "élodie@EXÄMPLE.test")
        .await
        .expect("add");
    assert_eq!(again.id, first.id);
    let second = store
        .add_owner(&admin_ctx(), org.id, org.id, "second@acme.test")
        .await
        .expect("add new");
    assert_ne!(second.id, first.id);
    let members = store
        .list_members(org.id, org.id, &all_members())
        .await
        .expect("members");
    assert_eq!(members.len(), 2);
    assert!(
        members
            .iter()
            .all(|m| m.membership_role == Some(OrgRole::Owner))
    );
    let q = AuditQuery {
        action: Some("membership.set_role".into()),
        actor_kind: Some("admin_token".into()),
        limit: 10,
        ..Default::default()
    };
    let events = store.list_audit(org.id, &q).await.expect("audit");
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(
        |e| e.request_id.as_deref() == Some("req-42") && e.actor_name.as_deref() == Some("ops")
    ));
    // Adding to another tenant's org through this tenant is refused and leaves nothing behind.
    let (other, _) = store
        .create_org(&cli(), "Other", "o@o.test")
        .await
        .expect("other");
    assert!(matches!(
        store
            .add_owner(&admin_ctx(), org.id, other.id, "x@x.test")
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .find_user_by_email(org.id, "x@x.test")
            .await
            .expect("lookup")
            .is_none()
    );
}

async fn find_user_by_email_is_case_insensitive_and_tenant_scoped(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let (a, user) = store
        .create_org(&cli(), "A", "ÅSA@Example.test")
        .await
        .expect("a");
    let (b, _) = store
        .create_org(&cli(), "B", "other@example.test")
        .await
        .expect("b");
    let found = store
        .find_user_by_email(a.id, "  åsa@example.TEST ")
        .await
        .expect("lookup");
    assert_eq!(found.map(|u| u.id), Some(user.id));
    assert!(
        store
            .find_user_by_email(b.id, "åsa@example.test")
            .await
            .expect("lookup")
            .is_none()
    );
    assert!(
        store
            .find_user_by_email(a.id, "asa@example.test")
            .await
            .expect("lookup")
            .is_none()
    );
}

/// A SCIM user of `scope`'s org, as a create over SCIM would make it.
async fn scim_user(store: &Arc<dyn Store>, scope: ScimScope, user_name: &str) -> Uuid {
    let input = rolegate::scim_proto::resource::user_input(
        &Schemas::default(),
        &serde_json::json!({ "userName": user_name }),
    )
    .expect("valid user");
    store
        .scim_create_user(&cli(), scope, &input)
        .await
        .expect("user")
        .id
}

fn group_write(name: &str) -> ScimGroupWrite {
    ScimGroupWrite {
        display_name: name.into(),
        external_id: Some(format!("ext-{name}")),
    }
}

async fn member_ids(store: &Arc<dyn Store>, scope: ScimScope, group: Uuid) -> Vec<GroupMember> {
    let mut members: Vec<GroupMember> = store
        .scim_group_members(scope, &[group])
        .await
        .expect("members")
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    members.sort_by_key(|m| m.id);
    members
}

async fn group_membership_is_idempotent_exact_and_scoped(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let (org, _) = store
        .create_org(&cli(), "A", "a@a.test")
        .await
        .expect("org");
    let (other, _) = store
        .create_org(&cli(), "B", "b@b.test")
        .await
        .expect("other");
    let scope = ScimScope {
        tenant_id: org.id,
        org_id: org.id,
    };
    let theirs = ScimScope {
        tenant_id: other.id,
        org_id: other.id,
    };
    let user = scim_user(&store, scope, "ada@a.test").await;
    let stranger = scim_user(&store, theirs, "eve@b.test").await;
    let group = store
        .scim_create_group(&cli(), scope, &group_write("Engineering"), &[])
        .await
        .expect("group");
    assert_eq!(group.version, 1);
    let nested = store
        .scim_create_group(&cli(), scope, &group_write("Backend"), &[])
        .await
        .expect("nested");
    let add = |id: Uuid| MembershipChange::Add(vec![MemberRef { id, kind: None }]);
    let after = store
        .scim_update_group(
            &cli(),
            scope,
            group.id,
            None,
            None,
            &[add(user), add(nested.id)],
        )
        .await
        .expect("add");
    assert_eq!(after.version, 2);
    let again = store
        .scim_update_group(&cli(), scope, group.id, None, None, &[add(user)])
        .await
        .expect("re-add");
    assert_eq!(again.version, 2, "a retried add changes nothing");
    let mut expected = vec![
        GroupMember {
            id: user,
            kind: MemberKind::User,
        },
        GroupMember {
            id: nested.id,
            kind: MemberKind::Group,
        },
    ];
    expected.sort_by_key(|m| m.id);
    assert_eq!(member_ids(&store, scope, group.id).await, expected);
    // Another tenant's user is unknown here: refused, nothing added.
    match store
        .scim_update_group(&cli(), scope, group.id, None, None, &[add(stranger)])
        .await
    {
        Err(StoreError::UnknownIds(ids)) => assert_eq!(ids, vec![stranger]),
        other => panic!("expected UnknownIds, got {other:?}"),
    }
    assert_eq!(member_ids(&store, scope, group.id).await.len(), 2);
    // Another tenant cannot read or change this group.
    assert!(
        store
            .scim_group_members(theirs, &[group.id])
            .await
            .expect("none")
            .is_empty()
    );
    assert!(matches!(
        store
            .scim_update_group(
                &cli(),
                theirs,
                group.id,
                None,
                None,
                &[MembershipChange::RemoveAll]
            )
            .await,
        Err(StoreError::NotFound)
    ));
    let remove = MembershipChange::Remove(vec![user, Uuid::now_v7()]);
    store
        .scim_update_group(
            &cli(),
            scope,
            group.id,
            None,
            None,
            std::slice::from_ref(&remove),
        )
        .await
        .expect("remove");
    let unchanged = store
        .scim_update_group(&cli(), scope, group.id, None, None, &[remove])
        .await
        .expect("re-remove");
    assert_eq!(
        unchanged.version, 3,
        "removing absent members changes nothing"
    );
    assert_eq!(
        member_ids(&store, scope, group.id).await,
        vec![GroupMember {
            id: nested.id,
            kind: MemberKind::Group,
        }]
    );
    // A stale version is refused.
    assert!(matches!(
        store
            .scim_update_group(
                &cli(),
                scope,
                group.id,
                Some(1),
                Some(&group_write("X")),
                &[]
            )
            .await,
        Err(StoreError::Precondition)
    ));
}

async fn tokens_are_stored_hashed_listed_revoked_and_found(backend: Backend) {
    let (db, store) = setup(backend).await;
    let (org, _) = store
        .create_org(&cli(), "A", "a@a.test")
        .await
        .expect("org");
    let (other, _) = store
        .create_org(&cli(), "B", "b@b.test")
        .await
        .expect("other");
    let (new, secret) = new_token(org.id, TokenKind::Scim, 1);
    let hash = new.secret_hash;
    let created = store
        .create_token(&admin_ctx(), org.id, new)
        .await
        .expect("create");
    assert_eq!(created.kind, TokenKind::Scim);
    let found = store
        .token_by_hash(&hash)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.token, created);
    assert!(token::hashes_match(
        &found.secret_hash,
        &token::hash_secret(&secret)
    ));
    assert!(
        store
            .token_by_hash(&token::hash_secret("rg_scim_wrong"))
            .await
            .expect("lookup")
            .is_none()
    );
    // The secret is nowhere in the database, only its hash.
    let leaked = db
        .raw_execute(&format!(
            "UPDATE api_tokens SET name = name WHERE secret_hint LIKE '%{}%'",
            &secret[8..]
        ))
        .await
        .expect("query");
    assert_eq!(leaked, 0);
    let (second, _) = new_token(org.id, TokenKind::Admin, 2);
    store
        .create_token(&admin_ctx(), org.id, second)
        .await
        .expect("second");
    assert_eq!(
        store
            .list_tokens(org.id, Some(org.id))
            .await
            .expect("list")
            .len(),
        2
    );
    assert_eq!(
        store.list_tokens(org.id, None).await.expect("list").len(),
        2
    );
    assert!(
        store
            .list_tokens(other.id, None)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(store.find_token(created.id).await.expect("find"), created);
    // Creating a token for another tenant's org fails and leaves no trace in the audit log.
    let (foreign, _) = new_token(other.id, TokenKind::Scim, 3);
    let before = store
        .list_audit(
            org.id,
            &AuditQuery {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .expect("audit")
        .len();
    assert!(matches!(
        store.create_token(&admin_ctx(), org.id, foreign).await,
        Err(StoreError::NotFound)
    ));
    let after = store
        .list_audit(
            org.id,
            &AuditQuery {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .expect("audit")
        .len();
    assert_eq!(before, after);
    // Revocation: scoped, then idempotent.
    assert!(matches!(
        store.revoke_token(&admin_ctx(), other.id, created.id).await,
        Err(StoreError::NotFound)
    ));
    let revoked = store
        .revoke_token(&admin_ctx(), org.id, created.id)
        .await
        .expect("revoke");
    assert!(revoked.revoked_at.is_some());
    let again = store
        .revoke_token(&admin_ctx(), org.id, created.id)
        .await
        .expect("revoke again");
    assert_eq!(again.revoked_at, revoked.revoked_at);
    let revokes = store
        .list_audit(
            org.id,
            &AuditQuery {
                action: Some("token.revoke".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("audit");
    assert_eq!(revokes.len(), 1, "a retried revoke records nothing new");
}

async fn token_use_is_recorded_at_most_once_a_minute(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let (org, _) = store
        .create_org(&cli(), "A", "a@a.test")
        .await
        .expect("org");
    let (new, _) = new_token(org.id, TokenKind::Scim, 9);
    let t = store
        .create_token(&cli(), org.id, new)
        .await
        .expect("token");
    let t0 = rolegate::domain::now();
    store.touch_token(t.id, t0).await.expect("touch");
    assert_eq!(
        store.find_token(t.id).await.expect("find").last_used_at,
        Some(t0)
    );
    store
        .touch_token(t.id, t0 + Duration::seconds(30))
        .await
        .expect("touch");
    assert_eq!(
        store.find_token(t.id).await.expect("find").last_used_at,
        Some(t0),
        "within the minute: unchanged"
    );
    let t2 = t0 + Duration::seconds(61);
    store.touch_token(t.id, t2).await.expect("touch");
    assert_eq!(
        store.find_token(t.id).await.expect("find").last_used_at,
        Some(t2)
    );
}

async fn audit_log_filters_pages_and_is_append_only(backend: Backend) {
    let (db, store) = setup(backend).await;
    let (org, _) = store
        .create_org(&cli(), "A", "a@a.test")
        .await
        .expect("org");
    let start = rolegate::domain::now();
    for i in 0..5 {
        store
            .add_owner(&admin_ctx(), org.id, org.id, &format!("o{i}@a.test"))
            .await
            .expect("owner");
    }
    let all = store
        .list_audit(
            org.id,
            &AuditQuery {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .expect("all");
    assert_eq!(all.len(), 3 + 5 * 2);
    assert!(
        all.windows(2)
            .all(|w| w[0].id > w[1].id && w[0].created_at >= w[1].created_at),
        "newest first, time-ordered"
    );
    // Paging with the keyset cursor visits every event once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_audit(
                org.id,
                &AuditQuery {
                    before_id: cursor,
                    limit: 4,
                    ..Default::default()
                },
            )
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|e| e.id);
        seen.extend(page.into_iter().map(|e| e.id));
    }
    assert_eq!(seen, all.iter().map(|e| e.id).collect::<Vec<_>>());
    let since = store
        .list_audit(
            org.id,
            &AuditQuery {
                since: Some(start),
                actor_kind: Some("admin_token".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("since");
    assert_eq!(since.len(), 10);
    let until = store
        .list_audit(
            org.id,
            &AuditQuery {
                until: Some(start),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("until");
    assert_eq!(until.len(), 3);
    let by_org = store
        .list_audit(
            org.id,
            &AuditQuery {
                org_id: Some(org.id),
                action: Some("user.create".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("by org");
    assert!(by_org.is_empty(), "user.create carries no org");
    let by_actor = store
        .list_audit(
            org.id,
            &AuditQuery {
                actor_id: Some("nobody".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("by actor");
    assert!(by_actor.is_empty());
    let none_for_product = store
        .list_audit(
            org.id,
            &AuditQuery {
                product_id: Some(Uuid::now_v7()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("product");
    assert!(none_for_product.is_empty());
    // The database itself refuses to rewrite history.
    assert!(
        db.raw_execute("UPDATE audit_events SET action = 'forged'")
            .await
            .is_err()
    );
    assert!(db.raw_execute("DELETE FROM audit_events").await.is_err());
    assert_eq!(
        store
            .list_audit(
                org.id,
                &AuditQuery {
                    limit: 1000,
                    ..Default::default()
                }
            )
            .await
            .expect("all")
            .len(),
        all.len()
    );
}

async fn every_write_records_an_invalidation_epoch(backend: Backend) {
    let (_db, store) = setup(backend).await;
    // What every instance's cache is told, in commit order, before each write returns.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let sink = seen.clone();
    store.on_commit(std::sync::Arc::new(
        move |i: &rolegate::store::Invalidation| {
            sink.lock().expect("lock").push_back(i.clone());
        },
    ));
    let next = || seen.lock().expect("lock").pop_front().expect("published");
    let e0 = store.latest_epoch().await.expect("epoch");
    let (org, owner) = store
        .create_org(&cli(), "A", "a@a.test")
        .await
        .expect("org");
    let e1 = store.latest_epoch().await.expect("epoch");
    assert!(e1 > e0);
    let published = next();
    assert_eq!(published.epoch, e1);
    assert_eq!(published.tenant_id, org.id);
    assert_eq!(
        published.users,
        Some(vec![owner.id]),
        "narrowed to the owner"
    );
    let scope = ScimScope {
        tenant_id: org.id,
        org_id: org.id,
    };
    let group = store
        .scim_create_group(&cli(), scope, &group_write("G"), &[])
        .await
        .expect("group");
    let tenant_wide = next();
    assert_eq!(
        tenant_wide.users, None,
        "a write that names no user invalidates the tenant"
    );
    let user = scim_user(&store, scope, "ada@a.test").await;
    let created = next();
    assert_eq!(created.users, Some(vec![user]));
    store
        .scim_update_group(
            &cli(),
            scope,
            group.id,
            None,
            None,
            &[MembershipChange::Add(vec![MemberRef {
                id: user,
                kind: None,
            }])],
        )
        .await
        .expect("add");
    let member_change = next();
    assert_eq!(member_change.users, Some(vec![user]));
    assert!(member_change.epoch > tenant_wide.epoch);
    assert_eq!(
        store.latest_epoch().await.expect("epoch"),
        member_change.epoch
    );
}

/// IdP-driven offboarding (SCIM, login) never fails on the Owner rule: the change goes
/// through, and the audit log carries a warning.
async fn owner_rule_warns_instead_of_refusing_for_idp_paths(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let (org, owner) = store
        .create_org(&cli(), "A", "a@a.test")
        .await
        .expect("org");
    let refused = store
        .set_membership(
            &admin_ctx(),
            org.id,
            org.id,
            owner.id,
            Some(OrgRole::Member),
            OwnerRule::Enforce,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Rule(ref m)) if m.contains("owner_rule")),
        "{refused:?}"
    );
    let scim = Ctx::new(Actor::ScimToken {
        id: Uuid::now_v7(),
        name: "okta".into(),
    });
    store
        .remove_membership(
            &scim,
            org.id,
            org.id,
            owner.id,
            OwnerRule::Warn,
            ScimHeld::Refuse,
        )
        .await
        .expect("offboarding wins");
    assert!(
        store
            .list_members(org.id, org.id, &all_members())
            .await
            .expect("members")
            .is_empty()
    );
    let warned = store
        .list_audit(
            org.id,
            &AuditQuery {
                action: Some("org.owner_rule_broken".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("audit");
    assert_eq!(warned.len(), 1);
    assert_eq!(warned[0].actor_kind, "scim_token");
    assert!(
        warned[0]
            .warning
            .as_deref()
            .is_some_and(|w| w.contains("without an active Owner"))
    );
    // The break-glass restores an Owner.
    store
        .add_owner(&cli(), org.id, org.id, "rescue@a.test")
        .await
        .expect("break-glass");
}

/// The resolver's batch read (several users per statement, in chunks) gives each user the
/// same snapshot as reading them alone: memberships, grants and nested SCIM groups included,
/// across a chunk boundary, with ids of nobody left out.
async fn a_batch_of_user_snapshots_equals_each_users_own(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let (org, owner) = store
        .create_org(&cli(), "A", "a@a.test")
        .await
        .expect("org");
    let team = store
        .create_sub_org(&cli(), org.id, org.id, "Team")
        .await
        .expect("sub-org");
    let scope = ScimScope {
        tenant_id: org.id,
        org_id: org.id,
    };
    let ada = scim_user(&store, scope, "ada@a.test").await;
    let backend_group = store
        .scim_create_group(&cli(), scope, &group_write("Backend"), &[])
        .await
        .expect("group");
    let engineering = store
        .scim_create_group(&cli(), scope, &group_write("Engineering"), &[])
        .await
        .expect("group");
    let add = |id: Uuid| MembershipChange::Add(vec![MemberRef { id, kind: None }]);
    for (group, member) in [(backend_group.id, ada), (engineering.id, backend_group.id)] {
        store
            .scim_update_group(&cli(), scope, group, None, None, &[add(member)])
            .await
            .expect("member");
    }
    store
        .set_membership(
            &cli(),
            org.id,
            team.id,
            ada,
            Some(OrgRole::Owner),
            OwnerRule::Enforce,
        )
        .await
        .expect("team owner");
    store
        .set_module_roles(
            &cli(),
            org.id,
            team.id,
            ada,
            &BTreeMap::from([(Module::FeatureFlags, ModuleLevel::Write)]),
        )
        .await
        .expect("module role");
    // One more than a chunk (500), so that Ada is read in the second statement.
    let mut ids = vec![owner.id];
    for i in 0..500 {
        let user = store
            .ensure_user(&cli(), org.id, &format!("user{i}@a.test"), Source::Manual)
            .await
            .expect("user");
        ids.push(user.id);
    }
    ids.push(ada);
    ids.push(Uuid::now_v7());
    let facts = store.tenant_facts(org.id).await.expect("facts");
    let batch = store
        .user_snapshots_with(org.id, &ids, &facts)
        .await
        .expect("batch");
    let mut read: Vec<Uuid> = batch.iter().map(|s| s.user_id).collect();
    read.sort();
    let mut known = ids[..ids.len() - 1].to_vec();
    known.sort();
    assert_eq!(read, known, "every user once; the unknown id left out");
    // Alone, a user's groups are completed from only the groups they reach; in the batch,
    // from the tenant's whole tree (what the cache keeps).
    for user in [owner.id, ids[1], ids[500], ada] {
        let alone = store
            .user_snapshots(org.id, &[user])
            .await
            .expect("alone")
            .pop()
            .expect("user");
        let together = batch.iter().find(|s| s.user_id == user).expect("in batch");
        assert_eq!(together.active, alone.active);
        assert_eq!(together.scim_org_id, alone.scim_org_id);
        assert_eq!(together.memberships, alone.memberships);
        assert_eq!(together.grants, alone.grants);
        assert_eq!(together.groups, alone.groups);
    }
    let ada = batch.iter().find(|s| s.user_id == ada).expect("ada");
    let groups: Vec<&str> = ada.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        groups,
        ["Backend", "Engineering"],
        "the nested group counts"
    );
    let mut orgs: Vec<(Uuid, Option<OrgRole>)> =
        ada.memberships.iter().map(|m| (m.org_id, m.role)).collect();
    orgs.sort_by_key(|(org, _)| *org);
    let mut expected = vec![(org.id, None), (team.id, Some(OrgRole::Owner))];
    expected.sort_by_key(|(org, _)| *org);
    assert_eq!(orgs, expected);
    assert_eq!(ada.grants.len(), 1, "the module role");
    assert_eq!(ada.scim_org_id, Some(org.id));
}

crate::on_both_backends!(
    a_batch_of_user_snapshots_equals_each_users_own,
    owner_rule_warns_instead_of_refusing_for_idp_paths,
    reports_backend_pool_and_reachability,
    create_org_makes_a_tenant_with_an_audited_owner,
    get_org_and_find_org_respect_tenants,
    add_owner_reuses_the_person_and_audits_the_change,
    find_user_by_email_is_case_insensitive_and_tenant_scoped,
    group_membership_is_idempotent_exact_and_scoped,
    tokens_are_stored_hashed_listed_revoked_and_found,
    token_use_is_recorded_at_most_once_a_minute,
    audit_log_filters_pages_and_is_append_only,
    every_write_records_an_invalidation_epoch,
);
