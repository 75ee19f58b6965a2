//! SCIM 2.0 (RFC 7643/7644) HTTP edge: its error format, its token extractor, its request and
//! response types, rate limiting and its routes. The protocol itself (schemas, filters, PATCH,
//! resources) is `crate::scim_proto`, below the store; the handlers only glue it to the store.

mod bulk;
mod discovery;
mod edge;
mod endpoints;
mod groups;
mod query;
mod render;
mod search;
mod users;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use crate::auth::{self, AuthFailure, Principal, SERVICE_TOKEN_ONLY};
use crate::domain::audit::Actor;
use crate::domain::provisioning::ScimScope;
use crate::domain::token::TokenKind;
use crate::scim_proto::schema::Schemas;
use crate::scim_proto::{patch, resource};
use crate::state::AppState;
use crate::store::{Ctx, StoreError};
use endpoints::{Groups, Users};

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const CONTENT_TYPE: &str = "application/scim+json";

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug, Clone)]
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

    pub fn bad_request(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn not_found() -> Self {
        ScimError::new(StatusCode::NOT_FOUND, None, "no such resource")
    }
}

/// Unknown member ids named in an error's detail; the rest are counted.
const UNKNOWN_IDS_NAMED: usize = 10;

/// The one mapping from store errors to SCIM errors (RFC 7644 §3.12).
impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ScimError::not_found(),
            StoreError::Conflict { constraint } => {
                // Our sentence for a rule the store named; the database's own wording (tables,
                // columns, values) only in the log.
                tracing::info!(%constraint, "write refused by a database constraint");
                ScimError::new(
                    StatusCode::CONFLICT,
                    Some("uniqueness"),
                    crate::store::conflict_message(&constraint)
                        .unwrap_or("conflicts with an existing resource"),
                )
            }
            StoreError::UnknownIds(ids) => {
                // The first few by name: a 2 MB body can name 90,000, and the detail is also
                // kept in the token's error log.
                let named: Vec<String> = ids
                    .iter()
                    .take(UNKNOWN_IDS_NAMED)
                    .map(ToString::to_string)
                    .collect();
                let more = match ids.len().saturating_sub(UNKNOWN_IDS_NAMED) {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                ScimError::bad_request(
                    "invalidValue",
                    format!(
                        "no User or Group of this organization has the id {}{more}",
                        named.join(", ")
                    ),
                )
            }
            StoreError::Rule(rule) => ScimError::bad_request("invalidValue", rule),
            StoreError::Precondition => ScimError::new(
                StatusCode::PRECONDITION_FAILED,
                None,
                "the resource has changed since the version in If-Match",
            ),
            StoreError::InvalidQuery(detail) => ScimError::bad_request("invalidFilter", detail),
            StoreError::InvitationQuota {
                retry_after_secs, ..
            } => ScimError {
                retry_after_secs: Some(retry_after_secs),
                ..ScimError::new(StatusCode::TOO_MANY_REQUESTS, None, "too many requests")
            },
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, "service unavailable")
            }
            StoreError::Other(detail) => {
                tracing::error!(%detail, "SCIM request failed");
                ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error")
            }
        }
    }
}

impl From<resource::Invalid> for ScimError {
    fn from(e: resource::Invalid) -> Self {
        ScimError::bad_request(e.scim_type, e.detail)
    }
}

impl From<patch::PatchError> for ScimError {
    fn from(e: patch::PatchError) -> Self {
        ScimError::bad_request(e.scim_type, e.detail)
    }
}

