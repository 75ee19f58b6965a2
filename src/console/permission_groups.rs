//! A product's permission groups: the list and the built-in roles' matrix on the product page,
//! and `/console/permission-groups/{group}`, the editor — capabilities as checkboxes and the
//! environment access matrix (one row per environment, restricted ones marked, plus the
//! access new environments get); create, rename, delete (moving the grants). Built-in roles
//! (seed 002: Viewer < Editor < Publisher < Project Owner < Administrator) are shown read-only.
//! Saving and deleting call `admin::products::{save_group, delete_permission_group}`, as the API does.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::post_form;
use super::products::{may_product, product_for, product_path, shown};
use super::{Console, ConsoleForm, Flash, PageError, redirect_with};
use crate::admin::AdminAuth;
use crate::admin::products::{GroupBody, delete_permission_group, save_group};
use crate::admin::reach::{Need, ProductGroup};
use crate::domain::permission::{AccessRule, Capability, EnvAccess};
use crate::domain::product::{Environment, PermissionGroup, ProductDetail};
use crate::error::ApiError;
use crate::state::AppState;

/// The API routes whose requirements these pages keep.
const GROUPS: &str = "/api/v1/products/{product_id}/permission-groups";
const GROUP: &str = "/api/v1/permission-groups/{group_id}";

const LEVELS: [EnvAccess; 4] = [
    EnvAccess::None,
    EnvAccess::ReadOnly,
    EnvAccess::Edit,
    EnvAccess::Full,
];

pub(super) fn group_path(group_id: Uuid) -> String {
    format!("/console/permission-groups/{group_id}")
}

pub(super) fn capability_label(capability: Capability) -> &'static str {
    match capability {
        Capability::ManageMembers => "Manage members",
        Capability::ManageResources => "Manage resources",
        Capability::ManageEnvironments => "Manage environments",
        Capability::ManageIntegrations => "Manage integrations",
        Capability::ManageEvents => "Manage events",
        Capability::ResetResults => "Reset results",
        Capability::ViewSdkKey => "View SDK key",
        Capability::ManageOrgSettings => "Manage organization settings",
    }
}

/// The capability's name in the API (`manage_members`): the form's value.
fn capability_key(capability: Capability) -> String {
    serde_json::to_value(capability)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(super) fn access_label(access: EnvAccess) -> &'static str {
    match access {
        EnvAccess::None => "No access",
        EnvAccess::ReadOnly => "Read-only",
        EnvAccess::Edit => "Edit",
        EnvAccess::Full => "Full access",
    }
}

/// The product page's part: its groups (each to its editor) with their access per environment,
/// a form for a new one, and the built-in roles' matrix.
pub(super) async fn section(state: &AppState, console: &Console, detail: &ProductDetail) -> Markup {
    let product = &detail.product;
    let may_create = may_product(state, console, Method::POST, GROUPS, product.id).await;
    let (roles, groups): (Vec<&PermissionGroup>, Vec<&PermissionGroup>) = detail
        .permission_groups
        .iter()
        .partition(|g| g.role.is_some());
    html! {
        h2 id="permission-groups" { "Permission groups" }
        (matrix(&groups, &detail.environments, true, "Permission groups of this product"))
        @if groups.is_empty() { p { "No permission groups." } }
        @if may_create {
            h3 { "New permission group" }
            (post_form(console, &format!("{}/permission-groups", product_path(product.id)), "inline", html! {
                div class="field" {
                    label for="group-name" { "Name" }
                    input id="group-name" type="text" name="name" required maxlength="100";
                }
                button type="submit" { "Create group" }
            }))
        }
        h2 id="roles" { "Built-in roles" }
        p class="note" { "Read-only. Each role includes the one before it: Viewer < Editor < Publisher < Project Owner < Administrator." }
        (matrix(&roles, &detail.environments, false, "Built-in roles"))
    }
}

