use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Source;

/// An identity-provider group of a tenant (SCIM Group or OIDC group claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub display_name: String,
    pub external_id: Option<String>,
    pub source: Source,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// What a group member is: a user, or a nested group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    User,
    Group,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "user",
            MemberKind::Group => "group",
        }
    }

    pub fn is_user(self) -> bool {
        self == MemberKind::User
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "user" => Some(MemberKind::User),
            "group" => Some(MemberKind::Group),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GroupMember {
    pub id: Uuid,
    pub kind: MemberKind,
}
