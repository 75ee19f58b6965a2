//! Running the store: which backend, its pool, health, and the feed of cache invalidations.

use std::collections::{BTreeSet, VecDeque};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use uuid::Uuid;

use sqlx::postgres::PgListener;

use super::db::{InvalidationSink, Pool, sql};
use super::{SqlStore, StoreError};

/// The channel every write's `NOTIFY` goes to (see `WriteTx::commit`).
const CHANNEL: &str = "rolegate_invalidation";

/// SQLite has no `NOTIFY`, and one serving process; but the command line writes from processes
/// of its own (`mappings import`, `token revoke`, `org add-owner`). Their invalidations are
/// read back from the table every write appends to, by epoch.
struct PollFeed {
    pool: sqlx::SqlitePool,
    last: i64,
    pending: VecDeque<Invalidation>,
}

/// How often the SQLite feed looks for other processes' writes.
const POLL: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(FromRow)]
struct InvalidationRow {
    epoch: i64,
    tenant_id: Uuid,
    user_id: Option<Uuid>,
}

#[async_trait]
impl InvalidationFeed for PollFeed {
    async fn next(&mut self) -> Result<FeedEvent, StoreError> {
        loop {
            if let Some(invalidation) = self.pending.pop_front() {
                return Ok(FeedEvent::Invalidated(invalidation));
            }
            tokio::time::sleep(POLL).await;
            let mut conn = self.pool.acquire().await?;
            let rows = sql(
                "SELECT epoch, tenant_id, user_id FROM invalidations WHERE epoch > $1 \
                 ORDER BY epoch LIMIT 1000",
            )
            .bind(self.last)
            .fetch_all::<InvalidationRow>(super::db::Conn::Sqlite(&mut conn))
            .await?;
            for row in rows {
                self.last = row.epoch;
                self.pending.push_back(Invalidation {
                    epoch: row.epoch,
                    tenant_id: row.tenant_id,
                    // One user is named; several are recorded as the whole tenant.
                    users: row.user_id.map(|u| vec![u]),
                });
            }
        }
    }

    fn session_pid(&self) -> Option<i32> {
        None
    }
}

/// How often a PostgreSQL listener reads the invalidation rows back, and how far back: a
/// notification lost (its writer died between commit and send) is caught up within a second;
/// a transaction that took its epoch more than the window before committing is caught only
/// by its notification.
const READ_BACK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const READ_BACK_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

struct PgFeed {
    listener: PgListener,
    pid: Option<i32>,
    pool: sqlx::PgPool,
    /// Epochs delivered (notified or read back) above `floor`: each is delivered once.
    seen: BTreeSet<i64>,
    /// Rows at or below it are older than the window: not read back again.
    floor: i64,
    /// When each read-back happened and the highest epoch seen by then: `floor` follows the
    /// newest of them older than the window. Epochs are taken at insert, not at commit, so
    /// "above the last one seen" would miss a slow transaction's row: the window overlaps.
    history: VecDeque<(std::time::Instant, i64)>,
    pending: VecDeque<Invalidation>,
    next_read: tokio::time::Instant,
}

#[derive(FromRow)]
struct PidRow {
    pid: i32,
}

impl PgFeed {
    /// Also reconnects (and listens again) if the connection was lost.
    async fn backend_pid(&mut self) -> Result<i32, StoreError> {
        Ok(
            sqlx::query_as::<_, PidRow>("SELECT pg_backend_pid() AS pid")
                .fetch_one(&mut self.listener)
                .await?
                .pid,
        )
    }

    /// Whether `epoch` is news; remembers it.
    fn first_time(&mut self, epoch: i64) -> bool {
        epoch > self.floor && self.seen.insert(epoch)
    }

