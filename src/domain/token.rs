//! API tokens: the secret format, hashing and the validity rules.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::name::{NameRule, at_most};

/// What a token may call: SCIM provisioning, the admin API, or only the permission questions
/// (`authz/check`, `authz/explain`) — never more than one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Scim,
    Admin,
    /// Read-only: asks what a user may do (a flag backend's token), nothing else.
    Service,
}

impl TokenKind {
    pub const ALL: [TokenKind; 3] = [TokenKind::Scim, TokenKind::Admin, TokenKind::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Scim => "scim",
            TokenKind::Admin => "admin",
            TokenKind::Service => "service",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        TokenKind::ALL.into_iter().find(|k| k.as_str() == value)
    }

    /// The secret's prefix. Distinct, greppable prefixes let secret scanners spot a leaked
    /// token and tell which kind it is.
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Scim => "rg_scim_",
            TokenKind::Admin => "rg_admin_",
            TokenKind::Service => "rg_service_",
        }
    }
}

/// A freshly minted token secret. Shown once, then only its hash is kept.
pub struct MintedSecret {
    pub secret: String,
    pub hash: [u8; 32],
    pub hint: String,
}

impl std::fmt::Debug for MintedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedSecret")
            .field("hint", &self.hint)
            .finish_non_exhaustive()
    }
}

/// Random bytes in a token: 256 bits, beyond any guessing.
pub const SECRET_BYTES: usize = 32;

/// Builds a secret from random bytes (the caller draws them, so this stays pure and testable).
pub fn mint(kind: TokenKind, random: [u8; SECRET_BYTES]) -> MintedSecret {
    let secret = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(random));
    let hash = hash_secret(&secret);
    let hint = hint(&secret);
    MintedSecret { secret, hash, hint }
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The prefix plus four characters: enough to tell tokens apart in a list, useless to an attacker.
fn hint(secret: &str) -> String {
    let prefix_len = kind_of_secret(secret).map_or(0, |k| k.prefix().len());
    let shown: String = secret.chars().take(prefix_len + 4).collect();
    format!("{shown}…")
}

/// Which kind a presented secret claims to be, from its prefix; `None` for anything else.
pub fn kind_of_secret(secret: &str) -> Option<TokenKind> {
    TokenKind::ALL
        .into_iter()
        .find(|k| secret.starts_with(k.prefix()))
}

/// A stored token (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Token {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub org_id: Uuid,
    pub kind: TokenKind,
    pub name: String,
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The token that minted this one through the admin API; `null` when the operator did
    /// (`rolegate token create`).
    pub created_by_token_id: Option<Uuid>,
    /// The signed-in user who minted this one through the admin API. An admin token they
    /// minted is revoked when they stop being an Owner of its org: it carried their right.
    pub created_by_user_id: Option<Uuid>,
}

