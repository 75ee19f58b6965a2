//! An org's OIDC connections (issue 12): list, add, read, change and remove. Adding or changing
//! one fetches the provider's discovery document at once; the client secret is write-only.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::doc::{AuthErrors, BadBody, BadParams, ServerErrors};
use super::extract::ApiJson;
use super::reach::{InReach, OrgInReach, Scoped};
use crate::domain::oidc::{ClientAuth, Connection, Provisioning};
use crate::error::{ApiError, ErrorBody};
use crate::idp::connections::{self, ConnectionError, Settings};
use crate::state::AppState;
use crate::store::StoreError;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(
            get_connection,
            update_connection,
            delete_connection
        ))
}

impl Scoped for Connection {
    const PARAM: &'static str = "connection_id";

    async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Self, ApiError> {
        Ok(state.store.get_oidc_connection(tenant_id, id).await?)
    }

    fn org_id(&self) -> Uuid {
        self.org_id
    }
}

impl From<ConnectionError> for ApiError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Invalid { field, message } => ApiError::invalid(field, message),
            // The provider could not be used: the request names it, so it is the request's
            // problem, said with the reason.
            ConnectionError::Discovery(e) => ApiError::invalid("issuer", e.to_string()),
            ConnectionError::Secret(e) => ApiError::Internal(e.to_string()),
            ConnectionError::Store(e) => e.into(),
        }
    }
}

/// A connection as the API shows it: never its secret, and the redirect URI to register.
#[derive(Serialize, ToSchema)]
struct ConnectionView {
    #[serde(flatten)]
    connection: Connection,
    /// Register this at the provider as the redirect (callback) URI.
    redirect_uri: String,
    /// Register this at the provider as the post-logout redirect URI (RP-initiated logout).
    post_logout_redirect_uri: String,
}

fn view(state: &AppState, connection: Connection) -> ConnectionView {
    let public = state.config.public_url();
    ConnectionView {
        redirect_uri: connections::redirect_uri(&public, connection.id),
        post_logout_redirect_uri: connections::post_logout_redirect_uri(&public),
        connection,
    }
}

#[derive(Serialize, ToSchema)]
struct ConnectionList {
    connections: Vec<ConnectionView>,
}

/// The org's connections.
#[utoipa::path(
    get,
    path = "/orgs/{org_id}/oidc-connections",
    tag = "oidc-connections",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The connections (never their secrets).", body = ConnectionList),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn list_connections(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
) -> Result<ApiJson<ConnectionList>, ApiError> {
    let found = state
        .store
        .list_oidc_connections(admin.tenant_id(), Some(&[item.id]))
        .await?;
    Ok(ApiJson(ConnectionList {
        connections: found.into_iter().map(|c| view(&state, c)).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateConnection {
    /// The provider's issuer; its discovery document is fetched at once.
    issuer: String,
    client_id: String,
    /// Write-only. Required for `client_secret_basic` and `client_secret_post`.
    client_secret: Option<String>,
    /// Default `client_secret_basic`; `private_key_jwt` makes rolegate generate an ES256 key
    /// (its public part is `public_jwk`).
    client_auth: Option<ClientAuth>,
    /// Default `groups`.
    groups_claim: Option<String>,
    /// Default `["openid", "email", "profile"]`; `openid` is always asked for.
    scopes: Option<Vec<String>>,
    /// Default `hybrid`.
    provisioning: Option<Provisioning>,
    /// E-mail domains for home-realm discovery; each claimed by one connection only.
    domains: Option<Vec<String>>,
    require_mfa: Option<bool>,
    /// For an Entra ID multi-tenant issuer: the tenant ids let in.
    allowed_tenants: Option<Vec<String>>,
}

impl CreateConnection {
    fn settings(&mut self) -> Settings {
        Settings {
            client_secret: self.client_secret.take(),
            groups_claim: self.groups_claim.take(),
            scopes: self.scopes.take().map(|s| s.join(" ")),
            provisioning: self.provisioning,
            domains: self.domains.take(),
            require_mfa: self.require_mfa,
            client_auth: self.client_auth,
            allowed_tenants: self.allowed_tenants.take(),
        }
    }
}

/// Adds a connection to the org, after fetching the provider's discovery document.
#[utoipa::path(
    post,
    path = "/orgs/{org_id}/oidc-connections",
    tag = "oidc-connections",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path)),
    request_body = CreateConnection,
    responses(
        (status = 201, description = "The connection, with the redirect URI to register.", body = ConnectionView),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        (status = 409, description = "A domain is already claimed by another connection.", body = ErrorBody),
        AuthErrors, BadBody, ServerErrors
    )
)]
async fn create_connection(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiJson(mut body): ApiJson<CreateConnection>,
) -> Result<(StatusCode, ApiJson<ConnectionView>), ApiError> {
    let settings = body.settings();
    let issuer = url::Url::parse(body.issuer.trim())
        .map_err(|e| ApiError::invalid("issuer", format!("not a URL: {e}")))?;
    let created = connections::add(
        state.store.as_ref(),
        &state.idp,
        &state.keyring,
        &admin.ctx,
        admin.tenant_id(),
        connections::NewInput {
            org_id: item.id,
            issuer,
            client_id: body.client_id,
            settings,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, ApiJson(view(&state, created))))
}

