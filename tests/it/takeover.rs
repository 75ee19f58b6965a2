//! The security review's HIGH finding: a SCIM token of one org must never take over a person of
//! an org above or beside it. A SCIM create links an existing person only when that person is a
//! member of the token's org or its subtree, held by no other SCIM scope, and reaches no org
//! outside that subtree; everyone else stays byte-for-byte as they were. A person can be handed
//! over on purpose (`scim-release`). Minted tokens never outlive their minter.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method, StatusCode};
use rolegate::domain::token::TokenKind;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Backend, TestApp};

const OWNER: &str = "owner@acme.test";

async fn sub_org(app: &TestApp, parent: Uuid, name: &str) -> Uuid {
    let org = app
        .ok(
            Method::POST,
            "/orgs",
            Some(json!({ "name": name, "parent_id": parent })),
        )
        .await;
    uuid_of(&org["id"])
}

fn uuid_of(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

/// Invites `email` into `org` and accepts through the public accept endpoint, as the invitee's
/// click would: the person is then a member of `org` made by an invitation.
async fn invited(app: &TestApp, org: Uuid, email: &str) -> Uuid {
    let secret = app.invitation_link(org, email).await;
    let accepted = app
        .call(
            Method::POST,
            &format!("/api/v1/invitations/accept?token={secret}"),
            None,
            None,
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    uuid_of(&accepted.body["user_id"])
}

async fn user_id_of(app: &TestApp, email: &str) -> Uuid {
    app.store
        .find_user_by_email(app.org_id, email)
        .await
        .expect("lookup")
        .expect("user")
        .id
}

/// A tenant shaped for the review: root ─┬─ A ── C, └─ B; the root Owner, a root member with a
/// product role, and a user A's SCIM token provisioned (with an externalId, in one of A's
/// groups, with a role on A's product).
struct Tenant {
    app: TestApp,
    root: Uuid,
    a: Uuid,
    b: Uuid,
    c: Uuid,
    a_scim: String,
    owner: Uuid,
    root_member: Uuid,
    a_user: Uuid,
    products: Vec<Uuid>,
}

async fn tenant(backend: Backend) -> Tenant {
    let app = TestApp::with_config(backend, crate::common::http::unlimited()).await;
    let root = app.org_id;
    let a = sub_org(&app, root, "Payments").await;
    let b = sub_org(&app, root, "Growth").await;
    let c = sub_org(&app, a, "Checkout squad").await;
    let owner = user_id_of(&app, OWNER).await;
    let root_member = invited(&app, root, "member@acme.test").await;

    let root_product = app
        .ok(
            Method::POST,
            &format!("/orgs/{root}/products"),
            Some(json!({ "name": "Web" })),
        )
        .await;
    let root_product = uuid_of(&root_product["id"]);
    app.ok(
        Method::PUT,
        &format!("/products/{root_product}/members/{root_member}"),
        Some(json!({ "permission_groups": [], "role": "editor" })),
    )
    .await;

    let a_scim = app.token(a, TokenKind::Scim).await;
    let created = app
        .scim_as(
            &a_scim,
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "a.user@acme.test",
                "externalId": "okta-a-1",
                "emails": [{ "value": "a.user@acme.test", "primary": true }],
            })),
            &[],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let a_user = uuid_of(&created.body["id"]);
    let group = app
        .scim_as(
            &a_scim,
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Payments engineers",
                "members": [{ "value": a_user }],
            })),
            &[],
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
    let a_product = app
        .ok(
            Method::POST,
            &format!("/orgs/{a}/products"),
            Some(json!({ "name": "Checkout" })),
        )
        .await;
    let a_product = uuid_of(&a_product["id"]);
    app.ok(
        Method::PUT,
        &format!("/products/{a_product}/members/{a_user}"),
        Some(json!({ "permission_groups": [], "role": "publisher" })),
    )
    .await;
    Tenant {
        app,
        root,
        a,
        b,
        c,
        a_scim,
        owner,
        root_member,
        a_user,
        products: vec![root_product, a_product],
    }
}

