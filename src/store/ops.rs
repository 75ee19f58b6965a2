//! Running the store: which backend, its pool, health, and the feed of cache invalidations.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::db::{Pool, sql};
use super::{SqlStore, StoreError};

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

/// What health checks, metrics, shutdown and the authorization cache need of the store itself.
#[async_trait]
pub trait OpsStore {
    fn backend(&self) -> Backend;
    fn pool_stats(&self) -> PoolStats;
    /// Invalidations committed by this instance (the cross-instance bus builds on it).
    fn subscribe(&self) -> broadcast::Receiver<Invalidation>;
    async fn ping(&self) -> Result<(), StoreError>;
    async fn close(&self);
    async fn latest_epoch(&self) -> Result<i64, StoreError>;
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
        let (open, idle) = match &self.db.pool {
            Pool::Sqlite(p) => (p.size(), p.num_idle()),
            Pool::Postgres(p) => (p.size(), p.num_idle()),
        };
        PoolStats {
            max: self.max_connections,
            open,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.db.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut h = self.db.read().await?;
        sql("SELECT 1").execute(h.conn()).await.map(|_| ())
    }

    async fn close(&self) {
        self.db.pool.close().await;
    }

    async fn latest_epoch(&self) -> Result<i64, StoreError> {
        let mut h = self.db.read().await?;
        let row = sql("SELECT MAX(epoch) AS epoch FROM invalidations")
            .fetch_one::<EpochRow>(h.conn())
            .await?;
        Ok(row.epoch.unwrap_or(0))
    }
}