/// One connection.
#[utoipa::path(
    get,
    path = "/oidc-connections/{connection_id}",
    tag = "oidc-connections",
    security(("bearer" = [])),
    params(("connection_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The connection (never its secret).", body = ConnectionView),
        (status = 404, description = "No such connection within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn get_connection(
    State(state): State<AppState>,
    InReach { item, .. }: InReach<Connection>,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    Ok(ApiJson(view(&state, item)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateConnection {
    client_id: Option<String>,
    /// Write-only: a new secret replaces the stored one (Entra secrets expire).
    client_secret: Option<String>,
    client_auth: Option<ClientAuth>,
    groups_claim: Option<String>,
    scopes: Option<Vec<String>>,
    provisioning: Option<Provisioning>,
    /// Replaces the connection's domains.
    domains: Option<Vec<String>>,
    require_mfa: Option<bool>,
    allowed_tenants: Option<Vec<String>>,
}

/// Changes a connection; absent fields are kept. The discovery document is fetched anew.
#[utoipa::path(
    patch,
    path = "/oidc-connections/{connection_id}",
    tag = "oidc-connections",
    security(("bearer" = [])),
    params(("connection_id" = Uuid, Path)),
    request_body = UpdateConnection,
    responses(
        (status = 200, description = "The changed connection.", body = ConnectionView),
        (status = 404, description = "No such connection within reach.", body = ErrorBody),
        (status = 409, description = "A domain is already claimed by another connection.", body = ErrorBody),
        AuthErrors, BadBody, ServerErrors
    )
)]
async fn update_connection(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<Connection>,
    ApiJson(body): ApiJson<UpdateConnection>,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    let updated = connections::update(
        state.store.as_ref(),
        &state.idp,
        &state.keyring,
        &admin.ctx,
        admin.tenant_id(),
        item.id,
        connections::Change {
            client_id: body.client_id,
            settings: Settings {
                client_secret: body.client_secret,
                groups_claim: body.groups_claim,
                scopes: body.scopes.map(|s| s.join(" ")),
                provisioning: body.provisioning,
                domains: body.domains,
                require_mfa: body.require_mfa,
                client_auth: body.client_auth,
                allowed_tenants: body.allowed_tenants,
            },
        },
    )
    .await?;
    Ok(ApiJson(view(&state, updated)))
}

/// Removes a connection; refused while mapping rules use it (the message names them).
#[utoipa::path(
    delete,
    path = "/oidc-connections/{connection_id}",
    tag = "oidc-connections",
    security(("bearer" = [])),
    params(("connection_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such connection within reach.", body = ErrorBody),
        (status = 409, description = "Mapping rules use the connection.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn delete_connection(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<Connection>,
) -> Result<StatusCode, ApiError> {
    match state
        .store
        .delete_oidc_connection(&admin.ctx, admin.tenant_id(), item.id)
        .await
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound) => Err(ApiError::NotFound),
        Err(e) => Err(e.into()),
    }
}
