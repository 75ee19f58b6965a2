//! The explanation of `GET /api/v1/authz/explain`: a user's effective permissions on a product
//! (or in an org) with, for each, the grant paths that gave it and, per environment, the ones
//! that lost. Its shape is pinned by issue 11 so the console can render it; fields beyond the
//! pinned ones (`org_id`, `standing`, `modules`) are additions.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::EffectivePermissions;
use crate::domain::permission::{Capability, Module};
use crate::domain::resolve::{
    EnvironmentExplained, GrantPath, ModuleExplained, Resolved, RoleExplained, Standing,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Explanation {
    pub user_id: Uuid,
    /// The product asked about; null for an org-level explanation.
    pub product_id: Option<Uuid>,
    /// The product's org, or the org asked about.
    pub org_id: Uuid,
    /// `owner`, `member`, `not_member` or `inactive`: an inactive user and a non-member have
    /// nothing, an Owner everything.
    pub standing: Standing,
    /// The permissions in short. At org level (no product) `product_id` here is the org's id
    /// and `environments` is empty.
    pub effective: EffectivePermissions,
    /// Each capability the user has, with every path that gives it.
    pub capabilities: BTreeMap<Capability, Vec<GrantPath>>,
    /// Every environment of the product by id, `none` included: the access, the paths that
    /// give it, and the paths that give less.
    pub environments: BTreeMap<Uuid, EnvironmentExplained>,
    /// The user's role in the org and the paths that decided it (`inherited` when decided in
    /// an org above); null when the user is not a member.
    pub org_role: Option<RoleExplained>,
    /// The module roles in effect in the org (seed 003), each with the paths that set it.
    pub modules: BTreeMap<Module, ModuleExplained>,
}

impl From<&Resolved> for Explanation {
    fn from(r: &Resolved) -> Self {
        Explanation {
            user_id: r.user_id,
            product_id: r.product_id,
            org_id: r.org_id,
            standing: r.standing,
            effective: EffectivePermissions::from(r),
            capabilities: r.capabilities.clone(),
            environments: r.environments.clone(),
            org_role: r.org_role.clone(),
            modules: r.modules.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Source;
    use crate::domain::mapping::Grant;
    use crate::domain::permission::Role;
    use crate::domain::resolve::{
        EnvironmentFact, Membership, ProductSnapshot, StoredGrant, UserSnapshot, resolve_org,
        resolve_product,
    };

    #[test]
    fn the_explanation_has_the_pinned_shape() {
        let (root, sub, live) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(30));
        let product = ProductSnapshot {
            id: Uuid::from_u128(9),
            org_id: sub,
            environments: vec![EnvironmentFact {
                id: live,
                name: "Live".into(),
                restricted: true,
            }],
            permission_groups: Vec::new(),
        };
        let user = UserSnapshot {
            user_id: Uuid::from_u128(100),
            active: true,
            orgs: vec![(root, None), (sub, Some(root))].into(),
            memberships: vec![Membership {
                org_id: sub,
                role: None,
                source: Source::Manual,
            }],
            grants: vec![StoredGrant {
                org_id: sub,
                source: Source::Manual,
                grant: Grant::ProductRole {
                    product_id: product.id,
                    role: Role::Editor,
                },
            }],
            ..Default::default()
        };
        let value = serde_json::to_value(Explanation::from(&resolve_product(&user, &product)))
            .expect("json");
        for key in [
            "user_id",
            "product_id",
            "effective",
            "capabilities",
            "environments",
            "org_role",
        ] {
            assert!(value.get(key).is_some(), "{key} missing from {value}");
        }
        assert_eq!(
            value["capabilities"]["manage_resources"],
            json!([{ "kind": "manual", "org_id": sub, "role": "editor" }])
        );
        assert_eq!(
            value["environments"][live.to_string()],
            json!({
                "name": "Live",
                "access": "edit",
                "granted_by": [{ "kind": "manual", "org_id": sub, "role": "editor", "access": "edit" }],
                "lost": [],
            })
        );
        assert_eq!(value["org_role"]["role"], "member");
        assert_eq!(value["effective"]["environments"][live.to_string()], "edit");

        let outsider = UserSnapshot {
            memberships: Vec::new(),
            ..user
        };
        let value =
            serde_json::to_value(Explanation::from(&resolve_org(&outsider, root))).expect("json");
        assert_eq!(value["org_role"], serde_json::Value::Null);
        assert_eq!(value["product_id"], serde_json::Value::Null);
        assert_eq!(value["standing"], "not_member");
        assert_eq!(value["capabilities"], json!({}));
    }
}