    async fn read_back(&mut self) -> Result<(), StoreError> {
        let rows = sqlx::query_as::<_, InvalidationRow>(
            "SELECT epoch, tenant_id, user_id FROM invalidations WHERE epoch >= $1 \
             ORDER BY epoch LIMIT 10000",
        )
        .bind(first_unseen(self.floor, &self.seen))
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            if self.first_time(row.epoch) {
                self.pending.push_back(Invalidation {
                    epoch: row.epoch,
                    tenant_id: row.tenant_id,
                    users: row.user_id.map(|u| vec![u]),
                });
            }
        }
        let now = std::time::Instant::now();
        let highest = self.seen.last().copied().unwrap_or(self.floor);
        self.history.push_back((now, highest));
        while let Some(&(at, epoch)) = self.history.front() {
            if now.duration_since(at) < READ_BACK_WINDOW {
                break;
            }
            self.floor = self.floor.max(epoch);
            self.history.pop_front();
        }
        let floor = self.floor;
        self.seen.retain(|e| *e > floor);
        Ok(())
    }
}

/// The lowest epoch above `floor` not in `seen`: every row below it was delivered. A busy
/// tenant writes thousands of rows a second, each of them notified: reading the whole window
/// back each second would fetch them all again. Reading from the first one not seen fetches
/// only what is new — unless a gap (a transaction still open, or one rolled back after taking
/// its epoch) holds the read at that gap until the window passes it.
fn first_unseen(floor: i64, seen: &BTreeSet<i64>) -> i64 {
    let mut next = floor + 1;
    for &epoch in seen.range(next..) {
        if epoch != next {
            break;
        }
        next += 1;
    }
    next
}

#[async_trait]
impl InvalidationFeed for PgFeed {
    async fn next(&mut self) -> Result<FeedEvent, StoreError> {
        loop {
            if let Some(invalidation) = self.pending.pop_front() {
                return Ok(FeedEvent::Invalidated(invalidation));
            }
            let read_at = self.next_read;
            // `try_recv` is cancel-safe: a read-back that wins the race loses no notification.
            tokio::select! {
                received = self.listener.try_recv() => match received? {
                    Some(notification) => {
                        match serde_json::from_str::<Invalidation>(notification.payload()) {
                            Ok(invalidation) => {
                                if self.first_time(invalidation.epoch) {
                                    return Ok(FeedEvent::Invalidated(invalidation));
                                }
                            }
                            // Not ours, or from a newer version: ignored rather than trusted.
                            Err(error) => {
                                tracing::warn!(%error, "unreadable invalidation notification");
                            }
                        }
                    }
                    None => {
                        // `try_recv` reports a lost connection once; the query reconnects
                        // and listens again before we say so.
                        self.pid = Some(self.backend_pid().await?);
                        return Ok(FeedEvent::Reconnected);
                    }
                },
                () = tokio::time::sleep_until(read_at) => {
                    self.next_read = tokio::time::Instant::now() + READ_BACK_EVERY;
                    self.read_back().await?;
                }
            }
        }
    }

    fn session_pid(&self) -> Option<i32> {
        self.pid
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub max: u32,
    pub open: u32,
    pub idle: u32,
}

/// A cache invalidation recorded by a committed write. `users: None` means every user of
/// the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    pub epoch: i64,
    pub tenant_id: Uuid,
    pub users: Option<Vec<Uuid>>,
}

/// What an invalidation feed delivers.
#[derive(Debug)]
pub enum FeedEvent {
    /// A write committed, on this instance or another.
    Invalidated(Invalidation),
    /// The connection was lost: invalidations sent meanwhile are lost with it. The feed is
    /// listening again when this is returned.
    Reconnected,
}

/// Invalidations committed by every instance on the database (PostgreSQL `LISTEN`).
#[async_trait]
pub trait InvalidationFeed: Send {
    /// The next event; an error when the database cannot be reached (call again to retry).
    async fn next(&mut self) -> Result<FeedEvent, StoreError>;
    /// The database session that listens (for tests that cut it).
    fn session_pid(&self) -> Option<i32>;
}

