//! `/Groups` (RFC 7644 §3.3–3.6). Members are never loaded to change them: PATCH turns member
//! operations into set changes the store applies in SQL, so one member added to a group of
//! 20,000 costs one insert; and a page of groups loads its members in one query.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use super::query::{RawQuery, Resolved};
use super::render::{MemberShape, Page};
use super::users::parse_id;
use super::{IfMatch, Scim, ScimError, ScimReply};
use crate::scim_proto::eval;
use crate::scim_proto::patch::{self, MemberChange};
use crate::scim_proto::resource::{self, render_group, render_member};
use crate::scim_proto::schema::ResourceType;
use crate::store::{MemberRef, MembershipChange, ScimGroupWrite, ScimListQuery, StoreError};

const PATCH_ATTEMPTS: usize = 20;

/// Longest member value quoted back in an error.
const QUOTED_VALUE_CHARS: usize = 100;

/// Members as the client named them, checked to be ids we could have issued. Whether they exist
/// in the org is the store's to say (in the same transaction as the change).
fn member_refs(value: &Value) -> Result<Vec<MemberRef>, ScimError> {
    refs_of(&resource::member_inputs(value)?)
}

fn refs_of(inputs: &[resource::MemberInput]) -> Result<Vec<MemberRef>, ScimError> {
    inputs
        .iter()
        .map(|m| {
            Uuid::parse_str(&m.value)
                .map(|id| MemberRef { id, kind: m.kind })
                .map_err(|_| {
                    // Quoted short: the value is the client's and may be megabytes long.
                    let mut shown: String = m.value.chars().take(QUOTED_VALUE_CHARS).collect();
                    if shown.len() < m.value.len() {
                        shown.push('…');
                    }
                    ScimError::bad_request(
                        "invalidValue",
                        format!("no User or Group of this organization has the id \"{shown}\""),
                    )
                })
        })
        .collect()
}

/// How many of a page's groups, in order, fit in the member budget: each while the members on
/// the page stay within it, and always the first (a group larger than the budget has a page of
/// its own). Cutting the page, never skipping a group, keeps `startIndex` paging exact.
fn within_budget(counts: impl IntoIterator<Item = u64>, budget: u64) -> usize {
    let mut members = 0u64;
    let mut kept = 0;
    for n in counts {
        members = members.saturating_add(n);
        if kept > 0 && members > budget {
            break;
        }
        kept += 1;
    }
    kept
}

fn write_of(input: &resource::GroupInput) -> ScimGroupWrite {
    ScimGroupWrite {
        display_name: input.display_name.clone(),
        external_id: input.external_id.clone(),
    }
}

