//! Invitations by e-mail (seeds 000/001/003): the address list, the secret, the states.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::normalize;
use super::permission::Role;
use super::user::validate_email;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
    /// Pending past its expiry (not stored: derived from `expires_at`).
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub org_id: Uuid,
    pub product_id: Option<Uuid>,
    pub permission_group_id: Option<Uuid>,
    pub role: Option<Role>,
    pub email: String,
    pub status: InvitationStatus,
    pub expires_at: DateTime<Utc>,
    pub invited_by: Option<String>,
    pub sent_count: i64,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_user_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// The stored state, with `Pending` turned into `Expired` once the link is past its time.
pub fn status_at(
    stored: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<InvitationStatus> {
    Some(match stored {
        "pending" if expires_at <= now => InvitationStatus::Expired,
        "pending" => InvitationStatus::Pending,
        "accepted" => InvitationStatus::Accepted,
        "revoked" => InvitationStatus::Revoked,
        _ => return None,
    })
}

/// One entry of a comma-separated address list: a valid, de-duplicated address, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListedAddress {
    Valid(String),
    Duplicate(String),
    Invalid { input: String, reason: &'static str },
}

/// Splits "a@x.com, B@y.com,,a@X.com" into trimmed entries: empty ones dropped, each checked,
/// repeats (case-insensitively) reported once as duplicates.
pub fn parse_address_list(raw: &str) -> Vec<ListedAddress> {
    let mut seen = Vec::new();
    raw.split([',', ';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| match validate_email(entry) {
            Err(reason) => ListedAddress::Invalid {
                input: entry.to_owned(),
                reason,
            },
            Ok(email) => {
                let key = normalize(&email);
                if seen.contains(&key) {
                    ListedAddress::Duplicate(email)
                } else {
                    seen.push(key);
                    ListedAddress::Valid(email)
                }
            }
        })
        .collect()
}

/// What an invitation grants beyond membership, as the e-mail names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitedAccess {
    pub product: String,
    /// The permission group's name (a built-in role's group is named after the role).
    pub permission_group: String,
}

/// The invitation e-mail: who invites, to what, with which access, and until when.
pub fn email_text(
    inviter: &str,
    org: &str,
    access: Option<&InvitedAccess>,
    link: &str,
    expires_at: DateTime<Utc>,
) -> (String, String) {
    let subject = format!("{inviter} invited you to {org}");
    let access = access.map_or_else(String::new, |a| {
        format!(
            ", with access to the product {} as {}",
            a.product, a.permission_group
        )
    });
    let body = format!(
        "{inviter} invited you to join {org}{access}.\n\nAccept the invitation:\n{link}\n\n\
         The link works once and expires on {} (UTC).\n",
        expires_at.format("%Y-%m-%d %H:%M")
    );
    (subject, body)
}

/// The secret of an invitation link; only its SHA-256 is stored.
pub const SECRET_PREFIX: &str = "rg_inv_";

pub fn mint_secret(random: [u8; 32]) -> (String, [u8; 32]) {
    let secret = format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    let hash = super::token::hash_secret(&secret);
    (secret, hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn the_email_names_inviter_org_product_and_group() {
        let expires = DateTime::parse_from_rfc3339("2026-12-09T10:30:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let access = InvitedAccess {
            product: "Web".into(),
            permission_group: "Developers".into(),
        };
        let (subject, body) = email_text(
            "ada@acme.test",
            "Acme",
            Some(&access),
            "https://x/accept?token=t",
            expires,
        );
        assert_eq!(subject, "ada@acme.test invited you to Acme");
        assert!(
            body.starts_with(
                "ada@acme.test invited you to join Acme, with access to the product Web as \
                 Developers.\n"
            ),
            "{body}"
        );
        assert!(body.contains("https://x/accept?token=t\n"), "{body}");
        assert!(body.contains("2026-12-09 10:30 (UTC)"), "{body}");
        let (_, plain) = email_text("Bo", "Acme", None, "l", expires);
        assert!(
            plain.starts_with("Bo invited you to join Acme.\n"),
            "{plain}"
        );
    }

    #[test]
    fn address_lists_are_trimmed_checked_and_deduplicated() {
        let parsed =
            parse_address_list(" ana@x.test, ,bob@y.test;ANA@X.test,not-an-email\nélo@ü.test,");
        assert_eq!(
            parsed,
            vec![
                ListedAddress::Valid("ana@x.test".into()),
                ListedAddress::Valid("bob@y.test".into()),
                ListedAddress::Duplicate("ANA@X.test".into()),
                ListedAddress::Invalid {
                    input: "not-an-email".into(),
                    reason: "must contain @"
                },
                ListedAddress::Valid("élo@ü.test".into()),
            ]
        );
        assert!(parse_address_list(" , ").is_empty());
    }

    #[test]
    fn pending_invitations_expire() {
        let now = crate::domain::now();
        assert_eq!(
            status_at("pending", now + Duration::days(1), now),
            Some(InvitationStatus::Pending)
        );
        assert_eq!(
            status_at("pending", now, now),
            Some(InvitationStatus::Expired)
        );
        assert_eq!(
            status_at("accepted", now - Duration::days(9), now),
            Some(InvitationStatus::Accepted)
        );
        assert_eq!(status_at("bogus", now, now), None);
    }

    #[test]
    fn secrets_are_prefixed_and_hashed() {
        let (secret, hash) = mint_secret([3; 32]);
        assert!(secret.starts_with(SECRET_PREFIX));
        assert_eq!(hash, crate::domain::token::hash_secret(&secret));
    }
}
