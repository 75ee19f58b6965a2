//! `/console/orgs/{org}/audit`: the org's audit log, newest first — filtered by actor, action,
//! product and date (a GET form, so a filtered page is a link), paged, each entry's before and
//! after as pretty-printed JSON. Read by `admin::audit::read`, the query behind `GET
//! /api/v1/audit`, held to that route's requirement (the audit log).

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::layout::org_tabs;
use super::orgs::org_for;
use super::{Console, Flash, PageError};
use crate::domain::audit::{ACTIONS, AuditEvent};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::AuditQuery;

/// The API route whose requirement this page keeps.
const AUDIT: &str = "/api/v1/audit";

/// Events per page.
const PAGE: u32 = 50;

/// The actor kinds the log records.
const ACTOR_KINDS: &[(&str, &str)] = &[
    ("user", "A signed-in user"),
    ("admin_token", "An admin token"),
    ("scim_token", "A SCIM token (the IdP)"),
    ("invitee", "An invitee"),
    ("cli", "The command line"),
    ("system", "rolegate itself"),
];

/// The filters, as the form sends them: empty fields are no filter.
#[derive(Deserialize, Default)]
pub(super) struct Filters {
    #[serde(default)]
    actor_kind: String,
    #[serde(default)]
    actor_id: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    product: String,
    /// `YYYY-MM-DD`: events on or after that day (UTC).
    #[serde(default)]
    since: String,
    /// `YYYY-MM-DD`: events on or before that day (UTC).
    #[serde(default)]
    until: String,
    before: Option<Uuid>,
}

fn some(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

fn day(field: &str, value: &str, next: bool) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(value) = some(value) else {
        return Ok(None);
    };
    let date = NaiveDate::parse_from_str(&value, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid(field, "a date, YYYY-MM-DD"))?;
    // "Until" a day includes the day: events before the next one.
    let date = if next { date.succ_opt() } else { Some(date) };
    Ok(date
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc()))
}

impl Filters {
    /// The link to this filter's page `before` (the first page without it).
    fn link(&self, org_id: Uuid, before: Option<Uuid>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("actor_kind", &self.actor_kind),
            ("actor_id", &self.actor_id),
            ("action", &self.action),
            ("product", &self.product),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !value.trim().is_empty() {
                query.append_pair(key, value.trim());
            }
        }
        if let Some(before) = before {
            query.append_pair("before", &before.to_string());
        }
        format!("/console/orgs/{org_id}/audit?{}", query.finish())
    }
}

