//! Bearer-token authentication shared by the SCIM and admin edges; each edge wraps it in an
//! extractor that answers in its own error format. It takes what it needs from any state
//! through `FromRef`, so the application state can hold a [`TokenAuth`] without a loop.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::FromRef;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use moka::sync::Cache;
use uuid::Uuid;

use crate::authz::Resolver;
use crate::domain::token::{self, Token, TokenKind};
use crate::store::{Store, StoreError};

/// Why a request was not let in.
#[derive(Debug)]
pub enum AuthFailure {
    /// 401: no token, an unknown one, or one that no longer works. The reason is safe to show.
    Unauthenticated(&'static str),
    /// 403: a good token of a kind this edge does not take (the kind presented).
    WrongKind(TokenKind),
    /// 429: bad credentials from an address that failed too often.
    RateLimited {
        retry_after_secs: u64,
    },
    Store(StoreError),
}

/// Why a service token is refused: what it may call instead, so the 403 says how to fix it.
pub const SERVICE_TOKEN_ONLY: &str = "a service token may only call POST /api/v1/authz/check \
     and GET /api/v1/authz/explain; use an admin token for the admin API and a SCIM token for \
     /scim/v2";

/// The caller behind a valid token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token: Token,
}

impl Principal {
    pub fn org_id(&self) -> Uuid {
        self.token.org_id
    }

    pub fn tenant_id(&self) -> Uuid {
        self.token.tenant_id
    }
}

pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Per-instance bookkeeping of credential checks (bearer tokens, invitation links, the
/// metrics token).
///
/// Failures are counted per client address, and only bad credentials are ever slowed: behind
/// a reverse proxy every client shares one address, and one attacker guessing tokens must not
/// lock Okta out. So a presented secret is always checked unless this very secret already
/// failed from this address within the window — a repeat the limit answers without a
/// database lookup — and a valid one passes whatever the address's count.
pub struct TokenAuth {
    failures_per_window: u32,
    /// Failed attempts per client address; an entry lives one window from its first failure.
    failures: Cache<IpAddr, Arc<AtomicU32>>,
    /// Hashes of secrets that failed from an address, for one window.
    failed_secrets: Cache<(IpAddr, [u8; 32]), ()>,
    /// Tokens whose last use was written recently, so it is written at most once a minute.
    recently_touched: Cache<Uuid, ()>,
}

impl TokenAuth {
    pub fn new(failures_per_window: u32) -> Self {
        TokenAuth {
            failures_per_window: failures_per_window.max(1),
            failures: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(WINDOW)
                .build(),
            failed_secrets: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(WINDOW)
                .build(),
            recently_touched: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(WINDOW)
                .build(),
        }
    }

    pub(crate) fn is_limited(&self, addr: IpAddr) -> bool {
        self.failures
            .get(&addr)
            .is_some_and(|n| n.load(Ordering::Relaxed) >= self.failures_per_window)
    }

    /// Before a credential is checked: 429 without checking it when the address is over its
    /// limit and presents nothing to check, or the very secret (by hash) that already failed
    /// from it. Anything else is checked, so a valid credential always gets through.
    pub(crate) fn gate(&self, addr: IpAddr, secret: Option<&[u8; 32]>) -> Result<(), AuthFailure> {
        if self.is_limited(addr)
            && secret.is_none_or(|hash| self.failed_secrets.contains_key(&(addr, *hash)))
        {
            metrics::counter!("rolegate_auth_failures_total", "reason" => "rate limited")
                .increment(1);
            return Err(AuthFailure::RateLimited {
                retry_after_secs: WINDOW.as_secs(),
            });
        }
        Ok(())
    }

    /// After a credential did not check out: counts the failure (and remembers the secret's
    /// hash) and answers 401 with `reason`, or 429 once the address was over its limit.
    pub(crate) fn reject(
        &self,
        addr: IpAddr,
        secret: Option<[u8; 32]>,
        reason: &'static str,
    ) -> AuthFailure {
        metrics::counter!("rolegate_auth_failures_total", "reason" => reason).increment(1);
        let limited = self.is_limited(addr);
        self.failures
            .get_with(addr, || Arc::new(AtomicU32::new(0)))
            .fetch_add(1, Ordering::Relaxed);
        if let Some(hash) = secret {
            self.failed_secrets.insert((addr, hash), ());
        }
        if limited {
            AuthFailure::RateLimited {
                retry_after_secs: WINDOW.as_secs(),
            }
        } else {
            AuthFailure::Unauthenticated(reason)
        }
    }
}

/// The secret of an `Authorization: Bearer …` header.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks the request's bearer token and that it is of one of the `accepted` kinds. A valid
/// token passes even from an address over its failure limit (see [`TokenAuth`]).
pub async fn authenticate<S>(
    state: &S,
    parts: &Parts,
    accepted: &[TokenKind],
) -> Result<Principal, AuthFailure>
where
    Arc<TokenAuth>: FromRef<S>,
    Arc<dyn Store>: FromRef<S>,
    Arc<Resolver>: FromRef<S>,
{
    let addr = crate::request::client_addr(&parts.extensions);
    let auth = Arc::<TokenAuth>::from_ref(state);
    let secret = bearer(parts);
    // Anything without our prefix cannot be a token of ours: no need to ask the database, and
    // no need to remember it either (it fails again without a lookup).
    let hash = secret
        .filter(|s| token::kind_of_secret(s).is_some())
        .map(token::hash_secret);
    auth.gate(addr, hash.as_ref())?;
    let reason = match (secret, hash) {
        (None, _) => "missing bearer token",
        (Some(_), None) => "invalid token",
        (Some(_), Some(hash)) => {
            let store = Arc::<dyn Store>::from_ref(state);
            let resolver = Arc::<Resolver>::from_ref(state);
            match check(store.as_ref(), &resolver, &auth, &hash, accepted).await {
                Err(AuthFailure::Unauthenticated(reason)) => reason,
                other => return other,
            }
        }
    };
    Err(auth.reject(addr, hash, reason))
}

async fn check(
    store: &dyn Store,
    resolver: &Resolver,
    auth: &TokenAuth,
    hash: &[u8; 32],
    accepted: &[TokenKind],
) -> Result<Principal, AuthFailure> {
    let found = resolver
        .token_by_hash(hash)
        .await
        .map_err(AuthFailure::Store)?;
    let Some(found) = found.filter(|m| token::hashes_match(&m.secret_hash, hash)) else {
        return Err(AuthFailure::Unauthenticated("invalid token"));
    };
    let now = crate::domain::now();
    found
        .token
        .check_usable(now)
        .map_err(|rejection| match rejection {
            token::TokenRejection::Revoked => AuthFailure::Unauthenticated("token revoked"),
            token::TokenRejection::Expired => AuthFailure::Unauthenticated("token expired"),
        })?;
    if !accepted.contains(&found.token.kind) {
        return Err(AuthFailure::WrongKind(found.token.kind));
    }
    if auth.recently_touched.get(&found.token.id).is_none() {
        auth.recently_touched.insert(found.token.id, ());
        if let Err(error) = store.touch_token(found.token.id, now).await {
            // Bookkeeping only: the request goes on.
            tracing::warn!(%error, token_id = %found.token.id, "could not record token use");
        }
    }
    Ok(Principal { token: found.token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(f: AuthFailure) -> bool {
        matches!(f, AuthFailure::RateLimited { .. })
    }

    #[test]
    fn failures_past_the_limit_block_the_address_only() {
        let auth = TokenAuth::new(3);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        for _ in 0..3 {
            assert!(!limited(auth.reject(a, None, "x")), "401 up to the limit");
        }
        assert!(auth.is_limited(a));
        assert!(limited(auth.reject(a, None, "x")), "429 past it");
        assert!(!auth.is_limited(b));
        assert!(auth.gate(b, None).is_ok());
    }

    #[test]
    fn a_limited_address_still_gets_new_secrets_checked() {
        let auth = TokenAuth::new(2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let (bad, other) = ([1u8; 32], [2u8; 32]);
        assert!(auth.gate(a, Some(&bad)).is_ok());
        auth.reject(a, Some(bad), "x");
        assert!(auth.gate(a, Some(&bad)).is_ok(), "under the limit: checked");
        auth.reject(a, Some(bad), "x");
        assert!(auth.gate(a, Some(&bad)).is_err(), "a repeat: no lookup");
        assert!(auth.gate(a, None).is_err(), "nothing to check");
        assert!(auth.gate(a, Some(&other)).is_ok(), "may be valid: checked");
        assert!(auth.gate(b, Some(&bad)).is_ok(), "another address");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        let req = |v: &str| {
            let (parts, _) = axum::http::Request::builder()
                .header(AUTHORIZATION, v)
                .body(())
                .unwrap()
                .into_parts();
            parts
        };
        assert_eq!(bearer(&req("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&req("bearer abc")), Some("abc"));
        assert_eq!(bearer(&req("Basic abc")), None);
        assert_eq!(bearer(&req("abc")), None);
    }
}

/// Who asks for a token to be minted: the operator, the caller behind an admin token (whose
/// expiry caps the new one's, and whose id the new one records), or a signed-in user (whose id
/// the new one records: an admin token they mint lives as long as they are an Owner of its
/// org, however long it was asked to).
#[derive(Debug, Clone, Copy)]
pub enum Minter<'a> {
    Operator,
    Token(&'a Token),
    User(Uuid),
}

/// What a new token is for and how long it lives.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    pub org_id: Uuid,
    pub kind: TokenKind,
    pub name: Option<&'a str>,
    pub expires_in_days: Option<u32>,
}

/// Mints a token and stores its hash; returns the token and its secret, which exists nowhere
/// else and is shown to the caller once. A token minted by a token never outlives it.
pub async fn issue_token(
    store: &dyn Store,
    ctx: &crate::store::Ctx,
    tenant_id: Uuid,
    request: TokenRequest<'_>,
    minter: Minter<'_>,
) -> Result<(Token, String), IssueError> {
    let kind = request.kind;
    let name = match request.name {
        Some(n) => token::validate_name(n).map_err(IssueError::InvalidName)?,
        None => token::default_name(kind),
    };
    let mut random = [0u8; token::SECRET_BYTES];
    getrandom::fill(&mut random)
        .map_err(|e| IssueError::Store(StoreError::Other(format!("no randomness: {e}"))))?;
    let minted = token::mint(kind, random);
    let requested = request
        .expires_in_days
        .map(|d| crate::domain::now() + chrono::Duration::days(i64::from(d)));
    let (expires_at, created_by, created_by_user) = match minter {
        Minter::Operator => (requested, None, None),
        Minter::Token(by) => (
            token::capped_expiry(requested, by.expires_at),
            Some(by.id),
            None,
        ),
        Minter::User(user_id) => (requested, None, Some(user_id)),
    };
    let new = crate::store::NewToken::from_minted(request.org_id, kind, name, &minted, expires_at)
        .minted_by(created_by)
        .minted_by_user(created_by_user);
    let stored = store
        .create_token(ctx, tenant_id, new)
        .await
        .map_err(IssueError::Store)?;
    Ok((stored, minted.secret))
}

#[derive(Debug)]
pub enum IssueError {
    InvalidName(&'static str),
    Store(StoreError),
}
