//! Permission answers: what a user may do on a product, from the resolver
//! (`domain::resolve`) over a snapshot the store reads — the one source of truth every
//! permission answer goes through.
//!
//! (The moka cache in front of it, with its cross-instance invalidation, comes next.)

mod cache;
pub mod check;
pub mod explain;
pub mod sessions;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use uuid::Uuid;

use crate::domain::permission::{Action, Capability, EnvAccess, Requirement};
use crate::domain::resolve::{Resolved, Standing};

pub use cache::{ProductEntry, Resolver, UserEntry};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EffectivePermissions {
    pub product_id: Uuid,
    pub org_owner: bool,
    pub capabilities: BTreeSet<Capability>,
    /// Every environment of the product, with the member's access (possibly `none`).
    pub environments: BTreeMap<Uuid, EnvAccess>,
    /// The name of each environment of `environments`, by the same id. A map of its own, so
    /// that `environments` keeps its shape (id → access) for the clients that read it.
    pub environment_names: BTreeMap<Uuid, String>,
}

impl EffectivePermissions {
    pub fn access(&self, environment: Uuid) -> EnvAccess {
        self.environments
            .get(&environment)
            .copied()
            .unwrap_or_default()
    }

    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// Whether the member may do anything at all on the product: a capability, or more than
    /// `none` in some environment.
    pub fn any_access(&self) -> bool {
        !self.capabilities.is_empty() || self.environments.values().any(|a| *a > EnvAccess::None)
    }

    /// Whether `action` is allowed in `environment` (ignored by environment-independent
    /// actions; an environment-bound action without one is refused).
    pub fn allowed(&self, action: Action, environment: Option<Uuid>) -> bool {
        let env_ok = |needed: EnvAccess| environment.is_some_and(|e| self.access(e) >= needed);
        match action.requirement() {
            Requirement::Env(needed) => env_ok(needed),
            Requirement::Capability(c) => self.has(c),
            Requirement::Both(c, needed) => self.has(c) && env_ok(needed),
        }
    }
}

impl From<&Resolved> for EffectivePermissions {
    fn from(r: &Resolved) -> Self {
        EffectivePermissions {
            product_id: r.product_id.unwrap_or(r.org_id),
            org_owner: r.standing == Standing::Owner,
            capabilities: r.capabilities.keys().copied().collect::<BTreeSet<_>>(),
            environments: r
                .environments
                .iter()
                .map(|(id, e)| (*id, e.access))
                .collect::<BTreeMap<_, _>>(),
            environment_names: r
                .environments
                .iter()
                .map(|(id, e)| (*id, e.name.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Source;
    use crate::domain::mapping::Grant;
    use crate::domain::org::OrgRole;
    use crate::domain::permission::Role;
    use crate::domain::resolve::{
        EnvironmentFact, Membership, ProductSnapshot, StoredGrant, UserSnapshot, resolve_product,
    };

    fn product() -> (ProductSnapshot, Uuid, Uuid) {
        let (dev, live) = (Uuid::from_u128(10), Uuid::from_u128(20));
        let env = |id, name: &str, restricted| EnvironmentFact {
            id,
            name: name.into(),
            restricted,
        };
        (
            ProductSnapshot {
                id: Uuid::from_u128(1),
                org_id: Uuid::from_u128(5),
                environments: vec![env(dev, "Development", false), env(live, "Live", true)],
                permission_groups: Vec::new(),
            },
            dev,
            live,
        )
    }

    fn user(role: Option<OrgRole>, product_roles: &[Role]) -> UserSnapshot {
        let org = Uuid::from_u128(5);
        UserSnapshot {
            user_id: Uuid::from_u128(100),
            active: true,
            orgs: vec![(org, None)].into(),
            memberships: vec![Membership {
                org_id: org,
                role,
                source: Source::Manual,
            }],
            grants: product_roles
                .iter()
                .map(|r| StoredGrant {
                    org_id: org,
                    source: Source::Manual,
                    grant: Grant::ProductRole {
                        product_id: Uuid::from_u128(1),
                        role: *r,
                    },
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn every_environment_is_named_beside_its_id_whatever_the_access() {
        let (p, dev, live) = product();
        for u in [user(None, &[]), user(Some(OrgRole::Owner), &[])] {
            let eff = EffectivePermissions::from(&resolve_product(&u, &p));
            assert_eq!(
                eff.environment_names,
                BTreeMap::from([(dev, "Development".into()), (live, "Live".into())])
            );
            assert_eq!(
                eff.environment_names.keys().collect::<Vec<_>>(),
                eff.environments.keys().collect::<Vec<_>>()
            );
            assert_eq!(eff.any_access(), eff.org_owner);
        }
    }

    #[test]
    fn the_answer_is_the_resolvers() {
        let (p, dev, live) = product();
        let editor = EffectivePermissions::from(&resolve_product(&user(None, &[Role::Editor]), &p));
        assert_eq!(editor.access(dev), EnvAccess::Full);
        assert_eq!(editor.access(live), EnvAccess::Edit);
        assert!(editor.has(Capability::ManageResources) && !editor.org_owner);
        assert!(editor.allowed(Action::FlagEdit, Some(live)));
        assert!(!editor.allowed(Action::FlagLaunch, Some(live)));
        let owner =
            EffectivePermissions::from(&resolve_product(&user(Some(OrgRole::Owner), &[]), &p));
        assert!(owner.org_owner && Capability::ALL.iter().all(|c| owner.has(*c)));
    }

    #[test]
    fn environment_actions_need_an_environment() {
        let (p, _, _) = product();
        let eff =
            EffectivePermissions::from(&resolve_product(&user(Some(OrgRole::Owner), &[]), &p));
        assert!(!eff.allowed(Action::FlagEdit, None));
        assert!(
            !eff.allowed(Action::FlagEdit, Some(Uuid::from_u128(99))),
            "unknown environment: no access"
        );
    }
}
