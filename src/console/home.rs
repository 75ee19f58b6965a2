//! `/console/`: the orgs the signed-in user reaches, as the tree they form.

use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};
use uuid::Uuid;

use super::{Console, PageError};
use crate::domain::org::Org;
use crate::state::AppState;

/// `GET /console/`.
pub(super) async fn home(
    State(state): State<AppState>,
    console: Console,
) -> Result<Response, PageError> {
    let orgs = reached_orgs(&state, &console).await?;
    let body = html! {
        h1 { "Organizations" }
        @if orgs.is_empty() {
            p { "You are not a member of any organization." }
        } @else {
            p class="note" { "The organizations you are a member of, and the sub-organizations below them." }
            (tree(&orgs))
        }
    };
    Ok(console.page("Organizations", body))
}

/// The tenant's orgs this user reaches (as `GET /api/v1/orgs` lists them), root first.
pub(super) async fn reached_orgs(
    state: &AppState,
    console: &Console,
) -> Result<Vec<Org>, PageError> {
    let admin = console
        .acting_as(state, Method::GET, "/api/v1/orgs")
        .await?;
    let all = state.store.list_orgs(admin.tenant_id()).await?;
    let reach = admin.reached_orgs(state).await?;
    Ok(all.into_iter().filter(|o| reach.contains(o.id)).collect())
}

/// The orgs as nested lists: each top is an org whose parent is not among them.
pub(super) fn tree(orgs: &[Org]) -> Markup {
    let tops: Vec<&Org> = orgs
        .iter()
        .filter(|o| o.parent_id.is_none_or(|p| !orgs.iter().any(|x| x.id == p)))
        .collect();
    html! {
        ul class="tree" {
            @for org in tops { (branch(org, orgs, 0)) }
        }
    }
}

fn branch(org: &Org, orgs: &[Org], depth: usize) -> Markup {
    let children: Vec<&Org> = orgs
        .iter()
        .filter(|o| o.parent_id == Some(org.id))
        .collect();
    html! {
        li {
            a href=(org_path(org.id)) { (org.name) }
            @if org.is_root() { " " span class="note" { "(root)" } }
            // Deep trees stop somewhere: the org's own page lists its sub-orgs.
            @if !children.is_empty() && depth < 32 {
                ul {
                    @for child in children { (branch(child, orgs, depth + 1)) }
                }
            }
        }
    }
}

pub(super) fn org_path(id: Uuid) -> String {
    format!("/console/orgs/{id}")
}
