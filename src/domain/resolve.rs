//! Resolution: what one user may do on a product or in an org, and why — from a snapshot of
//! everything that decides it. Pure (no I/O), so the store's Owner-rule check can run it
//! inside a write transaction and the cached resolver above the store can run it on a miss.
//!
//! How sources combine (DESIGN.md, "Effective permissions"):
//! - product permissions are the union of every source — stored grants (manual, invited,
//!   provisioned), rules that match the user's IdP groups, and the org's default for users
//!   no rule of it matches; per environment the highest access wins;
//! - org roles and module roles are decided per org level, highest within a level and the
//!   nearest level that sets one across levels (unset or `none` inherits), so an explicit
//!   `member` in a sub-org overrides an Owner inherited from above;
//! - an inactive user has nothing, a non-member nothing, an effective Owner everything.
//!
//! Every permission comes with the paths that gave it; rule priority orders those paths and
//! nothing else.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Source;
use super::mapping::{DefaultGrants, Grant, GroupIndex, IdpGroup, Rule, ScimGroupTree};
use super::org::{OrgRole, chain_to_root};
use super::permission::{
    Capability, EnvAccess, EnvironmentRef, Module, ModuleLevel, PermissionSet, Role,
    module_permissions,
};

/// A membership row: `role: None` inherits from the parent org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub org_id: Uuid,
    pub role: Option<OrgRole>,
    pub source: Source,
}

/// A grant stored for the user (not computed from a rule), in the org it was made in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGrant {
    pub org_id: Uuid,
    pub source: Source,
    pub grant: Grant,
}

/// What every user's snapshot of a tenant shares: the org tree, the mapping rules, the
/// defaults and the SCIM groups with their nesting. Changed only by writes that invalidate the
/// whole tenant (a group's creation, rename, deletion or nesting among them), so it can be
/// kept apart.
///
/// Each part is shared, never copied, by the user snapshots made from it: a batch of 1,000
/// users under 200 rules holds one copy of the rules, not 1,000.
#[derive(Debug, Clone, Default)]
pub struct TenantFacts {
    pub orgs: Arc<Vec<(Uuid, Option<Uuid>)>>,
    pub rules: Arc<Vec<Rule>>,
    pub defaults: Arc<Vec<DefaultGrants>>,
    /// The SCIM groups and their nesting, from which each user's groups are completed.
    pub groups: Arc<ScimGroupTree>,
}

/// Everything that decides one user's permissions in a tenant, read in one consistent
/// snapshot.
#[derive(Debug, Clone, Default)]
pub struct UserSnapshot {
    pub user_id: Uuid,
    pub active: bool,
    /// The org whose SCIM token holds the user (`None`: nobody's). It decides no permission:
    /// it is read here, in the same snapshot, for who may ask about the user (reach).
    pub scim_org_id: Option<Uuid>,
    /// Every org of the tenant, with its parent.
    pub orgs: Arc<Vec<(Uuid, Option<Uuid>)>>,
    pub memberships: Vec<Membership>,
    pub grants: Vec<StoredGrant>,
    /// The user's IdP groups, nested ones included.
    pub groups: Vec<IdpGroup>,
    /// The tenant's mapping rules (disabled ones included: they match nobody).
    pub rules: Arc<Vec<Rule>>,
    pub defaults: Arc<Vec<DefaultGrants>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFact {
    pub id: Uuid,
    pub name: String,
    pub restricted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionGroupFact {
    pub id: Uuid,
    pub name: String,
    pub permissions: PermissionSet,
}

/// A product as resolution needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSnapshot {
    pub id: Uuid,
    pub org_id: Uuid,
    pub environments: Vec<EnvironmentFact>,
    pub permission_groups: Vec<PermissionGroupFact>,
}

/// How a path gave what it gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    /// Effective Owner of the org: everything.
    Owner,
    /// Granted by an admin.
    Manual,
    /// Granted by accepting an invitation.
    Invite,
    /// Made by the IdP directly (a SCIM-provisioned membership).
    Provisioned,
    /// An org or module role decided in an org above.
    Inherited,
    /// A mapping rule matched one of the user's IdP groups.
    Mapped,
    /// The org's default for users none of its rules matches.
    Default,
}

/// One reason for a permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GrantPath {
    pub kind: PathKind,
    /// The org the grant, role or rule belongs to.
    pub org_id: Uuid,
    /// The IdP group a rule matched (the user may be in it through nested groups).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub via_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub permission_group: Option<String>,
    /// A product role (`editor`) or an org role (`owner`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub role: Option<String>,
    /// A module role, as `module:level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub module: Option<String>,
    /// What this path gives in the environment it is listed under.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub access: Option<EnvAccess>,
}

