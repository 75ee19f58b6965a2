//! `/console/orgs/{org}/connections`: the org's SSO (OIDC) connections, as
//! `/api/v1/orgs/{org_id}/oidc-connections` lists them — with the URIs to register at the
//! provider (copy buttons) — and adding (the provider's discovery document is fetched at
//! once), changing (the client secret is write-only: left empty, the stored one is kept) and
//! removing one (refused while mapping rules use it, the rules named).

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde::de::IgnoredAny;
use uuid::Uuid;

use super::layout::{org_tabs, post_form};
use super::orgs::org_for;
use super::{Console, ConsoleForm, Flash, PageError, redirect_with};
use crate::admin::AdminAuth;
use crate::admin::reach::Need;
use crate::domain::oidc::{Connection, Provisioning};
use crate::domain::org::Org;
use crate::error::ApiError;
use crate::idp::connections::{self, Change, NewInput, Settings};
use crate::state::AppState;
use crate::store::StoreError;

/// The API routes whose requirements these pages keep.
const LIST: &str = "/api/v1/orgs/{org_id}/oidc-connections";
const ONE: &str = "/api/v1/oidc-connections/{connection_id}";

const PROVISIONING: [Provisioning; 3] = [
    Provisioning::Hybrid,
    Provisioning::Jit,
    Provisioning::ScimOnly,
];

fn connections_path(org_id: Uuid) -> String {
    format!("/console/orgs/{org_id}/connections")
}

fn back_channel_logout_uri(state: &AppState) -> String {
    format!(
        "{}/auth/oidc/backchannel-logout",
        state.config.public_url().as_str().trim_end_matches('/')
    )
}

/// `GET /console/orgs/{org}/connections`.
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
    let found = state
        .store
        .list_oidc_connections(admin.tenant_id(), Some(&[org.id]))
        .await?;
    let may_add = console.may(state, Method::POST, LIST, org.id).await;
    let may_change = console.may(state, Method::PATCH, ONE, org.id).await;
    let may_remove = console.may(state, Method::DELETE, ONE, org.id).await;
    let public = state.config.public_url();
    let body = html! {
        h1 { (org.name) ": SSO connections" }
        (org_tabs(org.id, "/connections"))
        h2 { "To register at the provider" }
        dl class="card" {
            dt { "Sign-out (post-logout) redirect URI" }
            dd { (copyable("post-logout-uri", &connections::post_logout_redirect_uri(&public))) }
            dt { "Back-channel logout URI" }
            dd { (copyable("backchannel-uri", &back_channel_logout_uri(state))) }
        }
        p class="note" { "Each connection has its own sign-in redirect URI, below." }
        @if found.is_empty() {
            p { "No connections." }
        }
        @for c in &found {
            section class="card" aria-labelledby=(format!("conn-{}", c.id)) {
                h2 id=(format!("conn-{}", c.id)) { (c.issuer) }
                dl {
                    dt { "Sign-in redirect URI" }
                    dd { (copyable(&format!("redirect-{}", c.id), &connections::redirect_uri(&public, c.id))) }
                    dt { "Client id" } dd { (c.client_id) }
                    dt { "Client authentication" } dd { (c.client_auth.as_str()) @if c.has_client_secret { " (secret stored)" } }
                    dt { "Groups claim" } dd { (c.groups_claim) }
                    dt { "Scopes" } dd { (c.scopes.join(" ")) }
                    dt { "Provisioning" } dd { (c.provisioning.as_str()) }
                    dt { "Domains" } dd { @if c.domains.is_empty() { "—" } @else { (c.domains.join(", ")) } }
                    dt { "Require MFA" } dd { @if c.require_mfa { "yes" } @else { "no" } }
                }
                @if may_change {
                    details {
                        summary { "Change" }
                        (post_form(console, &format!("/console/connections/{}/update", c.id), "stack", settings_fields(&format!("c{}", c.id.simple()), Some(c))))
                    }
                }
                @if may_remove {
                    (post_form(console, &format!("/console/connections/{}/delete", c.id), "inline", html! {
                        button type="submit" class="danger" aria-label=(format!("Remove the connection to {}", c.issuer)) { "Remove" }
                    }))
                }
            }
        }
        @if may_add {
            h2 { "Add a connection" }
            (post_form(console, &connections_path(org.id), "stack", html! {
                div class="field" {
                    label for="new-issuer" { "Issuer URL" }
                    input id="new-issuer" type="url" name="issuer" required placeholder="https://acme.okta.com";
                }
                (settings_fields("new", None))
            }))
        }
    };
    Ok(console.page_with(
        status,
        &format!("{}: SSO connections", org.name),
        flashes,
        body,
    ))
}