/// Everything the admin API and A's SCIM token show of `users`: each one's membership of every
/// org (user record with its version, role, where the role comes from), their effective
/// permissions on every product, and A's SCIM view of A's user. Any write to any of them shows.
async fn snapshot(t: &Tenant, users: &BTreeSet<Uuid>) -> Value {
    let mut members = BTreeMap::new();
    for org in [t.root, t.a, t.b, t.c] {
        let list = t
            .app
            .ok(
                Method::GET,
                &format!("/orgs/{org}/members?limit=1000"),
                None,
            )
            .await;
        let watched: Vec<Value> = list["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter(|m| users.contains(&uuid_of(&m["user"]["id"])))
            .cloned()
            .collect();
        members.insert(org.to_string(), watched);
    }
    let mut permissions = BTreeMap::new();
    for user in users {
        for (org, product) in [(t.root, t.products[0]), (t.a, t.products[1])] {
            let reply = t
                .app
                .admin(
                    Method::GET,
                    &format!("/orgs/{org}/members/{user}/permissions?product={product}"),
                    None,
                )
                .await;
            permissions.insert(
                format!("{user}/{product}"),
                json!([reply.status.as_u16(), reply.body]),
            );
        }
    }
    let scim = t
        .app
        .scim_as(
            &t.a_scim,
            Method::GET,
            &format!("/Users/{}", t.a_user),
            None,
            &[],
        )
        .await;
    json!({ "members": members, "permissions": permissions, "a_scim": [scim.status.as_u16(), scim.body] })
}

#[derive(Debug, Clone, Copy)]
enum Claim {
    UserName,
    Email,
    ExternalId,
}

/// A create that names `target_email` the `claim` way; everything else in it is fresh. It
/// deactivates, as the reproduced attack did.
fn claiming_body(
    claim: Claim,
    target_email: &str,
    target_external_id: Option<&str>,
    n: usize,
) -> Value {
    let fresh = format!("claimant{n}@evil.example");
    let (user_name, email, external_id) = match claim {
        Claim::UserName => (target_email.to_owned(), fresh.clone(), None),
        Claim::Email => (fresh.clone(), target_email.to_owned(), None),
        Claim::ExternalId => (
            fresh.clone(),
            fresh.clone(),
            Some(target_external_id.unwrap_or(target_email).to_owned()),
        ),
    };
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": false,
        "emails": [{ "value": email, "primary": true }],
    });
    if let Some(external_id) = external_id {
        body["externalId"] = json!(external_id);
    }
    body
}

/// A person a claimant tries to take over, the ways it tries, and whether it may link them.
struct Target<'a> {
    id: Uuid,
    email: &'a str,
    external_id: Option<&'a str>,
    claims: Vec<Claim>,
    linkable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claimant {
    Child,
    Sibling,
    Root,
}

