//! The cached resolver: permission answers from memory, never stale past an invalidation.
//!
//! What is cached is what resolution reads — each user's snapshot and each product's — with
//! the answers computed from them kept beside the user's. Every committed write invalidates
//! what it touched: on this instance before the write returns (`OpsStore::on_commit`), on the
//! others when PostgreSQL delivers its `NOTIFY` (the listener task, `run_listener`). A lost
//! listener connection drops everything, since notifications sent meanwhile are lost.
//!
//! A load that began before an invalidation must not put back what the invalidation removed:
//! every invalidation takes a mark from one counter, every load the counter's value when it
//! started, and a load older than a mark that covers it is answered but not kept.
//!
//! Bearer tokens are looked up through the same marks: revoking a token is a write of its
//! tenant, so a revoked token is refused on every instance as soon as that instance would see a
//! permission change — without a database round trip on every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use moka::sync::Cache;
use uuid::Uuid;

use crate::background::Stop;
use crate::domain::resolve::{self, ProductSnapshot, Resolved, TenantFacts, UserSnapshot};
use crate::store::{FeedEvent, Invalidation, Store, StoreError, TokenMatch};

/// How many users and products are kept, each.
const CAPACITY: u64 = 100_000;
/// How many bearer tokens are kept: every tenant's few SCIM, admin and service tokens.
const TOKEN_CAPACITY: u64 = 10_000;
/// How long an invalidation mark is kept: far longer than any load takes.
pub(crate) const MARK_LIFETIME: Duration = Duration::from_secs(600);

type Key = (Uuid, Uuid);

/// A user's cached snapshot, with the answers computed from it.
pub struct UserEntry {
    /// The counter's value when the load began.
    loaded_at: u64,
    snapshot: UserSnapshot,
    answers: RwLock<HashMap<Uuid, Arc<Resolved>>>,
}

/// A tenant's org tree, rules and defaults, shared by its users' loads.
struct TenantEntry {
    loaded_at: u64,
    facts: TenantFacts,
}

/// A bearer token as read by its secret's hash.
struct TokenEntry {
    loaded_at: u64,
    found: TokenMatch,
}

/// A product's cached snapshot.
pub struct ProductEntry {
    loaded_at: u64,
    snapshot: ProductSnapshot,
}

impl UserEntry {
    pub fn snapshot(&self) -> &UserSnapshot {
        &self.snapshot
    }

    /// The user's answer on `product`, computed once per entry.
    pub fn answer(&self, product: &ProductEntry) -> Arc<Resolved> {
        answer(self, product)
    }
}

impl ProductEntry {
    pub fn snapshot(&self) -> &ProductSnapshot {
        &self.snapshot
    }
}

/// Resolution with a cache in front, shared by every request of an instance.
pub struct Resolver {
    store: Arc<dyn Store>,
    users: Cache<Key, Arc<UserEntry>>,
    products: Cache<Key, Arc<ProductEntry>>,
    tenants: Cache<Uuid, Arc<TenantEntry>>,
    /// Known tokens by their secret's hash; unknown secrets are never kept (the failure
    /// limiter answers repeats of those).
    tokens: Cache<[u8; 32], Arc<TokenEntry>>,
    counter: AtomicU64,
    /// The mark of the latest invalidation of each user, and of each whole tenant.
    user_marks: Cache<Key, u64>,
    /// Tenants are few and read on every answer: a plain map, never evicted.
    tenant_marks: RwLock<HashMap<Uuid, u64>>,
    /// Everything loaded before this mark is stale (a lost listener connection).
    cleared_at: AtomicU64,
    /// Whether invalidations from other instances arrive (always, where there are none).
    listening: AtomicBool,
    listener_pid: RwLock<Option<i32>>,
    /// Run between a load's read and its keep: where a test lets an invalidation overtake it.
    #[cfg(test)]
    overtake: std::sync::Mutex<Option<Overtake>>,
}

#[cfg(test)]
type Overtake = Box<dyn Fn(&Resolver) + Send + Sync>;

