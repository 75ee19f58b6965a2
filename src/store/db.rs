//! The query layer shared by both backends.
//!
//! Queries are written once, with `$N` placeholders (sqlx's SQLite driver accepts them too),
//! and dispatched to the backend at execution time. `sqlx::Any` would do the dispatch for us
//! but cannot carry UUIDs or timestamps, so we keep our own small argument enum.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, FromRow, PgConnection, Postgres, Sqlite, SqliteConnection, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc};
use uuid::Uuid;

use super::{Invalidation, StoreError};
use crate::domain::audit::{Actor, AuditRecord};

/// A bound value. Every variant is nullable, so `Option<T>` binds as SQL NULL.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
    Json(Option<Value>),
    Bytes(Option<Vec<u8>>),
}

macro_rules! arg_from {
    ($variant:ident, $ty:ty) => {
        impl From<$ty> for Arg {
            fn from(v: $ty) -> Self {
                Arg::$variant(Some(v.into()))
            }
        }
        impl From<Option<$ty>> for Arg {
            fn from(v: Option<$ty>) -> Self {
                Arg::$variant(v.map(Into::into))
            }
        }
    };
}
arg_from!(Uuid, Uuid);
arg_from!(Text, String);
arg_from!(Text, &str);
arg_from!(Int, i64);
arg_from!(Float, f64);
arg_from!(Bool, bool);
arg_from!(Time, DateTime<Utc>);
arg_from!(Json, Value);
arg_from!(Bytes, Vec<u8>);
arg_from!(Bytes, &[u8]);

/// Binds every argument on a sqlx query of either backend (the method names agree).
macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Uuid(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::Float(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Time(v) => q.bind(v),
                Arg::Json(v) => q.bind(v.map(Json)),
                Arg::Bytes(v) => q.bind(v),
            };
        }
        q
    }};
}

/// A row type that decodes from both backends' rows (what `#[derive(FromRow)]` gives when
/// every column type exists on both).
pub(crate) trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}
impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

/// A borrowed connection of either backend: a pooled connection or an open transaction.
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

enum Text {
    Static(&'static str),
    Built(String),
}

/// One statement and its arguments.
pub(crate) struct Sql {
    text: Text,
    args: Vec<Arg>,
}

/// A statement whose text is a literal.
pub(crate) fn sql(text: &'static str) -> Sql {
    Sql {
        text: Text::Static(text),
        args: Vec::new(),
    }
}

impl Sql {
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    pub(crate) async fn execute(self, conn: Conn<'_>) -> Result<u64, StoreError> {
        let Sql { text, args } = self;
        Ok(match conn {
            Conn::Sqlite(c) => {
                let q = match text {
                    Text::Static(s) => sqlx::query::<Sqlite>(s),
                    Text::Built(s) => sqlx::query::<Sqlite>(AssertSqlSafe(s)),
                };
                bind_all!(q, args).execute(c).await?.rows_affected()
            }
            Conn::Postgres(c) => {
                let q = match text {
                    Text::Static(s) => sqlx::query::<Postgres>(s),
                    Text::Built(s) => sqlx::query::<Postgres>(AssertSqlSafe(s)),
                };
                bind_all!(q, args).execute(c).await?.rows_affected()
            }
        })
    }

    pub(crate) async fn fetch_all<T: Record>(self, conn: Conn<'_>) -> Result<Vec<T>, StoreError> {
        let Sql { text, args } = self;
        Ok(match conn {
            Conn::Sqlite(c) => {
                let q = match text {
                    Text::Static(s) => sqlx::query_as::<Sqlite, T>(s),
                    Text::Built(s) => sqlx::query_as::<Sqlite, T>(AssertSqlSafe(s)),
                };
                bind_all!(q, args).fetch_all(c).await?
            }
            Conn::Postgres(c) => {
                let q = match text {
                    Text::Static(s) => sqlx::query_as::<Postgres, T>(s),
                    Text::Built(s) => sqlx::query_as::<Postgres, T>(AssertSqlSafe(s)),
                };
                bind_all!(q, args).fetch_all(c).await?
            }
        })
    }

