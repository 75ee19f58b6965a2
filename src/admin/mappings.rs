//! An org's group mapping as one document (issue 11): read it, replace it whole, or see what
//! replacing it would change. The document is the one `rolegate mappings export|import` reads
//! and writes (`domain::mapping_document`); its errors name fields by JSON Pointer
//! (`/rules/0/grants/1/product`), in the `fields` of the one error shape.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AdminAuth;
use super::doc::{AuthErrors, BadBodyOrParams, BadParams, ServerErrors};
use super::extract::{ApiJson, ApiQuery, RawJson};
use super::page::{Page, PageSize};
use super::reach::{InReach, OrgInReach};
use crate::domain::mapping_document::{self, DocumentError, MappingDocument, Mappings};
use crate::domain::preview::Preview;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::state::AppState;
use crate::store::{StoreError, StoredMappings};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(get_mappings, put_mappings))
        .routes(routes!(preview_mappings))
}

/// Every error of a document, each at its JSON Pointer; nothing is applied.
fn invalid(errors: Vec<DocumentError>) -> ApiError {
    ApiError::Validation(
        errors
            .into_iter()
            .map(|e| FieldError::new(e.path, e.message))
            .collect(),
    )
}

/// The body read as a mapping document of `org_id` and checked against what that org may name.
pub(crate) async fn read_document(
    state: &AppState,
    tenant_id: Uuid,
    org_id: Uuid,
    body: &[u8],
) -> Result<Mappings, ApiError> {
    let document = mapping_document::parse_json(body).map_err(invalid)?;
    let catalog = state.store.mapping_catalog(tenant_id, org_id).await?;
    mapping_document::validate(&document, &catalog).map_err(invalid)
}

/// The stored mappings as their document, as `GET …/mappings` and `mappings export` write it.
pub(crate) async fn as_document(
    state: &AppState,
    tenant_id: Uuid,
    stored: &StoredMappings,
) -> Result<MappingDocument, ApiError> {
    let catalog = state
        .store
        .mapping_catalog(tenant_id, stored.org_id)
        .await?;
    Ok(mapping_document::export(&stored.mappings, &catalog))
}

/// The stored mappings as their document, with the version as a strong `ETag` for `If-Match`.
async fn document_response(
    state: &AppState,
    tenant_id: Uuid,
    stored: &StoredMappings,
) -> Result<Response, ApiError> {
    let document = as_document(state, tenant_id, stored).await?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", stored.version))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::ETAG, etag)], ApiJson(document)).into_response())
}

/// The version `If-Match` names. None without the header, or with `*` (RFC 9110 §13.1.1: any
/// current representation — an org always has mappings, if only the empty ones of version 0).
/// Otherwise one strong tag, `"N"`, as GET and PUT send it; anything else is a bad request,
/// not a mismatch: a client that sends it would never succeed.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    const FORM: &str =
        "If-Match takes the ETag this API sends, a quoted version such as \"3\", or *";
    let mut values = headers.get_all(header::IF_MATCH).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(format!(
            "one If-Match header only; {FORM}"
        )));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::BadRequest(FORM.into()))?
        .trim();
    if value == "*" {
        return Ok(None);
    }
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest(format!("{FORM}; got {value:?}")))
}

/// The org's mapping document.
///
/// Its rules, ordered by name, and its default for members no enabled rule matches (`null`:
/// none). Products, permission groups and orgs are named where the name is unique in the org's
/// subtree, else by id. `ETag` is the mappings' version; send it back as `If-Match` on `PUT`.
#[utoipa::path(
    get,
    path = "/orgs/{org_id}/mappings",
    tag = "mappings",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The document.", body = MappingDocument,
            headers(("ETag" = String, description = "The mappings' version, quoted: `\"3\"` (`\"0\"`: never written)."))),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn get_mappings(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
) -> Result<Response, ApiError> {
    let stored = state.store.get_mappings(admin.tenant_id(), item.id).await?;
    document_response(&state, admin.tenant_id(), &stored).await
}

