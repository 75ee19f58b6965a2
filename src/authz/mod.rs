//! Effective permissions: the union of everything a member holds on a product. Pure.
//!
//! (The cached resolver, its explanation and the cross-instance invalidation bus build on
//! this with the OIDC/session work.)

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use uuid::Uuid;

use crate::domain::permission::{
    Action, Capability, EnvAccess, EnvironmentRef, PermissionSet, Requirement,
};
use crate::domain::product::Environment;

/// What the evaluator needs to know about a member, for one product.
#[derive(Debug, Clone, Default)]
pub struct UserFacts {
    pub active: bool,
    /// Effective Owner of the product's org (directly or inherited): has everything.
    pub org_owner: bool,
    /// Every permission set the member holds on the product: roles, presets, custom groups,
    /// module roles — direct, invited or mapped from IdP groups.
    pub sets: Vec<PermissionSet>,
}

#[derive(Debug, Clone)]
pub struct ProductFacts {
    pub id: Uuid,
    pub environments: Vec<EnvironmentFacts>,
}

/// An environment of the product: whether it is restricted (what the evaluator reads), and its
/// name, loaded with it so that the answer can show each environment's name beside its id
/// without a query per environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFacts {
    pub id: Uuid,
    pub name: String,
    pub restricted: bool,
}

impl EnvironmentFacts {
    fn as_ref(&self) -> EnvironmentRef {
        EnvironmentRef {
            id: self.id,
            restricted: self.restricted,
        }
    }
}

impl From<&Environment> for EnvironmentFacts {
    fn from(e: &Environment) -> Self {
        EnvironmentFacts {
            id: e.id,
            name: e.name.clone(),
            restricted: e.restricted,
        }
    }
}

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

