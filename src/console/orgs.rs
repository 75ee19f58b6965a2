//! `/console/orgs/{org}`: one org — its place in the tree, its sub-orgs (create, rename,
//! delete, for those allowed) and its members with their effective role and where it comes
//! from ("Owner, inherited from Acme").

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::home::{org_path, reached_orgs};
use super::layout::{org_tabs, post_form};
use super::{Console, ConsoleForm, Flash, PageError, redirect_with};
use crate::admin::AdminAuth;
use crate::admin::reach::Need;
use crate::domain::org::{Org, OrgRole};
use crate::domain::resolve::{PathKind, Resolved, Standing};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{MemberQuery, OrgMember};

/// The API routes whose requirements these pages keep.
const READ_ORG: &str = "/api/v1/orgs/{org_id}";
const CREATE_ORG: &str = "/api/v1/orgs";

/// The org a console path names, for this user acting as the API's `method` on `route`:
/// "not found" when the id is malformed, unknown, or out of reach; 403 when reached but not
/// allowed — as the API answers.
pub(super) async fn org_for(
    state: &AppState,
    console: &Console,
    raw_id: &str,
    method: Method,
    route: &str,
) -> Result<(AdminAuth, Org), PageError> {
    let id = Uuid::parse_str(raw_id).map_err(|_| PageError(ApiError::NotFound))?;
    let admin = console.acting_as(state, method, route).await?;
    let org = admin.require::<Org>(state, id, Need::Reach).await?;
    Ok((admin, org))
}

/// Each listed member's role in `org_id` as the resolver explains it (mapped and default
/// roles included, which membership rows alone do not show), by user id.
pub(super) async fn explained_roles(
    state: &AppState,
    tenant: Uuid,
    org_id: Uuid,
    members: &[OrgMember],
) -> Result<HashMap<Uuid, Resolved>, PageError> {
    let ids: Vec<Uuid> = members.iter().map(|m| m.user.id).collect();
    Ok(state
        .resolver
        .org_for_users(tenant, &ids, org_id)
        .await?
        .into_iter()
        .map(|r| (r.user_id, r))
        .collect())
}

/// "Owner, inherited from Acme" / "Member, set here" / "Owner, mapped from IdP group
/// Admins": the role and every path the resolver names for it. Without an explanation (a user
/// gone between two reads), the membership rows' effective role.
pub(super) fn role_text(
    member: &OrgMember,
    explained: Option<&Resolved>,
    org_id: Uuid,
    orgs: &[Org],
) -> String {
    let name = |id: Uuid| {
        orgs.iter()
            .find(|o| o.id == id)
            .map_or("an organization above".to_owned(), |o| o.name.clone())
    };
    let label = |role: OrgRole| match role {
        OrgRole::Owner => "Owner",
        OrgRole::Member => "Member",
    };
    let Some(resolved) = explained else {
        let effective = &member.effective;
        return if effective.from_org == org_id {
            format!("{}, set here", label(effective.role))
        } else {
            format!(
                "{}, inherited from {}",
                label(effective.role),
                name(effective.from_org)
            )
        };
    };
    if resolved.standing == Standing::Inactive {
        return "Deactivated: no permissions".to_owned();
    }
    let Some(role) = &resolved.org_role else {
        return "No role here".to_owned();
    };
    let paths: Vec<String> = role
        .granted_by
        .iter()
        .map(|path| {
            let place = if path.org_id == org_id {
                "here".to_owned()
            } else {
                format!("in {}", name(path.org_id))
            };
            match path.kind {
                PathKind::Inherited => format!("inherited from {}", name(path.org_id)),
                PathKind::Manual => format!("set {place}"),
                PathKind::Invite => format!("by invitation {place}"),
                PathKind::Provisioned => format!("provisioned by the IdP {place}"),
                PathKind::Mapped => match (&path.via_group, &path.rule) {
                    (Some(group), _) => format!("mapped from IdP group {group}"),
                    (None, Some(rule)) => format!("mapped by rule {rule}"),
                    (None, None) => "mapped from the IdP".to_owned(),
                },
                PathKind::Default => format!("the default for members {place}"),
                PathKind::Owner => "Owner".to_owned(),
            }
        })
        .collect();
    if paths.is_empty() {
        label(role.role).to_owned()
    } else {
        format!("{}, {}", label(role.role), paths.join("; "))
    }
}

/// The member's name as a list shows it: e-mail (or user name), and the display name.
pub(super) fn member_label(member: &OrgMember) -> Markup {
    let user = &member.user;
    html! {
        (user.email.as_deref().unwrap_or(&user.user_name))
        @if let Some(name) = user.display_name.as_deref().filter(|n| !n.is_empty()) {
            br; span class="note" { (name) }
        }
        @if !user.active { br; span class="note" { "deactivated" } }
    }
}

/// `GET /console/orgs/{org}`.
pub(super) async fn overview(
    State(state): State<AppState>,
    console: Console,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    render(&state, &console, &raw, StatusCode::OK, Vec::new()).await
}

