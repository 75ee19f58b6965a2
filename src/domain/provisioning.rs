use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// A failed SCIM request, kept so an admin can see why the identity provider shows an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScimRequestError {
    pub id: Uuid,
    pub token_id: Uuid,
    pub method: String,
    /// Path and query as requested (truncated).
    pub target: String,
    pub status: u16,
    pub scim_type: Option<String>,
    pub detail: String,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// How many failed requests are kept per token; older ones are dropped.
pub const KEPT_PER_TOKEN: i64 = 100;

/// Longest request target kept.
pub const MAX_TARGET_CHARS: usize = 500;

/// The org a SCIM token provisions into, and its tenant: every SCIM read and write is scoped
/// to it, so one org's token never sees another org's users or groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScimScope {
    pub tenant_id: Uuid,
    pub org_id: Uuid,
}

/// A SCIM User as stored: the columns, and the rest of its document (`attributes`, canonical
/// names, extension attributes under their schema URN; empty when the read did not need it).
/// `active` is the team model's view: the document's `active`, true when unassigned.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUser {
    pub id: Uuid,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// What a SCIM create or replace writes for a User. `attributes_cmp` is `attributes` with the
/// values of case-insensitive attributes lower-cased, for filters.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserWrite {
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub attributes_cmp: serde_json::Value,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroup {
    pub id: Uuid,
    pub display_name: String,
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// A group a SCIM User belongs to: directly, or through a nested group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimUserGroup {
    pub group_id: Uuid,
    pub display: String,
    pub direct: bool,
}

/// What handing a person over from one SCIM scope did (`rolegate scim release`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScimRelease {
    pub user_id: Uuid,
    /// The org whose SCIM token held the person until now.
    pub released_from_org_id: Uuid,
    /// The org the person was made a member of (inheriting their role), if one was named: a
    /// SCIM token of it (or of an org above it) may now link the person.
    pub to_org_id: Option<Uuid>,
    /// Whether the membership the releasing org's SCIM had made was removed, with the grants
    /// given in that org.
    pub membership_removed: bool,
    /// How many of the releasing org's SCIM groups the person left.
    pub groups_left: u64,
}

/// Who provisions a person, as an admin is told when the IdP rather than the admin decides about
/// them: the org whose SCIM holds the person, and the SCIM tokens that speak for that org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimHold {
    pub org_id: Uuid,
    pub org_name: String,
    /// The tokens to name: the one that last wrote the person while it is still live, otherwise
    /// every live SCIM token of the org (an admin rotating tokens has two); empty when the org
    /// has none left.
    pub tokens: Vec<String>,
}

impl ScimHold {
    /// `SCIM token 'Okta'` — the name an admin gave the token is what they know the IdP by.
    pub fn manager(&self) -> String {
        let quoted: Vec<String> = self.tokens.iter().map(|t| format!("'{t}'")).collect();
        match quoted.as_slice() {
            [] => format!(
                "the SCIM of org '{}' (it has no live SCIM token now)",
                self.org_name
            ),
            [one] => format!("SCIM token {one}"),
            many => format!("SCIM tokens {}", many.join(", ")),
        }
    }

    /// Why the admin API will not remove the person's membership of the holding org on its
    /// own: the IdP would go on seeing them active and never learn of it. Says the ways out.
    pub fn removal_refused(&self, user_id: Uuid) -> String {
        format!(
            "scim_managed: managed by {}; remove the user in the IdP, or release them from SCIM \
             first (POST /api/v1/users/{user_id}/scim-release), or pass ?force=true to remove \
             them here and deactivate them for SCIM too (active=false, which the IdP's next GET \
             sees)",
            self.manager()
        )
    }
}

/// What an admin is told when they give access to a person who is inactive: it is stored, but
/// every permission evaluates to `none` until the person is active again. `hold`: who can
/// re-activate them, if an IdP can.
pub fn inactive_user_note(hold: Option<&ScimHold>) -> String {
    match hold {
        Some(hold) => format!(
            "the user is inactive: deactivated by {} (active=false); the grant takes effect \
             when the IdP re-activates them",
            hold.manager()
        ),
        None => "the user is inactive (active=false) and no SCIM token manages them; the grant \
                 takes effect only if they are re-activated"
            .to_owned(),
    }
}

/// A person of the tenant whom a SCIM create names (by userName or e-mail), as the link rule
/// needs to see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCandidate {
    pub user_id: Uuid,
    /// The org whose SCIM provisions this person, if any.
    pub held_by: Option<Uuid>,
    /// Every org where the person is a member or holds a grant.
    pub orgs: Vec<Uuid>,
    /// Whether the create's userName is this person's userName (not only an e-mail match).
    pub same_user_name: bool,
}

/// Why a SCIM create may not make an existing person its User.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// A User of the token's own org already has this userName.
    UserNameTaken,
    /// The person belongs elsewhere: held by another org's SCIM, a member (or grantee) of an org
    /// above or beside the token's, not a member of its subtree at all, or the name and the
    /// e-mail point at two different people. Which of these is not said: the answer must not
    /// reveal where the name lives.
    NotLinkable,
}

