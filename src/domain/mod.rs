//! Pure domain types and rules: no I/O, no database or HTTP types.

pub mod audit;
pub mod group;
pub mod invitation;
pub mod mapping;
pub mod mapping_document;
pub mod name;
pub mod oidc;
pub mod org;
pub mod outbox;
pub mod permission;
pub mod preview;
pub mod product;
pub mod provisioning;
pub mod resolve;
pub mod secret;
pub mod session;
pub mod session_token;
pub mod token;
pub mod user;

use chrono::{DateTime, SubsecRound, Utc};

/// The current time at the precision both stores keep (PostgreSQL holds microseconds), so a
/// value read back compares equal to the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Lower-cases for comparisons and lookups. Done here, in Rust, because SQLite's `lower()` and
/// `LIKE` fold ASCII only and the two backends must agree on "the same e-mail".
pub fn normalize(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Where a user, membership or grant came from; syncs only touch their own source.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Manual,
    Invite,
    Scim,
    Oidc,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Manual => "manual",
            Source::Invite => "invite",
            Source::Scim => "scim",
            Source::Oidc => "oidc",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "manual" => Source::Manual,
            "invite" => Source::Invite,
            "scim" => Source::Scim,
            "oidc" => Source::Oidc,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_non_ascii_letters() {
        assert_eq!(normalize("  ÉLODIE@Exämple.COM "), "élodie@exämple.com");
    }

    #[test]
    fn now_keeps_microseconds_only() {
        assert_eq!(now().timestamp_subsec_nanos() % 1_000, 0);
    }

    #[test]
    fn source_round_trips() {
        for s in [Source::Manual, Source::Invite, Source::Scim, Source::Oidc] {
            assert_eq!(Source::parse(s.as_str()), Some(s));
        }
        assert_eq!(Source::parse("ldap"), None);
    }
}
