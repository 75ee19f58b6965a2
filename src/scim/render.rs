//! Rendering stored resources into replies, the same way for Users and Groups: the attribute
//! that needs a second query (a User's `groups`, a Group's `members`) is loaded for a whole
//! page at once, and only when the projection returns it.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use uuid::Uuid;

use super::resource::{self, Projection};
use super::schema::ResourceType;
use super::{Scim, ScimError, ScimReply};
use crate::domain::group::GroupMember;
use crate::domain::provisioning::{ScimGroup, ScimUser, ScimUserGroup};
use crate::store::StoreError;

pub(crate) trait Rendered: Sized {
    type Related;
    const RESOURCE_TYPE: ResourceType;
    /// The attribute loaded by [`Rendered::load_related`].
    const RELATED: &'static str;
    fn id(&self) -> Uuid;
    fn version(&self) -> i64;
    fn render(&self, related: Option<&[Self::Related]>, base: &str) -> Value;
    async fn load_related(
        scim: &Scim<'_>,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, Self::Related)>, StoreError>;
}

impl Rendered for ScimUser {
    type Related = ScimUserGroup;
    const RESOURCE_TYPE: ResourceType = ResourceType::User;
    const RELATED: &'static str = "groups";

    fn id(&self) -> Uuid {
        self.id
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn render(&self, related: Option<&[ScimUserGroup]>, base: &str) -> Value {
        resource::render_user(self, related, base)
    }

    async fn load_related(
        scim: &Scim<'_>,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, ScimUserGroup)>, StoreError> {
        scim.state
            .store
            .scim_user_groups(scim.client.scope, ids)
            .await
    }
}

impl Rendered for ScimGroup {
    type Related = GroupMember;
    const RESOURCE_TYPE: ResourceType = ResourceType::Group;
    const RELATED: &'static str = "members";

    fn id(&self) -> Uuid {
        self.id
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn render(&self, related: Option<&[GroupMember]>, base: &str) -> Value {
        resource::render_group(self, related, base)
    }

    async fn load_related(
        scim: &Scim<'_>,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, GroupMember)>, StoreError> {
        scim.state
            .store
            .scim_group_members(scim.client.scope, ids)
            .await
    }
}

impl Scim<'_> {
    /// Renders a page of resources, projected.
    pub(crate) async fn render_all<R: Rendered>(
        &self,
        items: &[R],
        projection: &Projection,
    ) -> Result<Vec<Value>, ScimError> {
        let related = if projection.returns(R::RELATED) && !items.is_empty() {
            let ids: Vec<Uuid> = items.iter().map(Rendered::id).collect();
            let mut by_id: HashMap<Uuid, Vec<R::Related>> = HashMap::new();
            for (id, r) in R::load_related(self, &ids).await? {
                by_id.entry(id).or_default().push(r);
            }
            Some(by_id)
        } else {
            None
        };
        Ok(items
            .iter()
            .map(|item| {
                let mine = related
                    .as_ref()
                    .map(|m| m.get(&item.id()).map_or(&[][..], Vec::as_slice));
                let mut out = item.render(mine, &self.base);
                projection.apply(R::RESOURCE_TYPE, &mut out);
                out
            })
            .collect())
    }

    /// One resource as a reply: its body, and the `ETag` (and on creation `Location`) headers,
    /// which say where and which version even when `attributes` left `meta` out of the body.
    pub(crate) async fn reply<R: Rendered>(
        &self,
        status: StatusCode,
        item: &R,
        projection: &Projection,
    ) -> Result<ScimReply, ScimError> {
        let body = self
            .render_all(std::slice::from_ref(item), projection)
            .await?
            .pop();
        Ok(ScimReply {
            status,
            body,
            // RFC 7644 §3.3: Location only on creation; ETag on every single resource.
            location: (status == StatusCode::CREATED)
                .then(|| resource::location(&self.base, R::RESOURCE_TYPE, item.id())),
            etag: Some(resource::etag(item.version())),
        })
    }

    /// A read of one resource: `304` when `If-None-Match` names its current version (the
    /// client's copy is fresh, RFC 7232 §3.2), else the resource.
    pub(crate) async fn read_reply<R: Rendered>(
        &self,
        item: &R,
        projection: &Projection,
        headers: &HeaderMap,
    ) -> Result<ScimReply, ScimError> {
        let fresh = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim() == "*"
                    || v.split(',')
                        .any(|t| resource::parse_etag(t) == Some(item.version()))
            });
        if fresh {
            return Ok(ScimReply {
                status: StatusCode::NOT_MODIFIED,
                body: None,
                location: None,
                etag: Some(resource::etag(item.version())),
            });
        }
        self.reply(StatusCode::OK, item, projection).await
    }
}
