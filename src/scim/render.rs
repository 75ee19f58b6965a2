//! Rendering stored resources into replies, the same way for Users and Groups: the attribute
//! that needs a second query (a User's `groups`, a Group's `members`) is loaded for a whole
//! page at once, and only when the projection returns it.
//!
//! A Group's `members` never become a JSON tree: a group of a million members would take the
//! process's memory. The rest of the reply is rendered as a value, and each group's members are
//! written into the body as it is sent ([`MemberStream`]): those of small groups from one query
//! per page, those of groups larger than a chunk read chunk by chunk with a keyset cursor.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{CONTENT_TYPE, Scim, ScimError, ScimReply};
use crate::domain::group::{GroupMember, MemberKind};
use crate::domain::provisioning::{ScimGroup, ScimScope, ScimUser, ScimUserGroup};
use crate::scim_proto::resource::{self, Projection};
use crate::scim_proto::schema::ResourceType;
use crate::store::{Store, StoreError};

/// Rendered resources, and the group members still to be written into them.
pub(crate) struct Page {
    pub resources: Vec<Value>,
    pub members: Option<MemberStream>,
}

pub(crate) trait Rendered: Sized {
    const RESOURCE_TYPE: ResourceType;
    fn id(&self) -> Uuid;
    fn version(&self) -> i64;
    /// Renders a page of resources, projected.
    async fn render_page(
        scim: &Scim<'_>,
        items: &[Self],
        projection: &Projection,
    ) -> Result<Page, ScimError>;
}

impl Rendered for ScimUser {
    const RESOURCE_TYPE: ResourceType = ResourceType::User;

    fn id(&self) -> Uuid {
        self.id
    }

    fn version(&self) -> i64 {
        self.version
    }

    async fn render_page(
        scim: &Scim<'_>,
        items: &[Self],
        projection: &Projection,
    ) -> Result<Page, ScimError> {
        let groups = if projection.returns("groups") && !items.is_empty() {
            let ids: Vec<Uuid> = items.iter().map(|u| u.id).collect();
            let mut by_user: HashMap<Uuid, Vec<ScimUserGroup>> = HashMap::new();
            for (id, g) in scim
                .state
                .store
                .scim_user_groups(scim.client.scope, &ids)
                .await?
            {
                by_user.entry(id).or_default().push(g);
            }
            Some(by_user)
        } else {
            None
        };
        let resources = items
            .iter()
            .map(|user| {
                let mine = groups
                    .as_ref()
                    .map(|m| m.get(&user.id).map_or(&[][..], Vec::as_slice));
                let mut out = resource::render_user(scim.schemas(), user, mine, &scim.base);
                projection.apply(&mut out);
                out
            })
            .collect();
        Ok(Page {
            resources,
            members: None,
        })
    }
}

impl Rendered for ScimGroup {
    const RESOURCE_TYPE: ResourceType = ResourceType::Group;

    fn id(&self) -> Uuid {
        self.id
    }

    fn version(&self) -> i64 {
        self.version
    }

    /// Groups rendered one by one (a reply): each one's first chunk of members is read now,
    /// so a group that fits in a chunk is answered whole, and a read that fails is a SCIM
    /// error, not a broken body.
    async fn render_page(
        scim: &Scim<'_>,
        items: &[Self],
        projection: &Projection,
    ) -> Result<Page, ScimError> {
        let shape = MemberShape::of(projection, &scim.base);
        let mut loaded = HashMap::new();
        if shape.needs_members() {
            let chunk = scim.state.config.scim_member_chunk;
            for group in items {
                let members = scim
                    .state
                    .store
                    .scim_group_members_after(scim.client.scope, group.id, None, chunk)
                    .await?;
                let complete = members.len() < chunk as usize;
                loaded.insert(group.id, Loaded { members, complete });
            }
        }
        Ok(scim.render_groups(items, projection, shape, loaded))
    }
}

/// A group's members as far as they were read before the reply is sent.
#[derive(Debug, Clone)]
struct Loaded {
    members: Vec<GroupMember>,
    /// Whether these are all of them; if not, the rest is read after the last one.
    complete: bool,
}

