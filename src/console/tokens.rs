//! `/console/orgs/{org}/tokens`: the org's tokens (as `GET /api/v1/tokens`), a new SCIM token
//! whose secret is shown once on the result page with the SCIM base URL to paste into the IdP,
//! revoking one (after a confirmation page), and `/console/tokens/{token}/errors`: the token's
//! last failed SCIM requests (as `GET /api/v1/tokens/{token_id}/errors`), why the IdP shows an
//! error.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::html;
use serde::Deserialize;
use serde::de::IgnoredAny;
use uuid::Uuid;

use super::layout::{org_tabs, post_form};
use super::orgs::org_for;
use super::{Console, ConsoleForm, Flash, PageError, redirect_with};
use crate::admin::AdminAuth;
use crate::admin::reach::Need;
use crate::admin::tokens::{self as api, CreateToken};
use crate::domain::org::Org;
use crate::domain::token::{Token, TokenKind};
use crate::error::ApiError;
use crate::state::AppState;

/// The API routes whose requirements these pages keep.
const LIST: &str = "/api/v1/tokens";
const ONE: &str = "/api/v1/tokens/{token_id}";
const ERRORS: &str = "/api/v1/tokens/{token_id}/errors";

/// Failed requests shown: all the store keeps.
const ERRORS_SHOWN: u32 = 100;

fn tokens_path(org_id: Uuid) -> String {
    format!("/console/orgs/{org_id}/tokens")
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "—".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// `GET /console/orgs/{org}/tokens`.
pub(super) async fn page(
    State(state): State<AppState>,
    console: Console,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::GET, LIST).await?;
    render(&state, &console, &admin, &org, StatusCode::OK, Vec::new()).await
}

