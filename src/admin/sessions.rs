//! Sessions through the admin API: a signed-in user's own (list them, end one), and an
//! administrator ending every session of a member. Ending is a write like any other — audited
//! (`session.end` with the reason) and an invalidation naming the user, which is how every
//! instance's cached session check learns of it.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AdminAuth;
use super::doc::{AuthErrors, BadParams, ServerErrors};
use super::extract::{ApiJson, ApiPath};
use super::reach::OrgInReach;
use crate::domain::session::{EndReason, Session};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(my_sessions))
        .routes(routes!(end_my_session))
        .routes(routes!(end_member_sessions))
}

#[derive(Serialize, ToSchema)]
struct MySession {
    #[serde(flatten)]
    session: Session,
    /// The session this request was made with.
    current: bool,
}

#[derive(Serialize, ToSchema)]
struct MySessions {
    /// Live sessions (not ended, not expired), newest first.
    sessions: Vec<MySession>,
}

/// The signed-in user's live sessions.
///
/// Each with how it was started, when it was created and last seen (recorded at most once a
/// minute), when it expires idle and at the latest, the browser's user agent and the client
/// address; `current` marks the one this request came with. Tokens are refused (403): they
/// have no sessions.
#[utoipa::path(
    get,
    path = "/me/sessions",
    tag = "meta",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's live sessions.", body = MySessions),
        AuthErrors, ServerErrors,
        (status = 403, description = "A token, not a signed-in user.", body = ErrorBody)
    )
)]
async fn my_sessions(
    State(state): State<AppState>,
    admin: AdminAuth,
) -> Result<ApiJson<MySessions>, ApiError> {
    let user = admin.signed_in_user()?;
    let current = user.session.id;
    let sessions = state
        .store
        .list_sessions(user.session.tenant_id, user.session.user_id)
        .await?
        .into_iter()
        .map(|session| MySession {
            current: session.id == current,
            session,
        })
        .collect();
    Ok(ApiJson(MySessions { sessions }))
}

/// Ends one of the signed-in user's own sessions (the current one too: that signs out).
///
/// Another user's session id is not found (404). Ending an ended session changes nothing.
#[utoipa::path(
    delete,
    path = "/me/sessions/{session_id}",
    tag = "meta",
    security(("bearer" = [])),
    params(("session_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The ended session.", body = Session),
        (status = 404, description = "No session of this user has this id.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 403, description = "A token, not a signed-in user; or a cookie-authenticated request without its CSRF proof.", body = ErrorBody)
    )
)]
async fn end_my_session(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiPath(session_id): ApiPath<Uuid>,
) -> Result<ApiJson<Session>, ApiError> {
    let user = admin.signed_in_user()?;
    let ended = state
        .store
        .end_session(
            &admin.ctx,
            user.session.tenant_id,
            session_id,
            Some(user.session.user_id),
            EndReason::EndedByUser,
        )
        .await?;
    Ok(ApiJson(ended))
}

#[derive(Serialize, ToSchema)]
struct EndedSessions {
    /// How many live sessions ended.
    ended: u64,
}

/// Ends every live session of a member of the org, on every instance.
///
/// For an admin token of the org's subtree, or a user who may manage the org's members — of
/// a person every org of whom is within the caller's reach (a root Owner who is also a member
/// of a sub-org is out of the sub-org's reach: 404).
/// Their next request with any of those sessions is refused (401).
#[utoipa::path(
    delete,
    path = "/orgs/{org_id}/members/{user_id}/sessions",
    tag = "members",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses(
        (status = 200, description = "How many sessions ended.", body = EndedSessions),
        (status = 404, description = "No such org within reach, or the user is not a member of it.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn end_member_sessions(
    State(state): State<AppState>,
    reach: OrgInReach,
    ApiPath((_, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<ApiJson<EndedSessions>, ApiError> {
    let (admin, org) = (reach.admin, reach.item);
    let member = state.store.get_user(admin.tenant_id(), user_id).await?;
    if !member.memberships.iter().any(|m| m.org_id == org.id) {
        return Err(ApiError::NotFound);
    }
    // Their sessions are theirs everywhere in the tenant: only a caller who reaches all of them.
    admin.require_whole_person(&state, &member).await?;
    let ended = state
        .store
        .end_user_sessions(
            &admin.ctx,
            admin.tenant_id(),
            user_id,
            EndReason::EndedByAdmin,
        )
        .await?;
    Ok(ApiJson(EndedSessions { ended }))
}