/// The expiry of a token minted by a caller whose own token expires at `minter`: what was asked
/// for, but never later than the minter's. Otherwise a token that expires tomorrow could mint
/// one that never does, and a leaked short-lived token would become a permanent one.
pub fn capped_expiry(
    requested: Option<DateTime<Utc>>,
    minter: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (requested, minter) {
        (Some(r), Some(m)) => Some(r.min(m)),
        (r, m) => r.or(m),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    Revoked,
    Expired,
}

impl Token {
    pub fn check_usable(&self, now: DateTime<Utc>) -> Result<(), TokenRejection> {
        if self.revoked_at.is_some() {
            return Err(TokenRejection::Revoked);
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(TokenRejection::Expired);
        }
        Ok(())
    }
}

/// Compares two hashes without an early exit, so response time says nothing about how much of
/// a guess was right.
pub fn hashes_match(stored: &[u8], presented: &[u8; 32]) -> bool {
    stored.ct_eq(presented.as_slice()).into()
}

/// The name a token gets when its creator gives none ("admin token", "scim token").
pub fn default_name(kind: TokenKind) -> String {
    format!("{} token", kind.as_str())
}

/// What a token name accepts: 1 to 100 characters, trimmed; a default is chosen by the caller.
pub const NAME: NameRule = at_most!(100);

/// Validates a token name by [`NAME`].
pub fn validate_name(name: &str) -> Result<String, &'static str> {
    NAME.validate(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn minted_secret_has_prefix_hash_and_hint() {
        let m = mint(TokenKind::Scim, [7; SECRET_BYTES]);
        assert!(m.secret.starts_with("rg_scim_"));
        assert_eq!(m.secret.len(), "rg_scim_".len() + 43);
        assert_eq!(m.hash, hash_secret(&m.secret));
        assert!(m.hint.starts_with("rg_scim_") && m.hint.ends_with('…'));
        assert!(!m.hint.contains(&m.secret[8..20]));
        let a = mint(TokenKind::Admin, [7; SECRET_BYTES]);
        assert!(a.secret.starts_with("rg_admin_"));
        assert_eq!(kind_of_secret(&a.secret), Some(TokenKind::Admin));
        assert_eq!(kind_of_secret(&m.secret), Some(TokenKind::Scim));
        assert_eq!(kind_of_secret("Bearer xyz"), None);
        let s = mint(TokenKind::Service, [7; SECRET_BYTES]);
        assert!(s.secret.starts_with("rg_service_"));
        assert!(s.hint.starts_with("rg_service_") && s.hint.ends_with('…'));
        assert_eq!(kind_of_secret(&s.secret), Some(TokenKind::Service));
    }

    #[test]
    fn kinds_round_trip_and_prefixes_are_distinct() {
        for k in TokenKind::ALL {
            assert_eq!(TokenKind::parse(k.as_str()), Some(k));
            for other in TokenKind::ALL.into_iter().filter(|o| *o != k) {
                // No prefix may start another's, or a secret's kind would be ambiguous.
                assert!(!k.prefix().starts_with(other.prefix()), "{k:?} {other:?}");
            }
        }
        assert_eq!(TokenKind::parse("root"), None);
    }

    #[test]
    fn a_minted_token_never_outlives_its_minter() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        let (soon, later) = (now + Duration::days(1), now + Duration::days(90));
        assert_eq!(capped_expiry(None, Some(soon)), Some(soon));
        assert_eq!(capped_expiry(Some(later), Some(soon)), Some(soon));
        assert_eq!(capped_expiry(Some(soon), Some(later)), Some(soon));
        assert_eq!(capped_expiry(Some(later), None), Some(later));
        assert_eq!(capped_expiry(None, None), None);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let m = mint(TokenKind::Admin, [1; SECRET_BYTES]);
        assert!(!format!("{m:?}").contains(&m.secret));
    }

    #[test]
    fn hash_comparison_detects_any_difference() {
        let h = hash_secret("rg_scim_abc");
        assert!(hashes_match(&h, &h));
        let mut other = h;
        other[31] ^= 1;
        assert!(!hashes_match(&h, &other));
        assert!(!hashes_match(&h[..31], &h));
    }

    #[test]
    fn revoked_and_expired_tokens_are_unusable() {
        let now = crate::domain::now();
        let mut t = Token {
            id: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            kind: TokenKind::Scim,
            name: "okta".into(),
            hint: "rg_scim_abcd…".into(),
            created_at: now,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            created_by_token_id: None,
            created_by_user_id: None,
        };
        assert_eq!(t.check_usable(now), Ok(()));
        t.expires_at = Some(now + Duration::seconds(1));
        assert_eq!(t.check_usable(now), Ok(()));
        t.expires_at = Some(now);
        assert_eq!(t.check_usable(now), Err(TokenRejection::Expired));
        t.revoked_at = Some(now);
        assert_eq!(t.check_usable(now), Err(TokenRejection::Revoked));
    }
}
