//! Session checks from memory: a presented session id (by its hash) → the session and its user,
//! cached per instance and dropped by the same invalidations as the permission answers — ending
//! a session, deactivating or removing its user, each names the user, on this instance before
//! the write returns and on the others through `LISTEN`. A check is then a cache read; the
//! database is asked only after an invalidation, for an unknown id, or when the cached idle
//! expiry says "expired" (another instance may have seen later use).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;

use super::Resolver;
use super::cache::MARK_LIFETIME;
use crate::domain::now;
use crate::domain::session::{Session, SessionPolicy, SessionRejection};
use crate::store::{Store, StoreError};

/// How many sessions are kept.
const CAPACITY: u64 = 100_000;
/// How long a cached session lives without invalidation. Well under [`MARK_LIFETIME`], which
/// is what makes an invalidation during a load stick (see `Resolver::still_fresh`).
const TTL: Duration = Duration::from_secs(60);
const _: () = assert!(TTL.as_secs() < MARK_LIFETIME.as_secs());

struct Cached {
    loaded_at: u64,
    session: Arc<Session>,
    user_active: bool,
    /// Microseconds since the epoch: moved forward by use on this instance.
    last_seen: AtomicI64,
    idle_expires: AtomicI64,
}

/// Why a presented session does not let its bearer in.
#[derive(Debug)]
pub enum SessionRefusal {
    /// No session has this id.
    Unknown,
    Rejected(SessionRejection),
    /// The user was deactivated: deactivated users have no sessions.
    Inactive,
    Store(StoreError),
}

impl SessionRefusal {
    /// Safe to show: says nothing the bearer of a bad id could use.
    pub fn reason(&self) -> &'static str {
        match self {
            SessionRefusal::Unknown => "no such session",
            SessionRefusal::Rejected(r) => r.reason(),
            SessionRefusal::Inactive => "session ended (user deactivated)",
            SessionRefusal::Store(_) => "session could not be checked",
        }
    }
}

impl From<StoreError> for SessionRefusal {
    fn from(e: StoreError) -> Self {
        SessionRefusal::Store(e)
    }
}

/// The sessions of every request of an instance.
pub struct Sessions {
    store: Arc<dyn Store>,
    resolver: Arc<Resolver>,
    policy: SessionPolicy,
    cache: Cache<[u8; 32], Arc<Cached>>,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>, resolver: Arc<Resolver>, policy: SessionPolicy) -> Self {
        Sessions {
            store,
            resolver,
            policy,
            cache: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
        }
    }

    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// The live session whose id hashes to `hash`, its use recorded (at most once a minute).
    pub async fn check(&self, hash: &[u8; 32]) -> Result<Arc<Session>, SessionRefusal> {
        let now = now();
        if let Some(cached) = self.cache.get(hash) {
            let s = &cached.session;
            if self
                .resolver
                .still_fresh(s.tenant_id, s.user_id, cached.loaded_at)
            {
                match self.verdict(&cached, now) {
                    Ok(()) => return self.used(&cached, now).await,
                    // Another instance may have seen later use: the database knows.
                    Err(SessionRefusal::Rejected(SessionRejection::IdleExpired)) => {}
                    Err(refusal) => return Err(refusal),
                }
            }
        }
        let loaded_at = self.resolver.begin_load();
        let Some((session, user_active)) = self.store.session_by_hash(hash).await? else {
            return Err(SessionRefusal::Unknown);
        };
        let cached = Arc::new(Cached {
            loaded_at,
            last_seen: AtomicI64::new(micros(session.last_seen_at)),
            idle_expires: AtomicI64::new(micros(session.idle_expires_at)),
            session: Arc::new(session),
            user_active,
        });
        if self
            .resolver
            .still_fresh(cached.session.tenant_id, cached.session.user_id, loaded_at)
        {
            self.cache.insert(*hash, cached.clone());
        }
        self.verdict(&cached, now)?;
        self.used(&cached, now).await
    }

    fn verdict(&self, cached: &Cached, now: DateTime<Utc>) -> Result<(), SessionRefusal> {
        if !cached.user_active {
            return Err(SessionRefusal::Inactive);
        }
        let idle_expires = at(cached.idle_expires.load(Ordering::SeqCst));
        cached
            .session
            .check(now, idle_expires)
            .map_err(SessionRefusal::Rejected)
    }

    async fn used(
        &self,
        cached: &Cached,
        now: DateTime<Utc>,
    ) -> Result<Arc<Session>, SessionRefusal> {
        let last_seen = at(cached.last_seen.load(Ordering::SeqCst));
        if self.policy.touch_due(last_seen, now) {
            let idle_expires = self.policy.idle_expiry(now, cached.session.expires_at);
            cached.last_seen.store(micros(now), Ordering::SeqCst);
            cached
                .idle_expires
                .fetch_max(micros(idle_expires), Ordering::SeqCst);
            if let Err(error) = self
                .store
                .touch_session(cached.session.id, now, idle_expires)
                .await
            {
                // Bookkeeping: this request goes on; another instance may end the session as
                // idle somewhat early.
                tracing::warn!(%error, session_id = %cached.session.id, "could not record session use");
            }
        }
        Ok(cached.session.clone())
    }

    /// Forgets a session at once on this instance (its end is also an invalidation, which
    /// reaches every instance; this spares the next check here the database read).
    pub fn forget(&self, hash: &[u8; 32]) {
        self.cache.invalidate(hash);
    }
}
