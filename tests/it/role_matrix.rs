//! Seed 002's permission matrix, transcribed by hand, checked cell by cell against the
//! evaluator. The table is literal on purpose: it must not be derived from the role
//! definitions it checks.
//!
//! Seed 002 marks some Editor cells "Yes *": "In restricted environments, Editors … can create
//! flags and flag rules but cannot launch, pause or change traffic allocation. In
//! non-restricted environments, those Editors … have full access". Starred rows are therefore
//! split into their editing and their launching parts, with the restricted column following
//! the footnote.

use rolegate::authz::EffectivePermissions;
use rolegate::domain::Source;
use rolegate::domain::mapping::Grant;
use rolegate::domain::permission::{Action, Role};
use rolegate::domain::resolve::{
    EnvironmentFact, Membership, ProductSnapshot, StoredGrant, UserSnapshot, resolve_product,
};
use uuid::Uuid;

const Y: bool = true;
const N: bool = false;

/// (row, action, [Viewer, Editor, Publisher, Project Owner, Administrator] in a non-restricted
/// environment, the same in a restricted environment)
#[rustfmt::skip]
const MATRIX: &[(&str, Action, [bool; 5], [bool; 5])] = &[
    ("Experiments (create, edit, archive)",           Action::ExperimentEdit,        [N, Y, Y, Y, Y], [N, Y, Y, Y, Y]),
    ("Experiments (start, pause)",                    Action::ExperimentLaunch,      [N, Y, Y, Y, Y], [N, N, Y, Y, Y]),
    ("Variations (create, edit, delete)",             Action::VariationEdit,         [N, Y, Y, Y, Y], [N, Y, Y, Y, Y]),
    ("Variations (re-allocate traffic, pause)",       Action::VariationTraffic,      [N, Y, Y, Y, Y], [N, N, Y, Y, Y]),
    ("Flags (create, edit, archive)",                 Action::FlagEdit,              [N, Y, Y, Y, Y], [N, Y, Y, Y, Y]),
    ("Flag rules (launch, pause) — footnote",         Action::FlagLaunch,            [N, Y, Y, Y, Y], [N, N, Y, Y, Y]),
    ("Variable keys (create, edit, delete)",          Action::VariableKeys,          [N, Y, Y, Y, Y], [N, Y, Y, Y, Y]),
    ("Traffic allocation (edit)",                     Action::TrafficAllocation,     [N, Y, Y, Y, Y], [N, N, Y, Y, Y]),
    ("Events (create, edit, archive)",                Action::Events,                [N, N, Y, Y, Y], [N, N, Y, Y, Y]),
    ("Audiences (create, edit, archive)",             Action::Audiences,             [N, Y, Y, Y, Y], [N, Y, Y, Y, Y]),
    ("Add specific users (add users, edit, delete)",  Action::SpecificUsers,         [N, Y, Y, Y, Y], [N, Y, Y, Y, Y]),
    ("Attributes (create, edit, archive)",            Action::Attributes,            [N, Y, Y, Y, Y], [N, Y, Y, Y, Y]),
    ("Collaborators (invite, edit, delete)",          Action::Collaborators,         [N, N, N, Y, Y], [N, N, N, Y, Y]),
    ("Environments (create, edit, archive)",          Action::Environments,          [N, N, N, Y, Y], [N, N, N, Y, Y]),
    ("Webhooks (create, delete)",                     Action::Webhooks,              [N, N, N, Y, Y], [N, N, N, Y, Y]),
    ("Integrations (create, edit, delete)",           Action::Integrations,          [N, N, N, Y, Y], [N, N, N, Y, Y]),
    ("Reset results",                                 Action::ResetResults,          [N, N, Y, Y, Y], [N, N, Y, Y, Y]),
    ("Mutual exclusion groups (create, edit, delete)", Action::MutualExclusionGroups, [N, Y, Y, Y, Y], [N, Y, Y, Y, Y]),
    // From the summary above the matrix: "Viewers have read-only access", "Administrators
    // have full permissions to manage account settings".
    ("See flags and rules (read-only)",               Action::View,                  [Y, Y, Y, Y, Y], [Y, Y, Y, Y, Y]),
    ("Account settings",                              Action::OrgSettings,           [N, N, N, N, Y], [N, N, N, N, Y]),
];

const ROLES: [Role; 5] = [
    Role::Viewer,
    Role::Editor,
    Role::Publisher,
    Role::ProjectOwner,
    Role::Administrator,
];

#[test]
fn every_cell_of_the_seed_002_matrix_holds() {
    let org = Uuid::from_u128(50);
    let open = EnvironmentFact {
        id: Uuid::from_u128(1),
        name: "Staging".into(),
        restricted: false,
    };
    let restricted = EnvironmentFact {
        id: Uuid::from_u128(2),
        name: "Production".into(),
        restricted: true,
    };
    let product = ProductSnapshot {
        id: Uuid::from_u128(100),
        org_id: org,
        environments: vec![open.clone(), restricted.clone()],
        permission_groups: Vec::new(),
    };
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (row, action, in_open, in_restricted) in MATRIX {
        for (i, role) in ROLES.iter().enumerate() {
            // A member of the product's org with the role granted on the product, answered
            // by the resolver every permission answer goes through.
            let user = UserSnapshot {
                user_id: Uuid::from_u128(7),
                active: true,
                orgs: vec![(org, None)].into(),
                memberships: vec![Membership {
                    org_id: org,
                    role: None,
                    source: Source::Manual,
                }],
                grants: vec![StoredGrant {
                    org_id: org,
                    source: Source::Manual,
                    grant: Grant::ProductRole {
                        product_id: product.id,
                        role: *role,
                    },
                }],
                ..UserSnapshot::default()
            };
            let eff = EffectivePermissions::from(&resolve_product(&user, &product));
            for (env, expected) in [(&open, in_open[i]), (&restricted, in_restricted[i])] {
                checked += 1;
                if eff.allowed(*action, Some(env.id)) != expected {
                    wrong.push(format!(
                        "{row} / {} / {}: expected {expected}",
                        role.display_name(),
                        if env.restricted {
                            "restricted"
                        } else {
                            "non-restricted"
                        }
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cells that disagree with the seed:\n{}",
        wrong.join("\n")
    );
    assert_eq!(checked, MATRIX.len() * ROLES.len() * 2);
}

#[test]
fn the_matrix_covers_every_action_the_seed_names() {
    use std::collections::HashSet;
    let covered: HashSet<_> = MATRIX.iter().map(|(_, a, _, _)| *a).collect();
    assert_eq!(covered.len(), MATRIX.len(), "each action once");
    for action in Action::ALL {
        // Exhaustive on purpose: a new action does not compile until it is placed here.
        let from_seed_002 = match action {
            // View SDK key comes from seeds 000/001, not from seed 002's matrix.
            Action::ViewSdkKey => false,
            Action::View
            | Action::ExperimentEdit
            | Action::ExperimentLaunch
            | Action::VariationEdit
            | Action::VariationTraffic
            | Action::FlagEdit
            | Action::FlagLaunch
            | Action::VariableKeys
            | Action::TrafficAllocation
            | Action::Events
            | Action::Audiences
            | Action::SpecificUsers
            | Action::Attributes
            | Action::Collaborators
            | Action::Environments
            | Action::Webhooks
            | Action::Integrations
            | Action::ResetResults
            | Action::MutualExclusionGroups
            | Action::OrgSettings => true,
        };
        assert_eq!(covered.contains(&action), from_seed_002, "{action:?}");
    }
}
