//! `/console/orgs/{org}/members/{user}/explain?product=`: a member's effective permissions on a
//! product with the chain behind each one — the resolver's explanation (the JSON issue 11
//! pins: capabilities → paths, environments → access with `granted_by` and `lost`, the org role
//! and module roles with theirs), each path as a sentence ("mapped by rule eng via IdP group
//! Engineering in Acme", "inherited from Acme"). Read as `GET
//! /api/v1/orgs/{org_id}/members/{user_id}/permissions` reads it
//! (`admin::members::member_on_product`); without a product, the org level.

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::org_tabs;
use super::orgs::org_for;
use super::permission_groups::{access_label, capability_label};
use super::products::product_path;
use super::{Console, PageError};
use crate::admin::reach::Need;
use crate::authz::explain::Explanation;
use crate::domain::org::{Org, OrgRole};
use crate::domain::permission::{Capability, ModuleLevel, Role};
use crate::domain::resolve::{GrantPath, PathKind, Standing};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::TenantUser;

/// The API route whose requirement this page keeps.
const PERMISSIONS: &str = "/api/v1/orgs/{org_id}/members/{user_id}/permissions";

pub(super) fn explain_path(org_id: Uuid, user_id: Uuid) -> String {
    format!("/console/orgs/{org_id}/members/{user_id}/explain")
}

#[derive(Deserialize)]
pub(super) struct Params {
    /// A product of the org; empty or absent: the org level.
    product: Option<String>,
}