/// How a projection (`attributes`/`excludedAttributes`) shapes a group's `members`. Found by
/// projecting a group of one member and a group of none with the renderer itself, so that a
/// streamed list is what the renderer would have made of the whole list: the projection treats
/// every member alike (each has `value`, `$ref` and `type`), so one member shows what happens to
/// each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberShape {
    /// A group with members: no `members` (`None`), or each member with these keys, in order
    /// (none at all: `"members": []`).
    with_members: Option<Vec<String>>,
    /// A group without members: `"members": []` (true) or no `members` at all.
    empty_shown: bool,
}

impl MemberShape {
    pub(crate) fn of(projection: &Projection, base: &str) -> MemberShape {
        if !projection.returns("members") {
            return MemberShape {
                with_members: None,
                empty_shown: false,
            };
        }
        let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let probe = ScimGroup {
            id: Uuid::nil(),
            display_name: "probe".into(),
            external_id: None,
            created_at: at,
            updated_at: at,
            version: 1,
        };
        let projected = |members: &[GroupMember]| {
            let mut out = resource::render_group(&probe, Some(members), base);
            projection.apply(&mut out);
            out.get("members").cloned()
        };
        let one = GroupMember {
            id: Uuid::nil(),
            kind: MemberKind::User,
        };
        let with_members = match projected(&[one]) {
            Some(Value::Array(items)) => Some(match items.first() {
                Some(Value::Object(m)) => m.keys().cloned().collect(),
                _ => Vec::new(),
            }),
            _ => None,
        };
        MemberShape {
            with_members,
            empty_shown: projected(&[]).is_some(),
        }
    }

    /// Whether what a group's `members` look like depends on who its members are.
    pub(crate) fn needs_members(&self) -> bool {
        match &self.with_members {
            Some(keys) => !keys.is_empty() || !self.empty_shown,
            None => self.empty_shown,
        }
    }

    /// Whether the members themselves are written (so count against a page's budget).
    pub(crate) fn lists_members(&self) -> bool {
        self.with_members.as_ref().is_some_and(|k| !k.is_empty())
    }
}