impl GrantPath {
    fn new(kind: PathKind, org_id: Uuid) -> Self {
        GrantPath {
            kind,
            org_id,
            via_group: None,
            rule: None,
            permission_group: None,
            role: None,
            module: None,
            access: None,
        }
    }
}

/// The user's role in an org and the paths that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RoleExplained {
    pub role: OrgRole,
    pub granted_by: Vec<GrantPath>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ModuleExplained {
    pub level: ModuleLevel,
    pub granted_by: Vec<GrantPath>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EnvironmentExplained {
    pub name: String,
    pub access: EnvAccess,
    /// The paths that give `access`.
    pub granted_by: Vec<GrantPath>,
    /// The paths that give less, and so lost to `granted_by`.
    pub lost: Vec<GrantPath>,
}

/// Why the answer is what it is, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    Owner,
    Member,
    NotMember,
    Inactive,
}

/// A user's permissions in an org, or on one of its products, with the paths behind each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub product_id: Option<Uuid>,
    pub standing: Standing,
    pub org_role: Option<RoleExplained>,
    pub modules: BTreeMap<Module, ModuleExplained>,
    pub capabilities: BTreeMap<Capability, Vec<GrantPath>>,
    /// Every environment of the product (none at org level), `none` included.
    pub environments: BTreeMap<Uuid, EnvironmentExplained>,
}

impl Resolved {
    pub fn access(&self, environment: Uuid) -> EnvAccess {
        self.environments
            .get(&environment)
            .map_or(EnvAccess::None, |e| e.access)
    }

    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains_key(&capability)
    }
}

/// A grant that applies to the user, with the path that gave it.
#[derive(Debug, Clone)]
struct Applied {
    grant: Grant,
    path: GrantPath,
}

impl UserSnapshot {
    fn parent_of(&self, org: Uuid) -> Option<Option<Uuid>> {
        self.orgs.iter().find(|(id, _)| *id == org).map(|(_, p)| *p)
    }

    /// `org` and the orgs above it, nearest first.
    fn chain(&self, org: Uuid) -> Vec<Uuid> {
        chain_to_root(org, |o| self.parent_of(o))
    }

    /// Whether `org` is `ancestor` or below it.
    fn within(&self, ancestor: Uuid, org: Uuid) -> bool {
        self.chain(org).contains(&ancestor)
    }

    /// The org a grant acts in, when the grant names one; products are checked where the
    /// product is known.
    fn target_org(grant: &Grant) -> Option<Uuid> {
        match grant {
            Grant::OrgRole { org_id, .. } | Grant::ModuleRoles { org_id, .. } => Some(*org_id),
            Grant::ProductRole { .. } | Grant::PermissionGroup { .. } => None,
        }
    }