/// `GET /console/orgs/{org}/members/{user}/explain?product=`.
pub(super) async fn page(
    State(state): State<AppState>,
    console: Console,
    Path((raw, raw_user)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::GET, PERMISSIONS).await?;
    let user_id = Uuid::parse_str(&raw_user).map_err(|_| PageError(ApiError::NotFound))?;
    // The person is named on the page: only one within the caller's reach.
    let person = admin
        .require::<TenantUser>(&state, user_id, Need::Reach)
        .await?;
    let product_id = match params.product.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw_product) => Some(
            Uuid::parse_str(raw_product)
                .map_err(|_| PageError(ApiError::invalid("product", "not a product id")))?,
        ),
    };
    let products = state.store.list_products(admin.tenant_id(), org.id).await?;
    let explanation = match product_id {
        Some(product_id) => {
            let resolved = crate::admin::members::member_on_product(
                &state, &admin, org.id, user_id, product_id,
            )
            .await?;
            Explanation::from(resolved.as_ref())
        }
        None => {
            let resolved = state
                .resolver
                .org(admin.tenant_id(), user_id, org.id)
                .await?;
            Explanation::from(&resolved)
        }
    };
    let orgs = state.store.list_orgs(admin.tenant_id()).await?;
    let who = person
        .user
        .email
        .clone()
        .unwrap_or(person.user.user_name.clone());
    let product = product_id.and_then(|id| products.iter().find(|p| p.id == id));
    let body = html! {
        h1 { "Why " (who) " may what they may" }
        (org_tabs(org.id, "/members"))
        form method="get" action=(explain_path(org.id, user_id)) class="inline" {
            div class="field" {
                label for="product" { "Product" }
                select id="product" name="product" {
                    option value="" { "The organization (org role and module roles)" }
                    @for p in &products {
                        option value=(p.id) selected[Some(p.id) == product_id] { (p.name) }
                    }
                }
            }
            button type="submit" class="secondary" { "Explain" }
        }
        p class="standing" { (standing_text(explanation.standing, &org)) }
        h2 { "Organization role" }
        @match &explanation.org_role {
            Some(role) => {
                p { strong { (org_role_label(role.role)) } " in " (org.name) }
                (paths(&role.granted_by, &orgs))
            }
            None => p { "Not a member of " (org.name) "." }
        }
        @if let Some(product) = product {
            h2 { "Capabilities on " a href=(product_path(product.id)) { (product.name) } }
            div class="table-wrap" role="region" aria-label="Capabilities" tabindex="0" {
                table id="capabilities" {
                    caption class="visually-hidden" { "Capabilities and why" }
                    thead { tr { th scope="col" { "Capability" } th scope="col" { "Has it" } th scope="col" { "Because" } } }
                    tbody {
                        @for capability in Capability::ALL {
                            tr {
                                th scope="row" { (capability_label(capability)) }
                                @match explanation.capabilities.get(&capability) {
                                    Some(granted) => {
                                        td { "Yes" }
                                        td { (paths(granted, &orgs)) }
                                    }
                                    None => {
                                        td { "No" }
                                        td { span class="note" { "Nothing gives it." } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Environments" }
            div class="table-wrap" role="region" aria-label="Environments" tabindex="0" {
                table id="environments" {
                    caption class="visually-hidden" { "Access per environment and why" }
                    thead { tr {
                        th scope="col" { "Environment" } th scope="col" { "Access" }
                        th scope="col" { "Granted by" } th scope="col" { "Gives less (lost)" }
                    } }
                    tbody {
                        @for env in explanation.environments.values() {
                            tr {
                                th scope="row" { (env.name) }
                                td { (access_label(env.access)) }
                                td { (paths(&env.granted_by, &orgs)) }
                                td { (paths(&env.lost, &orgs)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Module roles" }
        @if explanation.modules.is_empty() {
            p { "None." }
        } @else {
            div class="table-wrap" role="region" aria-label="Module roles" tabindex="0" {
                table id="modules" {
                    caption class="visually-hidden" { "Module roles and why" }
                    thead { tr { th scope="col" { "Module" } th scope="col" { "Level" } th scope="col" { "Because" } } }
                    tbody {
                        @for (module, explained) in &explanation.modules {
                            tr {
                                th scope="row" { (module.as_str()) }
                                td { (level_label(explained.level)) }
                                td { (paths(&explained.granted_by, &orgs)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(console.page(&format!("{who}: permissions"), body))
}

fn standing_text(standing: Standing, org: &Org) -> String {
    match standing {
        Standing::Owner => format!("An effective Owner of {}: everything.", org.name),
        Standing::Member => format!("A member of {}.", org.name),
        Standing::NotMember => format!("Not a member of {}: nothing.", org.name),
        Standing::Inactive => "Deactivated (by the IdP): nothing until active again.".to_owned(),
    }
}

fn org_role_label(role: OrgRole) -> &'static str {
    match role {
        OrgRole::Owner => "Owner",
        OrgRole::Member => "Member",
    }
}

fn level_label(level: ModuleLevel) -> &'static str {
    match level {
        ModuleLevel::None => "None",
        ModuleLevel::Read => "Read",
        ModuleLevel::Write => "Write",
    }
}

fn paths(list: &[GrantPath], orgs: &[Org]) -> Markup {
    html! {
        @if list.is_empty() {
            span class="note" { "—" }
        } @else {
            ul class="paths" {
                @for path in list { li { (path_text(path, orgs)) } }
            }
        }
    }
}

/// One grant path as a sentence: what it grants, then how it came to be.
pub(super) fn path_text(path: &GrantPath, orgs: &[Org]) -> String {
    let org = orgs
        .iter()
        .find(|o| o.id == path.org_id)
        .map_or_else(|| path.org_id.to_string(), |o| o.name.clone());
    let what = if let Some(group) = &path.permission_group {
        Some(format!("permission group {group}"))
    } else if let Some(role) = &path.role {
        Some(match Role::parse(role) {
            Some(r) => format!("role {}", r.display_name()),
            None => format!("org role {role}"),
        })
    } else {
        path.module
            .as_ref()
            .map(|module| format!("module role {module}"))
    };
    let how = match path.kind {
        PathKind::Owner => format!("Owner of {org}"),
        PathKind::Manual => format!("given by an admin in {org}"),
        PathKind::Invite => format!("from an accepted invitation to {org}"),
        PathKind::Provisioned => format!("provisioned by the IdP in {org}"),
        PathKind::Inherited => format!("inherited from {org}"),
        PathKind::Mapped => format!(
            "mapped by rule {} via IdP group {} in {org}",
            path.rule.as_deref().unwrap_or("?"),
            path.via_group.as_deref().unwrap_or("?")
        ),
        PathKind::Default => format!("the default of {org} for members no rule maps"),
    };
    let access = path
        .access
        .map(|a| format!(" ({})", access_label(a)))
        .unwrap_or_default();
    match what {
        Some(what) => format!("{what}{access}: {how}"),
        None => format!("{how}{access}"),
    }
}