/// Replaces the org's whole mapping document: rules it does not list are deleted.
///
/// The document is checked as a whole: every error is reported (`422`, each field by its JSON
/// Pointer, e.g. `/rules/0/grants/1/product`) and nothing is applied. Applied in one
/// transaction, audited as `mapping.replace` with before and after. Refused (`409`,
/// `owner_rule`, naming the orgs) when it would leave an org of the subtree without an active
/// Owner — a mapped Owner counts.
#[utoipa::path(
    put,
    path = "/orgs/{org_id}/mappings",
    tag = "mappings",
    security(("bearer" = [])),
    params(
        ("org_id" = Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The `ETag` of the document this one replaces: refused with `412` if the mappings changed since."),
    ),
    request_body(content = MappingDocument, content_type = "application/json"),
    responses(
        (status = 200, description = "The new document, as `GET` returns it.", body = MappingDocument,
            headers(("ETag" = String, description = "The new version, quoted."))),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        (status = 409, description = "`owner_rule`: the document would leave the named org(s) without an active Owner.", body = ErrorBody),
        (status = 412, description = "`precondition_failed`: `If-Match` names an older version; read the document again.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors,
        (status = 400, description = "The body is not JSON, or not sent as `application/json`; or `If-Match` is not a quoted version or `*`.", body = ErrorBody),
        (status = 422, description = "The document is invalid: `fields` lists every error, each `field` a JSON Pointer into the body; or `org_id` is not an id.", body = ErrorBody)
    )
)]
async fn put_mappings(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    headers: HeaderMap,
    RawJson(body): RawJson,
) -> Result<Response, ApiError> {
    let version = if_match(&headers)?;
    let stored = replace(&state, &admin, item.id, &body, version).await?;
    document_response(&state, admin.tenant_id(), &stored).await
}

/// Replaces the org's mappings with the document in `body`, if they are still at `version`
/// (`None`: whatever they are): `PUT …/mappings` and the console's "Apply".
pub(crate) async fn replace(
    state: &AppState,
    admin: &AdminAuth,
    org_id: Uuid,
    body: &[u8],
    version: Option<i64>,
) -> Result<StoredMappings, ApiError> {
    let tenant = admin.tenant_id();
    let mappings = read_document(state, tenant, org_id, body).await?;
    state
        .store
        .replace_mappings(&admin.ctx, tenant, org_id, &mappings, version)
        .await
        .map_err(|e| match e {
            StoreError::Precondition => ApiError::PreconditionFailed(
                "the mappings have changed since the version in If-Match; GET them again",
            ),
            other => other.into(),
        })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PageParams {
    /// The `next` of the previous page.
    after: Option<Uuid>,
    /// Users per page, 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// What replacing the org's mappings with this document would change, applying nothing.
///
/// Computed by the resolver on the same users before and after: a summary, the Owners of each
/// org of the subtree before and after, the orgs that would be left without one (applying is
/// refused while any is listed), and, one page at a time, each affected user's org roles,
/// capabilities and per-environment access gained and lost.
#[utoipa::path(
    post,
    path = "/orgs/{org_id}/mappings/preview",
    tag = "mappings",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), PageParams),
    request_body(content = MappingDocument, content_type = "application/json"),
    responses(
        (status = 200, description = "The preview, with one page of the affected users (by id).", body = Preview),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors,
        (status = 422, description = "The document is invalid (`fields`: every error, each `field` a JSON Pointer into the body), or a parameter is not of its form or `limit` is out of range (`fields` names it).", body = ErrorBody)
    )
)]
async fn preview_mappings(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiQuery(p): ApiQuery<PageParams>,
    RawJson(body): RawJson,
) -> Result<ApiJson<Preview>, ApiError> {
    let page = Page::new(PageSize::LIST, p.after, p.limit)?;
    let preview = preview(
        &state,
        admin.tenant_id(),
        item.id,
        &body,
        page.cursor,
        page.limit,
    )
    .await?;
    Ok(ApiJson(preview))
}

/// What replacing the org's mappings with the document in `body` would change, one page of
/// users: `POST …/mappings/preview` and the console's preview page.
pub(crate) async fn preview(
    state: &AppState,
    tenant_id: Uuid,
    org_id: Uuid,
    body: &[u8],
    after: Option<Uuid>,
    limit: u32,
) -> Result<Preview, ApiError> {
    let mappings = read_document(state, tenant_id, org_id, body).await?;
    Ok(state
        .store
        .preview_mappings(tenant_id, org_id, &mappings, after, limit)
        .await?)
}