async fn takeover_matrix(backend: Backend, claimant: Claimant) {
    let t = tenant(backend).await;
    let token_org = match claimant {
        Claimant::Child => t.c,
        Claimant::Sibling => t.b,
        Claimant::Root => t.root,
    };
    let token = t.app.token(token_org, TokenKind::Scim).await;
    // Members of the claimant's own org, made by invitations: the only people it may link
    // (one per way of naming them, since a linked person is then held).
    let own_by_name = invited(&t.app, token_org, "own.name@acme.test").await;
    let own_by_email = invited(&t.app, token_org, "own.email@acme.test").await;

    let a_user_email = "a.user@acme.test";
    // (target id, its e-mail, its externalId, the claims to try, whether they may link)
    let targets = vec![
        // The root's own people are members of the root token's own org; for anyone else they
        // belong to an org above. A linked person is held from then on, so each linkable target
        // is linked by one claim (whose retry must then be refused).
        Target {
            id: t.owner,
            email: OWNER,
            external_id: None,
            claims: if claimant == Claimant::Root {
                vec![Claim::ExternalId, Claim::Email]
            } else {
                vec![Claim::ExternalId, Claim::Email, Claim::UserName]
            },
            linkable: claimant == Claimant::Root,
        },
        Target {
            id: t.root_member,
            email: "member@acme.test",
            external_id: None,
            claims: if claimant == Claimant::Root {
                vec![Claim::ExternalId, Claim::UserName]
            } else {
                vec![Claim::ExternalId, Claim::UserName, Claim::Email]
            },
            linkable: claimant == Claimant::Root,
        },
        // Held by A's SCIM: nobody else's, whatever the tree says.
        Target {
            id: t.a_user,
            email: a_user_email,
            external_id: Some("okta-a-1"),
            claims: vec![Claim::ExternalId, Claim::UserName, Claim::Email],
            linkable: false,
        },
        Target {
            id: own_by_name,
            email: "own.name@acme.test",
            external_id: None,
            claims: vec![Claim::ExternalId, Claim::UserName],
            linkable: true,
        },
        Target {
            id: own_by_email,
            email: "own.email@acme.test",
            external_id: None,
            claims: vec![Claim::Email],
            linkable: true,
        },
    ];
    let mut watched: BTreeSet<Uuid> = targets.iter().map(|t| t.id).collect();
    let mut n = 0;
    for Target {
        id: target,
        email,
        external_id,
        claims,
        linkable,
    } in targets
    {
        for claim in claims {
            n += 1;
            let before = snapshot(&t, &watched).await;
            let reply = t
                .app
                .scim_as(
                    &token,
                    Method::POST,
                    "/Users",
                    Some(claiming_body(claim, email, external_id, n)),
                    &[],
                )
                .await;
            let what = format!("{claimant:?} claims {email} by {claim:?}");
            match claim {
                // externalId names nobody across orgs: a new, separate person at most.
                Claim::ExternalId => {
                    assert_eq!(reply.status, StatusCode::CREATED, "{what}: {}", reply.text);
                    assert_ne!(uuid_of(&reply.body["id"]), target, "{what} linked");
                }
                _ if linkable => {
                    assert_eq!(reply.status, StatusCode::CREATED, "{what}: {}", reply.text);
                    assert_eq!(uuid_of(&reply.body["id"]), target, "{what} did not link");
                    // The linked person changed, as the IdP said; nobody else may have.
                    watched.remove(&target);
                    let mut expected = before.clone();
                    strip(&mut expected, target);
                    assert_eq!(
                        snapshot(&t, &watched).await,
                        expected,
                        "{what}: a bystander changed"
                    );
                    // Okta retries a create it did not see answered: now a taken name.
                    let retry = t
                        .app
                        .scim_as(
                            &token,
                            Method::POST,
                            "/Users",
                            Some(claiming_body(claim, email, external_id, n)),
                            &[],
                        )
                        .await;
                    assert_eq!(
                        retry.status,
                        StatusCode::CONFLICT,
                        "{what} retried: {}",
                        retry.text
                    );
                    assert_eq!(snapshot(&t, &watched).await, expected, "{what} retried");
                    continue;
                }
                _ => {
                    assert_eq!(reply.status, StatusCode::CONFLICT, "{what}: {}", reply.text);
                    assert_eq!(reply.body["scimType"], "uniqueness", "{what}");
                    let detail = reply.body["detail"].as_str().unwrap_or_default();
                    for secret in [
                        t.a.to_string(),
                        "Payments".to_owned(),
                        t.root.to_string(),
                        "Acme".to_owned(),
                    ] {
                        assert!(
                            !detail.contains(&secret),
                            "{what}: the answer names {secret}: {detail}"
                        );
                    }
                }
            }
            assert_eq!(
                snapshot(&t, &watched).await,
                before,
                "{what} changed someone"
            );
        }
    }
}

/// Drops a person from a snapshot (their entries, in every list).
fn strip(snapshot: &mut Value, user: Uuid) {
    if let Some(orgs) = snapshot["members"].as_object_mut() {
        for list in orgs.values_mut() {
            if let Some(list) = list.as_array_mut() {
                list.retain(|m| uuid_of(&m["user"]["id"]) != user);
            }
        }
    }
    if let Some(perms) = snapshot["permissions"].as_object_mut() {
        perms.retain(|k, _| !k.starts_with(&user.to_string()));
    }
}

async fn a_child_token_claims_only_its_own_invited_members(backend: Backend) {
    takeover_matrix(backend, Claimant::Child).await;
}