async fn render(
    state: &AppState,
    console: &Console,
    raw: &str,
    status: StatusCode,
    flashes: Vec<Flash>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(state, console, raw, Method::GET, READ_ORG).await?;
    let orgs = reached_orgs(state, console).await?;
    let all = state.store.list_orgs(admin.tenant_id()).await?;
    let children: Vec<&Org> = all.iter().filter(|o| o.parent_id == Some(org.id)).collect();
    let parent = org.parent_id.and_then(|p| all.iter().find(|o| o.id == p));
    let may_create = console.may(state, Method::POST, CREATE_ORG, org.id).await;
    let may_rename = console.may(state, Method::PATCH, READ_ORG, org.id).await;
    let mut deletable = Vec::new();
    for child in &children {
        deletable.push(console.may(state, Method::DELETE, READ_ORG, child.id).await);
    }
    let members = state
        .store
        .list_members(
            admin.tenant_id(),
            org.id,
            &MemberQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await?;
    let roles = explained_roles(state, admin.tenant_id(), org.id, &members).await?;
    let body = html! {
        h1 { (org.name) }
        @if let Some(parent) = parent {
            p class="note" { "Sub-organization of " a href=(org_path(parent.id)) { (parent.name) } }
        } @else {
            p class="note" { "Root organization" }
        }
        (org_tabs(org.id, ""))
        @if may_rename {
            (post_form(console, &format!("/console/orgs/{}/rename", org.id), "inline", html! {
                div class="field" {
                    label for="org-name" { "Name" }
                    input id="org-name" type="text" name="name" value=(org.name) required maxlength="200";
                }
                button type="submit" class="secondary" { "Rename" }
            }))
        }
        h2 { "Sub-organizations" }
        @if children.is_empty() {
            p { "None." }
        } @else {
            ul class="tree" {
                @for (child, may_delete) in children.iter().zip(&deletable) {
                    li {
                        @if orgs.iter().any(|o| o.id == child.id) {
                            a href=(org_path(child.id)) { (child.name) }
                        } @else {
                            (child.name)
                        }
                        @if *may_delete {
                            (post_form(console, &format!("/console/orgs/{}/delete", child.id), "inline", html! {
                                button type="submit" class="danger" aria-label=(format!("Delete {}", child.name)) { "Delete" }
                            }))
                        }
                    }
                }
            }
        }
        @if may_create {
            h3 { "New sub-organization" }
            (post_form(console, &format!("/console/orgs/{}/sub-orgs", org.id), "inline", html! {
                div class="field" {
                    label for="sub-name" { "Name" }
                    input id="sub-name" type="text" name="name" required maxlength="200";
                }
                button type="submit" { "Create" }
            }))
        }
        h2 { "Members" }
        p { a href=(format!("/console/orgs/{}/members", org.id)) { "Manage members and invitations" } }
        div class="table-wrap" role="region" aria-label="Members" tabindex="0" {
            table {
                caption class="visually-hidden" { "Members of " (org.name) }
                thead { tr { th scope="col" { "Member" } th scope="col" { "Role" } } }
                tbody {
                    @for member in &members {
                        tr {
                            td { (member_label(member)) }
                            td { (role_text(member, roles.get(&member.user.id), org.id, &all)) }
                        }
                    }
                }
            }
        }
        @if members.len() == 50 {
            p class="note" { "The first 50 members; the members page searches and pages through all of them." }
        }
    };
    Ok(console.page_with(status, &org.name, flashes, body))
}

#[derive(Deserialize)]
pub(super) struct NameForm {
    name: String,
}

/// `POST /console/orgs/{org}/sub-orgs`: as `POST /api/v1/orgs`.
pub(super) async fn create_sub_org(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<NameForm>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::POST, CREATE_ORG).await?;
    match crate::admin::orgs::create_sub_org(&state, &admin, org.id, &form.name).await {
        Ok(created) => Ok(redirect_with(
            &state,
            &org_path(org.id),
            Flash::done(format!("Created {}.", created.name)),
        )),
        Err(error) => refused(&state, &console, &raw, error).await,
    }
}

/// `POST /console/orgs/{org}/rename`: as `PATCH /api/v1/orgs/{org_id}`.
pub(super) async fn rename(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<NameForm>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::PATCH, READ_ORG).await?;
    match crate::admin::orgs::rename(&state, &admin, org.id, &form.name).await {
        Ok(renamed) => Ok(redirect_with(
            &state,
            &org_path(org.id),
            Flash::done(format!("Renamed to {}.", renamed.name)),
        )),
        Err(error) => refused(&state, &console, &raw, error).await,
    }
}

#[derive(Deserialize)]
pub(super) struct Empty {}

/// `POST /console/orgs/{org}/delete`: as `DELETE /api/v1/orgs/{org_id}`; back to the parent.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, .. }: ConsoleForm<Empty>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::DELETE, READ_ORG).await?;
    let back = org.parent_id.map_or("/console/".to_owned(), org_path);
    match state
        .store
        .delete_org(&admin.ctx, admin.tenant_id(), org.id)
        .await
    {
        Ok(()) => Ok(redirect_with(
            &state,
            &back,
            Flash::done(format!("Deleted {}.", org.name)),
        )),
        Err(error) => Ok(redirect_with(
            &state,
            &back,
            Flash::from_error(&ApiError::from(error)),
        )),
    }
}

/// A refused change shown on the org's page, re-rendered with the API's status and message;
/// a refusal to act at all (403, 404) is the error page.
async fn refused(
    state: &AppState,
    console: &Console,
    raw: &str,
    error: ApiError,
) -> Result<Response, PageError> {
    match error.status() {
        StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => Err(PageError(error)),
        s if s.is_server_error() => Err(PageError(error)),
        status => render(state, console, raw, status, vec![Flash::from_error(&error)]).await,
    }
}