    pub(crate) async fn fetch_optional<T: Record>(
        self,
        conn: Conn<'_>,
    ) -> Result<Option<T>, StoreError> {
        let Sql { text, args } = self;
        Ok(match conn {
            Conn::Sqlite(c) => {
                let q = match text {
                    Text::Static(s) => sqlx::query_as::<Sqlite, T>(s),
                    Text::Built(s) => sqlx::query_as::<Sqlite, T>(AssertSqlSafe(s)),
                };
                bind_all!(q, args).fetch_optional(c).await?
            }
            Conn::Postgres(c) => {
                let q = match text {
                    Text::Static(s) => sqlx::query_as::<Postgres, T>(s),
                    Text::Built(s) => sqlx::query_as::<Postgres, T>(AssertSqlSafe(s)),
                };
                bind_all!(q, args).fetch_optional(c).await?
            }
        })
    }

    /// Like `fetch_optional`, but a missing row is `StoreError::NotFound`.
    pub(crate) async fn fetch_one<T: Record>(self, conn: Conn<'_>) -> Result<T, StoreError> {
        self.fetch_optional(conn).await?.ok_or(StoreError::NotFound)
    }
}

/// Builds a statement from fixed fragments and bound values. Values never enter the text:
/// `push_bind` appends a `$N` placeholder, which is what makes the `AssertSqlSafe` sound.
#[derive(Default)]
pub(crate) struct SqlBuilder {
    text: String,
    args: Vec<Arg>,
}

impl SqlBuilder {
    pub(crate) fn new(fragment: &'static str) -> Self {
        SqlBuilder {
            text: fragment.to_owned(),
            args: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    pub(crate) fn push_bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.args.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    #[cfg(test)]
    pub(crate) fn text_for_tests(&self) -> String {
        self.text.clone()
    }

    pub(crate) fn build(self) -> Sql {
        Sql {
            text: Text::Built(self.text),
            args: self.args,
        }
    }
}

/// `$1, $2, …`: the ids as bound values, for an `IN (…)` list.
pub(crate) fn push_list(b: &mut SqlBuilder, ids: &[Uuid]) {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.push_bind(*id);
    }
}

#[derive(FromRow)]
pub(crate) struct IdRow {
    pub(crate) id: Uuid,
}

#[derive(FromRow)]
pub(crate) struct CountRow {
    pub(crate) n: i64,
}

/// A resource of a tenant that statements load whole by its id: where its rows are, which
/// columns make one, and how a row becomes the resource.
pub(crate) trait TenantResource: Sized {
    type Row: Record;
    /// The table (with the alias `COLUMNS` qualify by, if they do); it has `id` and
    /// `tenant_id` columns.
    const FROM: &'static str;
    const COLUMNS: &'static str;
    fn from_row(row: Self::Row) -> Result<Self, StoreError>;
}

/// The resource with this id in this tenant. An id of another tenant's row is `NotFound`,
/// like an id of nothing: the tenant is part of every such read, by construction.
pub(crate) async fn load_in_tenant<T: TenantResource>(
    conn: Conn<'_>,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<T, StoreError> {
    load_by_id(conn, tenant_id, id, false).await
}

/// [`load_in_tenant`] in a write transaction, the row locked until it ends: the fields a
/// change leaves alone are written back as they are, not as a concurrent change found them.
/// PostgreSQL: `FOR UPDATE`. SQLite: writers already hold the database one at a time.
pub(crate) async fn load_in_tenant_for_update<T: TenantResource>(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<T, StoreError> {
    load_by_id(tx.conn(), tenant_id, id, true).await
}

async fn load_by_id<T: TenantResource>(
    conn: Conn<'_>,
    tenant_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<T, StoreError> {
    let mut b = SqlBuilder::new("SELECT ");
    b.push(T::COLUMNS)
        .push(" FROM ")
        .push(T::FROM)
        .push(" WHERE id = ")
        .push_bind(id)
        .push(" AND tenant_id = ")
        .push_bind(tenant_id);
    if lock && matches!(conn, Conn::Postgres(_)) {
        b.push(" FOR UPDATE");
    }
    T::from_row(b.build().fetch_one::<T::Row>(conn).await?)
}

/// The connection pool of the configured backend.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// Anything a statement can run on: a pooled connection or an open write transaction.
pub(crate) trait AsConn {
    fn conn(&mut self) -> Conn<'_>;
}

impl AsConn for Handle {
    fn conn(&mut self) -> Conn<'_> {
        Handle::conn(self)
    }
}

impl AsConn for ReadTx {
    fn conn(&mut self) -> Conn<'_> {
        ReadTx::conn(self)
    }
}

impl AsConn for WriteTx {
    fn conn(&mut self) -> Conn<'_> {
        WriteTx::conn(self)
    }
}

/// A pooled connection for reads.
pub(crate) enum Handle {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Handle {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Handle::Sqlite(c) => Conn::Sqlite(c),
            Handle::Postgres(c) => Conn::Postgres(c),
        }
    }
}

enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Several reads that see one moment of the database, whatever commits meanwhile: what a
/// permission answer is computed from. Dropped, it ends without changing anything.
pub(crate) struct ReadTx(Tx);

impl ReadTx {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match &mut self.0 {
            Tx::Sqlite(t) => Conn::Sqlite(t),
            Tx::Postgres(t) => Conn::Postgres(t),
        }
    }
}

/// Who is writing, for the audit log.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub actor: Actor,
    pub request_id: Option<String>,
    /// The client address of the request behind the change (behind a trusted proxy, the
    /// address it forwarded for); `None` for the command line.
    pub client_addr: Option<String>,
}

impl Ctx {
    pub fn new(actor: Actor) -> Self {
        Ctx {
            actor,
            request_id: None,
            client_addr: None,
        }
    }

    pub fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    pub fn with_client_addr(mut self, client_addr: Option<String>) -> Self {
        self.client_addr = client_addr;
        self
    }
}

/// The database, with the only way to change it: [`Db::begin_write`].
pub(crate) struct Db {
    pub(crate) pool: Pool,
    pub(crate) generic_plans: Option<GenericPlans>,
    /// SQLite allows one writer at a time. Queueing writers here, in the process, means they
    /// never meet `SQLITE_BUSY`; `BEGIN IMMEDIATE` plus the busy timeout covers other processes.
    sqlite_writer: Arc<Mutex<()>>,
    sinks: Sinks,
    notifier: Option<Notifier>,
}

/// Sends committed invalidations to every instance (`NOTIFY`), after the commit and coalesced.
///
/// PostgreSQL serialises the commits of transactions that `NOTIFY` (the notification queue's
/// lock is held through the commit's flush), so a `NOTIFY` inside every write would make every
/// write wait for every other. Sent here instead, by one task, many at a time, the writes
/// commit independently. A writer that dies between its commit and this send leaves the
/// invalidation row behind: every listener also reads those rows back on a short interval
/// (`ops::PgFeed`), which bounds how long such a loss can keep an answer stale.
#[derive(Clone)]
pub(crate) struct Notifier {
    send: mpsc::UnboundedSender<Invalidation>,
    /// Invalidations handed over and not yet sent (a closing store waits for them).
    pending: Arc<std::sync::atomic::AtomicUsize>,
}

/// At most this many notifications go in one statement.
const NOTIFY_BATCH: usize = 500;

/// How long the first of a batch waits for others: well under the cross-instance
/// propagation target (50 ms p99), and at provisioning rates it makes batches of several.
const NOTIFY_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