fn copyable(id: &str, value: &str) -> Markup {
    html! {
        code id=(id) { (value) }
        " " button type="button" class="secondary" data-copy=(value) hidden { "Copy" }
    }
}

/// The fields adding and changing share; `current` pre-fills them (never the secret).
fn settings_fields(prefix: &str, current: Option<&Connection>) -> Markup {
    let id = |name: &str| format!("{prefix}-{name}");
    let provisioning = current.map_or(Provisioning::Hybrid, |c| c.provisioning);
    html! {
        div class="field" {
            label for=(id("client-id")) { "Client id" }
            input id=(id("client-id")) type="text" name="client_id" required maxlength="255"
                value=(current.map_or("", |c| c.client_id.as_str()));
        }
        div class="field" {
            label for=(id("secret")) {
                @if current.is_some() { "New client secret (empty: keep the stored one)" } @else { "Client secret" }
            }
            input id=(id("secret")) type="password" name="client_secret" autocomplete="new-password" value="";
        }
        div class="field" {
            label for=(id("groups")) { "Groups claim" }
            input id=(id("groups")) type="text" name="groups_claim"
                value=(current.map_or(connections::DEFAULT_GROUPS_CLAIM, |c| c.groups_claim.as_str()));
        }
        div class="field" {
            label for=(id("scopes")) { "Scopes (space separated)" }
            input id=(id("scopes")) type="text" name="scopes"
                value=(current.map_or_else(|| connections::DEFAULT_SCOPES.to_owned(), |c| c.scopes.join(" ")));
        }
        div class="field" {
            label for=(id("provisioning")) { "Provisioning" }
            select id=(id("provisioning")) name="provisioning" {
                @for p in PROVISIONING {
                    option value=(p.as_str()) selected[p == provisioning] { (p.as_str()) }
                }
            }
        }
        div class="field" {
            label for=(id("domains")) { "E-mail domains for home-realm discovery (comma separated)" }
            input id=(id("domains")) type="text" name="domains"
                value=(current.map_or_else(String::new, |c| c.domains.join(", ")));
        }
        div class="field" {
            label for=(id("mfa")) {
                input id=(id("mfa")) type="checkbox" name="require_mfa" value="on" checked[current.is_some_and(|c| c.require_mfa)];
                " Require MFA"
            }
        }
        div { button type="submit" { @if current.is_some() { "Save" } @else { "Add connection" } } }
    }
}

#[derive(Deserialize)]
pub(super) struct ConnectionForm {
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    groups_claim: Option<String>,
    scopes: Option<String>,
    provisioning: Option<String>,
    domains: Option<String>,
    require_mfa: Option<String>,
}