/// What health checks, metrics, shutdown and the authorization cache need of the store itself.
#[async_trait]
pub trait OpsStore {
    fn backend(&self) -> Backend;
    fn pool_stats(&self) -> PoolStats;
    /// Calls `sink` with every invalidation this instance commits, before the write returns.
    fn on_commit(&self, sink: InvalidationSink);
    /// Every process's invalidations: PostgreSQL's `NOTIFY` from every instance; on SQLite,
    /// the command line's writes, read back from the invalidations table.
    async fn listen(&self) -> Result<Option<Box<dyn InvalidationFeed>>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    async fn close(&self);
    async fn latest_epoch(&self) -> Result<i64, StoreError>;
    /// Deletes invalidation records older than `age` (they were delivered long ago); returns
    /// how many. Epochs keep growing: the newest record is never deleted.
    async fn prune_invalidations(&self, age: std::time::Duration) -> Result<u64, StoreError>;
}

#[derive(FromRow)]
struct EpochRow {
    epoch: Option<i64>,
}

#[async_trait]
impl OpsStore for SqlStore {
    fn backend(&self) -> Backend {
        match self.db.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    fn pool_stats(&self) -> PoolStats {
        let (mut open, mut idle) = match &self.db.pool {
            Pool::Sqlite(p) => (p.size(), p.num_idle()),
            Pool::Postgres(p) => (p.size(), p.num_idle()),
        };
        if let Some(generic) = &self.db.generic_plans {
            open += generic.pool.size();
            idle += generic.pool.num_idle();
        }
        PoolStats {
            max: self.max_connections,
            open,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
        }
    }

    fn on_commit(&self, sink: InvalidationSink) {
        self.db.on_commit(sink);
    }

    async fn listen(&self) -> Result<Option<Box<dyn InvalidationFeed>>, StoreError> {
        let pool = match &self.db.pool {
            Pool::Sqlite(pool) => {
                let last = self.latest_epoch().await?;
                return Ok(Some(Box::new(PollFeed {
                    pool: pool.clone(),
                    last,
                    pending: VecDeque::new(),
                })));
            }
            Pool::Postgres(pool) => pool,
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let floor = self.latest_epoch().await?;
        let mut feed = PgFeed {
            listener,
            pid: None,
            pool: pool.clone(),
            seen: BTreeSet::new(),
            floor,
            history: VecDeque::new(),
            pending: VecDeque::new(),
            next_read: tokio::time::Instant::now() + READ_BACK_EVERY,
        };
        feed.pid = feed.backend_pid().await.ok();
        Ok(Some(Box::new(feed)))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut h = self.db.read().await?;
        sql("SELECT 1").execute(h.conn()).await.map(|_| ())
    }

    async fn close(&self) {
        self.db.flush_notifications().await;
        self.db.close().await;
    }

    async fn prune_invalidations(&self, age: std::time::Duration) -> Result<u64, StoreError> {
        let cutoff = crate::domain::now()
            - chrono::Duration::from_std(age).map_err(|e| StoreError::Other(e.to_string()))?;
        let mut h = self.db.read().await?;
        // Not a change of anyone's data (nothing to audit): the log of changes already made.
        sql("DELETE FROM invalidations WHERE created_at < $1 \
             AND epoch < (SELECT MAX(epoch) FROM invalidations)")
        .bind(cutoff)
        .execute(h.conn())
        .await
    }

    async fn latest_epoch(&self) -> Result<i64, StoreError> {
        let mut h = self.db.read().await?;
        let row = sql("SELECT MAX(epoch) AS epoch FROM invalidations")
            .fetch_one::<EpochRow>(h.conn())
            .await?;
        Ok(row.epoch.unwrap_or(0))
    }
}

#[cfg(test)]
mod read_back_tests {
    use super::*;

    #[test]
    fn the_read_back_starts_at_the_first_epoch_not_delivered() {
        let seen = |epochs: &[i64]| epochs.iter().copied().collect::<BTreeSet<i64>>();
        assert_eq!(first_unseen(10, &seen(&[])), 11);
        assert_eq!(first_unseen(10, &seen(&[11, 12, 13])), 14);
        // 13 not seen yet (open, or rolled back): read from there, 14 and 15 again with it.
        assert_eq!(first_unseen(10, &seen(&[11, 12, 14, 15])), 13);
        // Epochs at or below the floor are not looked at.
        assert_eq!(first_unseen(10, &seen(&[5, 11])), 12);
    }
}