async fn render(
    state: &AppState,
    console: &Console,
    admin: &AdminAuth,
    org: &Org,
    status: StatusCode,
    flashes: Vec<Flash>,
) -> Result<Response, PageError> {
    let tokens = api::list(state, admin, org.id).await?;
    let may_create = console.may(state, Method::POST, LIST, org.id).await;
    let may_revoke = console.may(state, Method::DELETE, ONE, org.id).await;
    let now = Utc::now();
    let path = tokens_path(org.id);
    let body = html! {
        h1 { (org.name) ": tokens" }
        (org_tabs(org.id, "/tokens"))
        p class="note" { "SCIM tokens let an IdP (Okta, Entra ID) provision users and groups; their secrets are shown once, when created." }
        @if tokens.is_empty() {
            p { "No tokens." }
        } @else {
            div class="table-wrap" role="region" aria-label="Tokens" tabindex="0" {
                table id="tokens" {
                    caption class="visually-hidden" { "Tokens of " (org.name) }
                    thead { tr {
                        th scope="col" { "Kind" }
                        th scope="col" { "Name" }
                        th scope="col" { "Created" }
                        th scope="col" { "Last used" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Status" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for token in &tokens {
                            tr {
                                td { (token.kind.as_str()) }
                                td { (token.name) br; span class="note" { "…" (token.hint) } }
                                td { (when(Some(token.created_at))) }
                                td { (when(token.last_used_at)) }
                                td { @if token.expires_at.is_some() { (when(token.expires_at)) } @else { "never" } }
                                td { (status_text(token, now)) }
                                td {
                                    @if token.kind == TokenKind::Scim {
                                        a href=(format!("/console/tokens/{}/errors", token.id)) { "Errors" }
                                    }
                                    @if may_revoke && token.revoked_at.is_none() {
                                        " "
                                        a href=(format!("/console/tokens/{}/revoke", token.id)) class="button danger"
                                            aria-label=(format!("Revoke {}", token.name)) { "Revoke…" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if may_create {
            h2 { "New SCIM token" }
            (post_form(console, &path, "stack", html! {
                div class="field" {
                    label for="token-name" { "Name" }
                    input id="token-name" type="text" name="name" maxlength="100" placeholder="Okta provisioning";
                }
                div class="field" {
                    label for="token-days" { "Expires after (days, empty: never)" }
                    input id="token-days" type="number" name="expires_in_days" min="1" max="3650";
                }
                div { button type="submit" { "Create SCIM token" } }
            }))
        }
    };
    Ok(console.page_with(status, &format!("{}: tokens", org.name), flashes, body))
}

fn status_text(token: &Token, now: DateTime<Utc>) -> String {
    if let Some(at) = token.revoked_at {
        return format!("revoked {}", when(Some(at)));
    }
    match token.expires_at {
        Some(at) if at <= now => "expired".to_owned(),
        _ => "active".to_owned(),
    }
}

#[derive(Deserialize)]
pub(super) struct CreateForm {
    name: Option<String>,
    expires_in_days: Option<String>,
}

/// `POST /console/orgs/{org}/tokens`: as `POST /api/v1/tokens` with `kind: scim`; the answer
/// is the one page that shows the secret.
pub(super) async fn create(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<CreateForm>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::POST, LIST).await?;
    let days = match form
        .expires_in_days
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        None => None,
        Some(d) => match d.parse::<u32>() {
            Ok(days) => Some(days),
            Err(_) => {
                let flash = Flash::refused(format!("Expiry {d:?} is not a number of days."));
                return render(
                    &state,
                    &console,
                    &admin,
                    &org,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    vec![flash],
                )
                .await;
            }
        },
    };
    let request = CreateToken {
        kind: TokenKind::Scim,
        name: form.name.filter(|n| !n.trim().is_empty()),
        org_id: Some(org.id),
        expires_in_days: days,
    };
    let (token, secret) = match api::create(&state, &admin, request).await {
        Ok(created) => created,
        Err(error @ ApiError::Validation(_)) => {
            let flash = Flash::from_error(&error);
            return render(&state, &console, &admin, &org, error.status(), vec![flash]).await;
        }
        Err(error) => return Err(error.into()),
    };
    let base = state
        .config
        .public_url()
        .join("scim/v2")
        .map_err(|e| PageError(ApiError::Internal(e.to_string())))?;
    let body = html! {
        h1 { "SCIM token created" }
        (org_tabs(org.id, "/tokens"))
        p { strong { "Copy the token now: it is shown this once and cannot be read again." } }
        dl class="card" {
            dt { "Name" } dd { (token.name) }
            dt { "SCIM base URL" }
            dd {
                code id="scim-base-url" { (base.as_str()) }
                " " button type="button" class="secondary" data-copy=(base.as_str()) hidden { "Copy" }
            }
            dt { "Token (Bearer)" }
            dd {
                code id="token-secret" { (secret) }
                " " button type="button" class="secondary" data-copy=(secret) hidden { "Copy" }
            }
            dt { "Expires" } dd { @if token.expires_at.is_some() { (when(token.expires_at)) } @else { "never" } }
        }
        p { a href=(tokens_path(org.id)) { "Back to the tokens" } }
    };
    Ok(console.page_with(
        StatusCode::CREATED,
        "SCIM token created",
        vec![Flash::done(format!("Created {}.", token.name))],
        body,
    ))
}

/// The token a console path names, for this user acting as the API's `method` on `route`: as
/// the API's `InReach<Token>` finds it.
async fn token_for(
    state: &AppState,
    console: &Console,
    raw: &str,
    method: Method,
    route: &str,
) -> Result<(AdminAuth, Token), PageError> {
    let id = Uuid::parse_str(raw).map_err(|_| PageError(ApiError::NotFound))?;
    let admin = console.acting_as(state, method, route).await?;
    let token = admin.require::<Token>(state, id, Need::Reach).await?;
    Ok((admin, token))
}

/// `GET /console/tokens/{token}/revoke`: what revoking means, and the button.
pub(super) async fn confirm_revoke(
    State(state): State<AppState>,
    console: Console,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let (_, token) = token_for(&state, &console, &raw, Method::DELETE, ONE).await?;
    let body = html! {
        h1 { "Revoke " (token.name) "?" }
        p { "The " (token.kind.as_str()) " token " strong { (token.name) } " stops working at once; whatever uses it (an IdP's provisioning) fails until it is given a new one. This cannot be undone." }
        (post_form(&console, &format!("/console/tokens/{}/revoke", token.id), "inline", html! {
            button type="submit" class="danger" { "Revoke" }
        }))
        p { a href=(tokens_path(token.org_id)) { "Cancel" } }
    };
    Ok(console.page(&format!("Revoke {}", token.name), body))
}

/// `POST /console/tokens/{token}/revoke`: as `DELETE /api/v1/tokens/{token_id}`.
pub(super) async fn revoke(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, .. }: ConsoleForm<IgnoredAny>,
) -> Result<Response, PageError> {
    let (admin, token) = token_for(&state, &console, &raw, Method::DELETE, ONE).await?;
    let revoked = state
        .store
        .revoke_token(&admin.ctx, admin.tenant_id(), token.id)
        .await?;
    Ok(redirect_with(
        &state,
        &tokens_path(revoked.org_id),
        Flash::done(format!("Revoked {}.", revoked.name)),
    ))
}

/// `GET /console/tokens/{token}/errors`.
pub(super) async fn errors(
    State(state): State<AppState>,
    console: Console,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let (admin, token) = token_for(&state, &console, &raw, Method::GET, ERRORS).await?;
    let errors = state
        .store
        .list_scim_errors(admin.tenant_id(), token.id, ERRORS_SHOWN)
        .await?;
    let body = html! {
        h1 { "Provisioning errors of " (token.name) }
        p class="note" { "The token's last failed SCIM requests, newest first, with the error the IdP was answered." }
        @if errors.is_empty() {
            p { "No failed requests." }
        } @else {
            div class="table-wrap" role="region" aria-label="Failed requests" tabindex="0" {
                table id="scim-errors" {
                    caption class="visually-hidden" { "Failed SCIM requests" }
                    thead { tr {
                        th scope="col" { "When" }
                        th scope="col" { "Request" }
                        th scope="col" { "Status" }
                        th scope="col" { "Error" }
                        th scope="col" { "Request id" }
                    } }
                    tbody {
                        @for e in &errors {
                            tr {
                                td { (when(Some(e.created_at))) }
                                td { code { (e.method) " " (e.target) } }
                                td { (e.status) @if let Some(t) = &e.scim_type { " " (t) } }
                                td { (e.detail) }
                                td { (e.request_id.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
        }
        p { a href=(tokens_path(token.org_id)) { "Back to the tokens" } }
    };
    Ok(console.page(&format!("Errors of {}", token.name), body))
}
