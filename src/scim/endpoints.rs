//! The HTTP handlers of `/Users` and `/Groups`, written once: each extracts the request and
//! hands it to the resource type's operation (`Scim::create_user`, `Scim::patch_group`, …),
//! which Bulk calls the same way.

use axum::extract::{Path, RawQuery as UriQuery, State};
use axum::http::HeaderMap;
use serde_json::Value;

use super::query::RawQuery;
use super::{IfMatch, Scim, ScimBody, ScimClient, ScimError, ScimReply};
use crate::state::AppState;

type Reply = Result<ScimReply, ScimError>;

/// A resource endpoint's operations (RFC 7644 §3.3–3.6).
pub(crate) trait Endpoint {
    async fn create(scim: &Scim<'_>, body: &Value, raw: &RawQuery) -> Reply;
    async fn get(scim: &Scim<'_>, id: &str, raw: &RawQuery, headers: &HeaderMap) -> Reply;
    async fn list(scim: &Scim<'_>, raw: &RawQuery) -> Reply;
    async fn replace(scim: &Scim<'_>, id: &str, body: &Value, m: IfMatch, raw: &RawQuery) -> Reply;
    async fn patch(scim: &Scim<'_>, id: &str, body: &Value, m: IfMatch, raw: &RawQuery) -> Reply;
    async fn delete(scim: &Scim<'_>, id: &str, m: IfMatch) -> Reply;
}

pub(crate) struct Users;
pub(crate) struct Groups;

impl Endpoint for Users {
    async fn create(scim: &Scim<'_>, body: &Value, raw: &RawQuery) -> Reply {
        scim.create_user(body, raw).await
    }
    async fn get(scim: &Scim<'_>, id: &str, raw: &RawQuery, headers: &HeaderMap) -> Reply {
        scim.get_user(id, raw, headers).await
    }
    async fn list(scim: &Scim<'_>, raw: &RawQuery) -> Reply {
        scim.list_users(raw).await
    }
    async fn replace(scim: &Scim<'_>, id: &str, body: &Value, m: IfMatch, raw: &RawQuery) -> Reply {
        scim.replace_user(id, body, m, raw).await
    }
    async fn patch(scim: &Scim<'_>, id: &str, body: &Value, m: IfMatch, raw: &RawQuery) -> Reply {
        scim.patch_user(id, body, m, raw).await
    }
    async fn delete(scim: &Scim<'_>, id: &str, m: IfMatch) -> Reply {
        scim.delete_user(id, m).await
    }
}

impl Endpoint for Groups {
    async fn create(scim: &Scim<'_>, body: &Value, raw: &RawQuery) -> Reply {
        scim.create_group(body, raw).await
    }
    async fn get(scim: &Scim<'_>, id: &str, raw: &RawQuery, headers: &HeaderMap) -> Reply {
        scim.get_group(id, raw, headers).await
    }
    async fn list(scim: &Scim<'_>, raw: &RawQuery) -> Reply {
        scim.list_groups(raw).await
    }
    async fn replace(scim: &Scim<'_>, id: &str, body: &Value, m: IfMatch, raw: &RawQuery) -> Reply {
        scim.replace_group(id, body, m, raw).await
    }
    async fn patch(scim: &Scim<'_>, id: &str, body: &Value, m: IfMatch, raw: &RawQuery) -> Reply {
        scim.patch_group(id, body, m, raw).await
    }
    async fn delete(scim: &Scim<'_>, id: &str, m: IfMatch) -> Reply {
        scim.delete_group(id, m).await
    }
}

fn query(raw: Option<String>) -> RawQuery {
    RawQuery::from_query_string(raw.as_deref())
}

pub(super) async fn create<E: Endpoint>(
    State(state): State<AppState>,
    client: ScimClient,
    UriQuery(q): UriQuery,
    ScimBody(body): ScimBody,
) -> Reply {
    E::create(&Scim::new(&state, &client), &body, &query(q)).await
}

pub(super) async fn get<E: Endpoint>(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    UriQuery(q): UriQuery,
    headers: HeaderMap,
) -> Reply {
    E::get(&Scim::new(&state, &client), &id, &query(q), &headers).await
}

pub(super) async fn list<E: Endpoint>(
    State(state): State<AppState>,
    client: ScimClient,
    UriQuery(q): UriQuery,
) -> Reply {
    E::list(&Scim::new(&state, &client), &query(q)).await
}

/// `POST …/.search` (RFC 7644 §3.4.3): a list whose parameters come in the body.
pub(super) async fn search<E: Endpoint>(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Reply {
    E::list(
        &Scim::new(&state, &client),
        &RawQuery::from_search_request(&body)?,
    )
    .await
}

pub(super) async fn replace<E: Endpoint>(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    UriQuery(q): UriQuery,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Reply {
    let if_match = IfMatch::from_headers(&headers);
    E::replace(&Scim::new(&state, &client), &id, &body, if_match, &query(q)).await
}

pub(super) async fn patch<E: Endpoint>(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    UriQuery(q): UriQuery,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Reply {
    let if_match = IfMatch::from_headers(&headers);
    E::patch(&Scim::new(&state, &client), &id, &body, if_match, &query(q)).await
}

pub(super) async fn delete<E: Endpoint>(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    E::delete(
        &Scim::new(&state, &client),
        &id,
        IfMatch::from_headers(&headers),
    )
    .await
}