impl Scim<'_> {
    pub(crate) async fn create_group(
        &self,
        body: &Value,
        raw: &RawQuery,
    ) -> Result<ScimReply, ScimError> {
        let projection = raw.projection(self.schemas(), ResourceType::Group)?;
        let input = resource::group_input(body)?;
        let members = refs_of(input.members.as_deref().unwrap_or_default())?;
        let created = self
            .state
            .store
            .scim_create_group(
                &self.client.ctx,
                self.client.scope,
                &write_of(&input),
                &members,
            )
            .await?;
        self.reply(StatusCode::CREATED, &created, &projection).await
    }

    pub(crate) async fn get_group(
        &self,
        id: &str,
        raw: &RawQuery,
        headers: &HeaderMap,
    ) -> Result<ScimReply, ScimError> {
        let id = parse_id(id)?;
        let projection = raw.projection(self.schemas(), ResourceType::Group)?;
        let group = self
            .state
            .store
            .scim_get_group(self.client.scope, id)
            .await?;
        self.read_reply(&group, &projection, headers).await
    }

    /// One page of Groups, rendered, with the total. When the members are listed, the page
    /// ends at the member budget: RFC 7644 §3.4.2.4 lets a page hold fewer than `count`
    /// (`itemsPerPage` tells the client), and a page of a few million-member groups would
    /// otherwise take minutes to send. How many members each group has comes from one query
    /// for the page.
    pub(crate) async fn group_page(
        &self,
        raw: &RawQuery,
        resolved: &Resolved,
        offset: u64,
        count: u64,
    ) -> Result<(u64, Page), ScimError> {
        let projection = raw.projection(self.schemas(), ResourceType::Group)?;
        let page = self
            .state
            .store
            .scim_list_groups(
                self.client.scope,
                &ScimListQuery {
                    schemas: self.schemas(),
                    filter: resolved.filter.as_ref(),
                    sort: resolved.sort(),
                    offset,
                    count,
                    with_document: false,
                },
            )
            .await?;
        let shape = MemberShape::of(&projection, &self.base);
        let mut items = page.items;
        let mut counts = HashMap::new();
        if shape.needs_members() && !items.is_empty() {
            let ids: Vec<Uuid> = items.iter().map(|g| g.id).collect();
            counts = self
                .state
                .store
                .scim_group_member_counts(self.client.scope, &ids)
                .await?
                .into_iter()
                .collect();
            if shape.lists_members() {
                let kept = within_budget(
                    items
                        .iter()
                        .map(|g| counts.get(&g.id).copied().unwrap_or(0)),
                    self.state.config.scim_member_budget,
                );
                items.truncate(kept);
            }
        }
        let rendered = self
            .render_group_page(&items, &projection, shape, &counts)
            .await?;
        Ok((page.total, rendered))
    }

    pub(crate) async fn list_groups(&self, raw: &RawQuery) -> Result<ScimReply, ScimError> {
        let (offset, count) = raw.page()?;
        let resolved = raw.resolve(self.schemas(), ResourceType::Group)?;
        let (total, page) = self.group_page(raw, &resolved, offset, count).await?;
        Ok(
            ScimReply::ok(resource::list_response(total, offset + 1, page.resources))
                .streaming(page.members),
        )
    }

    /// PUT: the Group's attributes, and its members when `members` is sent (`[]` removes them
    /// all). Without a `members` key they stay: RFC 7644 §3.5.1 lets a server keep attributes
    /// the client did not assert, and a rename should never empty a 20,000-member group.
    pub(crate) async fn replace_group(
        &self,
        id: &str,
        body: &Value,
        if_match: IfMatch,
        raw: &RawQuery,
    ) -> Result<ScimReply, ScimError> {
        let id = parse_id(id)?;
        let projection = raw.projection(self.schemas(), ResourceType::Group)?;
        let input = resource::group_input(body)?;
        let mut changes = Vec::new();
        if let Some(members) = &input.members {
            changes.push(MembershipChange::Replace(refs_of(members)?));
        }
        let group = self
            .state
            .store
            .scim_update_group(
                &self.client.ctx,
                self.client.scope,
                id,
                if_match.expected(),
                Some(&write_of(&input)),
                &changes,
            )
            .await?;
        self.reply(StatusCode::OK, &group, &projection).await
    }

    /// RFC 7644 §3.5.2, answered 204 (Entra ID's advice: no 20,000-member body after every
    /// membership change) unless the request asks for attributes, then 200 with them.
    pub(crate) async fn patch_group(
        &self,
        id: &str,
        body: &Value,
        if_match: IfMatch,
        raw: &RawQuery,
    ) -> Result<ScimReply, ScimError> {
        let id = parse_id(id)?;
        let projection = raw.projection(self.schemas(), ResourceType::Group)?;
        let operations = patch::parse_request(body)?;
        let (attribute_ops, member_ops) =
            patch::split_group_member_ops(self.schemas(), operations)?;
        let mut changes = Vec::with_capacity(member_ops.len());
        // Filtered removes (other than by id), by where their result goes in `changes`.
        let mut matching = Vec::new();
        for change in member_ops {
            changes.push(match change {
                MemberChange::Add(values) => {
                    MembershipChange::Add(member_refs(&Value::Array(values))?)
                }
                MemberChange::Replace(values) => {
                    MembershipChange::Replace(member_refs(&Value::Array(values))?)
                }
                // An id we never issued is not a member: nothing to remove.
                MemberChange::Remove(ids) => MembershipChange::Remove(
                    ids.iter()
                        .filter_map(|s| Uuid::parse_str(s.trim()).ok())
                        .collect(),
                ),
                MemberChange::RemoveAll => MembershipChange::RemoveAll,
                MemberChange::RemoveMatching(filter) => {
                    matching.push((changes.len(), filter));
                    MembershipChange::Remove(Vec::new())
                }
            });
        }
        if !matching.is_empty() {
            self.select_members(id, &matching, &mut changes).await?;
        }
        let mut outcome = None;
        for _ in 0..PATCH_ATTEMPTS {
            let (attributes, expected) = if attribute_ops.is_empty() {
                (None, if_match.expected())
            } else {
                let current = self
                    .state
                    .store
                    .scim_get_group(self.client.scope, id)
                    .await?;
                if let Some(expected) = if_match.expected()
                    && expected != current.version
                {
                    return Err(StoreError::Precondition.into());
                }
                let mut doc = render_group(&current, None, &self.base);
                patch::apply(
                    self.schemas(),
                    ResourceType::Group,
                    &mut doc,
                    &attribute_ops,
                )?;
                (
                    Some(write_of(&resource::group_input(&doc)?)),
                    Some(current.version),
                )
            };
            match self
                .state
                .store
                .scim_update_group(
                    &self.client.ctx,
                    self.client.scope,
                    id,
                    expected,
                    attributes.as_ref(),
                    &changes,
                )
                .await
            {
                Ok(group) => {
                    outcome = Some(group);
                    break;
                }
                Err(StoreError::Precondition)
                    if !if_match.is_conditional() && !attribute_ops.is_empty() =>
                {
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let Some(group) = outcome else {
            return Err(ScimError::new(
                StatusCode::CONFLICT,
                None,
                "the group kept changing while this PATCH was applied; retry it",
            ));
        };
        if raw.attributes.is_some() || raw.excluded_attributes.is_some() {
            self.reply(StatusCode::OK, &group, &projection).await
        } else {
            let mut reply = ScimReply::no_content();
            reply.etag = Some(resource::etag(group.version));
            Ok(reply)
        }
    }

    /// The members each filter selects (as the group is before the PATCH), put in the
    /// `Remove` at its place in `changes`. One pass over the members, a chunk at a time, for
    /// all the filters: the group is read once, and never whole into memory.
    async fn select_members(
        &self,
        id: Uuid,
        filters: &[(usize, crate::scim_proto::filter::ResolvedFilter)],
        changes: &mut [MembershipChange],
    ) -> Result<(), ScimError> {
        let chunk = self.state.config.scim_member_chunk;
        let mut after = None;
        loop {
            let members = self
                .state
                .store
                .scim_group_members_after(self.client.scope, id, after, chunk)
                .await?;
            for m in &members {
                let element = render_member(m, &self.base);
                for (at, filter) in filters {
                    if eval::matches_element(filter, &element)
                        && let Some(MembershipChange::Remove(ids)) = changes.get_mut(*at)
                    {
                        ids.push(m.id);
                    }
                }
            }
            if members.len() < chunk as usize {
                return Ok(());
            }
            after = members.last().map(|m| m.id);
        }
    }

    pub(crate) async fn delete_group(
        &self,
        id: &str,
        if_match: IfMatch,
    ) -> Result<ScimReply, ScimError> {
        let id = parse_id(id)?;
        self.state
            .store
            .scim_delete_group(&self.client.ctx, self.client.scope, id, if_match.expected())
            .await?;
        Ok(ScimReply::no_content())
    }
}

#[cfg(test)]
mod tests {
    use super::within_budget;

    #[test]
    fn a_page_ends_at_the_member_budget_with_at_least_one_group() {
        assert_eq!(within_budget([10, 20, 30], 100), 3);
        assert_eq!(
            within_budget([10, 20, 30], 30),
            2,
            "10 + 20 fit, + 30 does not"
        );
        assert_eq!(within_budget([10, 20, 30], 29), 1);
        assert_eq!(within_budget([500, 1, 1], 100), 1, "the first always");
        assert_eq!(within_budget([0, 0, 100, 0], 50), 2);
        assert_eq!(within_budget([], 10), 0);
        assert_eq!(within_budget([u64::MAX, u64::MAX], 10), 1);
    }
}