/// `GET /console/orgs/{org}/audit?actor_kind=&actor_id=&action=&product=&since=&until=&before=`.
pub(super) async fn page(
    State(state): State<AppState>,
    console: Console,
    Path(raw): Path<String>,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::GET, AUDIT).await?;
    let products = state.store.list_products(admin.tenant_id(), org.id).await?;
    let read = async {
        let product_id = match some(&filters.product) {
            None => None,
            Some(raw_product) => {
                let id = Uuid::parse_str(&raw_product)
                    .map_err(|_| ApiError::invalid("product", "not a product id"))?;
                let product = admin.product(&state, id).await?;
                if product.product.org_id != org.id {
                    return Err(ApiError::NotFound);
                }
                Some(id)
            }
        };
        let query = AuditQuery {
            org_id: Some(org.id),
            product_id,
            actor_kind: some(&filters.actor_kind),
            actor_id: some(&filters.actor_id),
            action: some(&filters.action),
            since: day("since", &filters.since, false)?,
            until: day("until", &filters.until, true)?,
            ..AuditQuery::default()
        };
        crate::admin::audit::read(&state, admin.tenant_id(), query, filters.before, Some(PAGE))
            .await
    };
    let (status, flashes, events, next) = match read.await {
        Ok((events, next)) => (StatusCode::OK, Vec::new(), events, next),
        Err(error) => {
            let status = error.status();
            if status == StatusCode::FORBIDDEN || status.is_server_error() {
                return Err(PageError(error));
            }
            (status, vec![Flash::from_error(&error)], Vec::new(), None)
        }
    };
    let body = html! {
        h1 { (org.name) ": audit log" }
        (org_tabs(org.id, "/audit"))
        form method="get" action=(format!("/console/orgs/{}/audit", org.id)) class="inline" role="search" {
            div class="field" {
                label for="actor_kind" { "Actor" }
                select id="actor_kind" name="actor_kind" {
                    option value="" { "Anyone" }
                    @for (kind, label) in ACTOR_KINDS {
                        option value=(kind) selected[filters.actor_kind == *kind] { (label) }
                    }
                }
            }
            div class="field" {
                label for="actor_id" { "Actor id" }
                input id="actor_id" type="text" name="actor_id" value=(filters.actor_id);
            }
            div class="field" {
                label for="action" { "Action" }
                select id="action" name="action" {
                    option value="" { "Any" }
                    @for action in ACTIONS {
                        option value=(action) selected[filters.action == *action] { (action) }
                    }
                }
            }
            div class="field" {
                label for="product" { "Product" }
                select id="product" name="product" {
                    option value="" { "Any" }
                    @for p in &products {
                        option value=(p.id) selected[filters.product == p.id.to_string()] { (p.name) }
                    }
                }
            }
            div class="field" {
                label for="since" { "From (UTC)" }
                input id="since" type="date" name="since" value=(filters.since);
            }
            div class="field" {
                label for="until" { "To (UTC)" }
                input id="until" type="date" name="until" value=(filters.until);
            }
            button type="submit" class="secondary" { "Filter" }
        }
        @if events.is_empty() {
            p { "No events." }
        } @else {
            div class="table-wrap" role="region" aria-label="Audit events" tabindex="0" {
                table id="audit" {
                    caption class="visually-hidden" { "Audit events, newest first" }
                    thead { tr {
                        th scope="col" { "When (UTC)" } th scope="col" { "Actor" }
                        th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Change" }
                    } }
                    tbody {
                        @for event in &events { (event_row(&filters, org.id, event)) }
                    }
                }
            }
        }
        nav class="pager" aria-label="Pages" {
            @if filters.before.is_some() {
                a href=(filters.link(org.id, None)) { "Newest" }
            }
            @if let Some(next) = next {
                a href=(filters.link(org.id, Some(next))) { "Older" }
            }
        }
    };
    Ok(console.page_with(status, &format!("{}: audit log", org.name), flashes, body))
}

fn event_row(filters: &Filters, org_id: Uuid, event: &AuditEvent) -> Markup {
    let same_actor = Filters {
        actor_kind: event.actor_kind.clone(),
        actor_id: event.actor_id.clone().unwrap_or_default(),
        action: filters.action.clone(),
        product: filters.product.clone(),
        since: filters.since.clone(),
        until: filters.until.clone(),
        before: None,
    };
    html! {
        tr {
            td { (event.created_at.format("%Y-%m-%d %H:%M:%S")) }
            td {
                (event.actor_name.as_deref().or(event.actor_id.as_deref()).unwrap_or("—"))
                br;
                span class="note" { (event.actor_kind) }
                @if event.actor_id.is_some() {
                    " · " a href=(same_actor.link(org_id, None)) { "only this actor" }
                }
            }
            td { code { (event.action) } }
            td {
                (event.target_kind)
                @if let Some(target) = &event.target_id { br; span class="note" { (target) } }
                @if let Some(warning) = &event.warning { br; span class="note" { "Warning: " (warning) } }
            }
            td {
                @if event.before.is_some() || event.after.is_some() {
                    details {
                        summary { "Before and after" }
                        h3 { "Before" }
                        pre { (pretty(event.before.as_ref())) }
                        h3 { "After" }
                        pre { (pretty(event.after.as_ref())) }
                    }
                } @else {
                    span class="note" { "—" }
                }
            }
        }
    }
}

fn pretty(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "(nothing)".to_owned(),
        Some(v) => serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()),
    }
}
