//! Group mapping: rules that turn a user's IdP group memberships into grants, and which rules
//! match whom. Pure: the store reads rules and memberships, the resolver (`domain::resolve`)
//! combines what matches with the grants stored for the user.
//!
//! A rule belongs to one org and is fed only by that org's own sources: groups pushed by its
//! SCIM tokens, or claims of its OIDC connections. A sub-org's IdP never feeds a parent's
//! rules — otherwise a sub-org could push a group named "Admins" and own the root.

use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use uuid::Uuid;

use super::org::OrgRole;
use super::permission::{Module, ModuleLevel, Role};

/// Which of the rule's org's sources a rule listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleSource {
    /// Groups pushed by SCIM tokens of the rule's org.
    Scim,
    /// Group claims of one OIDC connection of the rule's org.
    Oidc(Uuid),
    /// Any source of the rule's org.
    Any,
}

impl RuleSource {
    /// `scim`, `any` or `oidc:<connection id>`.
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        match value {
            "scim" => Ok(RuleSource::Scim),
            "any" => Ok(RuleSource::Any),
            other => other
                .strip_prefix("oidc:")
                .and_then(|id| Uuid::parse_str(id).ok())
                .map(RuleSource::Oidc)
                .ok_or("expected `scim`, `any` or `oidc:<connection id>`"),
        }
    }
}

impl fmt::Display for RuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleSource::Scim => f.write_str("scim"),
            RuleSource::Any => f.write_str("any"),
            RuleSource::Oidc(id) => write!(f, "oidc:{id}"),
        }
    }
}

/// Where a user's membership of an IdP group came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupSource {
    /// A SCIM group, pushed by a token of the group's org.
    Scim,
    /// A group claim of an OIDC connection of the group's org, at the user's last login.
    Oidc(Uuid),
}

/// One IdP group the user is in (directly, or through nested SCIM groups), as seen by the
/// rules of `org_id`, the org the group belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpGroup {
    pub org_id: Uuid,
    pub source: GroupSource,
    /// A SCIM group's `displayName`, or the claim value.
    pub name: String,
    /// A SCIM group's `externalId`.
    pub external_id: Option<String>,
}

/// What a rule or an org's default gives. Stored as JSON in this form (references by id); the
/// mapping document (`domain::mapping_document`) is how people write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Grant {
    /// A role in the org (the mapping's org or one below it).
    OrgRole { org_id: Uuid, role: OrgRole },
    /// A built-in role on a product.
    ProductRole { product_id: Uuid, role: Role },
    /// A permission group of a product.
    PermissionGroup { product_id: Uuid, group_id: Uuid },
    /// Module roles in an org (seed 003).
    ModuleRoles {
        org_id: Uuid,
        levels: BTreeMap<Module, ModuleLevel>,
    },
}

impl Grant {
    /// Whether it makes an Owner: what the Owner rule must count.
    pub fn is_owner(&self) -> bool {
        matches!(
            self,
            Grant::OrgRole {
                role: OrgRole::Owner,
                ..
            }
        )
    }
}

/// A mapping rule: members of `idp_group` get `grants`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub idp_group: String,
    pub source: RuleSource,
    /// Orders the explanation; never takes a permission away.
    pub priority: i32,
    pub enabled: bool,
    pub grants: Vec<Grant>,
}

impl Rule {
    /// The first of `groups` this rule matches, if any: a group of the rule's own org, from a
    /// source the rule listens to, named as the rule says — a SCIM group by `displayName` or
    /// `externalId` (case-insensitive, as Okta and Entra may change case), a claim value
    /// exactly (Entra sends object ids).
    pub fn matched_by<'g>(&self, groups: &'g [IdpGroup]) -> Option<&'g IdpGroup> {
        if !self.enabled {
            return None;
        }
        groups.iter().find(|g| {
            g.org_id == self.org_id
                && match (self.source, g.source) {
                    (RuleSource::Scim | RuleSource::Any, GroupSource::Scim) => {
                        g.name.to_lowercase() == self.idp_group.to_lowercase()
                            || g.external_id
                                .as_deref()
                                .is_some_and(|e| e.to_lowercase() == self.idp_group.to_lowercase())
                    }
                    (RuleSource::Oidc(want), GroupSource::Oidc(got)) => {
                        want == got && g.name == self.idp_group
                    }
                    (RuleSource::Any, GroupSource::Oidc(_)) => g.name == self.idp_group,
                    (RuleSource::Scim, GroupSource::Oidc(_))
                    | (RuleSource::Oidc(_), GroupSource::Scim) => false,
                }
        })
    }
}

/// A user's groups, indexed for matching many rules: each rule is one lookup instead of a
/// scan of every group with a lower-casing per comparison.
pub struct GroupIndex<'g> {
    /// SCIM groups by (org, lower-cased `displayName` or `externalId`).
    scim: HashMap<(Uuid, String), &'g IdpGroup>,
    /// Claim values by (org, value), exact.
    claims: HashMap<(Uuid, &'g str), Vec<&'g IdpGroup>>,
}