/// The union of the member's permission sets: every capability any set gives, and per
/// environment the highest access any set gives. An org Owner has everything; an inactive
/// user nothing.
pub fn evaluate(user: &UserFacts, product: &ProductFacts) -> EffectivePermissions {
    let mut out = EffectivePermissions {
        product_id: product.id,
        org_owner: user.active && user.org_owner,
        capabilities: BTreeSet::new(),
        environments: product
            .environments
            .iter()
            .map(|e| (e.id, EnvAccess::None))
            .collect(),
        environment_names: product
            .environments
            .iter()
            .map(|e| (e.id, e.name.clone()))
            .collect(),
    };
    if !user.active {
        return out;
    }
    if user.org_owner {
        out.capabilities = Capability::ALL.into_iter().collect();
        out.environments
            .values_mut()
            .for_each(|a| *a = EnvAccess::Full);
        return out;
    }
    for set in &user.sets {
        out.capabilities.extend(set.capabilities.iter().copied());
        for env in &product.environments {
            let granted = set.access.access_to(&env.as_ref());
            let current = out.environments.entry(env.id).or_default();
            *current = (*current).max(granted);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::permission::{
        AccessRule, Module, ModuleLevel, Role, module_permissions, product_presets,
    };

    fn product() -> (ProductFacts, Uuid, Uuid) {
        let (dev, live) = (Uuid::from_u128(10), Uuid::from_u128(20));
        let envs = vec![
            EnvironmentFacts {
                id: dev,
                name: "Development".into(),
                restricted: false,
            },
            EnvironmentFacts {
                id: live,
                name: "Live".into(),
                restricted: true,
            },
        ];
        (
            ProductFacts {
                id: Uuid::from_u128(1),
                environments: envs,
            },
            dev,
            live,
        )
    }

    #[test]
    fn union_takes_every_capability_and_the_highest_access_per_environment() {
        let (p, dev, live) = product();
        let developer = product_presets()[2].1.clone();
        let mut live_full = PermissionSet::default();
        live_full.access.overrides.insert(live, EnvAccess::Full);
        live_full.capabilities.insert(Capability::ViewSdkKey);
        let user = UserFacts {
            active: true,
            org_owner: false,
            sets: vec![developer, live_full],
        };
        let eff = evaluate(&user, &p);
        assert_eq!(eff.access(dev), EnvAccess::Full);
        assert_eq!(
            eff.access(live),
            EnvAccess::Full,
            "the override lifts the Developer's read-only"
        );
        assert!(eff.has(Capability::ManageResources) && eff.has(Capability::ViewSdkKey));
        assert!(!eff.has(Capability::ManageMembers));
    }

    #[test]
    fn no_groups_means_no_access_and_owners_have_everything() {
        let (p, dev, live) = product();
        let nobody = evaluate(
            &UserFacts {
                active: true,
                ..Default::default()
            },
            &p,
        );
        assert_eq!(nobody.access(dev), EnvAccess::None);
        assert!(nobody.capabilities.is_empty());
        assert!(!nobody.allowed(Action::View, Some(dev)));
        let owner = evaluate(
            &UserFacts {
                active: true,
                org_owner: true,
                sets: vec![],
            },
            &p,
        );
        assert!(Capability::ALL.iter().all(|c| owner.has(*c)));
        assert_eq!(owner.access(live), EnvAccess::Full);
    }

    #[test]
    fn every_environment_is_named_beside_its_id_whatever_the_access() {
        let (p, dev, live) = product();
        for user in [
            UserFacts::default(),
            UserFacts {
                active: true,
                org_owner: true,
                sets: vec![],
            },
        ] {
            let eff = evaluate(&user, &p);
            assert_eq!(
                eff.environment_names,
                BTreeMap::from([(dev, "Development".into()), (live, "Live".into())])
            );
            assert_eq!(
                eff.environment_names.keys().collect::<Vec<_>>(),
                eff.environments.keys().collect::<Vec<_>>()
            );
            assert_eq!(eff.any_access(), user.org_owner);
        }
    }

    #[test]
    fn inactive_users_have_nothing_whatever_they_hold() {
        let (p, dev, _) = product();
        let user = UserFacts {
            active: false,
            org_owner: true,
            sets: vec![Role::Administrator.permissions()],
        };
        let eff = evaluate(&user, &p);
        assert!(!eff.org_owner && eff.capabilities.is_empty());
        assert_eq!(eff.access(dev), EnvAccess::None);
    }

    #[test]
    fn module_roles_apply_as_primitives() {
        let (p, dev, live) = product();
        let user = UserFacts {
            active: true,
            org_owner: false,
            sets: vec![
                module_permissions(Module::FeatureFlags, ModuleLevel::Read),
                module_permissions(Module::SdkKeys, ModuleLevel::Read),
            ],
        };
        let eff = evaluate(&user, &p);
        assert_eq!(eff.access(dev), EnvAccess::ReadOnly);
        assert!(eff.allowed(Action::ViewSdkKey, None));
        assert!(!eff.allowed(Action::FlagEdit, Some(live)));
        let writer = evaluate(
            &UserFacts {
                active: true,
                org_owner: false,
                sets: vec![module_permissions(Module::FeatureFlags, ModuleLevel::Write)],
            },
            &p,
        );
        assert!(
            writer.allowed(Action::FlagLaunch, Some(live))
                && writer.has(Capability::ManageResources)
        );
        assert_eq!(
            module_permissions(Module::Billing, ModuleLevel::Write),
            PermissionSet::default()
        );
        assert_eq!(
            module_permissions(Module::FeatureFlags, ModuleLevel::None).access,
            AccessRule::default()
        );
    }

    #[test]
    fn environment_actions_need_an_environment() {
        let (p, _, _) = product();
        let eff = evaluate(
            &UserFacts {
                active: true,
                org_owner: true,
                sets: vec![],
            },
            &p,
        );
        assert!(!eff.allowed(Action::FlagEdit, None));
        assert!(
            !eff.allowed(Action::FlagEdit, Some(Uuid::from_u128(99))),
            "unknown environment: no access"
        );
    }
}