impl Scim<'_> {
    /// Renders groups whose members are `loaded` (all of them, or a first part) or, for those
    /// absent from `loaded`, known to have none. Each group that has members gets a placeholder
    /// the stream fills in.
    fn render_groups(
        &self,
        items: &[ScimGroup],
        projection: &Projection,
        shape: MemberShape,
        mut loaded: HashMap<Uuid, Loaded>,
    ) -> Page {
        let mut streamed = HashMap::new();
        let resources = items
            .iter()
            .map(|group| {
                if !shape.needs_members() {
                    // Members or not, they look the same: nothing to read.
                    let none: &[GroupMember] = &[];
                    let mut out = resource::render_group(
                        group,
                        shape.empty_shown.then_some(none),
                        &self.base,
                    );
                    projection.apply(&mut out);
                    return out;
                }
                match loaded.remove(&group.id) {
                    Some(l) if !(l.complete && l.members.is_empty()) => {
                        let mut out = resource::render_group(group, None, &self.base);
                        projection.apply(&mut out);
                        if let Value::Object(object) = &mut out {
                            // `id` is always returned and sorts before `members`, so the
                            // placeholder is never the object's first member (see `split`).
                            object.insert("members".into(), Value::Null);
                        }
                        streamed.insert(group.id, l);
                        out
                    }
                    _ => {
                        let mut out = resource::render_group(group, Some(&[]), &self.base);
                        projection.apply(&mut out);
                        out
                    }
                }
            })
            .collect();
        let members = (!streamed.is_empty()).then(|| MemberStream {
            store: self.state.store.clone(),
            scope: self.client.scope,
            chunk: self.state.config.scim_member_chunk,
            writer: MemberWriter::new(&shape, &self.base),
            groups: streamed,
        });
        Page { resources, members }
    }

    /// A page of groups from a list or search: the members of those that fit in a chunk are
    /// read with one query for the page, the larger ones streamed from the start. `counts`
    /// holds how many members each group has (none: absent).
    pub(crate) async fn render_group_page(
        &self,
        items: &[ScimGroup],
        projection: &Projection,
        shape: MemberShape,
        counts: &HashMap<Uuid, u64>,
    ) -> Result<Page, ScimError> {
        let chunk = self.state.config.scim_member_chunk;
        let mut loaded: HashMap<Uuid, Loaded> = HashMap::new();
        if shape.needs_members() {
            let mut small = Vec::new();
            for group in items {
                match counts.get(&group.id).copied().unwrap_or(0) {
                    0 => {}
                    n if n <= u64::from(chunk) => small.push(group.id),
                    _ => {
                        loaded.insert(
                            group.id,
                            Loaded {
                                members: Vec::new(),
                                complete: false,
                            },
                        );
                    }
                }
            }
            if !small.is_empty() {
                for id in &small {
                    loaded.insert(
                        *id,
                        Loaded {
                            members: Vec::new(),
                            complete: true,
                        },
                    );
                }
                for (id, m) in self
                    .state
                    .store
                    .scim_group_members(self.client.scope, &small)
                    .await?
                {
                    if let Some(l) = loaded.get_mut(&id) {
                        l.members.push(m);
                    }
                }
            }
        }
        Ok(self.render_groups(items, projection, shape, loaded))
    }

    /// Renders a page of resources, projected.
    pub(crate) async fn render_all<R: Rendered>(
        &self,
        items: &[R],
        projection: &Projection,
    ) -> Result<Page, ScimError> {
        R::render_page(self, items, projection).await
    }

    /// One resource as a reply: its body, and the `ETag` (and on creation `Location`) headers,
    /// which say where and which version even when `attributes` left `meta` out of the body.
    pub(crate) async fn reply<R: Rendered>(
        &self,
        status: StatusCode,
        item: &R,
        projection: &Projection,
    ) -> Result<ScimReply, ScimError> {
        let mut page = self
            .render_all(std::slice::from_ref(item), projection)
            .await?;
        Ok(ScimReply {
            status,
            body: page.resources.pop(),
            // RFC 7644 §3.3: Location only on creation; ETag on every single resource.
            location: (status == StatusCode::CREATED)
                .then(|| resource::location(&self.base, R::RESOURCE_TYPE, item.id())),
            etag: Some(resource::etag(item.version())),
            members: page.members,
        })
    }

    /// The reply to a create that made a new person, whose `groups` are known to be empty.
    pub(crate) fn reply_new_user(&self, user: &ScimUser, projection: &Projection) -> ScimReply {
        let groups = projection.returns("groups").then_some(&[][..]);
        let mut body = resource::render_user(self.schemas(), user, groups, &self.base);
        projection.apply(&mut body);
        ScimReply {
            status: StatusCode::CREATED,
            body: Some(body),
            location: Some(resource::location(&self.base, ResourceType::User, user.id)),
            etag: Some(resource::etag(user.version)),
            members: None,
        }
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
                members: None,
            });
        }
        self.reply(StatusCode::OK, item, projection).await
    }
}

impl ScimReply {
    /// The reply with these group members to stream into its body.
    pub(crate) fn streaming(mut self, members: Option<MemberStream>) -> Self {
        self.members = members;
        self
    }
}

/// Writes members the way `resource::render_member` and the projection make them, straight
/// to bytes (equal to serialising the rendered value: `serde_json` writes an object's members
/// in key order, as here).
#[derive(Debug, Clone)]
struct MemberWriter {
    /// The member keys written, in order; `None`: a group with members has no `members`.
    keys: Option<Vec<String>>,
    empty_shown: bool,
    /// `"<base>/Users/` and `"<base>/Groups/`, JSON-escaped, without the closing quote (an id
    /// needs no escaping).
    user_ref: Vec<u8>,
    group_ref: Vec<u8>,
}

impl MemberWriter {
    fn new(shape: &MemberShape, base: &str) -> MemberWriter {
        let prefix = |rt: ResourceType| {
            let mut p = serde_json::to_vec(&format!("{base}{}/", rt.endpoint()))
                .unwrap_or_else(|_| b"\"".to_vec());
            p.pop();
            p
        };
        MemberWriter {
            keys: shape.with_members.clone(),
            empty_shown: shape.empty_shown,
            user_ref: prefix(ResourceType::User),
            group_ref: prefix(ResourceType::Group),
        }
    }

