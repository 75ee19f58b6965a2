use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Source;

/// One person in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_name: String,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    pub source: Source,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// Checks the shape of an e-mail address: one `@`, a non-empty local part, a domain with a dot
/// and no spaces. Deliverability is the mail server's business, not ours.
pub fn validate_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim();
    if email.is_empty() {
        return Err("must not be empty");
    }
    if email.len() > 320 {
        return Err("must be at most 320 bytes");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("must contain @");
    };
    if local.is_empty() || domain.contains('@') {
        return Err("must have exactly one @ with a name before it");
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Err("must have a domain such as example.com");
    }
    Ok(email.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_international_addresses() {
        assert_eq!(validate_email(" a@b.co "), Ok("a@b.co".to_owned()));
        assert!(validate_email("élodie@exämple.fr").is_ok());
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "", "ab.co", "@b.co", "a@b", "a@@b.co", "a b@c.co", "a@.co", "a@co.",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
