//! SCIM filters and sort orders translated to SQL (RFC 7644 §3.4.2.2, §3.4.2.3), never
//! evaluated in memory. The translation means what the reference evaluator (`scim_proto::eval`) means,
//! on both backends; the differential test holds the two together.
//!
//! How each attribute is reached:
//! - columns where the store has them (`id`, `externalId`, `userName`/`displayName` with their
//!   Unicode-lower-cased `_norm` twins, `meta.created`/`meta.lastModified`, `meta.version`);
//! - everything else in `attributes_cmp`, the stored document whose caseExact=false values are
//!   already lower-cased (so a case-insensitive comparison lower-cases only the operand, with the
//!   same `str::to_lowercase` as the evaluator): `json_extract`/`json_each` on SQLite, `->`/`->>`/
//!   `jsonb_array_elements` on PostgreSQL; JSON paths and keys are bound, never spliced;
//! - constants (`meta.resourceType`, `schemas`) are compared in Rust and become TRUE/FALSE or a
//!   presence test;
//! - a Group's `members` are rows of `group_members`.
//!
//! Every leaf yields TRUE or FALSE, never NULL (`COALESCE(…, FALSE)`, `EXISTS`), so `not` is a
//! plain `NOT` with the evaluator's two-valued logic. Substring operators use `instr`/`strpos`
//! and `substr`, not `LIKE`: `%`, `_` and `\` in values are literal without escaping, and
//! SQLite's `LIKE` would fold ASCII case even for caseExact attributes. Orderings compare by code
//! point (`COLLATE "C"` on PostgreSQL; SQLite's default is already binary).

use uuid::Uuid;

use crate::scim_proto::eval;
use crate::scim_proto::filter::{CompareOp, ResolvedAttr, ResolvedFilter, ResolvedValue};
use crate::scim_proto::schema::{
    AttrType, AttributeDef, GROUP_SCHEMA, ResourceType, Schemas, USER_SCHEMA,
};
use crate::store::db::SqlBuilder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// Whether `filter` is Okta's and Entra's pre-create lookup, `userName eq "…"` on Users
/// compared as the unique index stores it (case-insensitively): at most one user, whose index
/// any plan made on a table of some length uses, so its plan can be made once
/// (`Db::read_planned_once`).
pub(crate) fn names_one_user(resource_type: ResourceType, filter: &ResolvedFilter) -> bool {
    matches!(
        filter,
        ResolvedFilter::Compare { attr, op: CompareOp::Eq, .. }
            if resource_type == ResourceType::User
                && !attr.extension
                && attr.attr.name == "userName"
                && attr.sub.is_none()
                && !attr.target().case_exact
    )
}

/// A filter or sort that is valid SCIM but that this store cannot answer; the SCIM edge makes
/// it a 400 `invalidFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsupported(pub String);

type Result<T> = std::result::Result<T, Unsupported>;

/// Where a JSON value lives: a SQL expression holding JSON (a column or a row of `json_each`),
/// then a key path inside it.
#[derive(Clone)]
struct JsonAt {
    base: &'static str,
    keys: Vec<&'static str>,
}

