use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AdminAuth;
use super::doc::{AuthErrors, BadParams, ServerErrors};
use super::extract::{ApiJson, ApiQuery};
use super::page::{Page, PageSize};
use crate::domain::audit::{ACTIONS, AuditEvent};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::AuditQuery;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(list_audit))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Params {
    /// Only this org's events. Default: the whole tenant for a root-org token, the token's own
    /// org otherwise.
    org_id: Option<Uuid>,
    /// e.g. `admin_token`, `scim_token`, `user`, `invitee`, `cli`, `system`.
    actor_kind: Option<String>,
    actor_id: Option<String>,
    /// One of the audit log's actions (e.g. `org.create`; the README lists them all); another
    /// value is a 422 that lists them.
    action: Option<String>,
    /// Events at or after this time.
    since: Option<DateTime<Utc>>,
    /// Events before this time.
    until: Option<DateTime<Utc>>,
    /// Cursor from a previous page's `next`.
    before: Option<Uuid>,
    /// Page size, 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct AuditPage {
    events: Vec<AuditEvent>,
    /// Pass as `before` for the next (older) page; null on the last page.
    next: Option<Uuid>,
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    security(("bearer" = [])),
    params(Params),
    responses(
        (status = 200, description = "A page of events, newest first.", body = AuditPage),
        (status = 404, description = "`org_id` is not an org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A parameter not of its form (`fields` names it), or: `limit` out of range, or `action` not one of the audit log's actions (the message lists them).", body = ErrorBody)
    )
)]
async fn list_audit(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiQuery(p): ApiQuery<Params>,
) -> Result<ApiJson<AuditPage>, ApiError> {
    // A sub-org's token reads its own org's log only.
    let org_id = match p.org_id {
        Some(org) => {
            admin.org(&state, org).await?;
            Some(org)
        }
        // A signed-in user's need (the audit log) is checked on an org: their own.
        None if admin.home_org() != admin.tenant_id()
            || matches!(admin.caller, super::Caller::User(_)) =>
        {
            admin.org(&state, admin.home_org()).await?;
            Some(admin.home_org())
        }
        None => None,
    };
    let query = AuditQuery {
        org_id,
        actor_kind: p.actor_kind,
        actor_id: p.actor_id,
        action: p.action,
        since: p.since,
        until: p.until,
        ..AuditQuery::default()
    };
    let (events, next) = read(&state, admin.tenant_id(), query, p.before, p.limit).await?;
    Ok(ApiJson(AuditPage { events, next }))
}

/// The one reading of the audit log behind `/audit` and a product's `/audit`: `query`'s events
/// newest first, a page of them past `before`, and the cursor of the older ones.
pub(crate) async fn read(
    state: &AppState,
    tenant_id: Uuid,
    query: AuditQuery,
    before: Option<Uuid>,
    limit: Option<u32>,
) -> Result<(Vec<AuditEvent>, Option<Uuid>), ApiError> {
    if let Some(action) = query.action.as_deref()
        && !ACTIONS.contains(&action)
    {
        // A typo would otherwise read as "nothing happened".
        return Err(ApiError::invalid(
            "action",
            format!("unknown action {action:?}; one of: {}", ACTIONS.join(", ")),
        ));
    }
    let page = Page::new(PageSize::LIST, before, limit)?;
    let query = AuditQuery {
        before_id: page.cursor,
        limit: page.limit,
        ..query
    };
    let events = state.store.list_audit(tenant_id, &query).await?;
    let next = page.next(&events, |e| e.id);
    Ok((events, next))
}