    fn write(&self, out: &mut Vec<u8>, m: &GroupMember) {
        let rt = match m.kind {
            MemberKind::User => ResourceType::User,
            MemberKind::Group => ResourceType::Group,
        };
        let mut buffer = Uuid::encode_buffer();
        let id = m.id.hyphenated().encode_lower(&mut buffer).as_bytes();
        out.push(b'{');
        for (i, key) in self.keys.iter().flatten().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match key.as_str() {
                "$ref" => {
                    out.extend_from_slice(b"\"$ref\":");
                    out.extend_from_slice(match m.kind {
                        MemberKind::User => &self.user_ref,
                        MemberKind::Group => &self.group_ref,
                    });
                    out.extend_from_slice(id);
                    out.push(b'"');
                }
                "type" => {
                    out.extend_from_slice(b"\"type\":\"");
                    out.extend_from_slice(rt.name().as_bytes());
                    out.push(b'"');
                }
                _ => {
                    out.extend_from_slice(b"\"value\":\"");
                    out.extend_from_slice(id);
                    out.push(b'"');
                }
            }
        }
        out.push(b'}');
    }
}

/// Group members to write into a reply's body as it is sent (see the module comment).
#[derive(Clone)]
pub(crate) struct MemberStream {
    store: Arc<dyn Store>,
    scope: ScimScope,
    chunk: u32,
    writer: MemberWriter,
    /// By group id: the members read before the reply, for each group with a placeholder.
    groups: HashMap<Uuid, Loaded>,
}

impl std::fmt::Debug for MemberStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberStream")
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

/// A reply body cut where group members go.
#[derive(Debug)]
enum Segment {
    Bytes(Vec<u8>),
    /// The `,"members":[…]` of this group, or nothing (how the shape says).
    Members(Uuid),
}

/// Serialises `value` as `serde_json::to_vec` would, cut at each placeholder (`"members":
/// null` in a top-level resource, or in one of a list's `Resources`).
fn split(value: &Value, placeholders: &HashMap<Uuid, Loaded>) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut bytes = Vec::new();
    let placeholder_of = |object: &Map<String, Value>| {
        object
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok())
            .filter(|id| placeholders.contains_key(id))
            .filter(|_| object.get("members").is_some_and(Value::is_null))
    };
    // One resource: the members go between its own members.
    let resource =
        |object: &Map<String, Value>, bytes: &mut Vec<u8>, segments: &mut Vec<Segment>| {
            let Some(id) = placeholder_of(object) else {
                let _ = serde_json::to_writer(&mut *bytes, object);
                return;
            };
            bytes.push(b'{');
            for (i, (key, v)) in object.iter().enumerate() {
                if key == "members" {
                    segments.push(Segment::Bytes(std::mem::take(bytes)));
                    segments.push(Segment::Members(id));
                    continue;
                }
                if i > 0 {
                    bytes.push(b',');
                }
                let _ = serde_json::to_writer(&mut *bytes, key);
                bytes.push(b':');
                let _ = serde_json::to_writer(&mut *bytes, v);
            }
            bytes.push(b'}');
        };
    match value {
        Value::Object(object) if object.contains_key("Resources") => {
            bytes.push(b'{');
            for (i, (key, v)) in object.iter().enumerate() {
                if i > 0 {
                    bytes.push(b',');
                }
                let _ = serde_json::to_writer(&mut bytes, key);
                bytes.push(b':');
                match (key.as_str(), v) {
                    ("Resources", Value::Array(items)) => {
                        bytes.push(b'[');
                        for (j, item) in items.iter().enumerate() {
                            if j > 0 {
                                bytes.push(b',');
                            }
                            match item {
                                Value::Object(o) => resource(o, &mut bytes, &mut segments),
                                other => {
                                    let _ = serde_json::to_writer(&mut bytes, other);
                                }
                            }
                        }
                        bytes.push(b']');
                    }
                    _ => {
                        let _ = serde_json::to_writer(&mut bytes, v);
                    }
                }
            }
            bytes.push(b'}');
        }
        Value::Object(object) => resource(object, &mut bytes, &mut segments),
        other => {
            let _ = serde_json::to_writer(&mut bytes, other);
        }
    }
    segments.push(Segment::Bytes(bytes));
    segments
}

/// The group whose members are being written.
struct Cursor {
    id: Uuid,
    /// Where the next chunk starts: after this member.
    after: Option<Uuid>,
    /// Members read so far.
    seen: usize,
}

