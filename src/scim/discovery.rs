//! Discovery (RFC 7644 §4, RFC 7643 §5–7): what this server supports, truthfully, and the
//! schemas the rest of the SCIM layer resolves against.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::query::MAX_RESULTS;
use super::{ScimClient, ScimError, ScimJson};
use crate::scim_proto::resource::{list_response, scim_base};
use crate::scim_proto::schema::{self, ResourceType};
use crate::state::AppState;

/// Most operations in one `/Bulk` request.
pub const BULK_MAX_OPERATIONS: usize = 1000;

const RESOURCE_TYPES: [ResourceType; 2] = [ResourceType::User, ResourceType::Group];

fn base(state: &AppState) -> String {
    scim_base(&state.config.public_url())
}

/// The largest `/Bulk` body: the request body limit, which refuses anything larger with 413.
pub fn bulk_max_payload(state: &AppState) -> usize {
    state.config.body_limit
}

/// RFC 7643 §5.
pub async fn service_provider_config(
    State(state): State<AppState>,
    _client: ScimClient,
) -> ScimJson {
    ScimJson(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": { "supported": true },
        "bulk": {
            "supported": true,
            "maxOperations": BULK_MAX_OPERATIONS,
            "maxPayloadSize": bulk_max_payload(&state),
        },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": false },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A rolegate SCIM token (rg_scim_…) in the Authorization header",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", base(&state)),
        },
    }))
}

fn resource_type_json(schemas: &schema::Schemas, rt: ResourceType, base: &str) -> Value {
    let extensions: Vec<Value> = schemas
        .extensions(rt)
        .iter()
        // Optional: a User without enterprise attributes is a valid User.
        .map(|e| json!({ "schema": e.id, "required": false }))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": rt.name(),
        "name": rt.name(),
        "description": rt.schema().description,
        "endpoint": rt.endpoint(),
        "schema": rt.schema().id,
        "schemaExtensions": extensions,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{}", rt.name()),
        },
    })
}

fn schema_json(s: &schema::ResourceSchema, base: &str) -> Value {
    let mut doc = s.to_scim_json();
    doc["meta"]["location"] = json!(format!("{base}/Schemas/{}", s.id));
    doc
}

pub async fn resource_types(State(state): State<AppState>, _client: ScimClient) -> ScimJson {
    let base = base(&state);
    let all: Vec<Value> = RESOURCE_TYPES
        .iter()
        .map(|rt| resource_type_json(&state.scim_schemas, *rt, &base))
        .collect();
    ScimJson(list_response(all.len() as u64, 1, all))
}

pub async fn resource_type(
    State(state): State<AppState>,
    _client: ScimClient,
    Path(id): Path<String>,
) -> Result<ScimJson, ScimError> {
    RESOURCE_TYPES
        .iter()
        .find(|rt| rt.name().eq_ignore_ascii_case(&id))
        .map(|rt| ScimJson(resource_type_json(&state.scim_schemas, *rt, &base(&state))))
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, None, "no such resource type"))
}

pub async fn schemas(State(state): State<AppState>, _client: ScimClient) -> ScimJson {
    let base = base(&state);
    let all: Vec<Value> = state
        .scim_schemas
        .all()
        .iter()
        .map(|s| schema_json(s, &base))
        .collect();
    ScimJson(list_response(all.len() as u64, 1, all))
}

pub async fn schema(
    State(state): State<AppState>,
    _client: ScimClient,
    Path(id): Path<String>,
) -> Result<ScimJson, ScimError> {
    state
        .scim_schemas
        .all()
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .map(|s| ScimJson(schema_json(s, &base(&state))))
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, None, "no such schema"))
}
