//! One permission vocabulary for the three seed products (DESIGN.md): capabilities on a
//! product, access per environment, permission groups, the built-in roles and org-level module
//! roles. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What a member may do on a product beyond reading and writing flag values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Invite and remove members, change their permissions, read the product audit log.
    ManageMembers,
    /// Flags, settings, configs, tags, variable keys, audiences, attributes, mutual exclusion
    /// groups.
    ManageResources,
    ManageEnvironments,
    /// Webhooks and integrations.
    ManageIntegrations,
    ManageEvents,
    ResetResults,
    ViewSdkKey,
    /// Organization settings (seed 002's Administrator).
    ManageOrgSettings,
}

impl Capability {
    pub const ALL: [Capability; 8] = [
        Capability::ManageMembers,
        Capability::ManageResources,
        Capability::ManageEnvironments,
        Capability::ManageIntegrations,
        Capability::ManageEvents,
        Capability::ResetResults,
        Capability::ViewSdkKey,
        Capability::ManageOrgSettings,
    ];
}

/// Access to one environment, ordered: a higher value includes the lower ones.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Default,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EnvAccess {
    #[default]
    None,
    ReadOnly,
    /// Create and change flags and rules, but not launch, pause or change traffic allocation
    /// (seed 002's Editor in a restricted environment).
    Edit,
    /// Everything, launch included (seeds 000/001's "Full access").
    Full,
}

impl EnvAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvAccess::None => "none",
            EnvAccess::ReadOnly => "read_only",
            EnvAccess::Edit => "edit",
            EnvAccess::Full => "full",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "none" => EnvAccess::None,
            "read_only" => EnvAccess::ReadOnly,
            "edit" => EnvAccess::Edit,
            "full" => EnvAccess::Full,
            _ => return None,
        })
    }
}

/// An environment as the evaluator needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvironmentRef {
    pub id: Uuid,
    pub restricted: bool,
}

/// How a permission group grants environment access: a default for all environments, an
/// optional default for restricted ones, and per-environment overrides (which win).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct AccessRule {
    pub default: EnvAccess,
    pub restricted: Option<EnvAccess>,
    #[serde(default)]
    pub overrides: BTreeMap<Uuid, EnvAccess>,
}

impl AccessRule {
    pub fn uniform(access: EnvAccess) -> Self {
        AccessRule {
            default: access,
            restricted: None,
            overrides: BTreeMap::new(),
        }
    }

    pub fn with_restricted(default: EnvAccess, restricted: EnvAccess) -> Self {
        AccessRule {
            default,
            restricted: Some(restricted),
            overrides: BTreeMap::new(),
        }
    }

    pub fn access_to(&self, env: &EnvironmentRef) -> EnvAccess {
        if let Some(a) = self.overrides.get(&env.id) {
            return *a;
        }
        match (env.restricted, self.restricted) {
            (true, Some(a)) => a,
            _ => self.default,
        }
    }
}

/// Capabilities plus environment access: the content of a permission group or a role.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct PermissionSet {
    pub capabilities: BTreeSet<Capability>,
    pub access: AccessRule,
}

impl PermissionSet {
    fn new(capabilities: &[Capability], access: AccessRule) -> Self {
        PermissionSet {
            capabilities: capabilities.iter().copied().collect(),
            access,
        }
    }
}

/// Seed 002's roles, built-in read-only permission groups; each includes the one before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Editor,
    Publisher,
    ProjectOwner,
    Administrator,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Editor,
        Role::Publisher,
        Role::ProjectOwner,
        Role::Administrator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Publisher => "publisher",
            Role::ProjectOwner => "project_owner",
            Role::Administrator => "administrator",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|r| r.as_str() == value)
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::Editor => "Editor",
            Role::Publisher => "Publisher",
            Role::ProjectOwner => "Project Owner",
            Role::Administrator => "Administrator",
        }
    }

    pub fn permissions(self) -> PermissionSet {
        use Capability::*;
        use EnvAccess::*;
        match self {
            Role::Viewer => PermissionSet::new(&[], AccessRule::uniform(ReadOnly)),
            Role::Editor => {
                PermissionSet::new(&[ManageResources], AccessRule::with_restricted(Full, Edit))
            }
            Role::Publisher => PermissionSet::new(
                &[ManageResources, ManageEvents, ResetResults],
                AccessRule::uniform(Full),
            ),
            Role::ProjectOwner => PermissionSet::new(
                &[
                    ManageResources,
                    ManageEvents,
                    ResetResults,
                    ManageMembers,
                    ManageEnvironments,
                    ManageIntegrations,
                    ViewSdkKey,
                ],
                AccessRule::uniform(Full),
            ),
            Role::Administrator => {
                let mut set = Role::ProjectOwner.permissions();
                set.capabilities.insert(ManageOrgSettings);
                set
            }
        }
    }
}