/// The link rule (DESIGN, "SCIM and the team model are one model"): a SCIM create of `scope_org`
/// may take over an existing person only when that person is a member of `scope_org` or its
/// subtree, is not held by any SCIM scope, and reaches no org outside that subtree — otherwise
/// a sub-org's token could claim (and then deactivate or delete) the root Owner by naming their
/// address. `tree` is every org of the tenant with its parent. `candidates` is everyone the
/// create's userName or e-mail names; empty means a new person.
pub fn link_decision(
    tree: &[(Uuid, Option<Uuid>)],
    scope_org: Uuid,
    candidates: &[LinkCandidate],
) -> Result<Option<Uuid>, LinkRefusal> {
    if candidates
        .iter()
        .any(|c| c.held_by == Some(scope_org) && c.same_user_name)
    {
        return Err(LinkRefusal::UserNameTaken);
    }
    // The token's own Users that only share the address are the IdP's own business: it may
    // provision two people with one mailbox, and it knows them apart by userName.
    let others: Vec<&LinkCandidate> = candidates
        .iter()
        .filter(|c| c.held_by != Some(scope_org))
        .collect();
    let Some(first) = others.first() else {
        return Ok(None);
    };
    if others.iter().any(|c| c.user_id != first.user_id) {
        return Err(LinkRefusal::NotLinkable);
    }
    let parents: std::collections::HashMap<Uuid, Option<Uuid>> = tree.iter().copied().collect();
    let in_subtree = |org: Uuid| {
        super::org::chain_to_root(org, |o| parents.get(&o).copied()).contains(&scope_org)
    };
    let linkable = first.held_by.is_none()
        && !first.orgs.is_empty()
        && first.orgs.iter().all(|o| in_subtree(*o));
    if linkable {
        Ok(Some(first.user_id))
    } else {
        Err(LinkRefusal::NotLinkable)
    }
}