impl From<AuthFailure> for ScimError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Unauthenticated(reason) => {
                ScimError::new(StatusCode::UNAUTHORIZED, None, reason)
            }
            AuthFailure::WrongKind(TokenKind::Service) => {
                ScimError::new(StatusCode::FORBIDDEN, None, SERVICE_TOKEN_ONLY)
            }
            AuthFailure::WrongKind(_) => ScimError::new(
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
        match serde_json::to_vec(&self.0) {
            Ok(bytes) => (
                [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
                bytes,
            )
                .into_response(),
            Err(error) => {
                tracing::error!(%error, "could not serialise a SCIM response");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// A successful SCIM answer: status, optional body, and the `Location`/`ETag` headers of a
/// single resource (RFC 7644 §3.1, §3.14). Bulk reads the same value for its operation results.
#[derive(Debug, Clone)]
pub struct ScimReply {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub location: Option<String>,
    pub etag: Option<String>,
    /// Group members written into `body` as it is sent (the groups in `body` hold a
    /// placeholder); never held whole in memory.
    pub(crate) members: Option<render::MemberStream>,
}

impl ScimReply {
    pub fn ok(body: Value) -> Self {
        ScimReply {
            status: StatusCode::OK,
            body: Some(body),
            location: None,
            etag: None,
            members: None,
        }
    }

    pub fn no_content() -> Self {
        ScimReply {
            status: StatusCode::NO_CONTENT,
            body: None,
            location: None,
            etag: None,
            members: None,
        }
    }
}

impl IntoResponse for ScimReply {
    fn into_response(self) -> Response {
        let mut response = match (self.body, self.members) {
            (Some(body), Some(members)) => members.respond(self.status, body),
            (Some(body), None) => (self.status, ScimJson(body)).into_response(),
            (None, _) => self.status.into_response(),
        };
        let headers = response.headers_mut();
        if let Some(v) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, v);
        }
        if let Some(v) = self.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            headers.insert(header::ETAG, v);
        }
        response
    }
}

/// A request body in JSON: `application/scim+json` or `application/json` (Okta and the
/// conformance checkers send the latter), or no content type at all. Anything else is 415, a
/// body that is not JSON `invalidSyntax`, one over the size limit 413.
pub struct ScimBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
            let essence = content_type
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if essence != CONTENT_TYPE && essence != "application/json" {
                return Err(ScimError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    None,
                    "send the body as application/scim+json or application/json",
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ScimError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Some("tooMany"),
                    "the request body is larger than this service accepts",
                )
            } else {
                ScimError::bad_request("invalidSyntax", rejection.body_text())
            }
        })?;
        parse_body(&bytes).map(ScimBody)
    }
}

pub(crate) fn parse_body(bytes: &[u8]) -> Result<Value, ScimError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ScimError::bad_request("invalidSyntax", format!("the body is not valid JSON: {e}"))
    })
}

/// `If-Match` (RFC 7644 §3.14): `None` without the header, `Any` for `*`, else the version
/// named (`Version(None)` for a tag that is not one of ours: it can never match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfMatch {
    Absent,
    Any,
    Version(Option<i64>),
}

impl IfMatch {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
            None => IfMatch::Absent,
            Some(v) if v.trim() == "*" => IfMatch::Any,
            // A list of tags: any may match; we keep the first that is ours.
            Some(v) => IfMatch::Version(v.split(',').find_map(resource::parse_etag)),
        }
    }

    /// The version a conditional store write must find, or `None` for an unconditional one.
    /// A tag that is not ours asks for a version that never exists.
    pub(crate) fn expected(self) -> Option<i64> {
        match self {
            IfMatch::Absent | IfMatch::Any => None,
            IfMatch::Version(v) => Some(v.unwrap_or(-1)),
        }
    }

    pub(crate) fn is_conditional(self) -> bool {
        matches!(self, IfMatch::Version(_))
    }
}

