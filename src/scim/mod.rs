//! SCIM 2.0 (RFC 7643/7644) edge: its error format, its token extractor and its routes.
//!
//! Discovery is truthful about what is built: for now only the service provider configuration
//! is served, and it advertises no optional feature.

mod edge;
pub mod eval;
pub mod filter;
pub mod schema;

pub use edge::ScimRateLimiter;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::auth::{self, AuthFailure, Principal};
use crate::domain::token::TokenKind;
use crate::state::AppState;

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const CONTENT_TYPE: &str = "application/scim+json";

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    retry_after_secs: Option<u64>,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            retry_after_secs: None,
        }
    }
}

impl From<AuthFailure> for ScimError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Unauthenticated(reason) => {
                ScimError::new(StatusCode::UNAUTHORIZED, None, reason)
            }
            AuthFailure::WrongKind => ScimError::new(
                StatusCode::FORBIDDEN,
                None,
                "this token is not a SCIM token",
            ),
            AuthFailure::RateLimited { retry_after_secs } => ScimError {
                retry_after_secs: Some(retry_after_secs),
                ..ScimError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    None,
                    "too many failed attempts",
                )
            },
            AuthFailure::Store(error) => {
                tracing::error!(%error, "token lookup failed");
                ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, "service unavailable")
            }
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let mut response = (self.status, ScimJson(body)).into_response();
        response.extensions_mut().insert(edge::ErrorInfo {
            scim_type: self.scim_type,
            detail: self.detail.clone(),
        });
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self
            .retry_after_secs
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            headers.insert(header::RETRY_AFTER, secs);
        }
        response
    }
}

/// A JSON body sent as `application/scim+json`.
pub struct ScimJson(pub Value);

impl IntoResponse for ScimJson {
    fn into_response(self) -> Response {
        let mut response = Json(self.0).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

/// The provisioning client behind a SCIM bearer token; its org is the org provisioned into.
pub struct ScimClient(pub Principal);

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = auth::authenticate(state, parts, TokenKind::Scim).await?;
        if let Some(slot) = parts.extensions.get::<edge::CallerSlot>() {
            slot.set(&principal);
        }
        // Okta and Entra both back off on 429 + Retry-After.
        state
            .scim_rate
            .take(principal.token.id)
            .map_err(|wait| ScimError {
                retry_after_secs: Some(wait.as_secs().max(1)),
                ..ScimError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    None,
                    "too many requests for this token",
                )
            })?;
        Ok(ScimClient(principal))
    }
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/Me", any(me))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state, edge::observe))
}

/// RFC 7644 §3.11: `/Me` needs a subject behind the token; a provisioning token has none.
async fn me(_client: ScimClient) -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "/Me is not supported: a SCIM token stands for a provisioning client, not a user",
    )
}

/// Discovery endpoints are read-only, and resources take only their documented methods.
async fn method_not_allowed(_client: ScimClient) -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "method not allowed on this endpoint",
    )
}

/// RFC 7643 §5. Every optional feature is reported unsupported until it is built.
async fn service_provider_config(_client: ScimClient) -> ScimJson {
    ScimJson(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": { "supported": false },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": false, "maxResults": 0 },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": false },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A rolegate SCIM token (rg_scim_…) in the Authorization header",
            "primary": true,
        }],
        "meta": { "resourceType": "ServiceProviderConfig" },
    }))
}

/// Unknown SCIM paths answer in SCIM's format, after authentication (so they reveal nothing).
async fn not_found(_client: ScimClient) -> ScimError {
    ScimError::new(StatusCode::NOT_FOUND, None, "no such SCIM resource")
}