impl ConnectionForm {
    /// The settings as the API's body gives them: an empty secret is none (kept when
    /// changing), domains split at commas and spaces, an unticked box is `false`.
    fn settings(&self) -> Result<Settings, Flash> {
        let provisioning = match self.provisioning.as_deref() {
            None | Some("") => None,
            Some(p) => Some(
                Provisioning::parse(p)
                    .ok_or_else(|| Flash::refused(format!("Unknown provisioning {p:?}.")))?,
            ),
        };
        Ok(Settings {
            client_secret: self.client_secret.clone().filter(|s| !s.is_empty()),
            groups_claim: self.groups_claim.clone(),
            scopes: self.scopes.clone(),
            provisioning,
            domains: self.domains.as_deref().map(|d| {
                d.split([',', ' ', '\n'])
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            require_mfa: Some(self.require_mfa.is_some()),
            client_auth: None,
            allowed_tenants: None,
        })
    }
}

/// `POST /console/orgs/{org}/connections`: as `POST /api/v1/orgs/{org_id}/oidc-connections`.
pub(super) async fn add(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<ConnectionForm>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::POST, LIST).await?;
    let settings = match form.settings() {
        Ok(settings) => settings,
        Err(flash) => return Ok(redirect_with(&state, &connections_path(org.id), flash)),
    };
    let issuer = form.issuer.as_deref().unwrap_or_default().trim();
    let added = match url::Url::parse(issuer) {
        Err(e) => Err(ApiError::invalid("issuer", format!("not a URL: {e}"))),
        Ok(issuer) => connections::add(
            state.store.as_ref(),
            &state.idp,
            &state.keyring,
            &admin.ctx,
            admin.tenant_id(),
            NewInput {
                org_id: org.id,
                issuer,
                client_id: form.client_id.clone().unwrap_or_default(),
                settings,
            },
        )
        .await
        .map_err(ApiError::from),
    };
    match added {
        Ok(c) => Ok(redirect_with(
            &state,
            &connections_path(org.id),
            Flash::done(format!(
                "Added the connection to {}. Register its sign-in redirect URI at the provider.",
                c.issuer
            )),
        )),
        Err(error) => refused(&state, &console, &admin, &org, error).await,
    }
}

/// A refusal shown on the re-rendered page with the API's status; a server error is a page.
async fn refused(
    state: &AppState,
    console: &Console,
    admin: &AdminAuth,
    org: &Org,
    error: ApiError,
) -> Result<Response, PageError> {
    let status = error.status();
    if status.is_server_error() {
        return Err(error.into());
    }
    let flash = Flash::from_error(&error);
    render(state, console, admin, org, status, vec![flash]).await
}

/// The connection a console path names, for this user acting as the API's `method` on `ONE`,
/// and its org.
async fn connection_for(
    state: &AppState,
    console: &Console,
    raw: &str,
    method: Method,
) -> Result<(AdminAuth, Connection, Org), PageError> {
    let id = Uuid::parse_str(raw).map_err(|_| PageError(ApiError::NotFound))?;
    let admin = console.acting_as(state, method, ONE).await?;
    let connection = admin.require::<Connection>(state, id, Need::Reach).await?;
    let org = admin.org(state, connection.org_id).await?;
    Ok((admin, connection, org))
}

/// `POST /console/connections/{connection}/update`: as `PATCH /api/v1/oidc-connections/{id}`.
pub(super) async fn update(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<ConnectionForm>,
) -> Result<Response, PageError> {
    let (admin, connection, org) = connection_for(&state, &console, &raw, Method::PATCH).await?;
    let settings = match form.settings() {
        Ok(settings) => settings,
        Err(flash) => return Ok(redirect_with(&state, &connections_path(org.id), flash)),
    };
    let changed = connections::update(
        state.store.as_ref(),
        &state.idp,
        &state.keyring,
        &admin.ctx,
        admin.tenant_id(),
        connection.id,
        Change {
            client_id: form.client_id.clone().filter(|c| !c.trim().is_empty()),
            settings,
        },
    )
    .await
    .map_err(ApiError::from);
    match changed {
        Ok(c) => Ok(redirect_with(
            &state,
            &connections_path(org.id),
            Flash::done(format!("Saved the connection to {}.", c.issuer)),
        )),
        Err(error) => refused(&state, &console, &admin, &org, error).await,
    }
}

/// `POST /console/connections/{connection}/delete`: as `DELETE /api/v1/oidc-connections/{id}`;
/// refused (409) while mapping rules use it, the message naming them.
pub(super) async fn remove(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, .. }: ConsoleForm<IgnoredAny>,
) -> Result<Response, PageError> {
    let (admin, connection, org) = connection_for(&state, &console, &raw, Method::DELETE).await?;
    match state
        .store
        .delete_oidc_connection(&admin.ctx, admin.tenant_id(), connection.id)
        .await
    {
        Ok(_) => Ok(redirect_with(
            &state,
            &connections_path(org.id),
            Flash::done(format!("Removed the connection to {}.", connection.issuer)),
        )),
        Err(StoreError::NotFound) => Err(PageError(ApiError::NotFound)),
        Err(error) => refused(&state, &console, &admin, &org, error.into()).await,
    }
}