async fn a_sibling_token_claims_only_its_own_invited_members(backend: Backend) {
    takeover_matrix(backend, Claimant::Sibling).await;
}

async fn the_root_token_claims_the_roots_people_but_not_a_sub_orgs_provisioned_user(
    backend: Backend,
) {
    takeover_matrix(backend, Claimant::Root).await;
}

/// The reproduction from the review, step by step: A's token names the root Owner's address in
/// a deactivating create, then tries to change and delete the Owner by id.
async fn a_sub_org_token_cannot_deactivate_the_root_owner(backend: Backend) {
    let t = tenant(backend).await;
    let watched: BTreeSet<Uuid> = [t.owner, t.root_member, t.a_user].into();
    let before = snapshot(&t, &watched).await;
    let reply = t
        .app
        .scim_as(
            &t.a_scim,
            Method::POST,
            "/Users",
            Some(json!({
                "userName": "whatever@evil.example",
                "active": false,
                "emails": [{ "value": OWNER }],
            })),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_eq!(reply.body["scimType"], "uniqueness");
    for method in [Method::PATCH, Method::PUT, Method::DELETE] {
        let body = (method != Method::DELETE).then(|| {
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": false } }],
                "userName": "whatever@evil.example",
            })
        });
        let reply = t
            .app
            .scim_as(
                &t.a_scim,
                method.clone(),
                &format!("/Users/{}", t.owner),
                body,
                &[],
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method}: {}",
            reply.text
        );
    }
    assert_eq!(snapshot(&t, &watched).await, before);
    // The Owner still owns the root, actively.
    let members = t
        .app
        .ok(Method::GET, &format!("/orgs/{}/members", t.root), None)
        .await;
    let owner = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| uuid_of(&m["user"]["id"]) == t.owner)
        .expect("owner listed");
    assert_eq!(owner["user"]["active"], true);
    assert_eq!(owner["user"]["user_name"], OWNER);
    assert_eq!(owner["effective"]["role"], "owner");
}

