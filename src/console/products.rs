//! `/console/orgs/{org}/products` and `/console/products/{product}`: an org's products (create,
//! rename, delete once its name is typed) and a product's environments (create, rename, mark
//! restricted, delete) with its permission groups and built-in roles. Each change calls what the `/api/v1` products and environments
//! handlers call, held to their route's requirement; a refusal (a duplicate name's 409, a
//! name's 422) is shown on the page.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{org_tabs, post_form};
use super::orgs::org_for;
use super::{Console, ConsoleForm, Flash, PageError, redirect_with};
use crate::admin::AdminAuth;
use crate::admin::products::{default_environments, name};
use crate::admin::reach::{Need, ProductEnvironment};
use crate::domain::org::Org;
use crate::domain::product::ProductDetail;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::NewEnvironment;

/// The API routes whose requirements these pages keep.
const PRODUCTS: &str = "/api/v1/orgs/{org_id}/products";
const PRODUCT: &str = "/api/v1/products/{product_id}";
const ENVIRONMENTS: &str = "/api/v1/products/{product_id}/environments";
const ENVIRONMENT: &str = "/api/v1/environments/{environment_id}";

pub(super) fn products_path(org_id: Uuid) -> String {
    format!("/console/orgs/{org_id}/products")
}

pub(super) fn product_path(product_id: Uuid) -> String {
    format!("/console/products/{product_id}")
}

/// The product a console path names, for this user acting as the API's `method` on `route`:
/// not found when malformed, unknown or out of reach; 403 when reached but not allowed.
pub(super) async fn product_for(
    state: &AppState,
    console: &Console,
    raw_id: &str,
    method: Method,
    route: &str,
) -> Result<(AdminAuth, ProductDetail), PageError> {
    let id = Uuid::parse_str(raw_id).map_err(|_| PageError(ApiError::NotFound))?;
    let admin = console.acting_as(state, method, route).await?;
    let product = admin
        .require::<ProductDetail>(state, id, Need::Reach)
        .await?;
    Ok((admin, product))
}

/// The environment a console path names, for this user acting as the API's `method` on
/// `/api/v1/environments/{environment_id}`: not found when malformed, unknown or out of reach.
async fn environment_for(
    state: &AppState,
    console: &Console,
    raw_id: &str,
    method: Method,
) -> Result<(AdminAuth, ProductEnvironment), PageError> {
    let id = Uuid::parse_str(raw_id).map_err(|_| PageError(ApiError::NotFound))?;
    let admin = console.acting_as(state, method, ENVIRONMENT).await?;
    let env = admin
        .require::<ProductEnvironment>(state, id, Need::Reach)
        .await?;
    Ok((admin, env))
}

