//! `/console/orgs/{org}/members`: search and page the org's members; change a member's org
//! role ("None / inherit" in sub-orgs) and remove them; invite team members (comma-separated
//! addresses with an initial product permission group or role) with a result per address;
//! pending invitations with resend and revoke. Each action keeps the requirement of its API
//! route, and a refusal (the Owner rule's 409 among them) is shown on the page.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{org_tabs, post_form};
use super::orgs::{explained_roles, member_label, org_for, role_text};
use super::{Console, ConsoleForm, Flash, PageError, redirect_with};
use crate::admin::invitations::{AddressResult, InviteRequest};
use crate::admin::reach::Need;
use crate::domain::Source;
use crate::domain::invitation::{Invitation, InvitationStatus};
use crate::domain::org::{Org, OrgRole};
use crate::domain::product::{PermissionGroup, ProductDetail};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{GrantedGroup, MemberQuery, OwnerRule, ScimHeld};

/// The API routes whose requirements these pages keep.
const LIST: &str = "/api/v1/orgs/{org_id}/members";
const MEMBER: &str = "/api/v1/orgs/{org_id}/members/{user_id}";
const INVITE: &str = "/api/v1/orgs/{org_id}/invitations";
const RESEND: &str = "/api/v1/invitations/{invitation_id}/resend";
const REVOKE: &str = "/api/v1/invitations/{invitation_id}";
const PRODUCT_MEMBER: &str = "/api/v1/products/{product_id}/members/{user_id}";

/// Members per page.
const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub(super) struct ListParams {
    q: Option<String>,
    after: Option<Uuid>,
    /// The product whose permission groups the list shows (default: the org's first).
    product: Option<Uuid>,
}

fn members_path(org_id: Uuid) -> String {
    format!("/console/orgs/{org_id}/members")
}

/// `GET /console/orgs/{org}/members?q=&after=`.
pub(super) async fn page(
    State(state): State<AppState>,
    console: Console,
    Path(raw): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Response, PageError> {
    render(&state, &console, &raw, &params, Outcome::default()).await
}

/// What the page shows beyond the lists: the status, messages, the invite's results.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    flashes: Vec<Flash>,
    results: Option<Vec<AddressResult>>,
    /// What was typed into the invite form, kept when it is shown again.
    typed: Option<String>,
}