impl<'g> GroupIndex<'g> {
    pub fn new(groups: &'g [IdpGroup]) -> Self {
        let mut index = GroupIndex {
            scim: HashMap::new(),
            claims: HashMap::new(),
        };
        for g in groups {
            match g.source {
                GroupSource::Scim => {
                    // The first group wins a shared key, as the scan in `Rule::matched_by` does.
                    index
                        .scim
                        .entry((g.org_id, g.name.to_lowercase()))
                        .or_insert(g);
                    if let Some(external) = &g.external_id {
                        index
                            .scim
                            .entry((g.org_id, external.to_lowercase()))
                            .or_insert(g);
                    }
                }
                GroupSource::Oidc(_) => index
                    .claims
                    .entry((g.org_id, g.name.as_str()))
                    .or_default()
                    .push(g),
            }
        }
        index
    }

    /// The group `rule` matches, if any: what [`Rule::matched_by`] finds, by lookup.
    pub fn matched(&self, rule: &Rule) -> Option<&'g IdpGroup> {
        if !rule.enabled {
            return None;
        }
        let scim = || {
            self.scim
                .get(&(rule.org_id, rule.idp_group.to_lowercase()))
                .copied()
        };
        let claim = |connection: Option<Uuid>| {
            self.claims
                .get(&(rule.org_id, rule.idp_group.as_str()))
                .and_then(|gs| {
                    gs.iter()
                        .find(|g| connection.is_none_or(|c| g.source == GroupSource::Oidc(c)))
                        .copied()
                })
        };
        match rule.source {
            RuleSource::Scim => scim(),
            RuleSource::Oidc(connection) => claim(Some(connection)),
            RuleSource::Any => scim().or_else(|| claim(None)),
        }
    }
}

/// A tenant's SCIM groups (those of an org) and how they nest: what turns a user's direct
/// memberships into every group they are in, as the SCIM `groups` attribute shows them. The
/// cached resolver keeps the whole tenant's, so a cache miss reads only a user's direct
/// memberships; a write's Owner-rule check reads only what its users reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScimGroupTree {
    groups: HashMap<Uuid, IdpGroup>,
    /// A group → the groups it is a member of.
    parents: HashMap<Uuid, Vec<Uuid>>,
}

impl ScimGroupTree {
    pub fn add_group(&mut self, id: Uuid, org_id: Uuid, name: String, external_id: Option<String>) {
        self.groups.insert(
            id,
            IdpGroup {
                org_id,
                source: GroupSource::Scim,
                name,
                external_id,
            },
        );
    }

    /// `member` (a group) is a member of `group`.
    pub fn add_nesting(&mut self, member: Uuid, group: Uuid) {
        self.parents.entry(member).or_default().push(group);
    }

    /// Every SCIM group a user whose direct memberships are `direct` is in, nested ones
    /// included, each once, by name (then org). Ids the tree does not hold (a group of no
    /// org) are passed through to their parents but give no group themselves; a cycle ends
    /// where it closes.
    pub fn groups_of(&self, direct: &[Uuid]) -> Vec<IdpGroup> {
        let mut seen: HashSet<Uuid> = HashSet::with_capacity(direct.len());
        let mut pending: Vec<Uuid> = direct.to_vec();
        while let Some(id) = pending.pop() {
            if seen.insert(id)
                && let Some(parents) = self.parents.get(&id)
            {
                pending.extend(parents.iter().filter(|p| !seen.contains(p)));
            }
        }
        let mut out: Vec<IdpGroup> = seen
            .iter()
            .filter_map(|id| self.groups.get(id).cloned())
            .collect();
        out.sort_by(|a, b| (&a.name, a.org_id).cmp(&(&b.name, b.org_id)));
        out
    }
}

