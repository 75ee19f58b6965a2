//! The admin API's errors and their one mapping to HTTP. SCIM has its own (`scim::ScimError`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::{AuthFailure, SERVICE_TOKEN_ONLY};
use crate::domain::token::TokenKind;
use crate::store::StoreError;

/// One invalid input: which field (a JSON path such as `environments[1].name`, or a query
/// parameter) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

// Documentation for the OpenAPI document only: `ApiError::into_response` builds the body with
// `json!`, and a test below holds the two together.
/// The body of every admin API error.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `conflict`, `precondition_failed`, `invitation_revoked`,
    /// `invitation_expired`, `invitation_replaced`, `validation_failed`, `payload_too_large`,
    /// `too_many_requests`, `unavailable` or `internal`.
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
    /// Present with `validation_failed` only: every invalid field.
    #[serde(default)]
    #[schema(nullable = false)]
    pub fields: Option<Vec<FieldError>>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not the JSON shape the route takes.
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// Missing, or belonging to another tenant: the two are never told apart.
    #[error("not found")]
    NotFound,
    /// No route under `/api/v1` has this path.
    #[error("no such route; GET /api/v1/openapi.json lists every route")]
    NoRoute,
    /// The path exists but does not take this method.
    #[error("this path does not take this method; GET /api/v1/openapi.json lists what it takes")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// A conditional write's `If-Match` names a version that is no longer the stored one.
    #[error("{0}")]
    PreconditionFailed(&'static str),
    /// The thing existed but is no longer usable (a revoked or expired invitation).
    #[error("{1}")]
    Gone(&'static str, &'static str),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("too many failed attempts")]
    TooManyRequests { retry_after_secs: u64 },
    /// A usage cap (not failed attempts); the message names the limit.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    #[error("service unavailable")]
    Unavailable,
    /// The request took longer than the server allows (`ROLEGATE_REQUEST_TIMEOUT`).
    #[error("the request took too long and was stopped")]
    RequestTimeout,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    /// The status this error answers with: the API's, and the console's pages'.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Gone(..) => StatusCode::GONE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound | ApiError::NoRoute => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed(_) => "precondition_failed",
            ApiError::Gone(code, _) => code,
            ApiError::Validation(_) => "validation_failed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::TooManyRequests { .. } | ApiError::RateLimited { .. } => "too_many_requests",
            ApiError::Unavailable => "unavailable",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ApiError {
    /// The error's JSON body, `{"error": {"code", "message", "fields"?}}`: the whole body of an
    /// error response, or one item's answer in a batch that answers item by item.
    pub fn body(&self) -> serde_json::Value {
        let message = match self {
            ApiError::Internal(detail) => {
                // Logged inside the request span (with its request id), never echoed.
                tracing::error!(%detail, "internal error");
                "internal error".to_owned()
            }
            ApiError::Unauthorized(reason) => (*reason).to_owned(),
            other => other.to_string(),
        };
        let mut body = json!({ "error": { "code": self.code(), "message": message } });
        if let ApiError::Validation(fields) = self {
            body["error"]["fields"] = json!(fields);
        }
        body
    }
}

