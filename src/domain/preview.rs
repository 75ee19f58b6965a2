//! What applying an org's mappings would change, computed by the resolver on the same users
//! before and after — who gains and loses what, and what happens to the org's Owners —
//! applying nothing. Pure.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use super::mapping::{DefaultGrants, Rule};
use super::mapping_document::Mappings;
use super::org::OrgRole;
use super::permission::{Capability, EnvAccess};
use super::resolve::{self, ProductSnapshot, Standing, UserSnapshot};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// Users whose permissions change.
    pub users_affected: usize,
    /// Capabilities gained, environments whose access rises, org roles gained or raised.
    pub gains: usize,
    /// Capabilities lost, environments whose access falls, org roles lost or lowered.
    pub losses: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OwnerCount {
    pub org_id: Uuid,
    pub name: String,
    /// Active Owners (direct, inherited or mapped) before and after.
    pub before: usize,
    pub after: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RoleChange {
    pub org_id: Uuid,
    pub before: Option<OrgRole>,
    pub after: Option<OrgRole>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EnvironmentChange {
    pub environment_id: Uuid,
    pub name: String,
    pub before: EnvAccess,
    pub after: EnvAccess,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProductChange {
    pub product_id: Uuid,
    pub gained: Vec<Capability>,
    pub lost: Vec<Capability>,
    pub environments: Vec<EnvironmentChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserChange {
    pub user_id: Uuid,
    pub org_roles: Vec<RoleChange>,
    pub products: Vec<ProductChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub summary: Summary,
    /// Orgs that had an active Owner and would have none: applying is refused while any is
    /// listed.
    pub owner_rule_violations: Vec<OwnerCount>,
    pub owners: Vec<OwnerCount>,
    /// The affected users, by id, one page of them.
    pub users: Vec<UserChange>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<Uuid>,
}

/// `users` with the org's stored rules and default replaced by `mappings`.
pub fn with_mappings(
    users: &[UserSnapshot],
    org_id: Uuid,
    mappings: &Mappings,
) -> Vec<UserSnapshot> {
    let rules: Vec<Rule> = mappings
        .rules
        .iter()
        // Ids only tell rules apart; the name is unique in the org.
        .map(|r| r.to_rule(org_id, Uuid::new_v5(&org_id, r.name.as_bytes())))
        .collect();
    // Users read together share one copy of the tenant's rules and defaults: replace the
    // org's part once per copy, not once per user.
    let mut last: Option<Replaced> = None;
    users
        .iter()
        .map(|u| {
            let replaced = match last.take() {
                Some(r) if r.made_from(u) => r,
                _ => Replaced {
                    from_rules: u.rules.clone(),
                    from_defaults: u.defaults.clone(),
                    rules: Arc::new(
                        u.rules
                            .iter()
                            .filter(|r| r.org_id != org_id)
                            .chain(&rules)
                            .cloned()
                            .collect(),
                    ),
                    defaults: Arc::new(
                        u.defaults
                            .iter()
                            .filter(|d| d.org_id != org_id)
                            .cloned()
                            .chain(mappings.default.as_ref().map(|grants| DefaultGrants {
                                org_id,
                                grants: grants.clone(),
                            }))
                            .collect(),
                    ),
                },
            };
            let after = UserSnapshot {
                rules: replaced.rules.clone(),
                defaults: replaced.defaults.clone(),
                ..u.clone()
            };
            last = Some(replaced);
            after
        })
        .collect()
}

/// A tenant's rules and defaults with one org's replaced, and the copy they were made from
/// (held, so that sharing it is what is compared).
struct Replaced {
    from_rules: Arc<Vec<Rule>>,
    from_defaults: Arc<Vec<DefaultGrants>>,
    rules: Arc<Vec<Rule>>,
    defaults: Arc<Vec<DefaultGrants>>,
}

impl Replaced {
    fn made_from(&self, user: &UserSnapshot) -> bool {
        Arc::ptr_eq(&self.from_rules, &user.rules)
            && Arc::ptr_eq(&self.from_defaults, &user.defaults)
    }
}

/// One user's change across `orgs` and `products`; `None` when nothing changes.
fn user_change(
    before: &UserSnapshot,
    after: &UserSnapshot,
    orgs: &[(Uuid, String)],
    products: &[ProductSnapshot],
) -> Option<UserChange> {
    let role = |u: &UserSnapshot, org: Uuid| {
        let r = resolve::resolve_org(u, org);
        match r.standing {
            Standing::Inactive | Standing::NotMember => None,
            _ => r.org_role.map(|r| r.role),
        }
    };
    let org_roles: Vec<RoleChange> = orgs
        .iter()
        .filter_map(|(org_id, _)| {
            let (b, a) = (role(before, *org_id), role(after, *org_id));
            (b != a).then_some(RoleChange {
                org_id: *org_id,
                before: b,
                after: a,
            })
        })
        .collect();
    let mut changes = Vec::new();
    for product in products {
        let b = resolve::resolve_product(before, product);
        let a = resolve::resolve_product(after, product);
        let had: BTreeSet<Capability> = b.capabilities.keys().copied().collect();
        let has: BTreeSet<Capability> = a.capabilities.keys().copied().collect();
        let environments: Vec<EnvironmentChange> = product
            .environments
            .iter()
            .filter_map(|e| {
                let (was, is) = (b.access(e.id), a.access(e.id));
                (was != is).then(|| EnvironmentChange {
                    environment_id: e.id,
                    name: e.name.clone(),
                    before: was,
                    after: is,
                })
            })
            .collect();
        let gained: Vec<Capability> = has.difference(&had).copied().collect();
        let lost: Vec<Capability> = had.difference(&has).copied().collect();
        if !gained.is_empty() || !lost.is_empty() || !environments.is_empty() {
            changes.push(ProductChange {
                product_id: product.id,
                gained,
                lost,
                environments,
            });
        }
    }
    (!org_roles.is_empty() || !changes.is_empty()).then_some(UserChange {
        user_id: before.user_id,
        org_roles,
        products: changes,
    })
}

/// Owner above Member above nothing.
fn rank(role: Option<OrgRole>) -> u8 {
    match role {
        None => 0,
        Some(OrgRole::Member) => 1,
        Some(OrgRole::Owner) => 2,
    }
}

/// The preview of replacing `org_id`'s mappings with `mappings`, for `users` (everyone whose
/// permissions it could change, and everyone who may own an org of the subtree) over the
/// subtree's `orgs` and `products`; one page of the affected users (ids after `after`, at
/// most `limit`).
pub fn preview(
    users: &[UserSnapshot],
    org_id: Uuid,
    mappings: &Mappings,
    orgs: &[(Uuid, String)],
    products: &[ProductSnapshot],
    after: Option<Uuid>,
    limit: usize,
) -> Preview {
    let changed = with_mappings(users, org_id, mappings);
    let mut affected: Vec<UserChange> = users
        .iter()
        .zip(&changed)
        .filter_map(|(b, a)| user_change(b, a, orgs, products))
        .collect();
    affected.sort_by_key(|c| c.user_id);
    let mut summary = Summary {
        users_affected: affected.len(),
        gains: 0,
        losses: 0,
    };
    for change in &affected {
        for r in &change.org_roles {
            if rank(r.after) > rank(r.before) {
                summary.gains += 1;
            } else {
                summary.losses += 1;
            }
        }
        for p in &change.products {
            summary.gains += p.gained.len();
            summary.losses += p.lost.len();
            for e in &p.environments {
                if e.after > e.before {
                    summary.gains += 1;
                } else {
                    summary.losses += 1;
                }
            }
        }
    }
    let owners: Vec<OwnerCount> = orgs
        .iter()
        .map(|(org, name)| OwnerCount {
            org_id: *org,
            name: name.clone(),
            before: users.iter().filter(|u| resolve::is_owner(u, *org)).count(),
            after: changed
                .iter()
                .filter(|u| resolve::is_owner(u, *org))
                .count(),
        })
        .collect();
    let owner_rule_violations = owners
        .iter()
        .filter(|o| o.before > 0 && o.after == 0)
        .cloned()
        .collect();
    let page: Vec<UserChange> = affected
        .into_iter()
        .filter(|c| after.is_none_or(|a| c.user_id > a))
        .take(limit.saturating_add(1))
        .collect();
    let (users, next) = if page.len() > limit {
        let mut page = page;
        page.truncate(limit);
        let next = page.last().map(|c| c.user_id);
        (page, next)
    } else {
        (page, None)
    };
    Preview {
        summary,
        owner_rule_violations,
        owners,
        users,
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Source;
    use crate::domain::mapping::{Grant, GroupSource, IdpGroup, RuleSource};
    use crate::domain::mapping_document::RuleSpec;
    use crate::domain::permission::Role;
    use crate::domain::resolve::{EnvironmentFact, Membership};

    const ORG: Uuid = Uuid::from_u128(1);
    const PRODUCT: Uuid = Uuid::from_u128(10);
    const DEV: Uuid = Uuid::from_u128(20);

    fn product() -> ProductSnapshot {
        ProductSnapshot {
            id: PRODUCT,
            org_id: ORG,
            environments: vec![EnvironmentFact {
                id: DEV,
                name: "dev".into(),
                restricted: false,
            }],
            permission_groups: Vec::new(),
        }
    }

    fn user(n: u128, role: Option<OrgRole>, group: Option<&str>) -> UserSnapshot {
        UserSnapshot {
            user_id: Uuid::from_u128(n),
            active: true,
            orgs: vec![(ORG, None)].into(),
            memberships: vec![Membership {
                org_id: ORG,
                role,
                source: Source::Scim,
            }],
            groups: group
                .map(|g| IdpGroup {
                    org_id: ORG,
                    source: GroupSource::Scim,
                    name: g.into(),
                    external_id: None,
                })
                .into_iter()
                .collect(),
            ..UserSnapshot::default()
        }
    }

    fn rule(group: &str, grants: Vec<Grant>) -> RuleSpec {
        RuleSpec {
            name: group.to_lowercase(),
            idp_group: group.into(),
            source: RuleSource::Any,
            priority: 0,
            enabled: true,
            grants,
        }
    }

    #[test]
    fn lists_who_gains_and_loses_what_and_counts_owners() {
        let users = vec![
            user(1, None, Some("Eng")),
            user(2, None, Some("Admins")),
            user(3, None, None),
        ];
        let mappings = Mappings {
            default: None,
            rules: vec![
                rule(
                    "Eng",
                    vec![Grant::ProductRole {
                        product_id: PRODUCT,
                        role: Role::Editor,
                    }],
                ),
                rule(
                    "Admins",
                    vec![Grant::OrgRole {
                        org_id: ORG,
                        role: OrgRole::Owner,
                    }],
                ),
            ],
        };
        let orgs = [(ORG, "Acme".to_owned())];
        let got = preview(&users, ORG, &mappings, &orgs, &[product()], None, 10);
        assert_eq!(got.summary.users_affected, 2, "{got:#?}");
        assert_eq!(got.users[0].user_id, Uuid::from_u128(1));
        let p = &got.users[0].products[0];
        assert!(p.gained.contains(&Capability::ManageResources));
        assert_eq!(p.environments[0].after, EnvAccess::Full);
        assert_eq!(got.users[1].org_roles[0].after, Some(OrgRole::Owner));
        assert_eq!(got.owners[0].before, 0);
        assert_eq!(got.owners[0].after, 1);
        assert!(got.owner_rule_violations.is_empty());

        // Applied, then previewing the empty document: the mapped Owner would go.
        let applied = with_mappings(&users, ORG, &mappings);
        let empty = Mappings {
            default: None,
            rules: Vec::new(),
        };
        let back = preview(&applied, ORG, &empty, &orgs, &[product()], None, 10);
        assert_eq!(back.owner_rule_violations.len(), 1);
        assert_eq!(back.owner_rule_violations[0].name, "Acme");
        assert!(back.summary.losses >= 2);
    }

    #[test]
    fn pages_the_affected_users_by_id() {
        let users: Vec<UserSnapshot> = (1..=5).map(|n| user(n, None, Some("Eng"))).collect();
        let mappings = Mappings {
            default: Some(vec![Grant::ProductRole {
                product_id: PRODUCT,
                role: Role::Viewer,
            }]),
            rules: Vec::new(),
        };
        let orgs = [(ORG, "Acme".to_owned())];
        let first = preview(&users, ORG, &mappings, &orgs, &[product()], None, 2);
        assert_eq!(first.summary.users_affected, 5);
        assert_eq!(first.users.len(), 2);
        let second = preview(&users, ORG, &mappings, &orgs, &[product()], first.next, 2);
        assert_eq!(second.users[0].user_id, Uuid::from_u128(3));
        let last = preview(&users, ORG, &mappings, &orgs, &[product()], second.next, 2);
        assert_eq!(last.users.len(), 1);
        assert_eq!(last.next, None);
    }
}