impl Notifier {
    fn start(pool: sqlx::PgPool) -> Self {
        let (send, mut receive) = mpsc::unbounded_channel::<Invalidation>();
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sent_count = pending.clone();
        // Ends when the store (every sender) is gone.
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(NOTIFY_BATCH);
            while receive.recv_many(&mut batch, NOTIFY_BATCH).await > 0 {
                // Writes come many at a time: a moment's wait lets one statement carry them,
                // where sending at once made nearly every write a statement of its own.
                tokio::time::sleep(NOTIFY_LINGER).await;
                while batch.len() < NOTIFY_BATCH
                    && let Ok(more) = receive.try_recv()
                {
                    batch.push(more);
                }
                let count = batch.len();
                let payloads: Vec<Value> = batch
                    .drain(..)
                    .filter_map(|i| serde_json::to_value(&i).ok())
                    .collect();
                let sent = sqlx::query(
                    "SELECT pg_notify('rolegate_invalidation', payload::text) \
                     FROM jsonb_array_elements($1) AS payload",
                )
                .bind(Value::Array(payloads))
                .execute(&pool)
                .await;
                if let Err(error) = sent {
                    // The listeners' read-back of the rows delivers them a little later.
                    tracing::warn!(%error, "could not send invalidation notifications");
                }
                sent_count.fetch_sub(count, std::sync::atomic::Ordering::SeqCst);
            }
        });
        Notifier { send, pending }
    }

    fn notify(&self, invalidation: Invalidation) {
        self.pending
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Only if the task is gone (the runtime shutting down) does this fail: the
        // listeners' read-back of the row delivers it.
        if self.send.send(invalidation).is_err() {
            self.pending
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Waits (at most `limit`) until every invalidation handed over was sent: a command that
    /// writes and exits must not take its notifications with it.
    pub(crate) async fn flush(&self, limit: std::time::Duration) {
        let started = std::time::Instant::now();
        while self.pending.load(std::sync::atomic::Ordering::SeqCst) > 0
            && started.elapsed() < limit
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// PostgreSQL connections that plan each prepared statement once (`plan_cache_mode =
/// force_generic_plan`), for the hot statements whose right plan does not depend on their
/// parameters: a SCIM create, and a lookup of one user by a unique key.
///
/// The pool's other connections plan every run with its parameters (`postgres::connect` says
/// why): a plan kept from when `users` was a few pages long walks the wrong index of it for as
/// long as it is kept. Below about ten pages PostgreSQL prices every index of `users` alike
/// (it assumes ten pages for a table never analysed, and a one-row estimate whatever the
/// index), so the one it keeps is an accident of the order it looked at them in; past that,
/// the unique lookups win on any statistics or none. So these connections are used only once
/// `users` is [`GENERIC_PLANS_FROM_PAGES`] long — it is checked at most once a second until
/// then — and none of their plans is ever made on a smaller table. Measured (2026-12-05,
/// `pg_stat_statements` over 10,000 SCIM creates): planning was half the time PostgreSQL spent
/// on a create's two statements, and creates/s rose from 35–37 % to 44–48 % of the raw loop.
pub(crate) struct GenericPlans {
    pub(crate) pool: sqlx::PgPool,
    /// Set once `users` is long enough; tables keep their pages, so it stays set.
    sized: std::sync::atomic::AtomicBool,
    /// Milliseconds since `started` of the last size check (0: none yet).
    checked_at: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

/// From this many pages of `users` (8 KiB each; the bench's users fill them at about 55 a page)
/// on, its hot statements are planned once. PostgreSQL tells its indexes apart from about a
/// dozen pages on.
const GENERIC_PLANS_FROM_PAGES: i64 = 32;

impl GenericPlans {
    fn new(pool: sqlx::PgPool) -> Self {
        GenericPlans {
            pool,
            sized: std::sync::atomic::AtomicBool::new(false),
            checked_at: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    /// The pool to send a hot statement to, if `users` is long enough for it; otherwise
    /// `None` (the main pool plans it with its parameters), and at most once a second the
    /// caller checks the table's length on `main`.
    async fn pool(&self, main: &sqlx::PgPool) -> Option<&sqlx::PgPool> {
        use std::sync::atomic::Ordering;
        if self.sized.load(Ordering::Relaxed) {
            return Some(&self.pool);
        }
        let now = u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let last = self.checked_at.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= 1_000;
        if due
            && self
                .checked_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let sized: Result<bool, sqlx::Error> =
                sqlx::query_scalar("SELECT pg_relation_size('users') / 8192 >= $1")
                    .bind(GENERIC_PLANS_FROM_PAGES)
                    .fetch_one(main)
                    .await;
            match sized {
                Ok(true) => self.sized.store(true, Ordering::Relaxed),
                Ok(false) => {}
                // Only an optimisation: the statement runs on the main pool meanwhile.
                Err(error) => tracing::debug!(%error, "could not measure the users table"),
            }
        }
        self.sized.load(Ordering::Relaxed).then_some(&self.pool)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    /// As if `users` had been measured long enough (tests run without the schema).
    #[cfg(test)]
    pub(crate) fn assume_long_enough(&self) {
        self.sized.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Called with every invalidation this instance commits, before the write returns: a read
/// that follows a write on the same instance never sees what the write changed as cached.
pub type InvalidationSink = Arc<dyn Fn(&Invalidation) + Send + Sync>;

type Sinks = Arc<std::sync::RwLock<Vec<InvalidationSink>>>;

/// More users than this in one change invalidate the whole tenant instead of naming each one.
const MAX_NAMED_USERS: usize = 100;

impl Db {
    pub(crate) fn new(pool: Pool, generic_plans: Option<sqlx::PgPool>) -> Self {
        let notifier = match &pool {
            Pool::Postgres(p) => Some(Notifier::start(p.clone())),
            Pool::Sqlite(_) => None,
        };
        Db {
            pool,
            generic_plans: generic_plans.map(GenericPlans::new),
            sqlite_writer: Arc::new(Mutex::new(())),
            sinks: Sinks::default(),
            notifier,
        }
    }

    /// Before the pool closes: the notifications of committed writes go out first.
    pub(crate) async fn flush_notifications(&self) {
        if let Some(notifier) = &self.notifier {
            notifier.flush(std::time::Duration::from_secs(2)).await;
        }
    }

    pub(crate) fn on_commit(&self, sink: InvalidationSink) {
        if let Ok(mut sinks) = self.sinks.write() {
            sinks.push(sink);
        }
    }

    /// Closes both pools.
    pub(crate) async fn close(&self) {
        if let Some(generic) = &self.generic_plans {
            generic.close().await;
        }
        self.pool.close().await;
    }

    /// A connection for a hot statement whose right plan does not depend on its parameters:
    /// one that plans it once where that is safe ([`GenericPlans`]), else a pooled one.
    pub(crate) async fn read_planned_once(&self) -> Result<Handle, StoreError> {
        match &self.pool {
            Pool::Postgres(main) => Ok(Handle::Postgres(self.postgres_planned_once(main).await?)),
            Pool::Sqlite(_) => self.read().await,
        }
    }

    pub(crate) async fn postgres_planned_once(
        &self,
        main: &sqlx::PgPool,
    ) -> Result<PoolConnection<Postgres>, StoreError> {
        if let Some(generic) = &self.generic_plans
            && let Some(pool) = generic.pool(main).await
            // All busy: a run planned with its values beats waiting for one of them.
            && (pool.num_idle() > 0 || pool.size() < pool.options().get_max_connections())
        {
            return Ok(pool.acquire().await?);
        }
        Ok(main.acquire().await?)
    }

    pub(crate) async fn read(&self) -> Result<Handle, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Handle::Sqlite(p.acquire().await?),
            Pool::Postgres(p) => Handle::Postgres(p.acquire().await?),
        })
    }

    /// Opens a read of one snapshot: `REPEATABLE READ` on PostgreSQL (every statement sees the
    /// transaction's first snapshot); on SQLite a deferred transaction, whose first read fixes
    /// the snapshot it keeps (WAL) until it ends.
    pub(crate) async fn read_snapshot(&self) -> Result<ReadTx, StoreError> {
        Ok(ReadTx(match &self.pool {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN DEFERRED").await?),
            Pool::Postgres(p) => Tx::Postgres(
                p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            ),
        }))
    }

    /// Opens a write transaction for one tenant. Committing it appends the audit events and the
    /// cache invalidation in the same transaction; dropping it rolls everything back.
    pub(crate) async fn begin_write(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
    ) -> Result<WriteTx, StoreError> {
        let (tx, gate) = match &self.pool {
            Pool::Sqlite(p) => {
                let gate = self.sqlite_writer.clone().lock_owned().await;
                (
                    Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
                    Some(gate),
                )
            }
            Pool::Postgres(p) => (Tx::Postgres(p.begin().await?), None),
        };
        Ok(WriteTx {
            tx,
            _gate: gate,
            ctx: ctx.clone(),
            tenant_id,
            audit: Vec::new(),
            users: Vec::new(),
            new_users: Vec::new(),
            whole_tenant: false,
            sinks: self.sinks.clone(),
            notifier: self.notifier.clone(),
        })
    }
}

impl Db {
    /// A write that only adds rows — nobody's standing can shrink, so [`WriteTx::commit`]'s
    /// token check has nothing to find — done on PostgreSQL as one statement that also appends
    /// its audit events and invalidation: one transaction, without the `BEGIN` and `COMMIT`
    /// round trips (a SCIM create, the provisioning hot path, is this).
    ///
    /// `change` is `WITH changed AS (…)`, optionally followed by more `, name AS (…)`; `changed`
    /// yields one row if it wrote and none if it did not, in which case nothing is audited and
    /// `None` returns. `new_users` are the users it created (invalidated by name). SQLite, which
    /// has no data-modifying `WITH`, is refused: its callers take [`Db::begin_write`].
    pub(crate) async fn write_new_rows(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        mut change: SqlBuilder,
        records: Vec<AuditRecord>,
        new_users: &[Uuid],
    ) -> Result<Option<Invalidation>, StoreError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Err(StoreError::Other(
                "one-statement writes are PostgreSQL's; SQLite writes in a transaction".into(),
            ));
        };
        if records.is_empty() {
            return Err(StoreError::Other("write without an audit record".into()));
        }
        let at = crate::domain::now();
        let users = named_users(new_users.to_vec());
        let single_user = users.as_ref().filter(|u| u.len() == 1).map(|u| u[0]);
        change.push(", audited AS (");
        AuditRows { ctx, tenant_id, at }.push_insert(&mut change, records, RowsFrom::Changed);
        change.push("), ");
        push_invalidation(
            &mut change,
            tenant_id,
            single_user,
            at,
            "SELECT ",
            " FROM changed",
        );
        let mut conn = self.postgres_planned_once(pool).await?;
        let Some(row) = change
            .build()
            .fetch_optional::<EpochRow>(Conn::Postgres(&mut conn))
            .await?
        else {
            return Ok(None);
        };
        let invalidation = Invalidation {
            epoch: row.epoch,
            tenant_id,
            users,
        };
        publish(&self.sinks, self.notifier.as_ref(), &invalidation);
        Ok(Some(invalidation))
    }
}

/// An open write transaction. See [`Db::begin_write`].
pub(crate) struct WriteTx {
    tx: Tx,
    _gate: Option<OwnedMutexGuard<()>>,
    ctx: Ctx,
    tenant_id: Uuid,
    audit: Vec<AuditRecord>,
    users: Vec<Uuid>,
    /// Users this transaction created: nothing they could have minted exists yet.
    new_users: Vec<Uuid>,
    whole_tenant: bool,
    sinks: Sinks,
    notifier: Option<Notifier>,
}

#[derive(FromRow)]
struct EpochRow {
    epoch: i64,
}

impl WriteTx {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match &mut self.tx {
            Tx::Sqlite(t) => Conn::Sqlite(t),
            Tx::Postgres(t) => Conn::Postgres(t),
        }
    }

    pub(crate) fn has_audit(&self) -> bool {
        !self.audit.is_empty()
    }

    pub(crate) fn audit(&mut self, record: AuditRecord) {
        self.audit.push(record);
    }

    /// Narrows the invalidation to these users. Without it a change invalidates the whole
    /// tenant: correct by default, precise where the writer knows better.
    pub(crate) fn invalidate_user(&mut self, user_id: Uuid) {
        // Past the limit the whole tenant is invalidated anyway; stopping here also keeps this
        // scan short when a change names tens of thousands of users.
        if self.users.len() > MAX_NAMED_USERS {
            return;
        }
        if !self.users.contains(&user_id) {
            self.users.push(user_id);
        }
    }

    /// Like [`Self::invalidate_user`], for a user this transaction created: no token can name
    /// them as its creator yet, so the commit need not look for any (SCIM creates are the
    /// provisioning hot path, and on PostgreSQL every statement is a round trip).
    pub(crate) fn invalidate_new_user(&mut self, user_id: Uuid) {
        self.invalidate_user(user_id);
        self.new_users.push(user_id);
    }

    pub(crate) fn invalidate_tenant(&mut self) {
        self.whole_tenant = true;
    }

    pub(crate) fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// The existing users this change may have changed the standing of: those it names less
    /// those it created, or `None` for anyone of the tenant.
    pub(crate) fn affected_existing_users(&self) -> Option<Vec<Uuid>> {
        (!self.whole_tenant && !self.users.is_empty() && self.users.len() <= MAX_NAMED_USERS).then(
            || {
                let mut users = self.users.clone();
                users.retain(|u| !self.new_users.contains(u));
                users
            },
        )
    }

    pub(crate) async fn commit(mut self) -> Result<Invalidation, StoreError> {
        if self.audit.is_empty() {
            // A change nobody can trace is a bug in the caller, not something to let through.
            return Err(StoreError::Other("write without an audit record".into()));
        }
        // Whatever took a user's Owner standing away also takes the admin tokens they minted
        // with it, in this transaction: checked here, at the one door every write goes through,
        // so no path that changes standing (a role, a removal, SCIM, a group, a mapping) can
        // forget it.
        super::team::revoke_unentitled_tokens(&mut self).await?;
        let now = crate::domain::now();
        let records = std::mem::take(&mut self.audit);
        let users = if self.whole_tenant {
            None
        } else {
            named_users(std::mem::take(&mut self.users))
        };
        let single_user = users.as_ref().filter(|u| u.len() == 1).map(|u| u[0]);
        let postgres = matches!(self.tx, Tx::Postgres(_));
        // The audit events, then the invalidation: one statement each on SQLite (in-process,
        // statements are cheap), one statement for both on PostgreSQL (every statement is a
        // round trip, and every write pays them); its NOTIFY follows the commit.
        let mut b = SqlBuilder::new(if postgres { "WITH audited AS (" } else { "" });
        AuditRows {
            ctx: &self.ctx,
            tenant_id: self.tenant_id,
            at: now,
        }
        .push_insert(&mut b, records, RowsFrom::Values);
        let epoch = if postgres {
            b.push("), ");
            push_invalidation(&mut b, self.tenant_id, single_user, now, "VALUES (", ")");
            b.build().fetch_one::<EpochRow>(self.conn()).await?.epoch
        } else {
            b.build().execute(self.conn()).await?;
            sql(
                "INSERT INTO invalidations (tenant_id, user_id, created_at) VALUES ($1, $2, $3) \
                 RETURNING epoch",
            )
            .bind(self.tenant_id)
            .bind(single_user)
            .bind(now)
            .fetch_one::<EpochRow>(self.conn())
            .await?
            .epoch
        };
        let invalidation = Invalidation {
            epoch,
            tenant_id: self.tenant_id,
            users,
        };
        match self.tx {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        publish(&self.sinks, self.notifier.as_ref(), &invalidation);
        Ok(invalidation)
    }
}

/// The columns every audit event fills, in the order [`AuditRows::push_values`] binds them.
const AUDIT_INSERT: &str = "INSERT INTO audit_events (id, tenant_id, org_id, product_id, \
    actor_kind, actor_id, actor_name, action, target_kind, target_id, before, after, warning, \
    request_id, client_addr, created_at)";

/// Who wrote, in which tenant and when: what every audit event of one write shares.
struct AuditRows<'a> {
    ctx: &'a Ctx,
    tenant_id: Uuid,
    at: DateTime<Utc>,
}

/// Where an audit `INSERT` takes its rows from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowsFrom {
    /// A `VALUES` list.
    Values,
    /// One `SELECT … FROM changed` per event: written only if the change wrote something.
    Changed,
}

/// The users an invalidation names, or `None` (the whole tenant) when there are none to name
/// or too many.
fn named_users(users: Vec<Uuid>) -> Option<Vec<Uuid>> {
    (!users.is_empty() && users.len() <= MAX_NAMED_USERS).then_some(users)
}

impl AuditRows<'_> {
    /// `INSERT INTO audit_events (…)` with one row per record.
    fn push_insert(&self, b: &mut SqlBuilder, records: Vec<AuditRecord>, from: RowsFrom) {
        b.push(AUDIT_INSERT);
        if from == RowsFrom::Values {
            b.push(" VALUES ");
        }
        for (i, record) in records.into_iter().enumerate() {
            b.push(match (i, from) {
                (0, RowsFrom::Values) => "(",
                (_, RowsFrom::Values) => ", (",
                (0, RowsFrom::Changed) => " SELECT ",
                (_, RowsFrom::Changed) => " UNION ALL SELECT ",
            });
            self.push_values(b, record);
            b.push(match from {
                RowsFrom::Values => ")",
                RowsFrom::Changed => " FROM changed",
            });
        }
    }

    /// One event's values for [`AUDIT_INSERT`], comma-separated.
    fn push_values(&self, b: &mut SqlBuilder, record: AuditRecord) {
        let actor = &self.ctx.actor;
        b.push_bind(Uuid::now_v7());
        let values: [Arg; 15] = [
            self.tenant_id.into(),
            record.org_id.into(),
            record.product_id.into(),
            actor.kind().into(),
            actor.id().into(),
            actor.name().into(),
            record.action.into(),
            record.target_kind.into(),
            record.target_id.into(),
            record.before.into(),
            record.after.into(),
            record.warning.into(),
            self.ctx.request_id.clone().into(),
            self.ctx.client_addr.clone().into(),
            self.at.into(),
        ];
        for value in values {
            b.push(", ").push_bind(value);
        }
    }
}

