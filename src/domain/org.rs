use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::name::{NameRule, at_most};

/// An organization. A root org is its own tenant (`tenant_id == id`); sub-orgs point at their
/// parent and share the root's tenant id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Org {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl Org {
    pub fn is_root(&self) -> bool {
        self.parent_id.is_none()
    }
}

/// A member's role in one org. `None` in a membership row means "inherit from the parent".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    Owner,
    Member,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Owner => "owner",
            OrgRole::Member => "member",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "owner" => Some(OrgRole::Owner),
            "member" => Some(OrgRole::Member),
            _ => None,
        }
    }
}

/// What an org name accepts: 1 to 200 characters, trimmed.
pub const NAME: NameRule = at_most!(200);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(NAME.validate("  Acme "), Ok("Acme".to_owned()));
        assert!(NAME.validate("   ").is_err());
        assert_eq!(
            NAME.validate(&"x".repeat(201)),
            Err("must be at most 200 characters")
        );
        assert!(NAME.validate(&"é".repeat(200)).is_ok());
    }

    #[test]
    fn roles_round_trip() {
        for r in [OrgRole::Owner, OrgRole::Member] {
            assert_eq!(OrgRole::parse(r.as_str()), Some(r));
        }
        assert_eq!(OrgRole::parse("none"), None);
    }
}

/// A member's effective role in one org, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EffectiveRole {
    pub role: OrgRole,
    /// The org whose membership decided the role (this org, or an ancestor).
    pub from_org: Uuid,
    /// Whether the member has a membership in this org itself (seed 003: "Member" rather than
    /// "Inherited").
    pub direct: bool,
}

/// The effective role in `chain[0]`, given the org chain from that org up to the root and the
/// user's memberships (org → role, `None` = inherit). The nearest explicit role wins; a member
/// with only "inherit" rows is a Member; no membership anywhere in the chain: not a member.
pub fn effective_role(
    chain: &[Uuid],
    membership: impl Fn(Uuid) -> Option<Option<OrgRole>>,
) -> Option<EffectiveRole> {
    let this = *chain.first()?;
    let direct = membership(this).is_some();
    let mut nearest_member = None;
    for org in chain {
        match membership(*org) {
            Some(Some(role)) => {
                return Some(EffectiveRole {
                    role,
                    from_org: *org,
                    direct,
                });
            }
            Some(None) => {
                nearest_member.get_or_insert(*org);
            }
            None => {}
        }
    }
    nearest_member.map(|from_org| EffectiveRole {
        role: OrgRole::Member,
        from_org,
        direct,
    })
}

/// The chain from `org` up to the root, given each org's parent. Stops on a cycle or an
/// unknown parent rather than looping (the schema forbids both; this never trusts it blindly).
pub fn chain_to_root(org: Uuid, parent_of: impl Fn(Uuid) -> Option<Option<Uuid>>) -> Vec<Uuid> {
    let mut chain = vec![org];
    let mut current = org;
    while let Some(Some(parent)) = parent_of(current) {
        if chain.contains(&parent) {
            break;
        }
        chain.push(parent);
        current = parent;
    }
    chain
}

/// `tops` and every org below them, given every org of the tenant `(id, parent)`: tops first,
/// then breadth first. Each org once, even if the rows were to hold a cycle.
pub fn subtree(orgs: &[(Uuid, Option<Uuid>)], tops: &[Uuid]) -> Vec<Uuid> {
    let mut subtree: Vec<Uuid> = tops.to_vec();
    let mut i = 0;
    while i < subtree.len() {
        let current = subtree[i];
        for (child, p) in orgs {
            if *p == Some(current) && !subtree.contains(child) {
                subtree.push(*child);
            }
        }
        i += 1;
    }
    subtree
}

#[cfg(test)]
mod tree_tests {
    use std::collections::HashMap;

    use super::*;

    fn ids() -> (Uuid, Uuid, Uuid) {
        (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3))
    }

    #[test]
    fn a_subtree_is_the_org_and_everything_below_it_and_nothing_beside_it() {
        let (root, team, squad) = ids();
        let sibling = Uuid::from_u128(4);
        let orgs = [
            (root, None),
            (team, Some(root)),
            (squad, Some(team)),
            (sibling, Some(root)),
        ];
        assert_eq!(subtree(&orgs, &[team]), vec![team, squad]);
        assert_eq!(subtree(&orgs, &[squad]), vec![squad]);
        assert_eq!(subtree(&orgs, &[root]).len(), 4);
    }

    #[test]
    fn roles_inherit_down_a_three_level_tree() {
        let (root, team, squad) = ids();
        let parents: HashMap<Uuid, Option<Uuid>> =
            [(root, None), (team, Some(root)), (squad, Some(team))].into();
        let chain = chain_to_root(squad, |o| parents.get(&o).copied());
        assert_eq!(chain, vec![squad, team, root]);

        let owner_at_root: HashMap<Uuid, Option<OrgRole>> = [(root, Some(OrgRole::Owner))].into();
        let got = effective_role(&chain, |o| owner_at_root.get(&o).copied()).expect("member");
        assert_eq!(
            got,
            EffectiveRole {
                role: OrgRole::Owner,
                from_org: root,
                direct: false
            }
        );

        // "none" in the sub-org inherits; the membership makes it direct.
        let inherit_in_squad: HashMap<Uuid, Option<OrgRole>> =
            [(root, Some(OrgRole::Owner)), (squad, None)].into();
        let got = effective_role(&chain, |o| inherit_in_squad.get(&o).copied()).expect("member");
        assert_eq!(
            got,
            EffectiveRole {
                role: OrgRole::Owner,
                from_org: root,
                direct: true
            }
        );

        // An explicit role nearer the org wins.
        let member_in_team: HashMap<Uuid, Option<OrgRole>> =
            [(root, Some(OrgRole::Owner)), (team, Some(OrgRole::Member))].into();
        let got = effective_role(&chain, |o| member_in_team.get(&o).copied()).expect("member");
        assert_eq!(
            got,
            EffectiveRole {
                role: OrgRole::Member,
                from_org: team,
                direct: false
            }
        );

        // Added directly to the sub-org only: a member there, not of the parents.
        let only_squad: HashMap<Uuid, Option<OrgRole>> = [(squad, None)].into();
        assert_eq!(
            effective_role(&chain, |o| only_squad.get(&o).copied()).map(|r| r.role),
            Some(OrgRole::Member)
        );
        assert_eq!(
            effective_role(&chain[1..], |o| only_squad.get(&o).copied()),
            None
        );
    }

    #[test]
    fn chain_stops_on_cycles() {
        let (a, b, _) = ids();
        let parents: HashMap<Uuid, Option<Uuid>> = [(a, Some(b)), (b, Some(a))].into();
        assert_eq!(chain_to_root(a, |o| parents.get(&o).copied()), vec![a, b]);
    }
}
