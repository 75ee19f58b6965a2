use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AdminAuth;
use crate::domain::audit::AuditEvent;
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;
use crate::store::AuditQuery;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list_audit))
}

#[derive(Deserialize)]
struct Params {
    org_id: Option<Uuid>,
    actor_kind: Option<String>,
    actor_id: Option<String>,
    action: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    /// Cursor from a previous page's `next`.
    before: Option<Uuid>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct Page {
    events: Vec<AuditEvent>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    next: Option<Uuid>,
}

const DEFAULT_LIMIT: u32 = 100;

async fn list_audit(
    State(state): State<AppState>,
    admin: AdminAuth,
    Query(p): Query<Params>,
) -> Result<ApiJson<Page>, ApiError> {
    // A sub-org's token reads its own org's log only.
    let org_id = match p.org_id {
        Some(org) => {
            admin.org(&state, org).await?;
            Some(org)
        }
        None if admin.principal.org_id() != admin.tenant_id() => Some(admin.principal.org_id()),
        None => None,
    };
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let query = AuditQuery {
        org_id,
        product_id: None,
        actor_kind: p.actor_kind,
        actor_id: p.actor_id,
        action: p.action,
        since: p.since,
        until: p.until,
        before_id: p.before,
        limit,
    };
    let events = state.store.list_audit(admin.tenant_id(), &query).await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(ApiJson(Page { events, next }))
}