/// What the body stream works through.
struct Feed {
    stream: MemberStream,
    segments: std::vec::IntoIter<Segment>,
    cursor: Option<Cursor>,
    finished: bool,
    span: tracing::Span,
}

impl Feed {
    /// Writes members read for the group at `cursor`; whether its list is complete already
    /// (when the shape shows no member, one is enough to know what to write).
    fn members(&self, cursor: &mut Cursor, members: &[GroupMember], out: &mut Vec<u8>) -> bool {
        if let Some(last) = members.last() {
            cursor.after = Some(last.id);
        }
        match &self.stream.writer.keys {
            Some(keys) if !keys.is_empty() => {
                for m in members {
                    out.extend_from_slice(if cursor.seen == 0 {
                        b",\"members\":["
                    } else {
                        b","
                    });
                    self.stream.writer.write(out, m);
                    cursor.seen += 1;
                }
                false
            }
            _ => {
                cursor.seen += members.len();
                cursor.seen > 0
            }
        }
    }

    fn close(&self, cursor: &Cursor, out: &mut Vec<u8>) {
        let shown = match &self.stream.writer.keys {
            // A group that turned out to have no members (emptied since the page was read).
            _ if cursor.seen == 0 => self.stream.writer.empty_shown,
            Some(keys) if !keys.is_empty() => {
                out.push(b']');
                return;
            }
            Some(_) => true,
            None => false,
        };
        if shown {
            out.extend_from_slice(b",\"members\":[]");
        }
    }

    /// The next piece of the body: the bytes up to the next chunk to read, or that chunk.
    async fn next_piece(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.finished {
            return None;
        }
        let mut out = Vec::new();
        loop {
            if let Some(mut cursor) = self.cursor.take() {
                if !out.is_empty() {
                    // Send what is ready before the next query.
                    self.cursor = Some(cursor);
                    return Some(Ok(Bytes::from(out)));
                }
                let read = self
                    .stream
                    .store
                    .scim_group_members_after(
                        self.stream.scope,
                        cursor.id,
                        cursor.after,
                        self.stream.chunk,
                    )
                    .await;
                let members = match read {
                    Ok(members) => members,
                    Err(error) => {
                        self.finished = true;
                        return Some(Err(self.failed(cursor.id, &error)));
                    }
                };
                let settled = self.members(&mut cursor, &members, &mut out);
                if settled || members.len() < self.stream.chunk as usize {
                    self.close(&cursor, &mut out);
                } else {
                    self.cursor = Some(cursor);
                    return Some(Ok(Bytes::from(out)));
                }
                continue;
            }
            match self.segments.next() {
                None if out.is_empty() => return None,
                None => return Some(Ok(Bytes::from(out))),
                Some(Segment::Bytes(b)) => out.extend_from_slice(&b),
                Some(Segment::Members(id)) => {
                    let loaded = self.stream.groups.remove(&id).unwrap_or(Loaded {
                        members: Vec::new(),
                        complete: false,
                    });
                    let mut cursor = Cursor {
                        id,
                        after: None,
                        seen: 0,
                    };
                    let settled = self.members(&mut cursor, &loaded.members, &mut out);
                    if settled || loaded.complete {
                        self.close(&cursor, &mut out);
                    } else {
                        self.cursor = Some(cursor);
                    }
                }
            }
        }
    }

    /// A chunk could not be read after the head of the reply was sent: too late for a SCIM
    /// error. The body ends in an error, so the client sees it cut short (HTTP/1.1 closes the
    /// connection without the last chunk), never a complete-looking list with members missing.
    fn failed(&self, group: Uuid, error: &StoreError) -> std::io::Error {
        self.span.in_scope(|| {
            tracing::error!(%error, %group, "reading group members failed mid-response; the body is cut short");
        });
        std::io::Error::other("group members could not be read")
    }
}