/// `invalidated AS (INSERT INTO invalidations … RETURNING epoch) SELECT epoch FROM invalidated`,
/// the row's values between `open` and `close`: the tail of a PostgreSQL write statement.
fn push_invalidation(
    b: &mut SqlBuilder,
    tenant_id: Uuid,
    single_user: Option<Uuid>,
    at: DateTime<Utc>,
    open: &'static str,
    close: &'static str,
) {
    b.push("invalidated AS (INSERT INTO invalidations (tenant_id, user_id, created_at) ")
        .push(open)
        .push_bind(tenant_id)
        .push(", ")
        .push_bind(single_user)
        .push(", ")
        .push_bind(at)
        .push(close)
        .push(" RETURNING epoch) SELECT epoch FROM invalidated");
}

/// Hands a committed invalidation to this instance's caches (before the write returns) and to
/// the other instances (the `NOTIFY` after the commit).
fn publish(sinks: &Sinks, notifier: Option<&Notifier>, invalidation: &Invalidation) {
    if let Ok(sinks) = sinks.read() {
        for sink in sinks.iter() {
            sink(invalidation);
        }
    }
    if let Some(notifier) = notifier {
        notifier.notify(invalidation.clone());
    }
}

/// What an org-wide lock serialises (the class half of a two-key advisory lock, so our keys
/// never meet sqlx's single-key migration lock).
#[derive(Debug, Clone, Copy)]
#[repr(i32)]
pub(crate) enum OrgLock {
    /// Counting and sending invitation e-mails against the hourly cap.
    InvitationSends = 0x7267_0001,
    /// Adding nested groups, so two concurrent additions cannot each miss the other's cycle.
    GroupNesting = 0x7267_0002,
    /// Replacing an org's mapping document, so two imports cannot both pass the version check.
    Mappings = 0x7267_0003,
}

