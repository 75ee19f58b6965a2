//! SCIM 2.0 (RFC 7643/7644) edge: its error format, its token extractor and its routes.
//!
//! Discovery is truthful about what is built: for now only the service provider configuration
//! is served, and it advertises no optional feature.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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
        Ok(ScimClient(
            auth::authenticate(state, parts, TokenKind::Scim).await?,
        ))
    }
}

pub fn router(_state: AppState) -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .fallback(not_found)
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