/// The provisioning client behind a SCIM bearer token: the org it provisions into, and who it
/// is for the audit log.
pub struct ScimClient {
    pub principal: Principal,
    pub scope: ScimScope,
    pub ctx: Ctx,
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = auth::authenticate(state, parts, &[TokenKind::Scim]).await?;
        if let Some(slot) = parts.extensions.get::<edge::CallerSlot>() {
            slot.set(&principal);
        }
        // Okta and Entra both back off on 429 + Retry-After. A route priced per operation
        // (Bulk) pays in its handler, once it knows how many it was asked for.
        if parts.extensions.get::<edge::PricedPerOperation>().is_none() {
            state
                .scim_rate
                .take(principal.token.id)
                .map_err(too_many_requests)?;
        }
        let ctx = crate::request::audit_ctx(
            &parts.extensions,
            Actor::ScimToken {
                id: principal.token.id,
                name: principal.token.name.clone(),
            },
        );
        let scope = ScimScope {
            tenant_id: principal.tenant_id(),
            org_id: principal.org_id(),
        };
        Ok(ScimClient {
            principal,
            scope,
            ctx,
        })
    }
}

impl ScimClient {
    /// Pays the rate limit for `n` units of work at once (a Bulk's operations): all of them or,
    /// refused, none, with 429 and `Retry-After` before anything has run.
    pub(crate) fn charge(&self, state: &AppState, n: usize) -> Result<(), ScimError> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        state
            .scim_rate
            .take_n(self.principal.token.id, n)
            .map_err(too_many_requests)
    }
}

fn too_many_requests(wait: std::time::Duration) -> ScimError {
    // Rounded up: a client coming back after `Retry-After` must find its budget there.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ScimError {
        retry_after_secs: Some(secs.max(1)),
        ..ScimError::new(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            "too many requests for this token",
        )
    }
}

/// What handlers share: the state, the caller, and the base of `meta.location`.
pub(crate) struct Scim<'a> {
    pub state: &'a AppState,
    pub client: &'a ScimClient,
    pub base: String,
}

impl<'a> Scim<'a> {
    /// The SCIM schemas this service serves.
    pub(crate) fn schemas(&self) -> &'a Schemas {
        &self.state.scim_schemas
    }

    pub(crate) fn new(state: &'a AppState, client: &'a ScimClient) -> Self {
        Scim {
            state,
            client,
            base: resource::scim_base(&state.config.public_url()),
        }
    }
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route(
            "/Users",
            get(endpoints::list::<Users>).post(endpoints::create::<Users>),
        )
        .route("/Users/.search", post(endpoints::search::<Users>))
        .route(
            "/Users/{id}",
            get(endpoints::get::<Users>)
                .put(endpoints::replace::<Users>)
                .patch(endpoints::patch::<Users>)
                .delete(endpoints::delete::<Users>),
        )
        .route(
            "/Groups",
            get(endpoints::list::<Groups>).post(endpoints::create::<Groups>),
        )
        .route("/Groups/.search", post(endpoints::search::<Groups>))
        .route(
            "/Groups/{id}",
            get(endpoints::get::<Groups>)
                .put(endpoints::replace::<Groups>)
                .patch(endpoints::patch::<Groups>)
                .delete(endpoints::delete::<Groups>),
        )
        .route("/.search", post(search::search_all))
        .route(
            "/Bulk",
            post(bulk::bulk).layer(axum::Extension(edge::PricedPerOperation)),
        )
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

/// Unknown SCIM paths answer in SCIM's format, after authentication (so they reveal nothing).
async fn not_found(_client: ScimClient) -> ScimError {
    ScimError::new(StatusCode::NOT_FOUND, None, "no such SCIM resource")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database's wording of a refused write stays in the log; the client reads ours.
    #[test]
    fn conflicts_reach_scim_clients_in_our_words() {
        for (constraint, detail) in [
            (
                "UNIQUE constraint failed: users.tenant_id, users.user_name_norm",
                "conflicts with an existing resource",
            ),
            (
                "groups_org_display_name",
                "conflicts with an existing resource",
            ),
            ("userName", "userName is already in use"),
        ] {
            let e = ScimError::from(StoreError::Conflict {
                constraint: constraint.into(),
            });
            assert_eq!(
                (e.status, e.scim_type, e.detail.as_str()),
                (StatusCode::CONFLICT, Some("uniqueness"), detail)
            );
        }
    }
}
