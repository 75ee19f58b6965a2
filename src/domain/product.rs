use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::name::{NameRule, at_most};
use super::permission::{EnvironmentRef, PermissionSet, Role};

/// A product (project) of an org, with its environments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Product {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Environment {
    pub id: Uuid,
    pub product_id: Uuid,
    pub name: String,
    /// Restricted environments (e.g. production) get a permission group's restricted default.
    pub restricted: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Environment {
    pub fn as_ref(&self) -> EnvironmentRef {
        EnvironmentRef {
            id: self.id,
            restricted: self.restricted,
        }
    }
}

/// A product's permission group: a custom group, an editable preset, or (with `role`) one of
/// the built-in, read-only roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PermissionGroup {
    /// For built-in roles a stable id derived from the product and the role.
    pub id: Uuid,
    pub product_id: Uuid,
    pub name: String,
    pub preset: bool,
    pub role: Option<Role>,
    pub read_only: bool,
    #[serde(flatten)]
    pub permissions: PermissionSet,
}

/// A product with everything the admin screens and the evaluator need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProductDetail {
    #[serde(flatten)]
    pub product: Product,
    pub environments: Vec<Environment>,
    pub permission_groups: Vec<PermissionGroup>,
}

/// The stable id of a product's built-in role group: a name-based (version 5) UUID, where
/// stored groups have time-ordered (version 7) ids.
pub fn role_group_id(product_id: Uuid, role: Role) -> Uuid {
    Uuid::new_v5(&product_id, role.as_str().as_bytes())
}

/// The built-in role groups of a product, listed beside its own groups but never stored.
pub fn role_groups(product_id: Uuid) -> Vec<PermissionGroup> {
    Role::ALL
        .into_iter()
        .map(|role| PermissionGroup {
            id: role_group_id(product_id, role),
            product_id,
            name: role.display_name().to_owned(),
            preset: false,
            role: Some(role),
            read_only: true,
            permissions: role.permissions(),
        })
        .collect()
}

/// What the name of a product, an environment or a permission group accepts: 1 to 100
/// characters, trimmed.
pub const NAME: NameRule = at_most!(100);