/// The link rule for a first OIDC login by verified e-mail (the SCIM rule above, seen from a
/// connection of `connection_org`): the one person the address names may become this identity
/// only if every org where they are a member or hold a grant is `connection_org` or below it,
/// they have at least one, and no SCIM scope outside that subtree holds them. Otherwise a
/// sub-org's IdP could assert the root Owner's address and sign in as them. `scim_only`
/// connections also want the person to be held by a SCIM scope of that subtree.
pub fn oidc_email_link(
    tree: &[(Uuid, Option<Uuid>)],
    connection_org: Uuid,
    candidates: &[LinkCandidate],
    scim_only: bool,
) -> Result<Option<Uuid>, LinkRefusal> {
    let Some(first) = candidates.first() else {
        return Ok(None);
    };
    if candidates.iter().any(|c| c.user_id != first.user_id) {
        return Err(LinkRefusal::NotLinkable);
    }
    let parents: std::collections::HashMap<Uuid, Option<Uuid>> = tree.iter().copied().collect();
    let in_subtree = |org: Uuid| {
        super::org::chain_to_root(org, |o| parents.get(&o).copied()).contains(&connection_org)
    };
    let held_ok = match first.held_by {
        None => !scim_only,
        Some(holder) => in_subtree(holder),
    };
    if held_ok && !first.orgs.is_empty() && first.orgs.iter().all(|o| in_subtree(*o)) {
        Ok(Some(first.user_id))
    } else {
        Err(LinkRefusal::NotLinkable)
    }
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn an_oidc_login_links_by_email_only_within_the_connections_subtree() {
        let (tree, [root, a, a1, b]) = tree();
        let member_of = |orgs: &[Uuid]| person(None, orgs);
        assert_eq!(
            oidc_email_link(&tree, a, &[member_of(&[a1])], false),
            Ok(Some(Uuid::from_u128(99)))
        );
        // The root's Owner (a member of root) cannot be claimed by a sub-org's connection.
        for orgs in [vec![root], vec![a, b], vec![]] {
            assert_eq!(
                oidc_email_link(&tree, a, &[member_of(&orgs)], false),
                Err(LinkRefusal::NotLinkable),
                "{orgs:?}"
            );
        }
        assert_eq!(
            oidc_email_link(&tree, root, &[member_of(&[a, b])], false),
            Ok(Some(Uuid::from_u128(99)))
        );
        // scim_only: held by a SCIM scope of the subtree, and by nobody outside it.
        assert_eq!(
            oidc_email_link(&tree, a, &[member_of(&[a])], true),
            Err(LinkRefusal::NotLinkable)
        );
        assert_eq!(
            oidc_email_link(&tree, a, &[person(Some(a1), &[a1])], true),
            Ok(Some(Uuid::from_u128(99)))
        );
        assert_eq!(
            oidc_email_link(&tree, a, &[person(Some(b), &[a])], false),
            Err(LinkRefusal::NotLinkable)
        );
        assert_eq!(oidc_email_link(&tree, a, &[], false), Ok(None));
    }

    /// root ─┬─ a ── a1
    ///       └─ b
    fn tree() -> (Vec<(Uuid, Option<Uuid>)>, [Uuid; 4]) {
        let [root, a, a1, b] = [1, 2, 3, 4].map(Uuid::from_u128);
        (
            vec![
                (root, None),
                (a, Some(root)),
                (a1, Some(a)),
                (b, Some(root)),
            ],
            [root, a, a1, b],
        )
    }

    fn person(held_by: Option<Uuid>, orgs: &[Uuid]) -> LinkCandidate {
        LinkCandidate {
            user_id: Uuid::from_u128(99),
            held_by,
            orgs: orgs.to_vec(),
            same_user_name: true,
        }
    }

    #[test]
    fn nobody_named_means_a_new_person() {
        let (tree, [_, a, ..]) = tree();
        assert_eq!(link_decision(&tree, a, &[]), Ok(None));
    }

    #[test]
    fn an_unheld_member_of_the_subtree_links() {
        let (tree, [_, a, a1, _]) = tree();
        for orgs in [vec![a], vec![a1], vec![a, a1]] {
            assert_eq!(
                link_decision(&tree, a, &[person(None, &orgs)]),
                Ok(Some(Uuid::from_u128(99))),
                "{orgs:?}"
            );
        }
    }

    #[test]
    fn a_member_above_or_beside_or_nowhere_does_not_link() {
        let (tree, [root, a, a1, b]) = tree();
        for orgs in [vec![root], vec![b], vec![a, root], vec![a1, b], vec![]] {
            assert_eq!(
                link_decision(&tree, a, &[person(None, &orgs)]),
                Err(LinkRefusal::NotLinkable),
                "{orgs:?}"
            );
        }
        // From a1, its parent is above.
        assert_eq!(
            link_decision(&tree, a1, &[person(None, &[a])]),
            Err(LinkRefusal::NotLinkable)
        );
        // The root's token reaches the whole tenant.
        assert_eq!(
            link_decision(&tree, root, &[person(None, &[root, b, a1])]),
            Ok(Some(Uuid::from_u128(99)))
        );
    }

    #[test]
    fn a_person_held_by_another_scope_does_not_link_even_inside_the_subtree() {
        let (tree, [root, a, a1, b]) = tree();
        for holder in [root, a1, b] {
            assert_eq!(
                link_decision(&tree, a, &[person(Some(holder), &[a1])]),
                Err(LinkRefusal::NotLinkable)
            );
        }
    }

    #[test]
    fn the_scopes_own_user_name_is_taken_but_its_shared_address_is_not() {
        let (tree, [_, a, ..]) = tree();
        let mut by_email = person(Some(a), &[a]);
        by_email.same_user_name = false;
        assert_eq!(
            link_decision(&tree, a, &[person(Some(a), &[a])]),
            Err(LinkRefusal::UserNameTaken)
        );
        assert_eq!(link_decision(&tree, a, &[by_email.clone()]), Ok(None));
        // Beside an unheld member of the subtree named by the userName: that one links.
        let mut invited = person(None, &[a]);
        invited.user_id = Uuid::from_u128(7);
        assert_eq!(
            link_decision(&tree, a, &[by_email, invited]),
            Ok(Some(Uuid::from_u128(7)))
        );
    }

    #[test]
    fn a_name_and_an_address_of_two_people_do_not_link() {
        let (tree, [_, a, ..]) = tree();
        let mut other = person(None, &[a]);
        other.user_id = Uuid::from_u128(98);
        other.same_user_name = false;
        assert_eq!(
            link_decision(&tree, a, &[person(None, &[a]), other]),
            Err(LinkRefusal::NotLinkable)
        );
    }
}

#[cfg(test)]
mod hold_tests {
    use super::*;

    fn hold(tokens: &[&str]) -> ScimHold {
        ScimHold {
            org_id: Uuid::from_u128(1),
            org_name: "Acme".into(),
            tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn the_refusal_names_the_token_and_every_way_out() {
        let user = Uuid::from_u128(7);
        let m = hold(&["Okta"]).removal_refused(user);
        assert!(m.starts_with("scim_managed: managed by SCIM token 'Okta'; remove the user in the IdP, or release them from SCIM first"), "{m}");
        assert!(
            m.contains(&format!("/api/v1/users/{user}/scim-release")),
            "{m}"
        );
        assert!(m.contains("?force=true"), "{m}");
    }

    #[test]
    fn several_tokens_or_none_are_said_so() {
        assert_eq!(hold(&["A", "B"]).manager(), "SCIM tokens 'A', 'B'");
        assert!(hold(&[]).manager().contains("org 'Acme'"));
        assert!(
            inactive_user_note(Some(&hold(&["Okta"])))
                .contains("deactivated by SCIM token 'Okta' (active=false)")
        );
        assert!(inactive_user_note(None).contains("active=false"));
    }
}