/// Takes an org-wide lock for one kind of change, held until the transaction ends. PostgreSQL:
/// a transaction-scoped advisory lock, so it holds across instances. SQLite: nothing to do, its
/// writers already go one at a time (the in-process queue and `BEGIN IMMEDIATE`).
pub(crate) async fn lock_org(
    tx: &mut WriteTx,
    lock: OrgLock,
    org_id: Uuid,
) -> Result<(), StoreError> {
    let conn = tx.conn();
    if let Conn::Postgres(_) = conn {
        // Two orgs folding to the same key only wait for each other: harmless.
        let (hi, lo) = org_id.as_u64_pair();
        let folded = (hi ^ lo) as u32 ^ ((hi ^ lo) >> 32) as u32;
        sql("SELECT pg_advisory_xact_lock($1::int4, $2::int4)")
            .bind(i64::from(lock as i32))
            .bind(i64::from(folded as i32))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// What both backends' deadline tests check, given a statement that runs far past the pool's
/// deadline: it is stopped with `Unavailable`, on a read handle and inside a write transaction,
/// and the pool's connections serve again afterwards.
#[cfg(test)]
pub(crate) async fn assert_slow_statements_stop_at_the_deadline(db: &Db, slow: &'static str) {
    let mut h = db.read().await.expect("read handle");
    let err = sql(slow)
        .execute(h.conn())
        .await
        .expect_err("stopped at the deadline, not run to the end");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    drop(h);
    // Every checkout starts its own deadline: the same connections serve again.
    for _ in 0..3 {
        let mut h = db.read().await.expect("read handle");
        sql("SELECT 1").execute(h.conn()).await.expect("serves");
    }
    let ctx = Ctx::new(Actor::Cli);
    let mut tx = db.begin_write(&ctx, Uuid::nil()).await.expect("writer");
    let err = sql(slow)
        .execute(tx.conn())
        .await
        .expect_err("stopped inside a transaction too");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    drop(tx);
    let mut tx = db
        .begin_write(&ctx, Uuid::nil())
        .await
        .expect("the next writer begins");
    sql("SELECT 1").execute(tx.conn()).await.expect("serves");
}