/// Seeds 000/001's example groups, created as editable presets on every new product.
pub fn product_presets() -> Vec<(&'static str, PermissionSet)> {
    use Capability::*;
    use EnvAccess::*;
    vec![
        (
            "Product Administrator",
            PermissionSet::new(&[ManageMembers, ManageResources], AccessRule::uniform(Full)),
        ),
        (
            "Product Manager",
            PermissionSet::new(&[], AccessRule::uniform(Full)),
        ),
        (
            "Developer",
            PermissionSet::new(
                &[ManageResources],
                AccessRule::with_restricted(Full, ReadOnly),
            ),
        ),
    ]
}

/// Seed 003's modules, granted per org with a level.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    FeatureFlags,
    Experiments,
    Audiences,
    Environments,
    Members,
    SdkKeys,
    Integrations,
    AuditLog,
    Billing,
    Settings,
}

impl Module {
    pub const ALL: [Module; 10] = [
        Module::FeatureFlags,
        Module::Experiments,
        Module::Audiences,
        Module::Environments,
        Module::Members,
        Module::SdkKeys,
        Module::Integrations,
        Module::AuditLog,
        Module::Billing,
        Module::Settings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Module::FeatureFlags => "feature_flags",
            Module::Experiments => "experiments",
            Module::Audiences => "audiences",
            Module::Environments => "environments",
            Module::Members => "members",
            Module::SdkKeys => "sdk_keys",
            Module::Integrations => "integrations",
            Module::AuditLog => "audit_log",
            Module::Billing => "billing",
            Module::Settings => "settings",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Module::ALL.into_iter().find(|m| m.as_str() == value)
    }
}

/// A module level. `None` in a sub-org means "inherit from the parent".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ModuleLevel {
    None,
    Read,
    Write,
}

impl ModuleLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleLevel::None => "none",
            ModuleLevel::Read => "read",
            ModuleLevel::Write => "write",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "none" => ModuleLevel::None,
            "read" => ModuleLevel::Read,
            "write" => ModuleLevel::Write,
            _ => return None,
        })
    }
}

/// What a module role means on every product of the org, as the same primitives.
/// Billing, settings and the audit log are org-level modules: they add nothing on a product
/// except `settings: write`, which is the Administrator's org-settings capability.
pub fn module_permissions(module: Module, level: ModuleLevel) -> PermissionSet {
    use Capability::*;
    use EnvAccess::*;
    let read = AccessRule::uniform(ReadOnly);
    let none = AccessRule::uniform(EnvAccess::None);
    match (module, level) {
        (_, ModuleLevel::None) => PermissionSet::default(),
        (Module::FeatureFlags, ModuleLevel::Read)
        | (Module::Experiments, ModuleLevel::Read)
        | (Module::Audiences, ModuleLevel::Read)
        | (Module::Environments, ModuleLevel::Read) => PermissionSet::new(&[], read),
        (Module::FeatureFlags, ModuleLevel::Write) => {
            PermissionSet::new(&[ManageResources], AccessRule::uniform(Full))
        }
        (Module::Experiments, ModuleLevel::Write) => PermissionSet::new(
            &[ManageResources, ManageEvents, ResetResults],
            AccessRule::uniform(Full),
        ),
        (Module::Audiences, ModuleLevel::Write) => PermissionSet::new(&[ManageResources], read),
        (Module::Environments, ModuleLevel::Write) => {
            PermissionSet::new(&[ManageEnvironments], read)
        }
        (Module::Members, ModuleLevel::Write) => PermissionSet::new(&[ManageMembers], none),
        (Module::SdkKeys, _) => PermissionSet::new(&[ViewSdkKey], none),
        (Module::Integrations, ModuleLevel::Write) => {
            PermissionSet::new(&[ManageIntegrations], none)
        }
        (Module::Settings, ModuleLevel::Write) => PermissionSet::new(&[ManageOrgSettings], none),
        (
            Module::Members
            | Module::Integrations
            | Module::AuditLog
            | Module::Billing
            | Module::Settings,
            _,
        ) => PermissionSet::default(),
    }
}

/// Seed 002's actions, split where its footnote splits them: in a restricted environment an
/// Editor may create and edit flags, rules and experiments, but not launch, pause or change
/// traffic allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// See flags, settings and values in an environment.
    View,
    /// Experiments: create, edit, archive.
    ExperimentEdit,
    /// Experiments: start, pause.
    ExperimentLaunch,
    /// Variations: create, edit, delete.
    VariationEdit,
    /// Variations: re-allocate traffic, pause.
    VariationTraffic,
    /// Flags: create, edit, archive.
    FlagEdit,
    /// Flags: launch or pause a flag rule.
    FlagLaunch,
    /// Variable keys: create, edit, delete.
    VariableKeys,
    /// Traffic allocation: edit.
    TrafficAllocation,
    /// Events: create, edit, archive.
    Events,
    /// Audiences: create, edit, archive.
    Audiences,
    /// Specific users in a rule: add, edit, delete.
    SpecificUsers,
    /// Attributes: create, edit, archive.
    Attributes,
    /// Collaborators: invite, edit, delete.
    Collaborators,
    /// Environments: create, edit, archive.
    Environments,
    /// Webhooks: create, delete.
    Webhooks,
    /// Integrations: create, edit, delete.
    Integrations,
    ResetResults,
    /// Mutual exclusion groups: create, edit, delete.
    MutualExclusionGroups,
    ViewSdkKey,
    OrgSettings,
}

