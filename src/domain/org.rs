use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// An organization. A root org is its own tenant (`tenant_id == id`); sub-orgs point at their
/// parent and share the root's tenant id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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

/// Validates an org name: trimmed, non-empty, at most 200 characters.
pub fn validate_name(name: &str) -> Result<String, &'static str> {
    let name = name.trim();
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.chars().count() > 200 {
        return Err("must be at most 200 characters");
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  Acme "), Ok("Acme".to_owned()));
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"x".repeat(201)).is_err());
        assert!(validate_name(&"é".repeat(200)).is_ok());
    }

    #[test]
    fn roles_round_trip() {
        for r in [OrgRole::Owner, OrgRole::Member] {
            assert_eq!(OrgRole::parse(r.as_str()), Some(r));
        }
        assert_eq!(OrgRole::parse("none"), None);
    }
}
