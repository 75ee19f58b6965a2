//! One permission question answered from a resolution: may the user do this action, or have
//! this capability — and, in one word, why (the `reason` of `POST /api/v1/authz/check`).

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::permission::{Action, Capability, EnvAccess, Requirement};
use crate::domain::resolve::{Resolved, Standing};

/// What is asked: one of seed 002's actions, or a capability by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Action(Action),
    Capability(Capability),
}

impl Ask {
    /// The capability the ask needs, if any.
    pub fn capability(self) -> Option<Capability> {
        match self {
            Ask::Capability(c) => Some(c),
            Ask::Action(a) => match a.requirement() {
                Requirement::Capability(c) | Requirement::Both(c, _) => Some(c),
                Requirement::Env(_) => None,
            },
        }
    }

    /// The access the ask needs in the environment it is done in; `None`: it is not done in
    /// an environment, so none is needed (and an environment named with it is not looked at).
    pub fn environment_access(self) -> Option<EnvAccess> {
        match self {
            Ask::Capability(_) => None,
            Ask::Action(a) => match a.requirement() {
                Requirement::Env(e) | Requirement::Both(_, e) => Some(e),
                Requirement::Capability(_) => None,
            },
        }
    }
}

/// Why the answer is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An effective Owner of the org: everything is allowed.
    Owner,
    /// Some grant (manual, invited, provisioned, mapped, default, module role) gives it.
    Granted,
    /// A member of the org, but nothing they hold gives it.
    Insufficient,
    /// Deactivated (SCIM `active: false`): nothing is allowed, whatever is granted.
    Inactive,
    /// Not a member of the org (nor of one above it).
    NotMember,
}

/// The answer to one question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
}

/// Decides `ask` from `resolved`, in `environment` when the ask is done in one. An ask that
/// needs an environment and gets none (or one the resolution does not list) is not allowed:
/// the HTTP edge refuses such questions before they get here, so this only keeps the rule
/// safe on its own.
pub fn decide(resolved: &Resolved, ask: Ask, environment: Option<Uuid>) -> Decision {
    let reason = match resolved.standing {
        Standing::Inactive => Reason::Inactive,
        Standing::NotMember => Reason::NotMember,
        Standing::Owner | Standing::Member => {
            let capability_ok = ask.capability().is_none_or(|c| resolved.has(c));
            let environment_ok = ask
                .environment_access()
                .is_none_or(|needed| environment.is_some_and(|e| resolved.access(e) >= needed));
            match (capability_ok && environment_ok, resolved.standing) {
                (false, _) => Reason::Insufficient,
                (true, Standing::Owner) => Reason::Owner,
                (true, _) => Reason::Granted,
            }
        }
    };
    Decision {
        allowed: matches!(reason, Reason::Owner | Reason::Granted),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Source;
    use crate::domain::mapping::Grant;
    use crate::domain::org::OrgRole;
    use crate::domain::permission::{ModuleLevel, Role};
    use crate::domain::resolve::{
        EnvironmentFact, Membership, ProductSnapshot, StoredGrant, UserSnapshot, resolve_org,
        resolve_product,
    };

    const ORG: Uuid = Uuid::from_u128(5);
    const DEV: Uuid = Uuid::from_u128(10);
    const LIVE: Uuid = Uuid::from_u128(20);

    fn product() -> ProductSnapshot {
        let env = |id, name: &str, restricted| EnvironmentFact {
            id,
            name: name.into(),
            restricted,
        };
        ProductSnapshot {
            id: Uuid::from_u128(1),
            org_id: ORG,
            environments: vec![env(DEV, "Development", false), env(LIVE, "Live", true)],
            permission_groups: Vec::new(),
        }
    }

    fn user(role: Option<OrgRole>, grants: Vec<Grant>) -> UserSnapshot {
        UserSnapshot {
            user_id: Uuid::from_u128(100),
            active: true,
            orgs: vec![(ORG, None)].into(),
            memberships: vec![Membership {
                org_id: ORG,
                role,
                source: Source::Manual,
            }],
            grants: grants
                .into_iter()
                .map(|grant| StoredGrant {
                    org_id: ORG,
                    source: Source::Manual,
                    grant,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn editor() -> UserSnapshot {
        user(
            None,
            vec![Grant::ProductRole {
                product_id: Uuid::from_u128(1),
                role: Role::Editor,
            }],
        )
    }

    fn answer(allowed: bool, reason: Reason) -> Decision {
        Decision { allowed, reason }
    }

    #[test]
    fn an_editor_edits_but_does_not_launch_in_a_restricted_environment() {
        let r = resolve_product(&editor(), &product());
        let edit = Ask::Action(Action::FlagEdit);
        let launch = Ask::Action(Action::FlagLaunch);
        assert_eq!(decide(&r, edit, Some(LIVE)), answer(true, Reason::Granted));
        assert_eq!(
            decide(&r, launch, Some(LIVE)),
            answer(false, Reason::Insufficient)
        );
        assert_eq!(decide(&r, launch, Some(DEV)), answer(true, Reason::Granted));
        assert_eq!(
            decide(&r, launch, None),
            answer(false, Reason::Insufficient),
            "an environment action without an environment is never allowed"
        );
        assert_eq!(
            decide(&r, Ask::Capability(Capability::ManageResources), None),
            answer(true, Reason::Granted)
        );
        assert_eq!(
            decide(&r, Ask::Action(Action::Collaborators), None),
            answer(false, Reason::Insufficient)
        );
    }

    #[test]
    fn owners_inactive_users_and_non_members_answer_in_their_own_word() {
        let p = product();
        let owner = resolve_product(&user(Some(OrgRole::Owner), Vec::new()), &p);
        let ask = Ask::Action(Action::FlagLaunch);
        assert_eq!(decide(&owner, ask, Some(LIVE)), answer(true, Reason::Owner));
        let mut inactive = user(Some(OrgRole::Owner), Vec::new());
        inactive.active = false;
        assert_eq!(
            decide(&resolve_product(&inactive, &p), ask, Some(LIVE)),
            answer(false, Reason::Inactive)
        );
        let mut stranger = editor();
        stranger.memberships.clear();
        assert_eq!(
            decide(&resolve_product(&stranger, &p), ask, Some(DEV)),
            answer(false, Reason::NotMember)
        );
    }

    #[test]
    fn org_level_questions_are_answered_from_module_roles() {
        let settings = Ask::Capability(Capability::ManageOrgSettings);
        let plain = resolve_org(&editor(), ORG);
        assert_eq!(
            decide(&plain, settings, None),
            answer(false, Reason::Insufficient),
            "a product role gives nothing at org level"
        );
        let admin = user(
            None,
            vec![Grant::ModuleRoles {
                org_id: ORG,
                levels: [(
                    crate::domain::permission::Module::Settings,
                    ModuleLevel::Write,
                )]
                .into(),
            }],
        );
        let r = resolve_org(&admin, ORG);
        assert_eq!(decide(&r, settings, None), answer(true, Reason::Granted));
        assert_eq!(
            decide(&r, Ask::Action(Action::OrgSettings), None),
            answer(true, Reason::Granted)
        );
    }
}
