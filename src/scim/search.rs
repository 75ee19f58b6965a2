//! `POST /.search` at the root (RFC 7644 §3.4.3): one query over Users and Groups, Users first.

use axum::extract::State;
use serde_json::Value;

use super::query::RawQuery;
use super::{Scim, ScimBody, ScimClient, ScimError, ScimReply};
use crate::scim_proto::resource::list_response;
use crate::scim_proto::schema::ResourceType;
use crate::state::AppState;

/// A filter or sort that names attributes one resource type lacks selects nothing of that type
/// (a filter that fits neither is the client's error). `startIndex`/`count` page through Users
/// then Groups as one list.
pub(super) async fn search_all(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<ScimReply, ScimError> {
    let raw = RawQuery::from_search_request(&body)?;
    let (offset, count) = raw.page()?;
    let scim = Scim::new(&state, &client);
    let fits_users = raw.resolve(scim.schemas(), ResourceType::User);
    let fits_groups = raw.resolve(scim.schemas(), ResourceType::Group);
    if let (Err(e), Err(_)) = (&fits_users, &fits_groups) {
        return Err(e.clone());
    }
    let mut total = 0;
    let mut resources: Vec<Value> = Vec::new();
    let mut members = None;
    let mut users_total = 0;
    if let Ok(resolved) = &fits_users {
        let (t, page) = scim.user_page(&raw, resolved, offset, count).await?;
        users_total = t;
        total += t;
        resources.extend(page);
    }
    if let Ok(resolved) = &fits_groups {
        let remaining = count.saturating_sub(resources.len() as u64);
        let (t, page) = scim
            .group_page(
                &raw,
                resolved,
                offset.saturating_sub(users_total),
                remaining,
            )
            .await?;
        total += t;
        resources.extend(page.resources);
        members = page.members;
    }
    Ok(ScimReply::ok(list_response(total, offset + 1, resources)).streaming(members))
}
