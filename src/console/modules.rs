//! `/console/orgs/{org}/members/{user}/modules`: a member's module roles in an org (seed 003) —
//! per module a select none / read / write, the level set here; beside it the level in effect
//! and why (a mapping, an org above). Saved by the store call `PUT
//! /api/v1/orgs/{org_id}/members/{user_id}/modules` makes, held to its requirement.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::Response;
use maud::html;
use uuid::Uuid;

use super::explain::{explain_path, path_text};
use super::layout::{org_tabs, post_form};
use super::orgs::org_for;
use super::{Console, ConsoleForm, Flash, PageError, redirect_with};
use crate::admin::reach::Need;
use crate::domain::permission::{Module, ModuleLevel};
use crate::domain::resolve::PathKind;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::TenantUser;

/// The API routes whose requirements this page keeps.
const MEMBERS: &str = "/api/v1/orgs/{org_id}/members";
const MODULES: &str = "/api/v1/orgs/{org_id}/members/{user_id}/modules";

const LEVELS: [ModuleLevel; 3] = [ModuleLevel::None, ModuleLevel::Read, ModuleLevel::Write];

fn modules_path(org_id: Uuid, user_id: Uuid) -> String {
    format!("/console/orgs/{org_id}/members/{user_id}/modules")
}

fn module_label(module: Module) -> &'static str {
    match module {
        Module::FeatureFlags => "Feature flags",
        Module::Experiments => "Experiments",
        Module::Audiences => "Audiences",
        Module::Environments => "Environments",
        Module::Members => "Members",
        Module::SdkKeys => "SDK keys",
        Module::Integrations => "Integrations",
        Module::AuditLog => "Audit log",
        Module::Billing => "Billing",
        Module::Settings => "Settings",
    }
}

fn level_label(level: ModuleLevel) -> &'static str {
    match level {
        ModuleLevel::None => "None",
        ModuleLevel::Read => "Read",
        ModuleLevel::Write => "Write",
    }
}

/// `GET /console/orgs/{org}/members/{user}/modules`.
pub(super) async fn page(
    State(state): State<AppState>,
    console: Console,
    Path((raw, raw_user)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::GET, MEMBERS).await?;
    let user_id = Uuid::parse_str(&raw_user).map_err(|_| PageError(ApiError::NotFound))?;
    let person = admin
        .require::<TenantUser>(&state, user_id, Need::Reach)
        .await?;
    let may_edit = console.may(&state, Method::PUT, MODULES, org.id).await;
    let resolved = state
        .resolver
        .org(admin.tenant_id(), user_id, org.id)
        .await?;
    let orgs = state.store.list_orgs(admin.tenant_id()).await?;
    // What an admin set on this membership: the manual path of this org, if any.
    let set_here = |module: Module| {
        resolved
            .modules
            .get(&module)
            .filter(|m| {
                m.granted_by
                    .iter()
                    .any(|p| p.kind == PathKind::Manual && p.org_id == org.id)
            })
            .map_or(ModuleLevel::None, |m| m.level)
    };
    let who = person
        .user
        .email
        .clone()
        .unwrap_or(person.user.user_name.clone());
    let table = html! {
        div class="table-wrap" role="region" aria-label="Module roles" tabindex="0" {
            table id="modules" {
                caption class="visually-hidden" { "Module roles of " (who) }
                thead { tr {
                    th scope="col" { "Module" }
                    th scope="col" { "Set here" }
                    th scope="col" { "In effect" }
                } }
                tbody {
                    @for module in Module::ALL {
                        @let id = format!("module-{}", module.as_str());
                        tr {
                            th scope="row" {
                                @if may_edit { label for=(id) { (module_label(module)) } } @else { (module_label(module)) }
                            }
                            td {
                                @if may_edit {
                                    select id=(id) name=(format!("module.{}", module.as_str())) {
                                        @for level in LEVELS {
                                            option value=(level.as_str()) selected[set_here(module) == level] { (level_label(level)) }
                                        }
                                    }
                                } @else {
                                    (level_label(set_here(module)))
                                }
                            }
                            td {
                                @match resolved.modules.get(&module) {
                                    Some(explained) => {
                                        (level_label(explained.level))
                                        ul class="paths" {
                                            @for path in &explained.granted_by { li { (path_text(path, &orgs)) } }
                                        }
                                    }
                                    None => span class="note" { "None" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        h1 { (who) ": module roles" }
        (org_tabs(org.id, "/members"))
        p class="note" {
            "Seed 003's module roles in " (org.name) ". None means nothing set here: the level comes from a mapping or an org above, if any. "
            a href=(explain_path(org.id, user_id)) { "Explain all permissions" }
        }
        @if may_edit {
            (post_form(&console, &modules_path(org.id, user_id), "stack wide", html! {
                (table)
                div { button type="submit" { "Save module roles" } }
            }))
        } @else {
            (table)
        }
    };
    Ok(console.page(&format!("{who}: module roles"), body))
}

/// `POST /console/orgs/{org}/members/{user}/modules`: as `PUT
/// /api/v1/orgs/{org_id}/members/{user_id}/modules` with every module named.
pub(super) async fn save(
    State(state): State<AppState>,
    Path((raw, raw_user)): Path<(String, String)>,
    ConsoleForm { console, form }: ConsoleForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::PUT, MODULES).await?;
    let user_id = Uuid::parse_str(&raw_user).map_err(|_| PageError(ApiError::NotFound))?;
    let mut levels = BTreeMap::new();
    for (key, value) in &form {
        let Some(name) = key.strip_prefix("module.") else {
            continue;
        };
        let module = Module::parse(name).ok_or_else(|| ApiError::invalid(key, "not a module"))?;
        let level = ModuleLevel::parse(value)
            .ok_or_else(|| ApiError::invalid(key, "none, read or write"))?;
        levels.insert(module, level);
    }
    let path = modules_path(org.id, user_id);
    match state
        .store
        .set_module_roles(&admin.ctx, admin.tenant_id(), org.id, user_id, &levels)
        .await
    {
        Ok(()) => Ok(redirect_with(
            &state,
            &path,
            Flash::done("Module roles saved."),
        )),
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.status();
            if matches!(
                status,
                axum::http::StatusCode::NOT_FOUND | axum::http::StatusCode::FORBIDDEN
            ) || status.is_server_error()
            {
                return Err(PageError(error));
            }
            Ok(redirect_with(&state, &path, Flash::from_error(&error)))
        }
    }
}