impl Resolver {
    /// `ttl`: how long an entry may live without any invalidation — a safety net, not the
    /// mechanism.
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Arc<Self> {
        let listening = store.backend() == crate::store::Backend::Sqlite;
        let resolver = Arc::new(Resolver {
            store: store.clone(),
            users: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build(),
            products: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build(),
            tenants: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build(),
            tokens: Cache::builder()
                .max_capacity(TOKEN_CAPACITY)
                .time_to_live(ttl)
                .build(),
            counter: AtomicU64::new(1),
            user_marks: Cache::builder()
                .max_capacity(CAPACITY * 10)
                .time_to_live(MARK_LIFETIME)
                .build(),
            tenant_marks: RwLock::default(),
            cleared_at: AtomicU64::new(0),
            listening: AtomicBool::new(listening),
            listener_pid: RwLock::new(None),
            #[cfg(test)]
            overtake: std::sync::Mutex::default(),
        });
        let weak = Arc::downgrade(&resolver);
        store.on_commit(Arc::new(move |invalidation| {
            if let Some(resolver) = weak.upgrade() {
                resolver.apply(invalidation);
            }
        }));
        resolver
    }

    /// Whether answers can be trusted to follow every instance's writes.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    fn mark(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    /// Between a load's read and the check that decides whether it is kept.
    fn loaded(&self) {
        #[cfg(test)]
        if let Ok(hook) = self.overtake.lock()
            && let Some(hook) = hook.as_ref()
        {
            hook(self);
        }
    }

    /// Whether something loaded when the counter read `loaded_at` is still good for
    /// `tenant`, and for `user` when one is named. A cached user entry is checked without its
    /// user: invalidating a user removes the entry itself; the user's mark is for loads in
    /// flight.
    fn fresh(&self, tenant: Uuid, user: Option<Uuid>, loaded_at: u64) -> bool {
        let newer = |mark: Option<u64>| mark.is_some_and(|m| m >= loaded_at);
        let tenant_mark = self
            .tenant_marks
            .read()
            .map_or(Some(u64::MAX), |marks| marks.get(&tenant).copied());
        !(self.cleared_at.load(Ordering::SeqCst) >= loaded_at
            || newer(tenant_mark)
            || user.is_some_and(|u| newer(self.user_marks.get(&(tenant, u)))))
    }

    /// The mark a load of something of `(tenant, user)` takes as it begins, for
    /// [`Resolver::still_fresh`]: how the session cache (`authz::sessions`) follows the same
    /// invalidations as the permission answers.
    pub fn begin_load(&self) -> u64 {
        self.mark()
    }

    /// Whether something of `user` in `tenant`, loaded at `loaded_at`, has seen no
    /// invalidation since. Only for entries that live less than [`MARK_LIFETIME`]: a user's
    /// mark is forgotten after it.
    pub fn still_fresh(&self, tenant: Uuid, user: Uuid, loaded_at: u64) -> bool {
        self.listening() && self.fresh(tenant, Some(user), loaded_at)
    }

    /// Forgets what `invalidation` says changed.
    pub fn apply(&self, invalidation: &Invalidation) {
        let mark = self.mark();
        let tenant = invalidation.tenant_id;
        match &invalidation.users {
            Some(users) => {
                for user in users {
                    self.user_marks.insert((tenant, *user), mark);
                    self.users.invalidate(&(tenant, *user));
                }
            }
            // The tenant's products change with it (their environments, groups, org).
            None => {
                if let Ok(mut marks) = self.tenant_marks.write() {
                    marks.insert(tenant, mark);
                }
            }
        }
        metrics::counter!("rolegate_authz_cache_invalidations_total",
            "scope" => if invalidation.users.is_some() { "users" } else { "tenant" })
        .increment(1);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mark = self.mark();
        self.cleared_at.store(mark, Ordering::SeqCst);
        self.users.invalidate_all();
        self.products.invalidate_all();
        self.tenants.invalidate_all();
        self.tokens.invalidate_all();
    }

    fn hit(&self, hit: bool) {
        let name = if hit {
            "rolegate_authz_cache_hits_total"
        } else {
            "rolegate_authz_cache_misses_total"
        };
        metrics::counter!(name).increment(1);
    }