impl ApiError {
    /// The message for a person reading a page (the console): the body's message, each invalid
    /// field named after it. A server error says only "internal error" (logged, never shown).
    pub fn message_for_people(&self) -> String {
        let body = self.body();
        let mut text = body["error"]["message"]
            .as_str()
            .unwrap_or("error")
            .to_owned();
        if let ApiError::Validation(fields) = self {
            for field in fields {
                text.push_str(&format!("; {}: {}", field.field, field.message));
            }
        }
        text
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict { constraint } => {
                // The constraint is the database's wording unless the store named the rule:
                // logged for the operator, never echoed.
                tracing::info!(%constraint, "write refused by a database constraint");
                ApiError::Conflict(
                    crate::store::conflict_message(&constraint)
                        .unwrap_or("conflicts with existing data")
                        .to_owned(),
                )
            }
            StoreError::UnknownIds(ids) => ApiError::Validation(
                ids.into_iter()
                    .map(|id| FieldError::new("members", format!("unknown id {id}")))
                    .collect(),
            ),
            StoreError::Rule(rule) => ApiError::Conflict(rule),
            StoreError::Precondition => {
                ApiError::Conflict("the resource has changed; read it again".into())
            }
            StoreError::InvalidQuery(detail) => {
                ApiError::Validation(vec![FieldError::new("query", detail)])
            }
            StoreError::InvitationQuota {
                limit,
                retry_after_secs,
            } => ApiError::RateLimited {
                message: format!(
                    "at most {limit} invitations may be sent per organization per hour; \
                     try again later"
                ),
                retry_after_secs,
            },
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::Other(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Unauthenticated(reason) => ApiError::Unauthorized(reason),
            AuthFailure::WrongKind(TokenKind::Service) => ApiError::Forbidden(SERVICE_TOKEN_ONLY),
            AuthFailure::WrongKind(_) => ApiError::Forbidden("this token is not an admin token"),
            AuthFailure::RateLimited { retry_after_secs } => {
                ApiError::TooManyRequests { retry_after_secs }
            }
            AuthFailure::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(self.body())).into_response();
        match &self {
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(err: ApiError) -> (StatusCode, ErrorBody) {
        let response = err.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status}: {e}: {}", String::from_utf8_lossy(&bytes)));
        (status, body)
    }

    /// `ErrorBody` documents the error format in the OpenAPI document: every variant's body
    /// must parse as one (it denies unknown fields), with `fields` exactly on validation errors.
    #[tokio::test]
    async fn every_error_body_matches_the_documented_schema() {
        let all = [
            ApiError::BadRequest("x".into()),
            ApiError::Unauthorized("missing bearer token"),
            ApiError::Forbidden("no"),
            ApiError::NotFound,
            ApiError::Conflict("x".into()),
            ApiError::PreconditionFailed("changed"),
            ApiError::Gone("invitation_revoked", "revoked"),
            ApiError::invalid("name", "must not be empty"),
            ApiError::PayloadTooLarge,
            ApiError::TooManyRequests {
                retry_after_secs: 60,
            },
            ApiError::RateLimited {
                message: "x".into(),
                retry_after_secs: 60,
            },
            ApiError::Unavailable,
            ApiError::Internal("secret detail".into()),
        ];
        for err in all {
            let code = err.code();
            let validation = matches!(err, ApiError::Validation(_));
            let (status, body) = body_of(err).await;
            assert!(status.is_client_error() || status.is_server_error());
            assert_eq!(body.error.code, code);
            assert_eq!(body.error.fields.is_some(), validation, "{code}");
        }
    }

    /// A database's wording (tables, columns, constraint names) stays in the logs; a key the
    /// store set becomes our sentence.
    #[tokio::test]
    async fn store_errors_reach_clients_only_in_our_words() {
        let leaks = [
            "UNIQUE constraint failed: users.tenant_id, users.user_name_norm",
            "FOREIGN KEY constraint failed",
            "api_tokens_org_id_fkey",
            "insert or update on table \"grants\" violates foreign key constraint",
        ];
        for raw in leaks {
            let (status, body) = body_of(
                StoreError::Conflict {
                    constraint: raw.into(),
                }
                .into(),
            )
            .await;
            assert_eq!(status, StatusCode::CONFLICT);
            assert_eq!(body.error.message, "conflicts with existing data");
        }
        let (_, named) = body_of(
            StoreError::Conflict {
                constraint: crate::store::ENVIRONMENT_NAME_TAKEN.into(),
            }
            .into(),
        )
        .await;
        assert_eq!(
            named.error.message,
            "environment name already used in this product"
        );
        for (err, status, message) in [
            (
                StoreError::Other("no such column: users.secret".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ),
            (
                StoreError::Unavailable("connection refused to db.internal:5432".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable",
            ),
        ] {
            let (got, body) = body_of(err.into()).await;
            assert_eq!((got, body.error.message.as_str()), (status, message));
        }
    }
}
