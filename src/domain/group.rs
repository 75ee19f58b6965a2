use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a group member is: a user, or a nested group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

/// A member of a group (of a SCIM Group, and of an OIDC group claim later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GroupMember {
    pub id: Uuid,
    pub kind: MemberKind,
}