    /// The users' entries: cached ones, and the rest loaded in one snapshot read (users of
    /// no tenant left out).
    pub async fn user_entries(
        &self,
        tenant: Uuid,
        user_ids: &[Uuid],
    ) -> Result<Vec<Arc<UserEntry>>, StoreError> {
        let mut found = Vec::with_capacity(user_ids.len());
        let mut missing = Vec::new();
        for user in user_ids {
            match self.users.get(&(tenant, *user)) {
                Some(entry) if self.fresh(tenant, None, entry.loaded_at) => {
                    self.hit(true);
                    found.push(entry);
                }
                _ => {
                    self.hit(false);
                    missing.push(*user);
                }
            }
        }
        if !missing.is_empty() {
            let loaded_at = self.mark();
            let shared = self.tenant_entry(tenant).await?;
            let snapshots = self
                .store
                .user_snapshots_with(tenant, &missing, &shared.facts)
                .await?;
            self.loaded();
            for snapshot in snapshots {
                let user = snapshot.user_id;
                let entry = Arc::new(UserEntry {
                    loaded_at,
                    snapshot,
                    answers: RwLock::default(),
                });
                if self.fresh(tenant, Some(user), loaded_at) {
                    self.users.insert((tenant, user), entry.clone());
                }
                found.push(entry);
            }
        }
        Ok(found)
    }

    /// The tenant's shared part: cached, or read (and kept if no invalidation came meanwhile).
    /// A user's load uses it with their own part, read after it: whatever changed the tenant's
    /// part since would have invalidated the whole tenant, and so this entry.
    async fn tenant_entry(&self, tenant: Uuid) -> Result<Arc<TenantEntry>, StoreError> {
        if let Some(entry) = self.tenants.get(&tenant)
            && self.fresh(tenant, None, entry.loaded_at)
        {
            return Ok(entry);
        }
        let loaded_at = self.mark();
        let entry = Arc::new(TenantEntry {
            loaded_at,
            facts: self.store.tenant_facts(tenant).await?,
        });
        self.loaded();
        if self.fresh(tenant, None, loaded_at) {
            self.tenants.insert(tenant, entry.clone());
        }
        Ok(entry)
    }

    /// The token whose secret hashes to `hash`: from memory unless its tenant changed since it
    /// was read (revocation and expiry changes are writes of the tenant), else from the store.
    /// The caller still compares the hashes and checks revocation and expiry.
    pub async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenMatch>, StoreError> {
        if let Some(entry) = self.tokens.get(hash)
            && self.fresh(entry.found.token.tenant_id, None, entry.loaded_at)
        {
            return Ok(Some(entry.found.clone()));
        }
        let loaded_at = self.mark();
        let found = self.store.token_by_hash(hash).await?;
        self.loaded();
        if let Some(found) = &found
            && self.fresh(found.token.tenant_id, None, loaded_at)
        {
            self.tokens.insert(
                *hash,
                Arc::new(TokenEntry {
                    loaded_at,
                    found: found.clone(),
                }),
            );
        }
        Ok(found)
    }

    /// The products' entries, as [`Resolver::user_entries`].
    pub async fn product_entries(
        &self,
        tenant: Uuid,
        product_ids: &[Uuid],
    ) -> Result<Vec<Arc<ProductEntry>>, StoreError> {
        let mut found = Vec::with_capacity(product_ids.len());
        let mut missing = Vec::new();
        for product in product_ids {
            match self.products.get(&(tenant, *product)) {
                Some(entry) if self.fresh(tenant, None, entry.loaded_at) => found.push(entry),
                _ => missing.push(*product),
            }
        }
        if !missing.is_empty() {
            let loaded_at = self.mark();
            let snapshots = self.store.product_snapshots(tenant, &missing).await?;
            self.loaded();
            for snapshot in snapshots {
                let entry = Arc::new(ProductEntry {
                    loaded_at,
                    snapshot,
                });
                if self.fresh(tenant, None, loaded_at) {
                    self.products
                        .insert((tenant, entry.snapshot.id), entry.clone());
                }
                found.push(entry);
            }
        }
        Ok(found)
    }

    /// Each user's permissions on each product (users of no tenant, products of none, left
    /// out), in the order asked.
    pub async fn products(
        &self,
        tenant: Uuid,
        user_ids: &[Uuid],
        product_ids: &[Uuid],
    ) -> Result<Vec<Arc<Resolved>>, StoreError> {
        let products: HashMap<Uuid, Arc<ProductEntry>> = self
            .product_entries(tenant, product_ids)
            .await?
            .into_iter()
            .map(|p| (p.snapshot.id, p))
            .collect();
        let users: HashMap<Uuid, Arc<UserEntry>> = self
            .user_entries(tenant, user_ids)
            .await?
            .into_iter()
            .map(|u| (u.snapshot.user_id, u))
            .collect();
        let mut out = Vec::with_capacity(users.len() * products.len());
        for user in user_ids {
            let Some(entry) = users.get(user) else {
                continue;
            };
            for product_id in product_ids {
                if let Some(product) = products.get(product_id) {
                    out.push(answer(entry, product));
                }
            }
        }
        Ok(out)
    }