    /// Every grant that applies to the user, in explanation order: stored grants and
    /// membership roles as read, then matched rules by priority (highest first, then name),
    /// then defaults. A rule's grant outside its org's subtree applies nowhere.
    fn applied(&self) -> Vec<Applied> {
        let mut out = Vec::new();
        for m in &self.memberships {
            if let Some(role) = m.role {
                out.push(Applied {
                    grant: Grant::OrgRole {
                        org_id: m.org_id,
                        role,
                    },
                    path: GrantPath::new(stored_kind(m.source), m.org_id),
                });
            }
        }
        for g in &self.grants {
            out.push(Applied {
                grant: g.grant.clone(),
                path: GrantPath::new(stored_kind(g.source), g.org_id),
            });
        }
        let mut rules: Vec<&Rule> = self.rules.iter().collect();
        rules.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.id.cmp(&b.id))
        });
        let index = GroupIndex::new(&self.groups);
        let mut matched_orgs = Vec::new();
        for rule in rules {
            let Some(group) = index.matched(rule) else {
                continue;
            };
            matched_orgs.push(rule.org_id);
            for grant in &rule.grants {
                if Self::target_org(grant).is_some_and(|o| !self.within(rule.org_id, o)) {
                    continue;
                }
                let mut path = GrantPath::new(PathKind::Mapped, rule.org_id);
                path.rule = Some(rule.name.clone());
                path.via_group = Some(group.name.clone());
                out.push(Applied {
                    grant: grant.clone(),
                    path,
                });
            }
        }
        // Membership is decided before defaults (a default never makes a member).
        let member_of = |org: Uuid, applied: &[Applied]| {
            let chain = self.chain(org);
            self.memberships.iter().any(|m| chain.contains(&m.org_id))
                || applied.iter().any(
                    |a| matches!(a.grant, Grant::OrgRole { org_id, .. } if chain.contains(&org_id)),
                )
        };
        let mut defaults = Vec::new();
        for d in self.defaults.iter() {
            if matched_orgs.contains(&d.org_id) || !member_of(d.org_id, &out) {
                continue;
            }
            for grant in &d.grants {
                if Self::target_org(grant).is_some_and(|o| !self.within(d.org_id, o)) {
                    continue;
                }
                defaults.push(Applied {
                    grant: grant.clone(),
                    path: GrantPath::new(PathKind::Default, d.org_id),
                });
            }
        }
        out.extend(defaults);
        out
    }

    /// The user's role in `org`: per level, the highest any path gives there; the nearest
    /// level that gives one wins. A member only through "inherit" rows is a Member. `None`:
    /// not a member.
    fn role_in(&self, org: Uuid, applied: &[Applied]) -> Option<RoleExplained> {
        let chain = self.chain(org);
        for level in &chain {
            let here: Vec<(OrgRole, &GrantPath)> = applied
                .iter()
                .filter_map(|a| match a.grant {
                    Grant::OrgRole { org_id, role } if org_id == *level => Some((role, &a.path)),
                    _ => None,
                })
                .collect();
            let Some(best) = here.iter().map(|(r, _)| *r).max_by_key(|r| role_rank(*r)) else {
                continue;
            };
            let granted_by = here
                .iter()
                .filter(|(r, _)| *r == best)
                .map(|(r, p)| inherited(p, *level != org, Some(r.as_str())))
                .collect();
            return Some(RoleExplained {
                role: best,
                granted_by,
            });
        }
        let nearest = chain
            .iter()
            .find_map(|level| self.memberships.iter().find(|m| m.org_id == *level))?;
        let path = GrantPath::new(stored_kind(nearest.source), nearest.org_id);
        Some(RoleExplained {
            role: OrgRole::Member,
            granted_by: vec![inherited(&path, nearest.org_id != org, Some("member"))],
        })
    }

    /// Module levels in `org`: per module, the highest level (not `none`) per org level, the
    /// nearest level that sets one winning.
    fn modules_in(&self, org: Uuid, applied: &[Applied]) -> BTreeMap<Module, ModuleExplained> {
        let chain = self.chain(org);
        let mut out = BTreeMap::new();
        for module in Module::ALL {
            for level_org in &chain {
                let here: Vec<(ModuleLevel, &GrantPath)> = applied
                    .iter()
                    .filter_map(|a| match &a.grant {
                        Grant::ModuleRoles { org_id, levels } if org_id == level_org => levels
                            .get(&module)
                            .filter(|l| **l != ModuleLevel::None)
                            .map(|l| (*l, &a.path)),
                        _ => None,
                    })
                    .collect();
                let Some(best) = here.iter().map(|(l, _)| *l).max() else {
                    continue;
                };
                let granted_by = here
                    .iter()
                    .filter(|(l, _)| *l == best)
                    .map(|(l, p)| {
                        let mut path = inherited(p, *level_org != org, None);
                        path.module = Some(format!("{}:{}", module.as_str(), l.as_str()));
                        path
                    })
                    .collect();
                out.insert(
                    module,
                    ModuleExplained {
                        level: best,
                        granted_by,
                    },
                );
                break;
            }
        }
        out
    }
}

fn stored_kind(source: Source) -> PathKind {
    match source {
        Source::Manual => PathKind::Manual,
        Source::Invite => PathKind::Invite,
        Source::Scim | Source::Oidc => PathKind::Provisioned,
    }
}

/// Owner above Member.
fn role_rank(role: OrgRole) -> u8 {
    match role {
        OrgRole::Owner => 1,
        OrgRole::Member => 0,
    }
}

/// `path` as seen from below: a role decided in an org above is inherited from it, whatever
/// gave it there (a mapped one keeps its rule and group).
fn inherited(path: &GrantPath, from_above: bool, role: Option<&str>) -> GrantPath {
    let mut out = path.clone();
    if from_above {
        out.kind = PathKind::Inherited;
    }
    out.role = role.map(str::to_owned);
    out
}

/// The user's standing and role in `org`, and their module roles there.
pub fn resolve_org(user: &UserSnapshot, org: Uuid) -> Resolved {
    resolve(user, org, None)
}