/// The primitive an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// At least this access to the environment acted in.
    Env(EnvAccess),
    /// A capability on the product (environment-independent).
    Capability(Capability),
    /// A capability, and at least this access to the environment.
    Both(Capability, EnvAccess),
}

impl Action {
    pub const ALL: [Action; 21] = [
        Action::View,
        Action::ExperimentEdit,
        Action::ExperimentLaunch,
        Action::VariationEdit,
        Action::VariationTraffic,
        Action::FlagEdit,
        Action::FlagLaunch,
        Action::VariableKeys,
        Action::TrafficAllocation,
        Action::Events,
        Action::Audiences,
        Action::SpecificUsers,
        Action::Attributes,
        Action::Collaborators,
        Action::Environments,
        Action::Webhooks,
        Action::Integrations,
        Action::ResetResults,
        Action::MutualExclusionGroups,
        Action::ViewSdkKey,
        Action::OrgSettings,
    ];

    pub fn requirement(self) -> Requirement {
        use Capability::*;
        use EnvAccess::*;
        match self {
            Action::View => Requirement::Env(ReadOnly),
            Action::ExperimentEdit
            | Action::VariationEdit
            | Action::FlagEdit
            | Action::SpecificUsers => Requirement::Env(Edit),
            Action::ExperimentLaunch
            | Action::VariationTraffic
            | Action::FlagLaunch
            | Action::TrafficAllocation => Requirement::Env(Full),
            Action::VariableKeys
            | Action::Audiences
            | Action::Attributes
            | Action::MutualExclusionGroups => Requirement::Capability(ManageResources),
            Action::Events => Requirement::Capability(ManageEvents),
            Action::Collaborators => Requirement::Capability(ManageMembers),
            Action::Environments => Requirement::Capability(ManageEnvironments),
            Action::Webhooks | Action::Integrations => Requirement::Capability(ManageIntegrations),
            Action::ResetResults => Requirement::Capability(ResetResults),
            Action::ViewSdkKey => Requirement::Capability(Capability::ViewSdkKey),
            Action::OrgSettings => Requirement::Capability(ManageOrgSettings),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_levels_are_ordered_and_round_trip() {
        assert!(EnvAccess::None < EnvAccess::ReadOnly);
        assert!(EnvAccess::ReadOnly < EnvAccess::Edit);
        assert!(EnvAccess::Edit < EnvAccess::Full);
        for a in [
            EnvAccess::None,
            EnvAccess::ReadOnly,
            EnvAccess::Edit,
            EnvAccess::Full,
        ] {
            assert_eq!(EnvAccess::parse(a.as_str()), Some(a));
        }
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        for m in Module::ALL {
            assert_eq!(Module::parse(m.as_str()), Some(m));
        }
    }

    #[test]
    fn overrides_beat_the_restricted_default_which_beats_the_default() {
        let prod = EnvironmentRef {
            id: Uuid::from_u128(1),
            restricted: true,
        };
        let staging = EnvironmentRef {
            id: Uuid::from_u128(2),
            restricted: false,
        };
        let mut rule = AccessRule::with_restricted(EnvAccess::Full, EnvAccess::ReadOnly);
        assert_eq!(rule.access_to(&prod), EnvAccess::ReadOnly);
        assert_eq!(rule.access_to(&staging), EnvAccess::Full);
        rule.overrides.insert(prod.id, EnvAccess::None);
        rule.overrides.insert(staging.id, EnvAccess::Edit);
        assert_eq!(rule.access_to(&prod), EnvAccess::None);
        assert_eq!(rule.access_to(&staging), EnvAccess::Edit);
    }

    #[test]
    fn each_role_includes_the_one_before_it() {
        for pair in Role::ALL.windows(2) {
            let (lower, higher) = (pair[0].permissions(), pair[1].permissions());
            assert!(
                lower.capabilities.is_subset(&higher.capabilities),
                "{:?} ⊄ {:?}",
                pair[0],
                pair[1]
            );
            for restricted in [false, true] {
                let env = EnvironmentRef {
                    id: Uuid::nil(),
                    restricted,
                };
                assert!(lower.access.access_to(&env) <= higher.access.access_to(&env));
            }
        }
    }

    #[test]
    fn presets_match_the_seed_examples() {
        let presets = product_presets();
        let names: Vec<_> = presets.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["Product Administrator", "Product Manager", "Developer"]
        );
        let live = EnvironmentRef {
            id: Uuid::nil(),
            restricted: true,
        };
        let dev = &presets[2].1;
        assert_eq!(dev.access.access_to(&live), EnvAccess::ReadOnly);
        assert!(dev.capabilities.contains(&Capability::ManageResources));
        assert!(!dev.capabilities.contains(&Capability::ManageMembers));
    }
}
