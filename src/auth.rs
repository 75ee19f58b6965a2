//! Bearer-token authentication shared by the SCIM and admin edges; each edge wraps it in an
//! extractor that answers in its own error format.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use moka::sync::Cache;
use uuid::Uuid;

use crate::domain::token::{self, Token, TokenKind};
use crate::state::AppState;
use crate::store::StoreError;

/// Why a request was not let in.
#[derive(Debug)]
pub enum AuthFailure {
    /// 401: no token, an unknown one, or one that no longer works. The reason is safe to show.
    Unauthenticated(&'static str),
    /// 403: a good token of the other kind.
    WrongKind,
    /// 429: this address failed too often.
    RateLimited {
        retry_after_secs: u64,
    },
    Store(StoreError),
}

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

/// Per-instance bookkeeping of token authentication.
pub struct TokenAuth {
    failures_per_window: u32,
    /// Failed attempts per client address; an entry lives one window from its first failure.
    failures: Cache<IpAddr, Arc<AtomicU32>>,
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

    pub(crate) fn record_failure(&self, addr: IpAddr) {
        self.failures
            .get_with(addr, || Arc::new(AtomicU32::new(0)))
            .fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) fn client_addr(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| {
            addr.ip()
        })
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks the request's bearer token and that it is of the `wanted` kind.
pub async fn authenticate(
    state: &AppState,
    parts: &Parts,
    wanted: TokenKind,
) -> Result<Principal, AuthFailure> {
    let addr = client_addr(parts);
    let auth = &state.auth;
    if auth.is_limited(addr) {
        return Err(AuthFailure::RateLimited {
            retry_after_secs: WINDOW.as_secs(),
        });
    }
    match check(state, parts, wanted).await {
        Err(AuthFailure::Unauthenticated(reason)) => {
            auth.record_failure(addr);
            metrics::counter!("rolegate_auth_failures_total", "reason" => reason).increment(1);
            Err(AuthFailure::Unauthenticated(reason))
        }
        other => other,
    }
}

async fn check(
    state: &AppState,
    parts: &Parts,
    wanted: TokenKind,
) -> Result<Principal, AuthFailure> {
    let secret = bearer(parts).ok_or(AuthFailure::Unauthenticated("missing bearer token"))?;
    // Anything without our prefix cannot be a token of ours: no need to ask the database.
    if token::kind_of_secret(secret).is_none() {
        return Err(AuthFailure::Unauthenticated("invalid token"));
    }
    let hash = token::hash_secret(secret);
    let found = state
        .store
        .token_by_hash(&hash)
        .await
        .map_err(AuthFailure::Store)?;
    let Some(found) = found.filter(|m| token::hashes_match(&m.secret_hash, &hash)) else {
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
    if found.token.kind != wanted {
        return Err(AuthFailure::WrongKind);
    }
    if state.auth.recently_touched.get(&found.token.id).is_none() {
        state.auth.recently_touched.insert(found.token.id, ());
        if let Err(error) = state.store.touch_token(found.token.id, now).await {
            // Bookkeeping only: the request goes on.
            tracing::warn!(%error, token_id = %found.token.id, "could not record token use");
        }
    }
    Ok(Principal { token: found.token })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_limit_block_the_address_only() {
        let auth = TokenAuth::new(3);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        for _ in 0..2 {
            auth.record_failure(a);
        }
        assert!(!auth.is_limited(a));
        auth.record_failure(a);
        assert!(auth.is_limited(a));
        assert!(!auth.is_limited(b));
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

/// Who asks for a token to be minted: the operator, or the caller behind an admin token (whose
/// expiry caps the new one's, and whose id the new one records).
#[derive(Debug, Clone, Copy)]
pub enum Minter<'a> {
    Operator,
    Token(&'a Token),
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
    store: &dyn crate::store::Store,
    ctx: &crate::store::Ctx,
    tenant_id: Uuid,
    request: TokenRequest<'_>,
    minter: Minter<'_>,
) -> Result<(Token, String), IssueError> {
    let kind = request.kind;
    let name = match request.name {
        Some(n) => token::validate_name(n).map_err(IssueError::InvalidName)?,
        None => format!("{} token", kind.as_str()),
    };
    let mut random = [0u8; token::SECRET_BYTES];
    getrandom::fill(&mut random)
        .map_err(|e| IssueError::Store(StoreError::Other(format!("no randomness: {e}"))))?;
    let minted = token::mint(kind, random);
    let requested = request
        .expires_in_days
        .map(|d| crate::domain::now() + chrono::Duration::days(i64::from(d)));
    let (expires_at, created_by) = match minter {
        Minter::Operator => (requested, None),
        Minter::Token(by) => (token::capped_expiry(requested, by.expires_at), Some(by.id)),
    };
    let new = crate::store::NewToken::from_minted(request.org_id, kind, name, &minted, expires_at)
        .minted_by(created_by);
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