/// An org's grants for its members whom none of its enabled rules matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultGrants {
    pub org_id: Uuid,
    pub grants: Vec<Grant>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(org: Uuid, group: &str, source: RuleSource) -> Rule {
        Rule {
            id: Uuid::from_u128(9),
            org_id: org,
            name: "r".into(),
            idp_group: group.into(),
            source,
            priority: 0,
            enabled: true,
            grants: vec![],
        }
    }

    fn scim(org: Uuid, name: &str, external: Option<&str>) -> IdpGroup {
        IdpGroup {
            org_id: org,
            source: GroupSource::Scim,
            name: name.into(),
            external_id: external.map(str::to_owned),
        }
    }

    #[test]
    fn sources_parse_and_print_back() {
        let id = Uuid::from_u128(7);
        for s in [RuleSource::Scim, RuleSource::Any, RuleSource::Oidc(id)] {
            assert_eq!(RuleSource::parse(&s.to_string()), Ok(s));
        }
        assert!(RuleSource::parse("oidc:nope").is_err());
        assert!(RuleSource::parse("SCIM").is_err());
    }

    #[test]
    fn scim_groups_match_by_name_or_external_id_ignoring_case() {
        let org = Uuid::from_u128(1);
        let r = rule(org, "Engineering", RuleSource::Scim);
        assert!(r.matched_by(&[scim(org, "ENGINEERING", None)]).is_some());
        assert!(
            r.matched_by(&[scim(org, "Eng", Some("engineering"))])
                .is_some()
        );
        assert!(r.matched_by(&[scim(org, "Sales", None)]).is_none());
    }

    #[test]
    fn a_group_of_another_org_never_matches() {
        let (root, sub) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let r = rule(root, "Admins", RuleSource::Any);
        assert!(r.matched_by(&[scim(sub, "Admins", None)]).is_none());
    }

    #[test]
    fn claims_match_exactly_and_only_their_connection() {
        let org = Uuid::from_u128(1);
        let (conn, other) = (Uuid::from_u128(5), Uuid::from_u128(6));
        let claim = |c: Uuid, v: &str| IdpGroup {
            org_id: org,
            source: GroupSource::Oidc(c),
            name: v.into(),
            external_id: None,
        };
        let r = rule(org, "0f3c-Abc", RuleSource::Oidc(conn));
        assert!(r.matched_by(&[claim(conn, "0f3c-Abc")]).is_some());
        assert!(r.matched_by(&[claim(conn, "0f3c-abc")]).is_none());
        assert!(r.matched_by(&[claim(other, "0f3c-Abc")]).is_none());
        assert!(
            rule(org, "0f3c-Abc", RuleSource::Scim)
                .matched_by(&[claim(conn, "0f3c-Abc")])
                .is_none()
        );
        assert!(
            rule(org, "0f3c-Abc", RuleSource::Any)
                .matched_by(&[claim(other, "0f3c-Abc")])
                .is_some()
        );
    }

    /// The index answers what the scan answers, for every kind of rule and group.
    #[test]
    fn the_index_agrees_with_the_scan() {
        let (org, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (conn, conn2) = (Uuid::from_u128(5), Uuid::from_u128(6));
        let claim = |o: Uuid, c: Uuid, v: &str| IdpGroup {
            org_id: o,
            source: GroupSource::Oidc(c),
            name: v.into(),
            external_id: None,
        };
        let groups = vec![
            scim(org, "Engineering", Some("ENG-1")),
            scim(org, "ops", None),
            scim(other, "Admins", None),
            claim(org, conn, "0f3c-Abc"),
            claim(org, conn2, "sales"),
        ];
        let index = GroupIndex::new(&groups);
        for name in [
            "engineering",
            "eng-1",
            "OPS",
            "Admins",
            "0f3c-Abc",
            "0f3c-abc",
            "sales",
            "x",
        ] {
            for source in [
                RuleSource::Scim,
                RuleSource::Any,
                RuleSource::Oidc(conn),
                RuleSource::Oidc(conn2),
            ] {
                for enabled in [true, false] {
                    let mut r = rule(org, name, source);
                    r.enabled = enabled;
                    assert_eq!(index.matched(&r), r.matched_by(&groups), "{name} {source}");
                }
            }
        }
    }

    /// Nesting is followed to the top, each group counts once, a cycle ends, a group the
    /// tree does not hold (of no org) gives nothing itself but still leads to its parents.
    #[test]
    fn a_users_groups_follow_nesting() {
        let org = Uuid::from_u128(1);
        let id = Uuid::from_u128;
        let mut tree = ScimGroupTree::default();
        tree.add_group(id(10), org, "Eng".into(), Some("E-1".into()));
        tree.add_group(id(11), org, "All".into(), None);
        tree.add_group(id(12), org, "Backend".into(), None);
        tree.add_group(id(13), org, "Unrelated".into(), None);
        // Backend ⊂ Eng ⊂ All ⊂ Eng (a cycle), and an org-less group 20 ⊂ All.
        tree.add_nesting(id(12), id(10));
        tree.add_nesting(id(10), id(11));
        tree.add_nesting(id(11), id(10));
        tree.add_nesting(id(20), id(11));
        let names = |direct: &[Uuid]| -> Vec<String> {
            tree.groups_of(direct).into_iter().map(|g| g.name).collect()
        };
        assert_eq!(names(&[id(12)]), ["All", "Backend", "Eng"]);
        assert_eq!(names(&[id(12), id(10), id(12)]), ["All", "Backend", "Eng"]);
        assert_eq!(names(&[id(20)]), ["All", "Eng"]);
        assert_eq!(names(&[id(13)]), ["Unrelated"]);
        assert!(names(&[id(99)]).is_empty());
        assert_eq!(
            tree.groups_of(&[id(10)])[1],
            scim(org, "Eng", Some("E-1")),
            "the group as the rules see it"
        );
    }

    #[test]
    fn a_disabled_rule_matches_nobody() {
        let org = Uuid::from_u128(1);
        let mut r = rule(org, "Eng", RuleSource::Scim);
        r.enabled = false;
        assert!(r.matched_by(&[scim(org, "Eng", None)]).is_none());
    }
}