/// Groups as rows: the capabilities ticked, the access in each environment.
fn matrix(groups: &[&PermissionGroup], envs: &[Environment], links: bool, caption: &str) -> Markup {
    html! {
        div class="table-wrap" role="region" aria-label=(caption) tabindex="0" {
            table class="matrix" {
                caption class="visually-hidden" { (caption) }
                thead { tr {
                    th scope="col" { "Group" }
                    @for capability in Capability::ALL { th scope="col" { (capability_label(capability)) } }
                    @for env in envs {
                        th scope="col" { (env.name) @if env.restricted { " (restricted)" } }
                    }
                } }
                tbody {
                    @for group in groups {
                        tr {
                            th scope="row" {
                                @if links { a href=(group_path(group.id)) { (group.name) } } @else { (group.name) }
                                @if group.preset { br; span class="note" { "preset" } }
                            }
                            @for capability in Capability::ALL {
                                td {
                                    @if group.permissions.capabilities.contains(&capability) {
                                        span aria-label="yes" { "✓" }
                                    } @else {
                                        span aria-label="no" { "—" }
                                    }
                                }
                            }
                            @for env in envs {
                                td { (access_label(group.permissions.access.access_to(&env.as_ref()))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The group a console path names, with its product, read as `GET {GROUPS}` reads them.
async fn group_for(
    state: &AppState,
    console: &Console,
    raw: &str,
) -> Result<(AdminAuth, ProductDetail, PermissionGroup), PageError> {
    let id = Uuid::parse_str(raw).map_err(|_| PageError(ApiError::NotFound))?;
    let admin = console.acting_as(state, Method::GET, GROUPS).await?;
    let found = admin
        .require::<ProductGroup>(state, id, Need::Reach)
        .await?;
    let detail = admin
        .require::<ProductDetail>(state, found.product.id, Need::Reach)
        .await?;
    let group = detail
        .permission_groups
        .iter()
        .find(|g| g.id == id)
        .cloned()
        .ok_or(PageError(ApiError::NotFound))?;
    Ok((admin, detail, group))
}

/// Whether this user may `method` the group, as the API's `{GROUP}` route would allow.
async fn may_group(state: &AppState, console: &Console, method: Method, group_id: Uuid) -> bool {
    match console.acting_as(state, method, GROUP).await {
        Ok(admin) => admin
            .require::<ProductGroup>(state, group_id, Need::Reach)
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// `GET /console/permission-groups/{group}`.
pub(super) async fn page(
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
    let (_, detail, group) = group_for(state, console, raw).await?;
    let editable = !group.read_only && may_group(state, console, Method::PUT, group.id).await;
    let deletable = !group.read_only && may_group(state, console, Method::DELETE, group.id).await;
    let path = group_path(group.id);
    let others: Vec<&PermissionGroup> = detail
        .permission_groups
        .iter()
        .filter(|g| g.role.is_none() && g.id != group.id)
        .collect();
    let fields = editor_fields(&group, &detail.environments, editable);
    let body = html! {
        h1 { (group.name) }
        p class="note" {
            "Permission group of " a href=(product_path(detail.product.id)) { (detail.product.name) }
            @if let Some(role) = group.role {
                " · built-in role " (role.display_name()) " (seed 002), read-only"
            } @else if group.preset {
                " · preset (editable)"
            }
        }
        @if editable {
            (post_form(console, &path, "stack wide", fields))
        } @else {
            div class="stack wide" { (fields) }
        }
        @if deletable {
            h2 { "Delete this group" }
            p class="note" { "Members granted this group keep their access only if you move them to another group." }
            (post_form(console, &format!("{path}/delete"), "inline", html! {
                div class="field" {
                    label for="reassign" { "Move its members to" }
                    select id="reassign" name="reassign_to" {
                        option value="" { "Nobody (only when no one has it)" }
                        @for other in &others { option value=(other.id) { (other.name) } }
                    }
                }
                button type="submit" class="danger" { "Delete group" }
            }))
        }
    };
    Ok(console.page_with(status, &group.name, flashes, body))
}

/// The editor's fields: name, capabilities, the access matrix; disabled when read-only.
fn editor_fields(group: &PermissionGroup, envs: &[Environment], editable: bool) -> Markup {
    let rule = &group.permissions.access;
    html! {
        div class="field" {
            label for="name" { "Name" }
            input id="name" type="text" name="name" value=(group.name) required maxlength="100" disabled[!editable];
        }
        fieldset {
            legend { "Capabilities" }
            @for capability in Capability::ALL {
                @let id = format!("cap-{}", capability_key(capability));
                div {
                    input id=(id) type="checkbox" name="capability" value=(capability_key(capability))
                        checked[group.permissions.capabilities.contains(&capability)] disabled[!editable];
                    label class="inline" for=(id) { (capability_label(capability)) }
                }
            }
        }
        div class="table-wrap" role="region" aria-label="Access per environment" tabindex="0" {
            table class="access" {
                caption { "Access per environment" }
                thead { tr {
                    th scope="col" { "Environment" }
                    @for level in LEVELS { th scope="col" { (access_label(level)) } }
                    th scope="col" { "Same as default" }
                } }
                tbody {
                    (access_row("default_access", "New environments (default)", Some(rule.default), false, editable))
                    (access_row("restricted_access", "New restricted environments", rule.restricted, true, editable))
                    @for env in envs {
                        @let label = if env.restricted { format!("{} (restricted)", env.name) } else { env.name.clone() };
                        (access_row(&format!("env.{}", env.id), &label, Some(rule.access_to(&env.as_ref())), false, editable))
                    }
                }
            }
        }
        @if editable { div { button type="submit" { "Save group" } } }
    }
}

/// One row of radio buttons; `inherit` adds "Same as default" (no value of its own).
fn access_row(
    name: &str,
    label: &str,
    current: Option<EnvAccess>,
    inherit: bool,
    editable: bool,
) -> Markup {
    html! {
        tr {
            th scope="row" { (label) }
            @for level in LEVELS {
                td {
                    input type="radio" name=(name) value=(level.as_str())
                        aria-label=(format!("{label}: {}", access_label(level)))
                        checked[current == Some(level)] disabled[!editable];
                }
            }
            td {
                @if inherit {
                    input type="radio" name=(name) value=""
                        aria-label=(format!("{label}: same as default"))
                        checked[current.is_none()] disabled[!editable];
                }
            }
        }
    }
}

/// The editor's form as the API's body: an environment whose choice is what the defaults give
/// it is not stored as an override, so it follows the defaults when they change.
fn group_body(fields: &[(String, String)], envs: &[Environment]) -> Result<GroupBody, ApiError> {
    let mut name = String::new();
    let mut capabilities = BTreeSet::new();
    let mut default_access = EnvAccess::None;
    let mut restricted_access = None;
    let mut chosen = BTreeMap::new();
    let level = |field: &str, value: &str| {
        EnvAccess::parse(value)
            .ok_or_else(|| ApiError::invalid(field, "none, read_only, edit or full"))
    };
    for (key, value) in fields {
        match key.as_str() {
            "name" => name.clone_from(value),
            "capability" => {
                let capability = Capability::ALL
                    .into_iter()
                    .find(|c| capability_key(*c) == *value)
                    .ok_or_else(|| ApiError::invalid("capabilities", "not a capability"))?;
                capabilities.insert(capability);
            }
            "default_access" => default_access = level(key, value)?,
            "restricted_access" if value.is_empty() => restricted_access = None,
            "restricted_access" => restricted_access = Some(level(key, value)?),
            other => {
                if let Some(id) = other.strip_prefix("env.") {
                    let id = Uuid::parse_str(id)
                        .map_err(|_| ApiError::invalid("environments", "not an environment id"))?;
                    chosen.insert(id, level("environments", value)?);
                }
            }
        }
    }
    let base = AccessRule {
        default: default_access,
        restricted: restricted_access,
        overrides: BTreeMap::new(),
    };
    let environments = chosen
        .into_iter()
        .filter(|(id, access)| {
            envs.iter()
                .find(|e| e.id == *id)
                .is_none_or(|env| base.access_to(&env.as_ref()) != *access)
        })
        .collect();
    Ok(GroupBody {
        name,
        capabilities,
        default_access,
        restricted_access,
        environments,
    })
}

/// `POST /console/permission-groups/{group}`: as `PUT /api/v1/permission-groups/{group_id}`.
pub(super) async fn save(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let id = Uuid::parse_str(&raw).map_err(|_| PageError(ApiError::NotFound))?;
    let admin = console.acting_as(&state, Method::PUT, GROUP).await?;
    let group = admin
        .require::<ProductGroup>(&state, id, Need::Reach)
        .await?;
    let envs = state
        .store
        .get_product(admin.tenant_id(), group.product.id)
        .await?
        .environments;
    let saved = match group_body(&form, &envs) {
        Ok(body) => save_group(&state, &admin, group.product.id, Some(&group), body).await,
        Err(error) => Err(error),
    };
    match saved {
        Ok(saved) => Ok(redirect_with(
            &state,
            &group_path(saved.id),
            Flash::done(format!("Saved {}.", saved.name)),
        )),
        Err(error) => {
            let (status, flashes) = shown(error)?;
            render(&state, &console, &raw, status, flashes).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct NewGroupForm {
    name: String,
}

/// `POST /console/products/{product}/permission-groups`: as `POST /api/v1/products/{product_id}/permission-groups`,
/// with nothing granted yet; on to its editor.
pub(super) async fn create(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<NewGroupForm>,
) -> Result<Response, PageError> {
    let (admin, detail) = product_for(&state, &console, &raw, Method::POST, GROUPS).await?;
    let body = GroupBody {
        name: form.name,
        capabilities: BTreeSet::new(),
        default_access: EnvAccess::None,
        restricted_access: None,
        environments: BTreeMap::new(),
    };
    match save_group(&state, &admin, detail.product.id, None, body).await {
        Ok(group) => Ok(redirect_with(
            &state,
            &group_path(group.id),
            Flash::done(format!(
                "Created {}: choose what it gives, then save.",
                group.name
            )),
        )),
        Err(error) => {
            let (status, flashes) = shown(error)?;
            super::products::render(&state, &console, &raw, status, flashes).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct DeleteForm {
    #[serde(default)]
    reassign_to: String,
}

/// `POST /console/permission-groups/{group}/delete`: as `DELETE /api/v1/permission-groups/{group_id}?reassign_to=`.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<DeleteForm>,
) -> Result<Response, PageError> {
    let id = Uuid::parse_str(&raw).map_err(|_| PageError(ApiError::NotFound))?;
    let admin = console.acting_as(&state, Method::DELETE, GROUP).await?;
    let group = admin
        .require::<ProductGroup>(&state, id, Need::Reach)
        .await?;
    let reassign_to = match form.reassign_to.trim() {
        "" => Ok(None),
        raw_target => Uuid::parse_str(raw_target)
            .map(Some)
            .map_err(|_| ApiError::invalid("reassign_to", "not a permission group id")),
    };
    let deleted = match reassign_to {
        Ok(target) => delete_permission_group(&state, &admin, &group, target).await,
        Err(error) => Err(error),
    };
    match deleted {
        Ok(moved) => Ok(redirect_with(
            &state,
            &format!("{}#permission-groups", product_path(group.product.id)),
            Flash::done(format!("Group deleted; {moved} grants moved.")),
        )),
        Err(error) => {
            let (status, flashes) = shown(error)?;
            render(&state, &console, &raw, status, flashes).await
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn env(n: u128, restricted: bool) -> Environment {
        Environment {
            id: Uuid::from_u128(n),
            product_id: Uuid::nil(),
            name: format!("env {n}"),
            restricted,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_choices_the_defaults_do_not_give_become_overrides() {
        let (dev, prod) = (env(1, false), env(2, true));
        let body = group_body(
            &pairs(&[
                ("csrf", "x"),
                ("name", "QA"),
                ("capability", "view_sdk_key"),
                ("default_access", "read_only"),
                ("restricted_access", "edit"),
                ("env.00000000-0000-0000-0000-000000000001", "read_only"),
                ("env.00000000-0000-0000-0000-000000000002", "full"),
            ]),
            &[dev, prod.clone()],
        )
        .expect("body");
        assert_eq!(body.name, "QA");
        assert_eq!(body.capabilities, BTreeSet::from([Capability::ViewSdkKey]));
        assert_eq!(body.default_access, EnvAccess::ReadOnly);
        assert_eq!(body.restricted_access, Some(EnvAccess::Edit));
        assert_eq!(
            body.environments,
            BTreeMap::from([(prod.id, EnvAccess::Full)])
        );
    }

    #[test]
    fn same_as_default_and_bad_values() {
        let body = group_body(
            &pairs(&[("default_access", "full"), ("restricted_access", "")]),
            &[],
        )
        .expect("body");
        assert_eq!(body.restricted_access, None);
        assert!(group_body(&pairs(&[("default_access", "root")]), &[]).is_err());
        assert!(group_body(&pairs(&[("capability", "fly")]), &[]).is_err());
        assert!(group_body(&pairs(&[("env.nope", "full")]), &[]).is_err());
    }
}