async fn render(
    state: &AppState,
    console: &Console,
    raw: &str,
    params: &ListParams,
    outcome: Outcome,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(state, console, raw, Method::GET, LIST).await?;
    let all = state.store.list_orgs(admin.tenant_id()).await?;
    let search = params.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let mut members = state
        .store
        .list_members(
            admin.tenant_id(),
            org.id,
            &MemberQuery {
                search: search.map(str::to_owned),
                after: params.after,
                user_id: None,
                limit: PAGE + 1,
            },
        )
        .await?;
    let more = members.len() > PAGE as usize;
    members.truncate(PAGE as usize);
    let next = more.then(|| members.last().map(|m| m.user.id)).flatten();
    let roles = explained_roles(state, admin.tenant_id(), org.id, &members).await?;
    let may_manage = console.may(state, Method::PUT, MEMBER, org.id).await;
    let may_invite = console.may(state, Method::POST, INVITE, org.id).await;
    let invitations = if console.may(state, Method::GET, INVITE, org.id).await {
        let mut pending = state
            .store
            .list_invitations(admin.tenant_id(), org.id)
            .await?;
        pending.retain(|i| i.status == InvitationStatus::Pending);
        Some(pending)
    } else {
        None
    };
    let access = if may_invite {
        access_choices(state, &admin, &org).await?
    } else {
        Vec::new()
    };
    let products = state.store.list_products(admin.tenant_id(), org.id).await?;
    let selected = params
        .product
        .and_then(|id| products.iter().find(|p| p.id == id))
        .or(products.first());
    let product_access = match selected {
        Some(product) => {
            Some(product_access(state, console, &admin, product.id, search, params.after).await?)
        }
        None => None,
    };
    let path = members_path(org.id);
    let body = html! {
        h1 { (org.name) ": members" }
        (org_tabs(org.id, "/members"))
        form method="get" action=(path) class="inline" role="search" {
            @if let Some(product) = params.product { input type="hidden" name="product" value=(product); }
            div class="field" {
                label for="q" { "Search by e-mail" }
                input id="q" type="search" name="q" value=(search.unwrap_or("")) data-filter="members";
            }
            button type="submit" class="secondary" { "Search" }
            span id="members-count" class="note" aria-live="polite" {}
        }
        @if let (Some(product), false) = (selected, products.is_empty()) {
            form method="get" action=(path) class="inline" {
                @if let Some(q) = search { input type="hidden" name="q" value=(q); }
                div class="field" {
                    label for="product" { "Permission groups of product" }
                    select id="product" name="product" {
                        @for p in &products {
                            option value=(p.id) selected[p.id == product.id] { (p.name) }
                        }
                    }
                }
                button type="submit" class="secondary" { "Show" }
            }
        }
        // Focusable and named: keyboard users scroll it sideways on a narrow screen.
        div class="table-wrap" role="region" aria-label="Members" tabindex="0" {
            table id="members" {
                caption class="visually-hidden" { "Members of " (org.name) }
                thead { tr {
                    th scope="col" { "Member" }
                    th scope="col" { "Role" }
                    @if let (Some(product), Some(_)) = (selected, &product_access) {
                        th scope="col" { "Permission group on " (product.name) }
                    }
                    @if may_manage { th scope="col" { "Change role" } th scope="col" { "Remove" } }
                } }
                tbody {
                    @for member in &members {
                        tr {
                            td {
                                (member_label(member))
                                br;
                                a class="note" href=(format!("{path}/{}/explain", member.user.id)) { "Explain permissions" }
                                " · "
                                a class="note" href=(format!("{path}/{}/modules", member.user.id)) { "Module roles" }
                            }
                            td { (role_text(member, roles.get(&member.user.id), org.id, &all)) }
                            @if let Some(access) = &product_access {
                                td { (access.cell(console, &org, member.user.id)) }
                            }
                            @if may_manage {
                                td { (role_form(console, &org, member.user.id, member.membership_role, member.effective.direct)) }
                                td {
                                    @if member.effective.direct {
                                        (post_form(console, &format!("{path}/{}/remove", member.user.id), "", html! {
                                            button type="submit" class="danger" aria-label=(format!("Remove {}", member.user.user_name)) { "Remove" }
                                        }))
                                    } @else {
                                        span class="note" { "Inherited: remove in the parent" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if members.is_empty() { p { "No members match." } }
        nav class="pager" aria-label="Pages" {
            @if params.after.is_some() {
                a href=(page_link(&path, search, None, params.product)) { "First page" }
            }
            @if let Some(next) = next {
                a href=(page_link(&path, search, Some(next), params.product)) { "Next page" }
            }
        }
        @if let Some(results) = &outcome.results {
            h2 id="results" { "Invitation results" }
            ul class="results" {
                @for r in results { li class=(r.status) { (result_text(r)) } }
            }
        }
        @if may_invite {
            h2 { "Invite team members" }
            (post_form(console, &format!("{path}/invite"), "stack", html! {
                div class="field" {
                    label for="emails" { "E-mail addresses (comma separated)" }
                    textarea id="emails" name="emails" required { (outcome.typed.as_deref().unwrap_or("")) }
                }
                div class="field" {
                    label for="access" { "Initial permission group or role" }
                    select id="access" name="access" {
                        option value="" { "Organization membership only" }
                        @for (value, label) in &access {
                            option value=(value) { (label) }
                        }
                    }
                }
                div { button type="submit" { "Send invitation e-mail" } }
            }))
        }
        @if let Some(pending) = &invitations {
            h2 { "Pending invitations" }
            @if pending.is_empty() {
                p { "None." }
            } @else {
                div class="table-wrap" role="region" aria-label="Pending invitations" tabindex="0" {
                    table {
                        caption class="visually-hidden" { "Pending invitations" }
                        thead { tr {
                            th scope="col" { "E-mail" } th scope="col" { "Invited by" } th scope="col" { "Expires" }
                            @if may_invite { th scope="col" { "Actions" } }
                        } }
                        tbody {
                            @for invitation in pending {
                                tr {
                                    td { (invitation.email) }
                                    td { (invitation.invited_by.as_deref().unwrap_or("—")) }
                                    td { (invitation.expires_at.format("%Y-%m-%d %H:%M UTC")) }
                                    @if may_invite { td { (invitation_actions(console, &path, invitation)) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(console.page_with(
        outcome.status.unwrap_or(StatusCode::OK),
        &format!("{}: members", org.name),
        outcome.flashes,
        body,
    ))
}

fn page_link(
    path: &str,
    search: Option<&str>,
    after: Option<Uuid>,
    product: Option<Uuid>,
) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(q) = search {
        query.append_pair("q", q);
    }
    if let Some(after) = after {
        query.append_pair("after", &after.to_string());
    }
    if let Some(product) = product {
        query.append_pair("product", &product.to_string());
    }
    format!("{path}?{}", query.finish())
}

/// The role select: Owner, Member, and in a sub-org "None / inherit" (the membership then
/// takes its role from the parent).
fn role_form(
    console: &Console,
    org: &Org,
    user_id: Uuid,
    current: Option<OrgRole>,
    direct: bool,
) -> Markup {
    let id = format!("role-{user_id}");
    let selected = match (direct, current) {
        (true, Some(OrgRole::Owner)) => "owner",
        (true, Some(OrgRole::Member)) => "member",
        _ => "inherit",
    };
    post_form(
        console,
        &format!("{}/{user_id}/role", members_path(org.id)),
        "",
        html! {
            label for=(id) class="visually-hidden" { "Role" }
            select id=(id) name="role" {
                option value="owner" selected[selected == "owner"] { "Owner" }
                option value="member" selected[selected == "member"] { "Member" }
                @if !org.is_root() {
                    option value="inherit" selected[selected == "inherit"] { "None / inherit" }
                }
            }
            button type="submit" class="secondary" { "Save" }
        },
    )
}

fn invitation_actions(console: &Console, path: &str, invitation: &Invitation) -> Markup {
    html! {
        (post_form(console, &format!("{path}/invitations/{}/resend", invitation.id), "", html! {
            button type="submit" class="secondary" aria-label=(format!("Resend to {}", invitation.email)) { "Resend" }
        }))
        (post_form(console, &format!("{path}/invitations/{}/revoke", invitation.id), "", html! {
            button type="submit" class="danger" aria-label=(format!("Revoke for {}", invitation.email)) { "Revoke" }
        }))
    }
}

fn result_text(r: &AddressResult) -> String {
    let what = match r.status {
        "invited" => "invited".to_owned(),
        "resent" => "invited again (a new link)".to_owned(),
        "already_member" => "already a member".to_owned(),
        "duplicate" => "listed more than once".to_owned(),
        "invalid" => format!("not an e-mail address ({})", r.error.unwrap_or("invalid")),
        other => other.to_owned(),
    };
    let mail = match (r.delivery, &r.delivery_error) {
        (Some("sent"), _) => "; the e-mail was sent".to_owned(),
        (Some("logged"), _) => {
            "; no mail relay is configured: the link is in the server log and outbox".to_owned()
        }
        (Some("failed"), Some(error)) => format!("; the e-mail failed: {error}"),
        _ => String::new(),
    };
    format!("{}: {what}{mail}", r.email)
}

/// The invite form's access choices: each product of the org with each of its permission
/// groups and built-in roles, as `product_id:group_id`.
async fn access_choices(
    state: &AppState,
    admin: &crate::admin::AdminAuth,
    org: &Org,
) -> Result<Vec<(String, String)>, PageError> {
    let mut choices = Vec::new();
    for product in state.store.list_products(admin.tenant_id(), org.id).await? {
        let detail = state
            .store
            .get_product(admin.tenant_id(), product.id)
            .await?;
        for group in &detail.permission_groups {
            let kind = if group.role.is_some() {
                "role"
            } else {
                "group"
            };
            choices.push((
                format!("{}:{}", product.id, group.id),
                format!("{}: {} ({kind})", product.name, group.name),
            ));
        }
    }
    Ok(choices)
}

/// One product's permission groups as the members list shows them: what each member was
/// granted, and the groups an admin may choose from (none when they may not change them).
struct ProductAccessView {
    product_id: Uuid,
    grants: HashMap<Uuid, Vec<GrantedGroup>>,
    choices: Option<Vec<PermissionGroup>>,
}

impl ProductAccessView {
    fn cell(&self, console: &Console, org: &Org, user_id: Uuid) -> Markup {
        let granted = self.grants.get(&user_id).map(Vec::as_slice).unwrap_or(&[]);
        let manual = granted
            .iter()
            .find(|g| g.source == Source::Manual)
            .map(|g| g.permission_group_id);
        let others: Vec<String> = granted
            .iter()
            .filter(|g| g.source != Source::Manual || Some(g.permission_group_id) != manual)
            .map(|g| format!("{} ({})", g.name, g.source.as_str()))
            .collect();
        let id = format!("group-{user_id}");
        html! {
            @if let Some(choices) = &self.choices {
                (post_form(console, &format!("{}/{user_id}/access", members_path(org.id)), "", html! {
                    input type="hidden" name="product" value=(self.product_id);
                    label for=(id) class="visually-hidden" { "Permission group" }
                    select id=(id) name="group" {
                        option value="" selected[manual.is_none()] { "No access given here" }
                        @for group in choices {
                            option value=(group.id) selected[manual == Some(group.id)] { (group.name) }
                        }
                    }
                    button type="submit" class="secondary" { "Save" }
                }))
            } @else {
                @for g in granted.iter().filter(|g| Some(g.permission_group_id) == manual) {
                    (g.name)
                }
                @if manual.is_none() && others.is_empty() { "—" }
            }
            @if !others.is_empty() {
                p class="note" { "Also: " (others.join(", ")) }
            }
        }
    }
}

/// The members' grants on `product_id` (the same page of members as the list), and the
/// product's groups when this user may change them (as `PUT /products/{id}/members/{user}`).
async fn product_access(
    state: &AppState,
    console: &Console,
    admin: &crate::admin::AdminAuth,
    product_id: Uuid,
    search: Option<&str>,
    after: Option<Uuid>,
) -> Result<ProductAccessView, PageError> {
    let listed = state
        .store
        .product_members(
            admin.tenant_id(),
            product_id,
            &MemberQuery {
                search: search.map(str::to_owned),
                after,
                user_id: None,
                limit: PAGE + 1,
            },
        )
        .await?;
    let grants = listed
        .into_iter()
        .map(|m| (m.member.user.id, m.grants))
        .collect();
    let choices = if console
        .may_on::<ProductDetail>(state, Method::PUT, PRODUCT_MEMBER, product_id)
        .await
    {
        Some(
            state
                .store
                .get_product(admin.tenant_id(), product_id)
                .await?
                .permission_groups,
        )
    } else {
        None
    };
    Ok(ProductAccessView {
        product_id,
        grants,
        choices,
    })
}

#[derive(Deserialize)]
pub(super) struct AccessForm {
    product: Uuid,
    #[serde(default)]
    group: String,
}

/// `POST /console/orgs/{org}/members/{user}/access`: as `PUT /api/v1/products/{product_id}/members/{user_id}`
/// with the one chosen group (or built-in role), or none.
pub(super) async fn set_access(
    State(state): State<AppState>,
    Path((raw, user_id)): Path<(String, Uuid)>,
    ConsoleForm { console, form }: ConsoleForm<AccessForm>,
) -> Result<Response, PageError> {
    let (_, org) = org_for(&state, &console, &raw, Method::GET, LIST).await?;
    let admin = console
        .acting_as(&state, Method::PUT, PRODUCT_MEMBER)
        .await?;
    let product = admin
        .require::<ProductDetail>(&state, form.product, Need::Reach)
        .await?;
    if product.product.org_id != org.id {
        return Err(PageError(ApiError::NotFound));
    }
    let groups = match form.group.as_str() {
        "" => Vec::new(),
        raw_group => vec![
            Uuid::parse_str(raw_group)
                .map_err(|_| PageError(ApiError::invalid("group", "not a choice of the form")))?,
        ],
    };
    let changed = crate::admin::products::set_access(
        &state,
        &admin,
        product.product.id,
        user_id,
        groups,
        None,
    )
    .await;
    let back = format!("{}?product={}", members_path(org.id), product.product.id);
    match changed {
        Ok(()) => Ok(redirect_with(
            &state,
            &back,
            Flash::done(format!(
                "Permission group on {} changed.",
                product.product.name
            )),
        )),
        Err(error) => refusal(&state, &console, &raw, error, Outcome::default()).await,
    }
}

#[derive(Deserialize)]
pub(super) struct RoleForm {
    role: String,
}

/// `POST /console/orgs/{org}/members/{user}/role`: as `PUT /api/v1/orgs/{org_id}/members/{user_id}`.
pub(super) async fn set_role(
    State(state): State<AppState>,
    Path((raw, user_id)): Path<(String, Uuid)>,
    ConsoleForm { console, form }: ConsoleForm<RoleForm>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::PUT, MEMBER).await?;
    let role = match form.role.as_str() {
        "owner" => Some(OrgRole::Owner),
        "member" => Some(OrgRole::Member),
        "inherit" => None,
        _ => {
            return Err(PageError(ApiError::invalid(
                "role",
                "owner, member or inherit",
            )));
        }
    };
    let changed = state
        .store
        .set_membership(
            &admin.ctx,
            admin.tenant_id(),
            org.id,
            user_id,
            role,
            OwnerRule::Enforce,
        )
        .await;
    after(
        &state,
        &console,
        &raw,
        &org,
        changed.map_err(ApiError::from),
        "Role changed.",
    )
    .await
}

/// `POST /console/orgs/{org}/members/{user}/remove`: as `DELETE /api/v1/orgs/{org_id}/members/{user_id}`.
pub(super) async fn remove(
    State(state): State<AppState>,
    Path((raw, user_id)): Path<(String, Uuid)>,
    ConsoleForm { console, .. }: ConsoleForm<super::orgs::Empty>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::DELETE, MEMBER).await?;
    let removed = state
        .store
        .remove_membership(
            &admin.ctx,
            admin.tenant_id(),
            org.id,
            user_id,
            OwnerRule::Enforce,
            ScimHeld::Refuse,
        )
        .await;
    after(
        &state,
        &console,
        &raw,
        &org,
        removed.map_err(ApiError::from),
        "Member removed.",
    )
    .await
}

/// After a change: back to the list with the result; a refusal (409, 422) shown on the list,
/// re-rendered with the API's status; 403 and 404 are error pages.
async fn after(
    state: &AppState,
    console: &Console,
    raw: &str,
    org: &Org,
    result: Result<(), ApiError>,
    done: &str,
) -> Result<Response, PageError> {
    match result {
        Ok(()) => Ok(redirect_with(
            state,
            &members_path(org.id),
            Flash::done(done),
        )),
        Err(error) => refusal(state, console, raw, error, Outcome::default()).await,
    }
}

async fn refusal(
    state: &AppState,
    console: &Console,
    raw: &str,
    error: ApiError,
    mut outcome: Outcome,
) -> Result<Response, PageError> {
    let status = error.status();
    if matches!(status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN) || status.is_server_error() {
        return Err(PageError(error));
    }
    outcome.status = Some(status);
    outcome.flashes.push(Flash::from_error(&error));
    render(state, console, raw, &ListParams::default(), outcome).await
}

#[derive(Deserialize)]
pub(super) struct InviteForm {
    emails: String,
    #[serde(default)]
    access: String,
}

/// `POST /console/orgs/{org}/members/invite`: as `POST /api/v1/orgs/{org_id}/invitations`;
/// the page again with a result per address.
pub(super) async fn invite(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<InviteForm>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::POST, INVITE).await?;
    let (product_id, permission_group_id) = match form.access.split_once(':') {
        None => (None, None),
        Some((product, group)) => match (Uuid::parse_str(product), Uuid::parse_str(group)) {
            (Ok(p), Ok(g)) => (Some(p), Some(g)),
            _ => {
                return Err(PageError(ApiError::invalid(
                    "access",
                    "not a choice of the form",
                )));
            }
        },
    };
    let asked = InviteRequest {
        emails: form.emails.clone(),
        product_id,
        permission_group_id,
        role: None,
    };
    let outcome =
        match crate::admin::invitations::invite_addresses(&state, &admin, &org, &asked).await {
            Ok(results) => {
                let invited = results
                    .iter()
                    .filter(|r| matches!(r.status, "invited" | "resent"))
                    .count();
                Outcome {
                    flashes: vec![Flash::done(format!(
                        "{invited} of {} addresses invited.",
                        results.len()
                    ))],
                    results: Some(results),
                    ..Outcome::default()
                }
            }
            Err(error) => {
                return refusal(
                    &state,
                    &console,
                    &raw,
                    error,
                    Outcome {
                        typed: Some(form.emails),
                        ..Outcome::default()
                    },
                )
                .await;
            }
        };
    render(&state, &console, &raw, &ListParams::default(), outcome).await
}

/// `POST /console/orgs/{org}/members/invitations/{id}/resend`: as `POST /api/v1/invitations/{invitation_id}/resend`.
pub(super) async fn resend(
    State(state): State<AppState>,
    Path((raw, invitation_id)): Path<(String, Uuid)>,
    ConsoleForm { console, .. }: ConsoleForm<super::orgs::Empty>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::POST, RESEND).await?;
    let invitation = admin
        .require::<Invitation>(&state, invitation_id, Need::Reach)
        .await?;
    if invitation.org_id != org.id {
        return Err(PageError(ApiError::NotFound));
    }
    let result = crate::admin::invitations::resend_invitation(&state, &admin, invitation.id)
        .await
        .map(|r| Flash::done(result_text(&r)));
    match result {
        Ok(flash) => Ok(redirect_with(&state, &members_path(org.id), flash)),
        Err(error) => refusal(&state, &console, &raw, error, Outcome::default()).await,
    }
}

/// `POST /console/orgs/{org}/members/invitations/{id}/revoke`: as `DELETE /api/v1/invitations/{invitation_id}`.
pub(super) async fn revoke(
    State(state): State<AppState>,
    Path((raw, invitation_id)): Path<(String, Uuid)>,
    ConsoleForm { console, .. }: ConsoleForm<super::orgs::Empty>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::DELETE, REVOKE).await?;
    let invitation = admin
        .require::<Invitation>(&state, invitation_id, Need::Reach)
        .await?;
    if invitation.org_id != org.id {
        return Err(PageError(ApiError::NotFound));
    }
    let revoked = state
        .store
        .revoke_invitation(&admin.ctx, admin.tenant_id(), invitation.id)
        .await
        .map(|i| Flash::done(format!("The invitation for {} is revoked.", i.email)));
    match revoked {
        Ok(flash) => Ok(redirect_with(&state, &members_path(org.id), flash)),
        Err(error) => refusal(&state, &console, &raw, error.into(), Outcome::default()).await,
    }
}