/// The user's permissions on `product`, with the paths behind each.
pub fn resolve_product(user: &UserSnapshot, product: &ProductSnapshot) -> Resolved {
    resolve(user, product.org_id, Some(product))
}

/// Whether the user is an effective, active Owner of `org`: what the Owner rule counts.
pub fn is_owner(user: &UserSnapshot, org: Uuid) -> bool {
    user.active
        && user
            .role_in(org, &user.applied())
            .is_some_and(|r| r.role == OrgRole::Owner)
}

fn resolve(user: &UserSnapshot, org: Uuid, product: Option<&ProductSnapshot>) -> Resolved {
    let mut out = Resolved {
        user_id: user.user_id,
        org_id: org,
        product_id: product.map(|p| p.id),
        standing: Standing::Inactive,
        org_role: None,
        modules: BTreeMap::new(),
        capabilities: BTreeMap::new(),
        environments: product
            .map(|p| {
                p.environments
                    .iter()
                    .map(|e| {
                        (
                            e.id,
                            EnvironmentExplained {
                                name: e.name.clone(),
                                access: EnvAccess::None,
                                granted_by: Vec::new(),
                                lost: Vec::new(),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let applied = user.applied();
    let Some(role) = user.role_in(org, &applied) else {
        out.standing = Standing::NotMember;
        return out;
    };
    if !user.active {
        return out;
    }
    out.modules = user.modules_in(org, &applied);
    if role.role == OrgRole::Owner {
        out.standing = Standing::Owner;
        let owner = GrantPath {
            role: Some(OrgRole::Owner.as_str().to_owned()),
            ..GrantPath::new(
                PathKind::Owner,
                role.granted_by.first().map_or(org, |p| p.org_id),
            )
        };
        for capability in Capability::ALL {
            out.capabilities.insert(capability, vec![owner.clone()]);
        }
        for env in out.environments.values_mut() {
            env.access = EnvAccess::Full;
            env.granted_by = vec![GrantPath {
                access: Some(EnvAccess::Full),
                ..owner.clone()
            }];
        }
        out.org_role = Some(role);
        return out;
    }
    out.standing = Standing::Member;
    out.org_role = Some(role);

    // Every permission set that applies, with its path.
    let mut sets: Vec<(PermissionSet, GrantPath)> = out
        .modules
        .iter()
        .flat_map(|(module, explained)| {
            explained
                .granted_by
                .iter()
                .map(|p| (module_permissions(*module, explained.level), p.clone()))
        })
        .collect();
    if let Some(product) = product {
        for a in &applied {
            // A rule or default of an org above or beside the product's gives nothing on it.
            let rule_reaches = match a.path.kind {
                PathKind::Mapped | PathKind::Default => user.within(a.path.org_id, product.org_id),
                _ => true,
            };
            if !rule_reaches {
                continue;
            }
            match &a.grant {
                Grant::ProductRole { product_id, role } if *product_id == product.id => {
                    let mut path = a.path.clone();
                    path.role = Some(role.as_str().to_owned());
                    sets.push((Role::permissions(*role), path));
                }
                Grant::PermissionGroup {
                    product_id,
                    group_id,
                } if *product_id == product.id => {
                    // A group deleted since the grant gives nothing.
                    if let Some(group) =
                        product.permission_groups.iter().find(|g| g.id == *group_id)
                    {
                        let mut path = a.path.clone();
                        path.permission_group = Some(group.name.clone());
                        sets.push((group.permissions.clone(), path));
                    }
                }
                _ => {}
            }
        }
        for env in &product.environments {
            let reference = EnvironmentRef {
                id: env.id,
                restricted: env.restricted,
            };
            let given: Vec<(EnvAccess, &GrantPath)> = sets
                .iter()
                .map(|(set, path)| (set.access.access_to(&reference), path))
                .filter(|(access, _)| *access > EnvAccess::None)
                .collect();
            let best = given.iter().map(|(a, _)| *a).max().unwrap_or_default();
            if let Some(explained) = out.environments.get_mut(&env.id) {
                explained.access = best;
                for (access, path) in given {
                    let path = GrantPath {
                        access: Some(access),
                        ..path.clone()
                    };
                    if access == best {
                        explained.granted_by.push(path);
                    } else {
                        explained.lost.push(path);
                    }
                }
            }
        }
    }
    for (set, path) in &sets {
        for capability in &set.capabilities {
            out.capabilities
                .entry(*capability)
                .or_default()
                .push(path.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