/// Whether this user may call the API's `method` on a product `route` for `product_id`: whether
/// the page shows that form.
pub(super) async fn may_product(
    state: &AppState,
    console: &Console,
    method: Method,
    route: &str,
    product_id: Uuid,
) -> bool {
    match console.acting_as(state, method, route).await {
        Ok(admin) => admin
            .require::<ProductDetail>(state, product_id, Need::Reach)
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// A refused change shown on the page it came from, re-rendered with the API's status; a
/// refusal to act at all (403, 404) and a server error are error pages.
pub(super) fn shown(error: ApiError) -> Result<(StatusCode, Vec<Flash>), PageError> {
    let status = error.status();
    if matches!(status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN) || status.is_server_error() {
        return Err(PageError(error));
    }
    Ok((status, vec![Flash::from_error(&error)]))
}

/// `GET /console/orgs/{org}/products`.
pub(super) async fn list(
    State(state): State<AppState>,
    console: Console,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    render_list(&state, &console, &raw, StatusCode::OK, Vec::new()).await
}

async fn render_list(
    state: &AppState,
    console: &Console,
    raw: &str,
    status: StatusCode,
    flashes: Vec<Flash>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(state, console, raw, Method::GET, PRODUCTS).await?;
    let products = state.store.list_products(admin.tenant_id(), org.id).await?;
    let may_create = console.may(state, Method::POST, PRODUCTS, org.id).await;
    let body = html! {
        h1 { (org.name) ": products" }
        (org_tabs(org.id, "/products"))
        @if products.is_empty() {
            p { "No products yet." }
        } @else {
            ul class="tree" {
                @for product in &products {
                    li { a href=(product_path(product.id)) { (product.name) } }
                }
            }
        }
        @if may_create {
            h2 { "New product" }
            p class="note" { "It starts with a Development and a restricted Production environment, and the preset permission groups." }
            (post_form(console, &products_path(org.id), "inline", html! {
                div class="field" {
                    label for="product-name" { "Name" }
                    input id="product-name" type="text" name="name" required maxlength="100";
                }
                button type="submit" { "Create product" }
            }))
        }
    };
    Ok(console.page_with(status, &format!("{}: products", org.name), flashes, body))
}

#[derive(Deserialize)]
pub(super) struct NameForm {
    name: String,
}

/// `POST /console/orgs/{org}/products`: as `POST /api/v1/orgs/{org_id}/products` without
/// environments (the default ones).
pub(super) async fn create(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<NameForm>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::POST, PRODUCTS).await?;
    let created = match name("name", &form.name) {
        Ok(product_name) => state
            .store
            .create_product(
                &admin.ctx,
                admin.tenant_id(),
                org.id,
                &product_name,
                &default_environments(),
            )
            .await
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match created {
        Ok(detail) => Ok(redirect_with(
            &state,
            &product_path(detail.product.id),
            Flash::done(format!("Created {}.", detail.product.name)),
        )),
        Err(error) => {
            let (status, flashes) = shown(error)?;
            render_list(&state, &console, &raw, status, flashes).await
        }
    }
}

/// `GET /console/products/{product}`.
pub(super) async fn page(
    State(state): State<AppState>,
    console: Console,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    render(&state, &console, &raw, StatusCode::OK, Vec::new()).await
}

pub(super) async fn render(
    state: &AppState,
    console: &Console,
    raw: &str,
    status: StatusCode,
    flashes: Vec<Flash>,
) -> Result<Response, PageError> {
    let (admin, detail) = product_for(state, console, raw, Method::GET, PRODUCT).await?;
    let product = &detail.product;
    let org = admin
        .require::<Org>(state, product.org_id, Need::Reach)
        .await?;
    let may_rename = may_product(state, console, Method::PATCH, PRODUCT, product.id).await;
    let may_add_env = may_product(state, console, Method::POST, ENVIRONMENTS, product.id).await;
    // An environment's requirement is its product's org's, as the API checks it.
    let may_change_env = console.may(state, Method::PATCH, ENVIRONMENT, org.id).await;
    let may_delete_env = console
        .may(state, Method::DELETE, ENVIRONMENT, org.id)
        .await;
    let may_delete = may_product(state, console, Method::DELETE, PRODUCT, product.id).await;
    let groups = super::permission_groups::section(state, console, &detail).await;
    let path = product_path(product.id);
    let body = html! {
        h1 { (product.name) }
        p class="note" {
            "Product of " a href=(products_path(org.id)) { (org.name) }
        }
        @if may_rename {
            (post_form(console, &format!("{path}/rename"), "inline", html! {
                div class="field" {
                    label for="product-name" { "Name" }
                    input id="product-name" type="text" name="name" value=(product.name) required maxlength="100";
                }
                button type="submit" class="secondary" { "Rename" }
            }))
        }
        h2 { "Environments" }
        p class="note" { "Restricted environments (production) get a permission group's access for restricted environments." }
        div class="table-wrap" role="region" aria-label="Environments" tabindex="0" {
            table id="environments" {
                caption class="visually-hidden" { "Environments of " (product.name) }
                thead { tr {
                    th scope="col" { "Environment" }
                    th scope="col" { "Restricted" }
                    @if may_change_env { th scope="col" { "Change" } }
                    @if may_delete_env { th scope="col" { "Delete" } }
                } }
                tbody {
                    @for env in &detail.environments {
                        tr {
                            td { (env.name) }
                            td { @if env.restricted { "Restricted" } @else { "No" } }
                            @if may_change_env {
                                td { (environment_form(console, env)) }
                            }
                            @if may_delete_env {
                                td {
                                    (post_form(console, &format!("/console/environments/{}/delete", env.id), "", html! {
                                        button type="submit" class="danger" aria-label=(format!("Delete {}", env.name)) { "Delete" }
                                    }))
                                }
                            }
                        }
                    }
                }
            }
        }
        @if may_add_env {
            h3 { "New environment" }
            (post_form(console, &format!("{path}/environments"), "inline", html! {
                div class="field" {
                    label for="env-name" { "Name" }
                    input id="env-name" type="text" name="name" required maxlength="100";
                }
                div class="field" {
                    label for="env-restricted" {
                        input id="env-restricted" type="checkbox" name="restricted" value="on";
                        " Restricted (production)"
                    }
                }
                button type="submit" { "Add environment" }
            }))
        }
        (groups)
        @if may_delete {
            h2 { "Delete this product" }
            p class="note" { "Its environments, permission groups and every grant on it go with it." }
            (post_form(console, &format!("{path}/delete"), "inline", html! {
                div class="field" {
                    label for="confirm-delete" { "Type " strong { (product.name) } " to confirm" }
                    input id="confirm-delete" type="text" name="confirm" required autocomplete="off";
                }
                button type="submit" class="danger" { "Delete product" }
            }))
        }
    };
    Ok(console.page_with(status, &product.name, flashes, body))
}

fn environment_form(console: &Console, env: &crate::domain::product::Environment) -> Markup {
    let name_id = format!("env-{}-name", env.id);
    let restricted_id = format!("env-{}-restricted", env.id);
    post_form(
        console,
        &format!("/console/environments/{}", env.id),
        "",
        html! {
            label for=(name_id) class="visually-hidden" { "Name of " (env.name) }
            input id=(name_id) type="text" name="name" value=(env.name) required maxlength="100";
            label for=(restricted_id) {
                input id=(restricted_id) type="checkbox" name="restricted" value="on" checked[env.restricted];
                " Restricted"
            }
            button type="submit" class="secondary" aria-label=(format!("Save {}", env.name)) { "Save" }
        },
    )
}

/// `POST /console/products/{product}/rename`: as `PATCH /api/v1/products/{product_id}`.
pub(super) async fn rename(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<NameForm>,
) -> Result<Response, PageError> {
    let (admin, detail) = product_for(&state, &console, &raw, Method::PATCH, PRODUCT).await?;
    let renamed = match name("name", &form.name) {
        Ok(new_name) => state
            .store
            .rename_product(&admin.ctx, admin.tenant_id(), detail.product.id, &new_name)
            .await
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match renamed {
        Ok(product) => Ok(redirect_with(
            &state,
            &product_path(product.id),
            Flash::done(format!("Renamed to {}.", product.name)),
        )),
        Err(error) => {
            let (status, flashes) = shown(error)?;
            render(&state, &console, &raw, status, flashes).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct EnvironmentForm {
    name: String,
    /// A checkbox: present when ticked.
    restricted: Option<String>,
}

/// `POST /console/products/{product}/environments`: as `POST /api/v1/products/{product_id}/environments`.
pub(super) async fn create_environment(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<EnvironmentForm>,
) -> Result<Response, PageError> {
    let (admin, detail) = product_for(&state, &console, &raw, Method::POST, ENVIRONMENTS).await?;
    let created = match name("name", &form.name) {
        Ok(env_name) => state
            .store
            .create_environment(
                &admin.ctx,
                admin.tenant_id(),
                detail.product.id,
                &NewEnvironment {
                    name: env_name,
                    restricted: form.restricted.is_some(),
                },
            )
            .await
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match created {
        Ok(env) => Ok(redirect_with(
            &state,
            &product_path(detail.product.id),
            Flash::done(format!("Added {}.", env.name)),
        )),
        Err(error) => {
            let (status, flashes) = shown(error)?;
            render(&state, &console, &raw, status, flashes).await
        }
    }
}

/// `POST /console/environments/{environment}`: as `PATCH /api/v1/environments/{environment_id}`
/// with both fields (the form always sends the whole row).
pub(super) async fn update_environment(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<EnvironmentForm>,
) -> Result<Response, PageError> {
    let (admin, env) = environment_for(&state, &console, &raw, Method::PATCH).await?;
    let updated = match name("name", &form.name) {
        Ok(env_name) => state
            .store
            .update_environment(
                &admin.ctx,
                admin.tenant_id(),
                env.id,
                Some(&env_name),
                Some(form.restricted.is_some()),
            )
            .await
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match updated {
        Ok(changed) => Ok(redirect_with(
            &state,
            &product_path(env.product.id),
            Flash::done(format!(
                "Saved {}{}.",
                changed.name,
                if changed.restricted {
                    " (restricted)"
                } else {
                    ""
                }
            )),
        )),
        Err(error) => {
            let (status, flashes) = shown(error)?;
            render(
                &state,
                &console,
                &env.product.id.to_string(),
                status,
                flashes,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ConfirmForm {
    confirm: String,
}

/// `POST /console/products/{product}/delete`: as `DELETE /api/v1/products/{product_id}`, once
/// the product's name is typed (its environments, groups and grants go with it); back to the
/// org's products.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<ConfirmForm>,
) -> Result<Response, PageError> {
    let (admin, detail) = product_for(&state, &console, &raw, Method::DELETE, PRODUCT).await?;
    let product = &detail.product;
    let deleted = if form.confirm.trim() == product.name {
        state
            .store
            .delete_product(&admin.ctx, admin.tenant_id(), product.id)
            .await
            .map_err(ApiError::from)
    } else {
        Err(ApiError::invalid(
            "confirm",
            format!("type the product's name, {}, to delete it", product.name),
        ))
    };
    match deleted {
        Ok(()) => Ok(redirect_with(
            &state,
            &products_path(product.org_id),
            Flash::done(format!("Deleted {}.", product.name)),
        )),
        Err(error) => {
            let (status, flashes) = shown(error)?;
            render(&state, &console, &raw, status, flashes).await
        }
    }
}

/// `POST /console/environments/{environment}/delete`: as `DELETE
/// /api/v1/environments/{environment_id}`; back to its product.
pub(super) async fn delete_environment(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, .. }: ConsoleForm<super::orgs::Empty>,
) -> Result<Response, PageError> {
    let (admin, env) = environment_for(&state, &console, &raw, Method::DELETE).await?;
    let detail = admin
        .require::<ProductDetail>(&state, env.product.id, Need::Reach)
        .await?;
    let env_name = detail
        .environments
        .iter()
        .find(|e| e.id == env.id)
        .map_or_else(|| "the environment".to_owned(), |e| e.name.clone());
    match state
        .store
        .delete_environment(&admin.ctx, admin.tenant_id(), env.id)
        .await
        .map_err(ApiError::from)
    {
        Ok(()) => Ok(redirect_with(
            &state,
            &product_path(env.product.id),
            Flash::done(format!("Deleted {env_name}.")),
        )),
        Err(error) => {
            let (status, flashes) = shown(error)?;
            render(
                &state,
                &console,
                &env.product.id.to_string(),
                status,
                flashes,
            )
            .await
        }
    }
}
