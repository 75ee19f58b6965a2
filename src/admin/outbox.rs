//! The mail outbox: what became of each invitation e-mail, for the org and the orgs below it,
//! and the retry of one that was not delivered.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::NoStore;
use super::doc::{AuthErrors, BadParams, ServerErrors};
use super::extract::{ApiJson, ApiQuery};
use super::invitations::{AddressResult, expiry, hourly_cap, random_secret, send_reissued};
use super::page::{Page, PageSize};
use super::reach::{InReach, OrgInReach};
use crate::domain::outbox::{MailStatus, OutboxEntry, OutboxFilter, redact_links};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::OutboxQuery;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_outbox))
        .routes(routes!(retry))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Params {
    /// `undelivered` (default): `failed` and `logged` mail no newer mail of its invitation has
    /// superseded — what still needs doing. `failed`, `logged`, `sent`: every mail of that
    /// status, superseded or not. `all`: every mail.
    #[param(inline)]
    status: Option<OutboxFilter>,
    /// Cursor from a previous page's `next`.
    before: Option<Uuid>,
    /// Page size, 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// One mail, as an admin may see it: any invitation link redacted.
#[derive(Serialize, ToSchema)]
struct OutboxMailView {
    id: Uuid,
    /// The org it was sent for (mail recorded before migration 0007: the root org).
    org_id: Uuid,
    /// The invitation it carried (null for mail recorded before migration 0007).
    invitation_id: Option<Uuid>,
    recipient: String,
    subject: String,
    /// The text of the e-mail with the invitation link's secret replaced by `[redacted]`,
    /// whatever the status (a `logged` mail's stored copy keeps the live link for the
    /// operator; this list never shows it).
    body: String,
    status: MailStatus,
    /// With `failed`: why the relay did not take it.
    error: Option<String>,
    created_at: DateTime<Utc>,
    /// The newer mail of the same invitation that superseded this one (its retry, a resend, or
    /// a new invite of the address): this mail's link no longer works.
    retried_by: Option<Uuid>,
    /// When a retry started, or a newer mail superseded this one.
    retried_at: Option<DateTime<Utc>>,
}

impl From<OutboxEntry> for OutboxMailView {
    fn from(entry: OutboxEntry) -> Self {
        OutboxMailView {
            body: redact_links(&entry.body),
            id: entry.id,
            org_id: entry.org_id,
            invitation_id: entry.invitation_id,
            recipient: entry.recipient,
            subject: entry.subject,
            status: entry.status,
            error: entry.error,
            created_at: entry.created_at,
            retried_by: entry.retried_by,
            retried_at: entry.retried_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct OutboxPage {
    mails: Vec<OutboxMailView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    next: Option<Uuid>,
}

/// The org's outbox: its mail and that of the orgs below it, newest first.
///
/// By default only what still needs doing: mail that failed or was only logged (no SMTP
/// relay) and that no newer mail of its invitation has superseded. Links are redacted.
#[utoipa::path(
    get,
    path = "/orgs/{org_id}/outbox",
    tag = "outbox",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), Params),
    responses(
        (status = 200, description = "A page of mail, newest first.", body = OutboxPage),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A parameter not of its form (`fields` names it), or: `limit` out of range.", body = ErrorBody)
    )
)]
async fn list_outbox(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiQuery(p): ApiQuery<Params>,
) -> Result<(NoStore, ApiJson<OutboxPage>), ApiError> {
    let page = Page::new(PageSize::LIST, p.before, p.limit)?;
    let query = OutboxQuery {
        org_id: item.id,
        filter: p.status.unwrap_or_default(),
        before: page.cursor,
        limit: page.limit,
    };
    let entries = state.store.list_outbox(admin.tenant_id(), &query).await?;
    let next = page.next(&entries, |e| e.id);
    let mails = entries.into_iter().map(OutboxMailView::from).collect();
    // Bodies name people and invitations: no cache keeps them.
    Ok((NoStore, ApiJson(OutboxPage { mails, next })))
}

/// Retries an undelivered invitation e-mail: the invitation gets a new link and is sent again.
///
/// As a resend does, the new link kills the old one and counts against the org's hourly
/// invitation cap; the mail is marked as superseded by the new one, whose delivery is the
/// answer. Refused (409, saying why) for a mail that was delivered or already retried, and
/// for one whose invitation has been accepted or revoked.
#[utoipa::path(
    post,
    path = "/outbox/{mail_id}/retry",
    tag = "outbox",
    security(("bearer" = [])),
    params(("mail_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The invitation with its new link's expiry, how the new e-mail went (`delivery`, `delivery_error`) and its `mail_id`.", body = AddressResult),
        (status = 404, description = "No such mail within reach.", body = ErrorBody),
        (status = 409, description = "The mail was delivered, or already retried (the message names the newer mail), or its invitation was accepted or revoked, or it names no invitation.", body = ErrorBody),
        (status = 429, description = "The org has sent `ROLEGATE_INVITATIONS_PER_HOUR` invitation e-mails in the last hour; `Retry-After` says when to try again.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn retry(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<OutboxEntry>,
) -> Result<(NoStore, ApiJson<AddressResult>), ApiError> {
    let (secret, hash) = random_secret()?;
    let invitation = state
        .store
        .retry_mail(
            &admin.ctx,
            admin.tenant_id(),
            item.id,
            &hash,
            expiry(&state),
            hourly_cap(&state),
        )
        .await?;
    let result = send_reissued(&state, &admin, invitation, &secret, Some(item.id)).await?;
    Ok((NoStore, ApiJson(result)))
}