/// What a term compares.
enum Operand<'a> {
    /// A text SQL expression that is never NULL.
    TextColumn(&'static str),
    /// A text SQL expression that may be NULL.
    NullableText(&'static str),
    Json(JsonAt, &'a AttributeDef),
    Uuid(&'static str),
    Time(&'static str),
    /// The resource's `id` for the substring and ordering operators.
    UuidText(&'static str),
    Version(&'static str),
}

pub(crate) struct Translator<'b> {
    b: &'b mut SqlBuilder,
    dialect: Dialect,
    resource_type: ResourceType,
    schemas: &'b Schemas,
}

/// The table alias and columns of a resource type.
struct Table {
    id: &'static str,
    doc: &'static str,
    created: &'static str,
    updated: &'static str,
    version: &'static str,
    external_id: &'static str,
}

const USERS: Table = Table {
    id: "u.id",
    doc: "u.attributes_cmp",
    created: "u.created_at",
    updated: "u.updated_at",
    version: "u.version",
    external_id: "u.external_id",
};

const GROUPS: Table = Table {
    id: "g.id",
    doc: "g.attributes",
    created: "g.created_at",
    updated: "g.updated_at",
    version: "g.version",
    external_id: "g.external_id",
};

impl<'b> Translator<'b> {
    pub(crate) fn new(
        b: &'b mut SqlBuilder,
        dialect: Dialect,
        schemas: &'b Schemas,
        resource_type: ResourceType,
    ) -> Self {
        Translator {
            b,
            dialect,
            resource_type,
            schemas,
        }
    }

    fn table(&self) -> &'static Table {
        match self.resource_type {
            ResourceType::User => &USERS,
            ResourceType::Group => &GROUPS,
        }
    }

    fn element_base(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "e.value",
            Dialect::Postgres => "e.v",
        }
    }

    /// Appends the filter as a boolean SQL expression.
    pub(crate) fn filter(&mut self, f: &ResolvedFilter) -> Result<()> {
        match f {
            ResolvedFilter::And(a, b) => self.binary(a, " AND ", b),
            ResolvedFilter::Or(a, b) => self.binary(a, " OR ", b),
            ResolvedFilter::Not(inner) => {
                self.b.push("(NOT ");
                self.filter(inner)?;
                self.b.push(")");
                Ok(())
            }
            ResolvedFilter::Present(attr) => self.present(attr, None),
            ResolvedFilter::Compare { attr, op, value } => match value {
                ResolvedValue::Null => match op {
                    CompareOp::Eq => {
                        self.b.push("(NOT ");
                        self.present(attr, None)?;
                        self.b.push(")");
                        Ok(())
                    }
                    CompareOp::Ne => self.present(attr, None),
                    _ => {
                        self.b.push("FALSE");
                        Ok(())
                    }
                },
                _ => self.compare(attr, *op, value, None),
            },
            ResolvedFilter::ValuePath { attr, filter } => self.value_path(attr, filter),
        }
    }

    fn binary(
        &mut self,
        a: &ResolvedFilter,
        joiner: &'static str,
        b: &ResolvedFilter,
    ) -> Result<()> {
        self.b.push("(");
        self.filter(a)?;
        self.b.push(joiner);
        self.filter(b)?;
        self.b.push(")");
        Ok(())
    }

    fn literal(&mut self, value: bool) {
        self.b.push(if value { "TRUE" } else { "FALSE" });
    }

    /// The JSON location of a document attribute: `[urn,] attr [, sub]`.
    fn doc_at(&self, attr: &ResolvedAttr, with_sub: bool) -> JsonAt {
        let mut keys = Vec::with_capacity(3);
        if attr.extension {
            keys.push(attr.schema);
        }
        keys.push(attr.attr.name);
        if with_sub && let Some(sub) = attr.sub {
            keys.push(sub.name);
        }
        JsonAt {
            base: self.table().doc,
            keys,
        }
    }

    /// `element`: inside a value path or an any-element test, the JSON element being tested;
    /// `None` at the top level.
    fn present(&mut self, attr: &ResolvedAttr, element: Option<&JsonAt>) -> Result<()> {
        if let Some(element) = element {
            let mut at = element.clone();
            if let Some(sub) = attr.sub {
                at.keys.push(sub.name);
            }
            self.json_present(&at);
            return Ok(());
        }
        if !attr.extension {
            match (self.resource_type, attr.attr.name) {
                (_, "id" | "meta" | "schemas") => {
                    self.literal(true);
                    return Ok(());
                }
                (_, "externalId") => {
                    let column = self.table().external_id;
                    self.b.push("(").push(column).push(" IS NOT NULL)");
                    return Ok(());
                }
                (ResourceType::User, "userName") | (ResourceType::Group, "displayName") => {
                    self.literal(true);
                    return Ok(());
                }
                (ResourceType::User, "groups") => return Err(not_filterable(attr)),
                (ResourceType::Group, "members") => {
                    return self.members_exist(attr, |_, t| {
                        t.literal(true);
                        Ok(())
                    });
                }
                _ => {}
            }
        }
        if attr.multi_valued() && attr.sub.is_some() {
            let container = self.doc_at(attr, false);
            return self.any_element(&container, |t, el| t.present(attr, Some(el)));
        }
        let at = self.doc_at(attr, true);
        self.json_present(&at);
        Ok(())
    }

    fn json_present(&mut self, at: &JsonAt) {
        if at.keys.is_empty() {
            self.literal(true);
            return;
        }
        match self.dialect {
            Dialect::Sqlite => {
                self.b
                    .push("(json_type(")
                    .push(at.base)
                    .push(", ")
                    .push_bind(sqlite_path(&at.keys))
                    .push(") IS NOT NULL)");
            }
            Dialect::Postgres => {
                self.b.push("((").push(at.base);
                for key in &at.keys {
                    self.b.push(" -> ").push_bind(*key);
                }
                self.b.push(") IS NOT NULL)");
            }
        }
    }

    /// Appends `EXISTS (… one element of `container` for which `inner` holds …)`.
    fn any_element(
        &mut self,
        container: &JsonAt,
        inner: impl FnOnce(&mut Self, &JsonAt) -> Result<()>,
    ) -> Result<()> {
        match self.dialect {
            Dialect::Sqlite => {
                self.b
                    .push("EXISTS (SELECT 1 FROM json_each(")
                    .push(container.base)
                    .push(", ")
                    .push_bind(sqlite_path(&container.keys))
                    .push(") AS e WHERE ");
            }
            Dialect::Postgres => {
                self.b
                    .push("EXISTS (SELECT 1 FROM jsonb_array_elements(")
                    .push(container.base);
                for key in &container.keys {
                    self.b.push(" -> ").push_bind(*key);
                }
                self.b.push(") AS e(v) WHERE ");
            }
        }
        let element = JsonAt {
            base: self.element_base(),
            keys: Vec::new(),
        };
        inner(self, &element)?;
        self.b.push(")");
        Ok(())
    }

    fn value_path(&mut self, attr: &ResolvedAttr, inner: &ResolvedFilter) -> Result<()> {
        if !attr.extension {
            match (self.resource_type, attr.attr.name) {
                (ResourceType::Group, "members") => {
                    return self.members_exist(attr, |_, t| t.member_filter(inner));
                }
                (ResourceType::User, "groups") | (_, "meta") => {
                    return Err(not_filterable(attr));
                }
                _ => {}
            }
        }
        if attr.multi_valued() {
            let container = self.doc_at(attr, false);
            self.any_element(&container, |t, el| t.element_filter(inner, el))
        } else {
            // A single complex attribute (`name[givenName eq "x"]`) is its own one element.
            let object = self.doc_at(attr, false);
            self.element_filter(inner, &object)
        }
    }

    /// A value path's inner filter, on one element.
    fn element_filter(&mut self, f: &ResolvedFilter, element: &JsonAt) -> Result<()> {
        match f {
            ResolvedFilter::And(a, b) => {
                self.b.push("(");
                self.element_filter(a, element)?;
                self.b.push(" AND ");
                self.element_filter(b, element)?;
                self.b.push(")");
                Ok(())
            }
            ResolvedFilter::Or(a, b) => {
                self.b.push("(");
                self.element_filter(a, element)?;
                self.b.push(" OR ");
                self.element_filter(b, element)?;
                self.b.push(")");
                Ok(())
            }
            ResolvedFilter::Not(inner) => {
                self.b.push("(NOT ");
                self.element_filter(inner, element)?;
                self.b.push(")");
                Ok(())
            }
            ResolvedFilter::Present(attr) => self.present(attr, Some(element)),
            ResolvedFilter::Compare { attr, op, value } => match value {
                ResolvedValue::Null => {
                    match op {
                        CompareOp::Eq => {
                            self.b.push("(NOT ");
                            self.present(attr, Some(element))?;
                            self.b.push(")");
                        }
                        CompareOp::Ne => self.present(attr, Some(element))?,
                        _ => self.literal(false),
                    }
                    Ok(())
                }
                _ => self.compare(attr, *op, value, Some(element)),
            },
            ResolvedFilter::ValuePath { .. } => Err(Unsupported(
                "a value filter cannot contain another value filter".into(),
            )),
        }
    }

    fn compare(
        &mut self,
        attr: &ResolvedAttr,
        op: CompareOp,
        value: &ResolvedValue,
        element: Option<&JsonAt>,
    ) -> Result<()> {
        let target = attr.target();
        if let Some(element) = element {
            let mut at = element.clone();
            if let Some(sub) = attr.sub {
                at.keys.push(sub.name);
            }
            return self.compare_operand(Operand::Json(at, target), target, op, value);
        }
        let table = self.table();
        if !attr.extension {
            let sub = attr.sub.map(|s| s.name);
            let column = match (self.resource_type, attr.attr.name, sub) {
                (_, "id", _) => Some(match op {
                    CompareOp::Eq | CompareOp::Ne => Operand::Uuid(table.id),
                    _ => Operand::UuidText(table.id),
                }),
                (_, "externalId", _) => Some(Operand::NullableText(table.external_id)),
                (ResourceType::User, "userName", _) => {
                    Some(Operand::TextColumn(if target.case_exact {
                        "u.user_name"
                    } else {
                        "u.user_name_norm"
                    }))
                }
                (ResourceType::Group, "displayName", _) => {
                    Some(Operand::TextColumn(if target.case_exact {
                        "g.display_name"
                    } else {
                        "g.display_name_norm"
                    }))
                }
                (_, "meta", Some("created")) => Some(Operand::Time(table.created)),
                (_, "meta", Some("lastModified")) => Some(Operand::Time(table.updated)),
                (_, "meta", Some("version")) => Some(Operand::Version(table.version)),
                (_, "meta", Some("resourceType")) => {
                    let matched = constant_matches(target, op, value, self.resource_type.name());
                    self.literal(matched);
                    return Ok(());
                }
                (_, "meta", _) => return Err(not_filterable(attr)),
                (_, "schemas", _) => return self.compare_schemas(target, op, value),
                (ResourceType::User, "groups", _) => return Err(not_filterable(attr)),
                (ResourceType::Group, "members", _) => {
                    return self.members_exist(attr, |attr, t| t.member_compare(attr, op, value));
                }
                _ => None,
            };
            if let Some(operand) = column {
                return self.compare_operand(operand, target, op, value);
            }
        }
        if attr.multi_valued() {
            let container = self.doc_at(attr, false);
            return self.any_element(&container, |t, el| t.compare(attr, op, value, Some(el)));
        }
        let at = self.doc_at(attr, true);
        self.compare_operand(Operand::Json(at, target), target, op, value)
    }

    /// `schemas` is not stored: the core schema is always there, an extension when the document
    /// has its key.
    fn compare_schemas(
        &mut self,
        target: &AttributeDef,
        op: CompareOp,
        value: &ResolvedValue,
    ) -> Result<()> {
        let mut terms: Vec<Option<&'static str>> = Vec::new();
        let core = match self.resource_type {
            ResourceType::User => USER_SCHEMA,
            ResourceType::Group => GROUP_SCHEMA,
        };
        if constant_matches(target, op, value, core) {
            terms.push(None);
        }
        for extension in self.schemas.extensions(self.resource_type) {
            if constant_matches(target, op, value, extension.id) {
                terms.push(Some(extension.id));
            }
        }
        if terms.contains(&None) {
            self.literal(true);
            return Ok(());
        }
        if terms.is_empty() {
            self.literal(false);
            return Ok(());
        }
        self.b.push("(");
        for (i, urn) in terms.iter().flatten().enumerate() {
            if i > 0 {
                self.b.push(" OR ");
            }
            let at = JsonAt {
                base: self.table().doc,
                keys: vec![urn],
            };
            self.json_present(&at);
        }
        self.b.push(")");
        Ok(())
    }

    /// `EXISTS (SELECT 1 FROM group_members gm WHERE … gm.group_id = g.id AND …)`; the tenant
    /// is named too, though the group already scopes it (defence in depth).
    fn members_exist(
        &mut self,
        attr: &ResolvedAttr,
        inner: impl FnOnce(&ResolvedAttr, &mut Self) -> Result<()>,
    ) -> Result<()> {
        self.b.push(
            "EXISTS (SELECT 1 FROM group_members gm WHERE gm.tenant_id = g.tenant_id \
                 AND gm.group_id = g.id AND ",
        );
        inner(attr, self)?;
        self.b.push(")");
        Ok(())
    }

    fn member_filter(&mut self, f: &ResolvedFilter) -> Result<()> {
        match f {
            ResolvedFilter::And(a, b) | ResolvedFilter::Or(a, b) => {
                let joiner = if matches!(f, ResolvedFilter::And(..)) {
                    " AND "
                } else {
                    " OR "
                };
                self.b.push("(");
                self.member_filter(a)?;
                self.b.push(joiner);
                self.member_filter(b)?;
                self.b.push(")");
                Ok(())
            }
            ResolvedFilter::Not(inner) => {
                self.b.push("(NOT ");
                self.member_filter(inner)?;
                self.b.push(")");
                Ok(())
            }
            ResolvedFilter::Present(attr) => {
                match attr.sub.map(|s| s.name) {
                    Some("value" | "type" | "$ref") | None => self.literal(true),
                    // Never rendered (the client's to send), so never present.
                    _ => self.literal(false),
                }
                Ok(())
            }
            ResolvedFilter::Compare { attr, op, value } => self.member_compare(attr, *op, value),
            ResolvedFilter::ValuePath { .. } => Err(Unsupported(
                "a value filter cannot contain another value filter".into(),
            )),
        }
    }

    /// A comparison on one `group_members` row (`gm`).
    fn member_compare(
        &mut self,
        attr: &ResolvedAttr,
        op: CompareOp,
        value: &ResolvedValue,
    ) -> Result<()> {
        let target = attr.target();
        let ResolvedValue::Str(s) = value else {
            // `eq null`: value and type are always present.
            self.literal(matches!(op, CompareOp::Ne));
            return Ok(());
        };
        match attr.sub.map(|s| s.name) {
            Some("value") | None => {
                let operand = match op {
                    CompareOp::Eq | CompareOp::Ne => Operand::Uuid("gm.member_id"),
                    _ => Operand::UuidText("gm.member_id"),
                };
                self.compare_operand(operand, target, op, value)
            }
            Some("type") => {
                // `member_kind` holds the lower-cased resource type name.
                let kind_text = if target.case_exact {
                    "(CASE gm.member_kind WHEN 'user' THEN 'User' ELSE 'Group' END)"
                } else {
                    "gm.member_kind"
                };
                self.compare_operand(Operand::TextColumn(kind_text), target, op, value)
            }
            _ => {
                // `display` and `$ref` are not stored per member.
                let _ = s;
                Err(not_filterable(attr))
            }
        }
    }

    fn compare_operand(
        &mut self,
        operand: Operand<'_>,
        target: &AttributeDef,
        op: CompareOp,
        value: &ResolvedValue,
    ) -> Result<()> {
        match (operand, value) {
            (Operand::Uuid(column), ResolvedValue::Str(s)) => {
                // The id is written lower-case with hyphens; a caseExact comparison only matches
                // that spelling, a case-insensitive one any spelling of it.
                let wanted = if target.case_exact {
                    Uuid::parse_str(s).ok().filter(|u| u.to_string() == *s)
                } else {
                    Uuid::parse_str(&s.to_lowercase())
                        .ok()
                        .filter(|u| u.to_string() == s.to_lowercase())
                };
                match (wanted, op) {
                    (Some(id), CompareOp::Eq) => {
                        self.b
                            .push("(")
                            .push(column)
                            .push(" = ")
                            .push_bind(id)
                            .push(")");
                    }
                    (Some(id), _) => {
                        self.b
                            .push("(")
                            .push(column)
                            .push(" <> ")
                            .push_bind(id)
                            .push(")");
                    }
                    (None, CompareOp::Eq) => self.literal(false),
                    (None, _) => self.literal(true),
                }
                Ok(())
            }
            (Operand::UuidText(column), ResolvedValue::Str(s)) => {
                let expr = self.uuid_text(column);
                self.text_compare(&TextExpr::NotNull(expr), target, op, s)
            }
            (Operand::TextColumn(column), ResolvedValue::Str(s)) => {
                self.text_compare(&TextExpr::NotNull(column), target, op, s)
            }
            (Operand::NullableText(column), ResolvedValue::Str(s)) => {
                self.text_compare(&TextExpr::Nullable(column), target, op, s)
            }
            (Operand::Version(column), ResolvedValue::Str(s)) => {
                let expr = match self.dialect {
                    Dialect::Sqlite => match column {
                        "g.version" => "('W/\"' || g.version || '\"')",
                        _ => "('W/\"' || u.version || '\"')",
                    },
                    Dialect::Postgres => match column {
                        "g.version" => "('W/\"' || g.version::text || '\"')",
                        _ => "('W/\"' || u.version::text || '\"')",
                    },
                };
                self.text_compare(&TextExpr::NotNull(expr), target, op, s)
            }
            (Operand::Time(column), ResolvedValue::DateTime { value, .. }) => {
                self.b
                    .push("(")
                    .push(column)
                    .push(ordering_sql(op))
                    .push_bind(*value)
                    .push(")");
                Ok(())
            }
            (Operand::Json(at, def), ResolvedValue::Str(s)) => match def.kind {
                AttrType::String | AttrType::Reference | AttrType::Binary => {
                    self.text_compare(&TextExpr::Json(at), def, op, s)
                }
                _ => Err(Unsupported(format!(
                    "comparing a {} attribute with a string is not supported",
                    def.kind.as_str()
                ))),
            },
            (Operand::Json(at, def), ResolvedValue::Bool(want))
                if def.kind == AttrType::Boolean =>
            {
                let op_sql = match op {
                    CompareOp::Eq => " = ",
                    CompareOp::Ne => " <> ",
                    _ => {
                        self.literal(false);
                        return Ok(());
                    }
                };
                self.b.push("COALESCE(");
                self.push_json_value(&at, JsonKind::Boolean);
                self.b.push(op_sql).push_bind(*want).push(", FALSE)");
                Ok(())
            }
            (Operand::Json(at, def), ResolvedValue::DateTime { value, .. })
                if def.kind == AttrType::DateTime =>
            {
                // The comparison document spells every instant one way (`comparable_time`).
                let operand = crate::scim_proto::resource::comparable_time(*value);
                self.b.push("COALESCE(");
                self.push_text(&TextExpr::Json(at));
                if self.dialect == Dialect::Postgres {
                    self.b.push(" COLLATE \"C\"");
                }
                self.b
                    .push(ordering_sql(op))
                    .push_bind(operand)
                    .push(", FALSE)");
                Ok(())
            }
            (Operand::Json(at, def), ResolvedValue::Number { value, .. })
                if matches!(def.kind, AttrType::Integer | AttrType::Decimal) =>
            {
                self.b.push("COALESCE(");
                self.push_json_value(&at, JsonKind::Number);
                self.b
                    .push(ordering_sql(op))
                    .push_bind(*value)
                    .push(", FALSE)");
                Ok(())
            }
            (Operand::Json(_, def), _) => Err(Unsupported(format!(
                "filtering on {} attributes is not supported",
                def.kind.as_str()
            ))),
            _ => Err(Unsupported("this comparison is not supported".into())),
        }
    }

    fn uuid_text(&self, column: &'static str) -> &'static str {
        match (self.dialect, column) {
            (Dialect::Postgres, "u.id") => "u.id::text",
            (Dialect::Postgres, "g.id") => "g.id::text",
            (Dialect::Postgres, _) => "gm.member_id::text",
            (Dialect::Sqlite, "u.id") => SQLITE_UUID_TEXT_U,
            (Dialect::Sqlite, "g.id") => SQLITE_UUID_TEXT_G,
            (Dialect::Sqlite, _) => SQLITE_UUID_TEXT_GM,
        }
    }

    fn push_text(&mut self, expr: &TextExpr) {
        match expr {
            TextExpr::NotNull(s) | TextExpr::Nullable(s) => {
                self.b.push(s);
            }
            TextExpr::Json(at) => self.push_json_value(at, JsonKind::Text),
        }
    }

    /// The JSON value at `at` as an SQL value of `kind`, or NULL when it is absent or of another
    /// JSON type (a stored value of the wrong type never matches, as in the evaluator).
    fn push_json_value(&mut self, at: &JsonAt, kind: JsonKind) {
        match self.dialect {
            Dialect::Sqlite => {
                // json_extract gives text for strings, 1/0 for booleans, numbers for numbers.
                let types = match kind {
                    JsonKind::Text => "('text')",
                    JsonKind::Boolean => "('true', 'false')",
                    JsonKind::Number => "('integer', 'real')",
                };
                self.b
                    .push("(CASE WHEN json_type(")
                    .push(at.base)
                    .push(", ")
                    .push_bind(sqlite_path(&at.keys))
                    .push(") IN ")
                    .push(types)
                    .push(" THEN json_extract(")
                    .push(at.base)
                    .push(", ")
                    .push_bind(sqlite_path(&at.keys))
                    .push(") END)");
            }
            Dialect::Postgres => {
                let (json_type, cast_to) = match kind {
                    JsonKind::Text => ("'string'", None),
                    JsonKind::Boolean => ("'boolean'", Some(" AS boolean)")),
                    JsonKind::Number => ("'number'", Some(" AS double precision)")),
                };
                self.b.push("(CASE WHEN jsonb_typeof(").push(at.base);
                for key in &at.keys {
                    self.b.push(" -> ").push_bind(*key);
                }
                self.b.push(") = ").push(json_type).push(" THEN ");
                if cast_to.is_some() {
                    self.b.push("CAST(");
                }
                self.b.push("(").push(at.base);
                push_pg_text_path(self.b, &at.keys);
                self.b.push(")");
                if let Some(cast_to) = cast_to {
                    self.b.push(cast_to);
                }
                self.b.push(" END)");
            }
        }
    }

    /// A string comparison; the operand is lower-cased for a caseExact=false attribute (the
    /// stored side already is).
    fn text_compare(
        &mut self,
        expr: &TextExpr,
        def: &AttributeDef,
        op: CompareOp,
        operand: &str,
    ) -> Result<()> {
        let operand = if def.case_exact {
            operand.to_owned()
        } else {
            operand.to_lowercase()
        };
        if operand.is_empty() && matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
            // Every present string contains, starts and ends with "".
            self.b.push("(");
            self.push_text(expr);
            self.b.push(" IS NOT NULL)");
            return Ok(());
        }
        match expr {
            TextExpr::NotNull(_) => {
                self.b.push("(");
            }
            TextExpr::Nullable(column) => {
                self.b.push("(").push(column).push(" IS NOT NULL AND ");
            }
            TextExpr::Json(_) => {
                self.b.push("COALESCE(");
            }
        }
        match op {
            CompareOp::Eq | CompareOp::Ne => {
                self.push_text(expr);
                self.b
                    .push(if op == CompareOp::Eq { " = " } else { " <> " })
                    .push_bind(operand);
            }
            CompareOp::Co => {
                self.b.push(match self.dialect {
                    Dialect::Sqlite => "instr(",
                    Dialect::Postgres => "strpos(",
                });
                self.push_text(expr);
                self.b.push(", ").push_bind(operand).push(") > 0");
            }
            CompareOp::Sw => {
                self.b.push("substr(");
                self.push_text(expr);
                self.b
                    .push(", 1, length(")
                    .push_bind(operand.clone())
                    .push(")) = ")
                    .push_bind(operand);
            }
            CompareOp::Ew => {
                match self.dialect {
                    Dialect::Sqlite => {
                        self.b.push("substr(");
                        self.push_text(expr);
                        self.b.push(", -length(");
                    }
                    Dialect::Postgres => {
                        self.b.push("right(");
                        self.push_text(expr);
                        self.b.push(", length(");
                    }
                }
                self.b
                    .push_bind(operand.clone())
                    .push(")) = ")
                    .push_bind(operand);
            }
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
                self.push_text(expr);
                if self.dialect == Dialect::Postgres {
                    self.b.push(" COLLATE \"C\"");
                }
                self.b.push(ordering_sql(op)).push_bind(operand);
            }
        }
        self.b.push(match expr {
            TextExpr::Json(_) => ", FALSE)",
            TextExpr::NotNull(_) | TextExpr::Nullable(_) => ")",
        });
        Ok(())
    }

    /// Appends the `ORDER BY` terms for `sortBy`/`sortOrder` (RFC 7644 §3.4.2.3): values compare
    /// as the filter does (lower-cased for caseExact=false attributes, by code point), resources
    /// without a value sort last in either direction, and the id breaks ties so pages are
    /// stable.
    pub(crate) fn order_by(&mut self, sort: Option<(&ResolvedAttr, bool)>) -> Result<()> {
        let table = self.table();
        self.b.push(" ORDER BY ");
        if let Some((attr, descending)) = sort {
            let direction = if descending { " DESC" } else { " ASC" };
            let expr = self.sort_expr(attr)?;
            // `IS NULL` first: FALSE (has a value) sorts before TRUE on both backends.
            self.b.push("(");
            self.push_sort_expr(&expr);
            self.b.push(") IS NULL, ");
            self.push_sort_expr(&expr);
            if self.dialect == Dialect::Postgres && expr.is_text {
                self.b.push(" COLLATE \"C\"");
            }
            self.b.push(direction).push(", ");
        }
        self.b.push(table.id);
        Ok(())
    }

    fn sort_expr(&self, attr: &ResolvedAttr) -> Result<SortExpr> {
        let table = self.table();
        let target = attr.target();
        if !attr.extension {
            let sub = attr.sub.map(|s| s.name);
            let column = match (self.resource_type, attr.attr.name, sub) {
                (_, "id", _) => Some((table.id, false)),
                (_, "externalId", _) => Some((table.external_id, true)),
                (ResourceType::User, "userName", _) => Some((
                    if target.case_exact {
                        "u.user_name"
                    } else {
                        "u.user_name_norm"
                    },
                    true,
                )),
                (ResourceType::Group, "displayName", _) => Some((
                    if target.case_exact {
                        "g.display_name"
                    } else {
                        "g.display_name_norm"
                    },
                    true,
                )),
                (_, "meta", Some("created")) => Some((table.created, false)),
                (_, "meta", Some("lastModified")) => Some((table.updated, false)),
                (_, "meta", _) | (_, "schemas", _) => Some((table.id, false)),
                (ResourceType::User, "groups", _) | (ResourceType::Group, "members", _) => {
                    return Err(Unsupported(format!(
                        "sorting by \"{}\" is not supported",
                        attr.path
                    )));
                }
                _ => None,
            };
            if let Some((column, is_text)) = column {
                return Ok(SortExpr {
                    json: None,
                    column: Some(column),
                    is_text,
                    numeric: false,
                });
            }
        }
        if target.kind == AttrType::Complex {
            return Err(Unsupported(format!(
                "sorting by the complex attribute \"{}\" needs a sub-attribute",
                attr.path
            )));
        }
        // A multi-valued attribute sorts by its first value (RFC 7644 §3.4.2.3 suggests the
        // primary one; the first is what the client listed first).
        let mut at = self.doc_at(attr, false);
        let first = attr.multi_valued();
        let sub = attr.sub.map(|s| s.name);
        Ok(SortExpr {
            json: Some((at.base, std::mem::take(&mut at.keys), first, sub)),
            column: None,
            is_text: matches!(
                target.kind,
                AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::DateTime
            ),
            numeric: matches!(target.kind, AttrType::Integer | AttrType::Decimal),
        })
    }

    fn push_sort_expr(&mut self, expr: &SortExpr) {
        if let Some(column) = expr.column {
            self.b.push(column);
            return;
        }
        let Some((base, keys, first, sub)) = &expr.json else {
            return;
        };
        match self.dialect {
            Dialect::Sqlite => {
                let mut path = sqlite_path(keys);
                if *first {
                    path.push_str("[0]");
                }
                if let Some(sub) = sub {
                    path.push_str(&format!(".\"{sub}\""));
                }
                self.b
                    .push("json_extract(")
                    .push(base)
                    .push(", ")
                    .push_bind(path)
                    .push(")");
            }
            Dialect::Postgres => {
                let mut all: Vec<&'static str> = keys.clone();
                if expr.numeric {
                    self.b.push("CAST(");
                }
                self.b.push("(").push(base);
                if *first || sub.is_some() {
                    let last = all.pop();
                    for key in &all {
                        self.b.push(" -> ").push_bind(*key);
                    }
                    if let Some(last) = last {
                        self.b.push(" -> ").push_bind(last);
                    }
                    if *first {
                        self.b.push(" -> 0");
                    }
                    match sub {
                        Some(sub) => {
                            self.b.push(" ->> ").push_bind(*sub);
                        }
                        None => {
                            self.b.push(" #>> '{}'");
                        }
                    }
                } else {
                    push_pg_text_path(self.b, &all);
                }
                self.b.push(")");
                if expr.numeric {
                    self.b.push(" AS double precision)");
                }
            }
        }
    }
}

struct SortExpr {
    json: Option<(&'static str, Vec<&'static str>, bool, Option<&'static str>)>,
    column: Option<&'static str>,
    is_text: bool,
    /// PostgreSQL's `->>` gives text; numbers must sort as numbers.
    numeric: bool,
}

/// The text a string comparison reads. How it may be NULL decides how the comparison stays
/// two-valued: a column that is never NULL needs nothing (and so keeps its index usable), a
/// nullable column is guarded with `IS NOT NULL AND` (still indexable), a JSON value with
/// `COALESCE(…, FALSE)`.
enum TextExpr {
    NotNull(&'static str),
    Nullable(&'static str),
    Json(JsonAt),
}

#[derive(Clone, Copy)]
enum JsonKind {
    Text,
    Boolean,
    Number,
}

/// `-> k1 -> … ->> kn` (text of the last key).
fn push_pg_text_path(b: &mut SqlBuilder, keys: &[&'static str]) {
    if let Some((last, init)) = keys.split_last() {
        for key in init {
            b.push(" -> ").push_bind(*key);
        }
        b.push(" ->> ").push_bind(*last);
    } else {
        b.push(" #>> '{}'");
    }
}

/// A SQLite JSON path with every key quoted (`$."urn:…:User"."manager"."value"`); keys are schema
/// names and URNs, which never contain a double quote.
fn sqlite_path(keys: &[&str]) -> String {
    let mut path = String::from("$");
    for key in keys {
        path.push_str(".\"");
        path.push_str(key);
        path.push('"');
    }
    path
}

fn ordering_sql(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => " = ",
        CompareOp::Ne => " <> ",
        CompareOp::Gt => " > ",
        CompareOp::Ge => " >= ",
        CompareOp::Lt => " < ",
        CompareOp::Le => " <= ",
        // Substring operators never reach here for non-strings (`resolve` refuses them).
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => " = ",
    }
}

fn not_filterable(attr: &ResolvedAttr) -> Unsupported {
    Unsupported(format!("filtering on \"{}\" is not supported", attr.path))
}

/// A constant string (the resource type's name, a schema URN) against the operand, the way the
/// evaluator compares strings.
fn constant_matches(
    def: &AttributeDef,
    op: CompareOp,
    value: &ResolvedValue,
    constant: &str,
) -> bool {
    match value {
        ResolvedValue::Str(want) => eval::compare_str(op, constant, want, def.case_exact),
        _ => false,
    }
}

/// `lower(hex(id))` with the hyphens of the canonical UUID text.
macro_rules! sqlite_uuid_text {
    ($col:literal) => {
        concat!(
            "(substr(lower(hex(",
            $col,
            ")), 1, 8) || '-' || substr(lower(hex(",
            $col,
            ")), 9, 4) || '-' || substr(lower(hex(",
            $col,
            ")), 13, 4) || '-' || substr(lower(hex(",
            $col,
            ")), 17, 4) || '-' || substr(lower(hex(",
            $col,
            ")), 21))"
        )
    };
}
const SQLITE_UUID_TEXT_U: &str = sqlite_uuid_text!("u.id");
const SQLITE_UUID_TEXT_G: &str = sqlite_uuid_text!("g.id");
const SQLITE_UUID_TEXT_GM: &str = sqlite_uuid_text!("gm.member_id");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim_proto::filter::{parse_filter, resolve};
    use crate::scim_proto::schema::ENTERPRISE_USER_SCHEMA;
    use crate::scim_proto::schema::Schemas;

    fn translate(dialect: Dialect, rt: ResourceType, filter: &str) -> Result<String> {
        let parsed = parse_filter(filter).expect("parses");
        let resolved = resolve(&Schemas::default(), &parsed, rt).expect("resolves");
        let mut b = SqlBuilder::new("");
        Translator::new(&mut b, dialect, &Schemas::default(), rt).filter(&resolved)?;
        Ok(b.text_for_tests())
    }

    #[test]
    fn user_name_eq_uses_the_indexed_lower_cased_column() {
        let sql =
            translate(Dialect::Sqlite, ResourceType::User, r#"userName eq "ADA""#).expect("sql");
        // A bare comparison on the column, so the (tenant, user_name_norm) index serves it.
        assert_eq!(sql, "(u.user_name_norm = $1)");
    }

    #[test]
    fn values_are_bound_never_spliced() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let sql = translate(
                dialect,
                ResourceType::User,
                r#"emails[type eq "work" and value co "'; DROP TABLE users; --"] or title sw "%_\\""#,
            )
            .expect("sql");
            assert!(!sql.contains("DROP"), "{sql}");
            assert!(!sql.contains('%'), "{sql}");
        }
    }

    #[test]
    fn unfilterable_attributes_are_refused() {
        assert!(
            translate(
                Dialect::Sqlite,
                ResourceType::User,
                r#"groups.value eq "x""#
            )
            .is_err()
        );
        assert!(
            translate(
                Dialect::Postgres,
                ResourceType::Group,
                r#"members.display eq "x""#
            )
            .is_err()
        );
    }

    #[test]
    fn constants_are_decided_in_rust() {
        let sql = translate(
            Dialect::Sqlite,
            ResourceType::User,
            r#"meta.resourceType eq "User""#,
        )
        .expect("sql");
        assert_eq!(sql, "TRUE");
        let sql = translate(
            Dialect::Sqlite,
            ResourceType::User,
            r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:group""#,
        )
        .expect("sql");
        assert_eq!(sql, "FALSE");
        let sql = translate(
            Dialect::Sqlite,
            ResourceType::User,
            &format!(r#"schemas eq "{ENTERPRISE_USER_SCHEMA}""#),
        )
        .expect("sql");
        assert!(sql.contains("json_type"), "{sql}");
    }
}