/// An IdP that moves a person from A's app to B's gets 409 until an admin hands them over; then
/// B's token links them, and A's token no longer sees them or lists them in its groups.
async fn a_held_person_is_handed_over_on_purpose(backend: Backend) {
    let t = tenant(backend).await;
    let b_scim = t.app.token(t.b, TokenKind::Scim).await;
    let create = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "a.user@acme.test",
        "externalId": "entra-b-7",
        "emails": [{ "value": "a.user@acme.test", "primary": true }],
    });
    let refused = t
        .app
        .scim_as(&b_scim, Method::POST, "/Users", Some(create.clone()), &[])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);

    // Out of reach: B's admin token cannot release A's person (404, as for any id it cannot see).
    let b_admin = t.app.token(t.b, TokenKind::Admin).await;
    let path = format!("/api/v1/users/{}/scim-release", t.a_user);
    let reply = t
        .app
        .call(
            Method::POST,
            &path,
            Some(&b_admin),
            Some(json!({ "to_org_id": t.b })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    // Someone nobody holds has nothing to release.
    let reply = t
        .app
        .admin(
            Method::POST,
            &format!("/users/{}/scim-release", t.owner),
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert!(reply.text.contains("not_held"), "{}", reply.text);
    // ... but only a caller who reaches the whole tenant is told so: to a sub-org's token the
    // root's unheld Owner is an id like any other it cannot see.
    let reply = t
        .app
        .call(
            Method::POST,
            &format!("/api/v1/users/{}/scim-release", t.owner),
            Some(&b_admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);

    let released = t
        .app
        .ok(
            Method::POST,
            &format!("/users/{}/scim-release", t.a_user),
            Some(json!({ "to_org_id": t.b })),
        )
        .await;
    assert_eq!(
        released,
        json!({
            "user_id": t.a_user,
            "released_from_org_id": t.a,
            "to_org_id": t.b,
            "membership_removed": true,
            "groups_left": 1,
        })
    );
    // A's token: the person is gone from its view and from its group.
    let gone = t
        .app
        .scim_as(
            &t.a_scim,
            Method::GET,
            &format!("/Users/{}", t.a_user),
            None,
            &[],
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let groups = t
        .app
        .scim_as(&t.a_scim, Method::GET, "/Groups", None, &[])
        .await;
    assert_eq!(
        groups.body["Resources"][0]["members"],
        json!([]),
        "{}",
        groups.text
    );
    // The access granted in A went with the membership A's SCIM had made.
    let perms = t
        .app
        .admin(
            Method::GET,
            &format!(
                "/orgs/{}/members/{}/permissions?product={}",
                t.a, t.a_user, t.products[1]
            ),
            None,
        )
        .await;
    assert_eq!(perms.status, StatusCode::NOT_FOUND, "{}", perms.text);

    let linked = t
        .app
        .scim_as(&b_scim, Method::POST, "/Users", Some(create), &[])
        .await;
    assert_eq!(linked.status, StatusCode::CREATED, "{}", linked.text);
    assert_eq!(uuid_of(&linked.body["id"]), t.a_user);
    assert_eq!(linked.body["externalId"], "entra-b-7");

    let audit = t
        .app
        .ok(Method::GET, "/audit?action=scim.user.release", None)
        .await;
    let events = audit["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["target_id"], t.a_user.to_string());
    assert_eq!(events[0]["before"]["externalId"], "okta-a-1");
}

/// A token that expires tomorrow cannot mint one that never does, nor one that lives longer;
/// the minted token names its minter in the list and the audit log.
async fn a_minted_token_never_outlives_its_minter(backend: Backend) {
    let app = TestApp::new(backend).await;
    let short = app
        .ok(
            Method::POST,
            "/tokens",
            Some(json!({ "kind": "admin", "name": "short", "expires_in_days": 1 })),
        )
        .await;
    let short_secret = short["token_secret"].as_str().expect("secret").to_owned();
    let short_expiry = short["expires_at"].as_str().expect("expiry").to_owned();
    for body in [
        json!({ "kind": "admin", "name": "forever" }),
        json!({ "kind": "scim", "name": "long", "expires_in_days": 3650 }),
    ] {
        let minted = app
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(&short_secret),
                Some(body.clone()),
            )
            .await;
        assert_eq!(minted.status, StatusCode::CREATED, "{}", minted.text);
        assert_eq!(minted.body["expires_at"], short_expiry.as_str(), "{body}");
        assert_eq!(minted.body["created_by_token_id"], short["id"], "{body}");
    }
    // Shorter than the minter's is kept as asked.
    let long = app
        .ok(
            Method::POST,
            "/tokens",
            Some(json!({ "kind": "admin", "name": "long", "expires_in_days": 30 })),
        )
        .await;
    let long_secret = long["token_secret"].as_str().expect("secret");
    let minted = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(long_secret),
            Some(json!({ "kind": "scim", "expires_in_days": 2 })),
        )
        .await;
    assert_eq!(minted.status, StatusCode::CREATED, "{}", minted.text);
    assert!(
        minted.body["expires_at"].as_str().expect("expiry")
            < long["expires_at"].as_str().expect("expiry"),
        "{}",
        minted.text
    );

    let list = app.ok(Method::GET, "/tokens", None).await;
    let by_short: Vec<&Value> = list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter(|t| t["created_by_token_id"] == short["id"])
        .collect();
    assert_eq!(by_short.len(), 2, "{list}");
    // The operator's own tokens name no minter.
    assert!(
        list["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .any(|t| t["created_by_token_id"].is_null())
    );
    let audit = app
        .ok(Method::GET, "/audit?action=token.create", None)
        .await;
    let minted_events = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["after"]["created_by_token_id"] == short["id"])
        .count();
    assert_eq!(minted_events, 2, "{audit}");
}

crate::on_both_backends!(
    a_child_token_claims_only_its_own_invited_members,
    a_sibling_token_claims_only_its_own_invited_members,
    the_root_token_claims_the_roots_people_but_not_a_sub_orgs_provisioned_user,
    a_sub_org_token_cannot_deactivate_the_root_owner,
    a_held_person_is_handed_over_on_purpose,
    a_minted_token_never_outlives_its_minter,
);