    /// One user's permissions on one product; `NotFound` when either is not the tenant's or
    /// the user is not a member of the product's org.
    pub async fn product(
        &self,
        tenant: Uuid,
        user: Uuid,
        product: Uuid,
    ) -> Result<Arc<Resolved>, StoreError> {
        let resolved = self
            .products(tenant, &[user], &[product])
            .await?
            .pop()
            .ok_or(StoreError::NotFound)?;
        if resolved.standing == resolve::Standing::NotMember {
            return Err(StoreError::NotFound);
        }
        Ok(resolved)
    }

    /// The user's standing in an org, from their cached snapshot.
    /// Several users' standing and role in `org` (a page of members), loaded in one batch;
    /// a user the store no longer has is left out.
    pub async fn org_for_users(
        &self,
        tenant: Uuid,
        users: &[Uuid],
        org: Uuid,
    ) -> Result<Vec<Resolved>, StoreError> {
        Ok(self
            .user_entries(tenant, users)
            .await?
            .iter()
            .map(|entry| resolve::resolve_org(&entry.snapshot, org))
            .collect())
    }

    pub async fn org(&self, tenant: Uuid, user: Uuid, org: Uuid) -> Result<Resolved, StoreError> {
        let entry = self
            .user_entries(tenant, &[user])
            .await?
            .pop()
            .ok_or(StoreError::NotFound)?;
        Ok(resolve::resolve_org(&entry.snapshot, org))
    }