impl MemberStream {
    /// The reply: `body` with the members written into it as it is sent.
    ///
    /// A slow client: the body is produced only as fast as the client takes it (one piece —
    /// at most one chunk of members — waits in memory), and each chunk is a query on a
    /// connection taken from the pool for that query alone, so a client that reads slowly (or
    /// stops reading) holds a socket and a chunk, never a database connection or a
    /// transaction. The members are read at that pace too: each chunk sees the group as it is
    /// then, so a member changed during a long read may or may not be listed, but none is
    /// listed twice (the cursor only moves forward).
    pub(crate) fn respond(self, status: StatusCode, body: Value) -> Response {
        let segments = split(&body, &self.groups);
        drop(body);
        let feed = Feed {
            stream: self,
            segments: segments.into_iter(),
            cursor: None,
            finished: false,
            span: tracing::Span::current(),
        };
        let stream = futures_util::stream::unfold(feed, |mut feed| async move {
            let piece = feed.next_piece().await?;
            Some((piece, feed))
        });
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            Body::from_stream(stream),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim_proto::schema::Schemas;

    fn shape(attributes: Option<&str>, excluded: Option<&str>) -> MemberShape {
        let p = Projection::parse(
            &Schemas::default(),
            ResourceType::Group,
            attributes,
            excluded,
        )
        .expect("parse");
        MemberShape::of(&p, "https://h/scim/v2")
    }

    #[test]
    fn member_shapes_follow_the_projection() {
        let all = Some(vec!["$ref".to_owned(), "type".into(), "value".into()]);
        assert_eq!(
            shape(None, None),
            MemberShape {
                with_members: all.clone(),
                empty_shown: true
            }
        );
        assert_eq!(shape(None, Some("members")).with_members, None);
        assert!(!shape(None, Some("members")).needs_members());
        assert_eq!(
            shape(Some("members.value"), None).with_members,
            Some(vec!["value".to_owned()])
        );
        let no_type = shape(None, Some("members.type"));
        assert_eq!(
            no_type.with_members,
            Some(vec!["$ref".to_owned(), "value".into()])
        );
        assert!(!no_type.empty_shown, "an emptied list is removed");
        let display = shape(Some("members.display"), None);
        assert_eq!(display.with_members, Some(Vec::new()));
        assert!(!display.needs_members() && !display.lists_members());
    }

    /// The streamed form of a list equals the renderer's serialised value, byte for byte.
    #[test]
    fn split_and_written_members_serialise_as_the_renderer_does() {
        let base = "https://h/sc\"im/v2";
        let members: Vec<GroupMember> = (1..=3u128)
            .map(|i| GroupMember {
                id: Uuid::from_u128(i),
                kind: if i == 2 {
                    MemberKind::Group
                } else {
                    MemberKind::User
                },
            })
            .collect();
        let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let group = ScimGroup {
            id: Uuid::from_u128(99),
            display_name: "Eng \u{1F600} \"quoted\"".into(),
            external_id: Some("x".into()),
            created_at: at,
            updated_at: at,
            version: 4,
        };
        for (attributes, excluded) in [
            (None, None),
            (Some("members.value,displayName"), None),
            (None, Some("members.type")),
            (Some("members"), Some("members.$ref")),
        ] {
            let p = Projection::parse(
                &Schemas::default(),
                ResourceType::Group,
                attributes,
                excluded,
            )
            .expect("parse");
            let shape = MemberShape::of(&p, base);
            let mut expected = resource::render_group(&group, Some(&members), base);
            p.apply(&mut expected);
            let expected = resource::list_response(1, 1, vec![expected]);

            let mut placeholder = resource::render_group(&group, None, base);
            p.apply(&mut placeholder);
            if let Value::Object(o) = &mut placeholder {
                o.insert("members".into(), Value::Null);
            }
            let body = resource::list_response(1, 1, vec![placeholder]);
            let loaded = HashMap::from([(
                group.id,
                Loaded {
                    members: members.clone(),
                    complete: true,
                },
            )]);
            let writer = MemberWriter::new(&shape, base);
            let mut out = Vec::new();
            for segment in split(&body, &loaded) {
                match segment {
                    Segment::Bytes(b) => out.extend_from_slice(&b),
                    Segment::Members(_) => {
                        out.extend_from_slice(b",\"members\":[");
                        for (i, m) in members.iter().enumerate() {
                            if i > 0 {
                                out.push(b',');
                            }
                            writer.write(&mut out, m);
                        }
                        out.push(b']');
                    }
                }
            }
            assert_eq!(
                String::from_utf8(out).expect("utf-8"),
                serde_json::to_string(&expected).expect("json"),
                "{attributes:?} {excluded:?}"
            );
        }
    }
}
