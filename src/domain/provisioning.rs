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
