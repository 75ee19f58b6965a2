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