    /// Follows every instance's invalidations until `stop`: PostgreSQL's `NOTIFY`, through a
    /// listener that drops the whole cache whenever it had to reconnect (what was sent
    /// meanwhile is lost). Where there are no other instances (SQLite) there is nothing to do.
    pub async fn run_listener(self: Arc<Self>, mut stop: Stop) {
        loop {
            let connected = tokio::select! {
                _ = stop.requested() => return,
                feed = self.store.listen() => feed,
            };
            let mut feed = match connected {
                Ok(Some(feed)) => feed,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "authz cache: cannot listen for invalidations; retrying");
                    self.listening.store(false, Ordering::SeqCst);
                    tokio::select! {
                        _ = stop.requested() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            // Whatever happened before we listened is unknown: start empty.
            self.clear();
            self.listening.store(true, Ordering::SeqCst);
            *self.listener_pid.write().unwrap_or_else(|p| p.into_inner()) = feed.session_pid();
            loop {
                let event = tokio::select! {
                    _ = stop.requested() => return,
                    event = feed.next() => event,
                };
                match event {
                    Ok(FeedEvent::Invalidated(invalidation)) => self.apply(&invalidation),
                    Ok(FeedEvent::Reconnected) => {
                        metrics::counter!("rolegate_authz_listener_reconnects_total").increment(1);
                        tracing::warn!("authz cache: listener reconnected; dropping the cache");
                        self.clear();
                        *self.listener_pid.write().unwrap_or_else(|p| p.into_inner()) =
                            feed.session_pid();
                    }
                    Err(error) => {
                        tracing::warn!(%error, "authz cache: listener lost; dropping the cache");
                        metrics::counter!("rolegate_authz_listener_reconnects_total").increment(1);
                        self.listening.store(false, Ordering::SeqCst);
                        self.clear();
                        break;
                    }
                }
            }
        }
    }

    /// The database session this instance listens on (tests cut it to see a reconnect).
    pub fn listener_pid(&self) -> Option<i32> {
        *self.listener_pid.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// The user's answer on the product, computed once per entry.
fn answer(user: &UserEntry, product: &ProductEntry) -> Arc<Resolved> {
    let id = product.snapshot.id;
    if let Ok(answers) = user.answers.read()
        && let Some(found) = answers.get(&id)
    {
        return found.clone();
    }
    let resolved = Arc::new(resolve::resolve_product(&user.snapshot, &product.snapshot));
    if let Ok(mut answers) = user.answers.write() {
        answers.insert(id, resolved.clone());
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::Actor;
    use crate::domain::token::{self, TokenKind};
    use crate::store::{Ctx, NewToken, StoreOptions};

    struct Fixture {
        resolver: Arc<Resolver>,
        store: Arc<dyn Store>,
        tenant: Uuid,
        owner: Uuid,
        _dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let options = StoreOptions {
            max_connections: 2,
            migrate: true,
            statement_timeout: None,
            create: true,
        };
        let store = crate::store::connect(&url, &options).await.expect("store");
        let (org, owner) = store
            .create_org(&Ctx::new(Actor::Cli), "Acme", "owner@acme.test")
            .await
            .expect("org");
        Fixture {
            resolver: Resolver::new(store.clone(), Duration::from_secs(300)),
            store,
            tenant: org.tenant_id,
            owner: owner.id,
            _dir: dir,
        }
    }

    fn overtake_with(resolver: &Resolver, invalidation: Option<Invalidation>) {
        *resolver.overtake.lock().expect("hook") =
            invalidation.map(|i| Box::new(move |r: &Resolver| r.apply(&i)) as Overtake);
    }

    fn of_users(tenant: Uuid, users: Option<Vec<Uuid>>) -> Invalidation {
        Invalidation {
            epoch: 0,
            tenant_id: tenant,
            users,
        }
    }

    #[tokio::test]
    async fn a_user_load_overtaken_by_an_invalidation_is_answered_but_not_kept() {
        let f = fixture().await;
        let key = (f.tenant, f.owner);
        for overtaking in [Some(vec![f.owner]), None] {
            overtake_with(&f.resolver, Some(of_users(f.tenant, overtaking.clone())));
            let answered = f.resolver.user_entries(f.tenant, &[f.owner]).await;
            assert_eq!(answered.expect("answered").len(), 1);
            assert!(
                f.resolver.users.get(&key).is_none(),
                "kept after {overtaking:?} overtook it"
            );
        }
        // Another user's invalidation does not stop it; nor does one that came before it began.
        overtake_with(
            &f.resolver,
            Some(of_users(f.tenant, Some(vec![Uuid::now_v7()]))),
        );
        f.resolver
            .user_entries(f.tenant, &[f.owner])
            .await
            .expect("answered");
        assert!(f.resolver.users.get(&key).is_some(), "kept");
        overtake_with(&f.resolver, None);
        f.resolver.apply(&of_users(f.tenant, Some(vec![f.owner])));
        assert!(f.resolver.users.get(&key).is_none(), "dropped");
        f.resolver
            .user_entries(f.tenant, &[f.owner])
            .await
            .expect("answered");
        assert!(
            f.resolver.users.get(&key).is_some(),
            "a load after the mark is kept"
        );
    }

    #[tokio::test]
    async fn a_token_read_overtaken_by_its_tenants_invalidation_is_not_kept() {
        let f = fixture().await;
        let minted = token::mint(TokenKind::Admin, [7; token::SECRET_BYTES]);
        let new = NewToken::from_minted(f.tenant, TokenKind::Admin, "t".into(), &minted, None);
        f.store
            .create_token(&Ctx::new(Actor::Cli), f.tenant, new)
            .await
            .expect("token");
        let hash = minted.hash;
        overtake_with(&f.resolver, Some(of_users(f.tenant, None)));
        assert!(
            f.resolver
                .token_by_hash(&hash)
                .await
                .expect("read")
                .is_some()
        );
        assert!(f.resolver.tokens.get(&hash).is_none(), "not kept");
        // A user's invalidation leaves tokens alone.
        overtake_with(&f.resolver, Some(of_users(f.tenant, Some(vec![f.owner]))));
        assert!(
            f.resolver
                .token_by_hash(&hash)
                .await
                .expect("read")
                .is_some()
        );
        assert!(f.resolver.tokens.get(&hash).is_some(), "kept");
        overtake_with(&f.resolver, None);
        // A later whole-tenant invalidation makes the kept one stale: read again.
        f.resolver.apply(&of_users(f.tenant, None));
        let entry = f.resolver.tokens.get(&hash).expect("still in the map");
        assert!(!f.resolver.fresh(f.tenant, None, entry.loaded_at));
        assert!(
            f.resolver
                .token_by_hash(&hash)
                .await
                .expect("read")
                .is_some()
        );
        let again = f.resolver.tokens.get(&hash).expect("kept again");
        assert!(f.resolver.fresh(f.tenant, None, again.loaded_at));
    }
}
