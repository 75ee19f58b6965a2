//! `/console/invitations/accept?token=…`: where the invitation e-mail's link lands. GET shows
//! what the invitation is (the org, who invited, the product and permission group) with an
//! Accept button, and uses nothing up (mail scanners follow links). The POST accepts — the
//! same store path as `POST /api/v1/invitations/accept` — and signs the invitee in; when their
//! org (or one above) requires single sign-on, it sends them through the org's identity
//! provider instead.
//!
//! There may be no session yet, so the POST's CSRF check is its Origin (or Referer): the form
//! must come from this service's own page. The token itself is the credential.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use maud::html;
use uuid::Uuid;

use super::layout::{error_page, html, layout};
use super::{PageError, redirect};
use crate::admin::invitations::{
    InvitationToken, accept_by_token, invited_access, look_up_by_token,
};
use crate::domain::invitation::{Invitation, InvitationStatus};
use crate::domain::org;
use crate::error::ApiError;
use crate::session::{NewSession, SignInMethod};
use crate::state::AppState;

/// `GET /console/invitations/accept?token=`.
pub(super) async fn page(
    State(state): State<AppState>,
    token: Result<InvitationToken, ApiError>,
) -> Result<Response, PageError> {
    let found = look_up_by_token(&state, &token?).await?;
    let org = state.store.get_org(found.tenant_id, found.org_id).await?;
    let access = match found.product_id {
        Some(product_id) => match state.store.get_product(found.tenant_id, product_id).await {
            Ok(detail) => invited_access(&detail, &found),
            Err(crate::store::StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let state_text = match found.status {
        InvitationStatus::Pending => None,
        InvitationStatus::Accepted => {
            Some("This invitation has already been accepted. Sign in to the console.")
        }
        InvitationStatus::Revoked => {
            Some("This invitation was revoked. Ask the person who invited you for a new one.")
        }
        InvitationStatus::Expired => {
            Some("This invitation has expired. Ask the person who invited you for a new one.")
        }
    };
    let body = html! {
        h1 { "You are invited to " (org.name) }
        div class="card" {
            dl {
                dt { "Organization" } dd { (org.name) }
                dt { "Invited by" } dd { (found.invited_by.as_deref().unwrap_or("an administrator")) }
                dt { "For" } dd { (found.email) }
                @if let Some(access) = &access {
                    dt { "Product" } dd { (access.product) }
                    dt { "Permission group" } dd { (access.permission_group) }
                }
                dt { "Expires" } dd { (found.expires_at.format("%Y-%m-%d %H:%M UTC")) }
            }
        }
        @if let Some(text) = state_text {
            p { (text) }
            p { a href="/console/sign-in" { "Sign in" } }
        } @else {
            // No action: the form posts to this page's own URL, token included.
            form method="post" class="stack" {
                p { "Accepting makes you a member of " (org.name) " and signs you in." }
                div { button type="submit" { "Accept invitation" } }
            }
        }
    };
    let title = format!("Invitation to {}", org.name);
    // The token is in this page's URL: the console's `Referrer-Policy: same-origin` keeps it
    // from other sites (not `no-referrer`, under which the Accept POST's Origin is `null`).
    Ok(html(StatusCode::OK, layout(None, &title, &[], body)))
}

/// `POST /console/invitations/accept?token=`: accept, then sign in (or SSO first).
pub(super) async fn accept(
    State(state): State<AppState>,
    parts: Parts,
    token: Result<InvitationToken, ApiError>,
) -> Result<Response, PageError> {
    if !crate::session::same_origin(&parts.headers, &state.config.public_url()) {
        return Ok(error_page(
            None,
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form must be sent from this service's own page.",
        ));
    }
    let (invitation, user_id) = accept_by_token(&state, &token?).await?;
    if state
        .store
        .sso_required_for(invitation.tenant_id, user_id)
        .await?
    {
        return sso_first(&state, &invitation).await;
    }
    let client = crate::request::client_addr(&parts.extensions);
    match crate::session::start_from(
        &state,
        &parts.headers,
        Some(client),
        NewSession {
            user_id,
            method: SignInMethod::Invitation,
            id_token: None,
        },
    )
    .await
    {
        Ok(started) => Ok(started.redirect_to("/console/")),
        Err(error) => Ok(error.into_response()),
    }
}

/// The invitee's org requires single sign-on: the invitation is accepted, and they sign in
/// through the connection of the nearest org (the invited one, or one above) that has one.
async fn sso_first(state: &AppState, invitation: &Invitation) -> Result<Response, PageError> {
    let tree = state.store.list_orgs(invitation.tenant_id).await?;
    let chain = org::chain_to_root(invitation.org_id, |o| {
        tree.iter().find(|t| t.id == o).map(|t| t.parent_id)
    });
    let connections = state
        .store
        .list_oidc_connections(invitation.tenant_id, Some(&chain))
        .await?;
    let nearest: Option<Uuid> = chain
        .iter()
        .find_map(|o| connections.iter().find(|c| c.org_id == *o).map(|c| c.id));
    match nearest {
        Some(connection) => Ok(redirect(&crate::oidc::login_path(
            connection,
            "/console/",
            Some(&invitation.email),
        ))),
        None => Ok(error_page(
            None,
            StatusCode::OK,
            "Invitation accepted",
            "Your organization requires single sign-on, but no identity provider is connected \
             yet. Ask your administrator to connect one, then sign in.",
        )),
    }
}
