//! What happened: the audit log, and each SCIM token's log of failed requests.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::db::{SqlBuilder, sql};
use super::{SqlStore, StoreError};
use crate::domain::audit::AuditEvent;
use crate::domain::provisioning::{KEPT_PER_TOKEN, ScimRequestError};

/// Filters for the audit log; results come newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub org_id: Option<Uuid>,
    pub product_id: Option<Uuid>,
    pub actor_kind: Option<String>,
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keyset cursor: only events older than this one.
    pub before_id: Option<Uuid>,
    pub limit: u32,
}

#[async_trait]
pub trait AuditStore {
    /// Keeps a failed SCIM request in the token's provisioning error log (bookkeeping, like a
    /// token's last use: not an audited change). Only the newest entries per token are kept.
    async fn record_scim_error(
        &self,
        tenant_id: Uuid,
        error: &ScimRequestError,
    ) -> Result<(), StoreError>;
    /// The token's failed SCIM requests, newest first.
    async fn list_scim_errors(
        &self,
        tenant_id: Uuid,
        token_id: Uuid,
        limit: u32,
    ) -> Result<Vec<ScimRequestError>, StoreError>;

    async fn list_audit(
        &self,
        tenant_id: Uuid,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}

#[derive(FromRow)]
struct AuditRow {
    id: Uuid,
    tenant_id: Uuid,
    org_id: Option<Uuid>,
    product_id: Option<Uuid>,
    actor_kind: String,
    actor_id: Option<String>,
    actor_name: Option<String>,
    action: String,
    target_kind: String,
    target_id: Option<String>,
    before: Option<Json<Value>>,
    after: Option<Json<Value>>,
    warning: Option<String>,
    request_id: Option<String>,
    client_addr: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent {
            id: r.id,
            tenant_id: r.tenant_id,
            org_id: r.org_id,
            product_id: r.product_id,
            actor_kind: r.actor_kind,
            actor_id: r.actor_id,
            actor_name: r.actor_name,
            action: r.action,
            target_kind: r.target_kind,
            target_id: r.target_id,
            before: r.before.map(|j| j.0),
            after: r.after.map(|j| j.0),
            warning: r.warning,
            request_id: r.request_id,
            client_addr: r.client_addr,
            created_at: r.created_at,
        }
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn record_scim_error(
        &self,
        tenant_id: Uuid,
        error: &ScimRequestError,
    ) -> Result<(), StoreError> {
        let mut h = self.db.read().await?;
        sql("INSERT INTO scim_request_errors (id, tenant_id, token_id, method, target, status, scim_type, detail, \
             request_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(error.id)
        .bind(tenant_id)
        .bind(error.token_id)
        .bind(error.method.as_str())
        .bind(error.target.as_str())
        .bind(i64::from(error.status))
        .bind(error.scim_type.clone())
        .bind(error.detail.as_str())
        .bind(error.request_id.clone())
        .bind(error.created_at)
        .execute(h.conn())
        .await?;
        // Ids are time-ordered: everything below the newest N goes.
        sql(
            "DELETE FROM scim_request_errors WHERE tenant_id = $1 AND token_id = $2 AND id NOT IN \
             (SELECT id FROM scim_request_errors WHERE tenant_id = $1 AND token_id = $2 \
             ORDER BY id DESC LIMIT $3)",
        )
        .bind(tenant_id)
        .bind(error.token_id)
        .bind(KEPT_PER_TOKEN)
        .execute(h.conn())
        .await?;
        Ok(())
    }

    async fn list_scim_errors(
        &self,
        tenant_id: Uuid,
        token_id: Uuid,
        limit: u32,
    ) -> Result<Vec<ScimRequestError>, StoreError> {
        #[derive(FromRow)]
        struct Row {
            id: Uuid,
            token_id: Uuid,
            method: String,
            target: String,
            status: i64,
            scim_type: Option<String>,
            detail: String,
            request_id: Option<String>,
            created_at: DateTime<Utc>,
        }
        let mut h = self.db.read().await?;
        let rows = sql("SELECT id, token_id, method, target, status, scim_type, detail, request_id, created_at \
                        FROM scim_request_errors WHERE tenant_id = $1 AND token_id = $2 ORDER BY id DESC LIMIT $3")
        .bind(tenant_id)
        .bind(token_id)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all::<Row>(h.conn())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ScimRequestError {
                id: r.id,
                token_id: r.token_id,
                method: r.method,
                target: r.target,
                status: u16::try_from(r.status).unwrap_or(500),
                scim_type: r.scim_type,
                detail: r.detail,
                request_id: r.request_id,
                created_at: r.created_at,
            })
            .collect())
    }

    async fn list_audit(
        &self,
        tenant_id: Uuid,
        q: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut h = self.db.read().await?;
        let mut b = SqlBuilder::new(
            "SELECT id, tenant_id, org_id, product_id, actor_kind, actor_id, actor_name, action, \
             target_kind, target_id, before, after, warning, request_id, client_addr, \
             created_at FROM audit_events WHERE tenant_id = ",
        );
        b.push_bind(tenant_id);
        if let Some(v) = q.org_id {
            b.push(" AND org_id = ").push_bind(v);
        }
        if let Some(v) = q.product_id {
            b.push(" AND product_id = ").push_bind(v);
        }
        if let Some(v) = &q.actor_kind {
            b.push(" AND actor_kind = ").push_bind(v.as_str());
        }
        if let Some(v) = &q.actor_id {
            b.push(" AND actor_id = ").push_bind(v.as_str());
        }
        if let Some(v) = &q.action {
            b.push(" AND action = ").push_bind(v.as_str());
        }
        if let Some(v) = q.since {
            b.push(" AND created_at >= ").push_bind(v);
        }
        if let Some(v) = q.until {
            b.push(" AND created_at < ").push_bind(v);
        }
        if let Some(v) = q.before_id {
            b.push(" AND id < ").push_bind(v);
        }
        b.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(q.limit.clamp(1, 1000)));
        Ok(b.build()
            .fetch_all::<AuditRow>(h.conn())
            .await?
            .into_iter()
            .map(AuditEvent::from)
            .collect())
    }
}
