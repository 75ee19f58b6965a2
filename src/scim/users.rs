//! `/Users` (RFC 7644 §3.3–3.6): create, read, list and search, replace, PATCH and delete.

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use super::query::{RawQuery, Resolved};
use super::{IfMatch, Scim, ScimError, ScimReply};
use crate::scim_proto::patch;
use crate::scim_proto::resource::{self, render_user};
use crate::scim_proto::schema::ResourceType;
use crate::store::{ScimListQuery, StoreError};

/// Attributes a User keeps in columns: asking for only these skips reading its document.
const COLUMN_ATTRIBUTES: [&str; 5] = ["id", "userName", "externalId", "meta", "schemas"];

/// How often a PATCH re-reads and re-applies when another write got in between.
const PATCH_ATTEMPTS: usize = 20;

pub(super) fn parse_id(id: &str) -> Result<Uuid, ScimError> {
    // Any id we did not issue names nothing (Okta probes with ids that are not UUIDs).
    Uuid::parse_str(id).map_err(|_| ScimError::not_found())
}

impl Scim<'_> {
    pub(crate) async fn create_user(
        &self,
        body: &Value,
        raw: &RawQuery,
    ) -> Result<ScimReply, ScimError> {
        let projection = raw.projection(self.schemas(), ResourceType::User)?;
        let input = resource::user_input(self.schemas(), body)?;
        let created = self
            .state
            .store
            .scim_create_user(&self.client.ctx, self.client.scope, &input)
            .await?;
        if created.version == 1 {
            // A new person is in no group yet: no need to ask the store.
            return Ok(self.reply_new_user(&created, &projection));
        }
        self.reply(StatusCode::CREATED, &created, &projection).await
    }

    pub(crate) async fn get_user(
        &self,
        id: &str,
        raw: &RawQuery,
        headers: &HeaderMap,
    ) -> Result<ScimReply, ScimError> {
        let id = parse_id(id)?;
        let projection = raw.projection(self.schemas(), ResourceType::User)?;
        let user = self
            .state
            .store
            .scim_get_user(
                self.client.scope,
                id,
                projection.needs_document(&COLUMN_ATTRIBUTES),
            )
            .await?;
        self.read_reply(&user, &projection, headers).await
    }

    /// One page of Users as rendered resources, with the total.
    pub(crate) async fn user_page(
        &self,
        raw: &RawQuery,
        resolved: &Resolved,
        offset: u64,
        count: u64,
    ) -> Result<(u64, Vec<Value>), ScimError> {
        let projection = raw.projection(self.schemas(), ResourceType::User)?;
        let page = self
            .state
            .store
            .scim_list_users(
                self.client.scope,
                &ScimListQuery {
                    schemas: self.schemas(),
                    filter: resolved.filter.as_ref(),
                    sort: resolved.sort(),
                    offset,
                    count,
                    with_document: projection.needs_document(&COLUMN_ATTRIBUTES),
                },
            )
            .await?;
        let resources = self.render_all(&page.items, &projection).await?.resources;
        Ok((page.total, resources))
    }

    pub(crate) async fn list_users(&self, raw: &RawQuery) -> Result<ScimReply, ScimError> {
        let (offset, count) = raw.page()?;
        let resolved = raw.resolve(self.schemas(), ResourceType::User)?;
        let (total, resources) = self.user_page(raw, &resolved, offset, count).await?;
        Ok(ScimReply::ok(resource::list_response(
            total,
            offset + 1,
            resources,
        )))
    }

    pub(crate) async fn replace_user(
        &self,
        id: &str,
        body: &Value,
        if_match: IfMatch,
        raw: &RawQuery,
    ) -> Result<ScimReply, ScimError> {
        let id = parse_id(id)?;
        let projection = raw.projection(self.schemas(), ResourceType::User)?;
        let input = resource::user_input(self.schemas(), body)?;
        let replaced = self
            .state
            .store
            .scim_replace_user(
                &self.client.ctx,
                self.client.scope,
                id,
                if_match.expected(),
                &input,
            )
            .await?;
        self.reply(StatusCode::OK, &replaced, &projection).await
    }

    /// RFC 7644 §3.5.2, answered 200 with the resource. The PATCH is applied to the stored
    /// resource and written only if nobody wrote in between (compare-and-swap on the version),
    /// else re-applied to the newer one: concurrent PATCHes of one user lose nothing.
    pub(crate) async fn patch_user(
        &self,
        id: &str,
        body: &Value,
        if_match: IfMatch,
        raw: &RawQuery,
    ) -> Result<ScimReply, ScimError> {
        let id = parse_id(id)?;
        let projection = raw.projection(self.schemas(), ResourceType::User)?;
        let operations = patch::parse_request(body)?;
        for _ in 0..PATCH_ATTEMPTS {
            let current = self
                .state
                .store
                .scim_get_user(self.client.scope, id, true)
                .await?;
            if let Some(expected) = if_match.expected()
                && expected != current.version
            {
                return Err(StoreError::Precondition.into());
            }
            let mut doc = render_user(self.schemas(), &current, None, &self.base);
            patch::apply(self.schemas(), ResourceType::User, &mut doc, &operations)?;
            let input = resource::user_input(self.schemas(), &doc)?;
            match self
                .state
                .store
                .scim_replace_user(
                    &self.client.ctx,
                    self.client.scope,
                    id,
                    Some(current.version),
                    &input,
                )
                .await
            {
                Ok(user) => return self.reply(StatusCode::OK, &user, &projection).await,
                Err(StoreError::Precondition) if !if_match.is_conditional() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ScimError::new(
            StatusCode::CONFLICT,
            None,
            "the user kept changing while this PATCH was applied; retry it",
        ))
    }

    pub(crate) async fn delete_user(
        &self,
        id: &str,
        if_match: IfMatch,
    ) -> Result<ScimReply, ScimError> {
        let id = parse_id(id)?;
        self.state
            .store
            .scim_delete_user(&self.client.ctx, self.client.scope, id, if_match.expected())
            .await?;
        Ok(ScimReply::no_content())
    }
}
