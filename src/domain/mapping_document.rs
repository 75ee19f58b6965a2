//! The mapping document: an org's rules and default as one JSON (or YAML) file — what
//! `mappings export` writes, `mappings import` and `PUT …/mappings` read (DESIGN.md, stable
//! interfaces).
//!
//! ```json
//! {"version": 1,
//!  "default": {"grants": [{"product": "Web", "role": "viewer"}]},
//!  "rules": [{"name": "eng", "idp_group": "Engineering", "source": "any", "priority": 10,
//!             "enabled": true,
//!             "grants": [{"org_role": "member"},
//!                        {"product": "Web", "role": "editor"},
//!                        {"product": "Web", "permission_group": "Developers"},
//!                        {"org": "Payments", "module_roles": {"feature_flags": "write"}}]}]}
//! ```
//!
//! Products, permission groups and orgs are named by id, or by name where the name is unique
//! in the mapping org's subtree. Reading a document checks all of it and reports every error
//! at its JSON Pointer; nothing is applied unless all of it is valid. Pure: the caller
//! supplies the org's [`Catalog`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::mapping::{Grant, RuleSource};
use super::name::{NameRule, at_most};
use super::normalize;
use super::org::OrgRole;
use super::permission::{Module, ModuleLevel, Role};

/// The one version this build reads and writes.
pub const VERSION: u32 = 1;

/// A rule's name: 1 to 100 characters, trimmed; unique per org, case-insensitive.
pub const RULE_NAME: NameRule = at_most!(100);

/// The document as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingDocument {
    /// `1`: the one version this build reads and writes.
    pub version: u32,
    /// Grants for members whom no enabled rule of the org matches; `null`: nothing.
    #[serde(default)]
    pub default: Option<DefaultDocument>,
    #[serde(default)]
    pub rules: Vec<RuleDocument>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultDocument {
    pub grants: Vec<GrantDocument>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDocument {
    /// 1 to 100 characters; unique in the org, case-insensitive.
    pub name: String,
    /// A SCIM group's `displayName` or `externalId` (case-insensitive; nested groups count).
    pub idp_group: String,
    /// `scim`, `any` (default) or `oidc:<connection id>` (once OIDC login exists): which of
    /// the org's own IdP sources the group comes from.
    #[serde(default = "any_source")]
    pub source: String,
    /// Orders the explanation; never takes a permission away. Default 0.
    #[serde(default)]
    pub priority: i32,
    /// Default true.
    #[serde(default = "enabled")]
    pub enabled: bool,
    pub grants: Vec<GrantDocument>,
}

fn any_source() -> String {
    "any".to_owned()
}

fn enabled() -> bool {
    true
}

/// One grant, in one of four forms: `{"org_role"}`, `{"product", "role"}`, `{"product",
/// "permission_group"}`, `{"module_roles"}` — the org forms with an optional `"org"` (default:
/// the mapping's org).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantDocument {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_roles: Option<BTreeMap<String, String>>,
}

/// What a document may name, seen from the mapping's org: that org and the orgs below it,
/// their products, and those products' permission groups.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub org_id: Uuid,
    /// The mapping org's subtree, itself included: `(id, name)`.
    pub orgs: Vec<(Uuid, String)>,
    /// Products of the subtree: `(id, org id, name)`.
    pub products: Vec<(Uuid, Uuid, String)>,
    /// Permission groups of those products: `(id, product id, name)`.
    pub permission_groups: Vec<(Uuid, Uuid, String)>,
    /// The OIDC connections of the mapping's org itself: what `oidc:<id>` may name (a rule
    /// matches the group claims of its own org's connections only).
    pub oidc_connections: Vec<Uuid>,
}

/// One problem in a document, at its JSON Pointer (RFC 6901).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocumentError {
    pub path: String,
    pub message: String,
}

impl DocumentError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        DocumentError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A rule as the document says it, references resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub name: String,
    pub idp_group: String,
    pub source: RuleSource,
    pub priority: i32,
    pub enabled: bool,
    pub grants: Vec<Grant>,
}

impl RuleSpec {
    /// The rule as `org_id` holds it, under `id`.
    pub fn to_rule(&self, org_id: Uuid, id: Uuid) -> super::mapping::Rule {
        super::mapping::Rule {
            id,
            org_id,
            name: self.name.clone(),
            idp_group: self.idp_group.clone(),
            source: self.source,
            priority: self.priority,
            enabled: self.enabled,
            grants: self.grants.clone(),
        }
    }
}

/// A valid document, ready to replace the org's rules and default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mappings {
    pub default: Option<Vec<Grant>>,
    pub rules: Vec<RuleSpec>,
}

/// serde's path to a field (`rules[0].grants[1].product`) as a JSON Pointer
/// (`/rules/0/grants/1/product`).
pub fn pointer(serde_path: &str) -> String {
    if serde_path == "." || serde_path.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for segment in serde_path.split('.') {
        // `?`: a map key the reader had not read yet (a syntax error inside an object); the
        // error is at the object.
        if segment == "?" {
            break;
        }
        let mut rest = segment;
        let name_end = rest.find('[').unwrap_or(rest.len());
        let (name, indexes) = rest.split_at(name_end);
        if !name.is_empty() {
            out.push('/');
            out.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        rest = indexes;
        while let Some(open) = rest.strip_prefix('[') {
            let Some((index, after)) = open.split_once(']') else {
                break;
            };
            out.push('/');
            out.push_str(index);
            rest = after;
        }
    }
    out
}

impl Catalog {
    /// The id `reference` names among `candidates` (`(id, name)`): an id of one of them, or a
    /// name (case-insensitive) that exactly one of them has.
    fn find<'a>(
        reference: &str,
        what: &str,
        candidates: impl Iterator<Item = (Uuid, &'a str)> + Clone,
    ) -> Result<Uuid, String> {
        if let Ok(id) = Uuid::parse_str(reference.trim()) {
            return candidates
                .clone()
                .find(|(c, _)| *c == id)
                .map(|(c, _)| c)
                .ok_or_else(|| format!("no {what} with id {id} here"));
        }
        let wanted = normalize(reference);
        let named: Vec<Uuid> = candidates
            .filter(|(_, name)| normalize(name) == wanted)
            .map(|(id, _)| id)
            .collect();
        match named.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("no {what} named {reference:?} here")),
            _ => Err(format!(
                "{reference:?} names {} of them (each {what}): use the id",
                named.len()
            )),
        }
    }

    fn org(&self, reference: Option<&str>) -> Result<Uuid, String> {
        match reference {
            None => Ok(self.org_id),
            Some(r) => Self::find(
                r,
                "org in this org's subtree",
                self.orgs.iter().map(|(id, n)| (*id, n.as_str())),
            ),
        }
    }

    fn product(&self, reference: &str) -> Result<Uuid, String> {
        Self::find(
            reference,
            "product in this org's subtree",
            self.products.iter().map(|(id, _, n)| (*id, n.as_str())),
        )
    }

    fn permission_group(&self, product: Uuid, reference: &str) -> Result<Uuid, String> {
        Self::find(
            reference,
            "permission group of this product",
            self.permission_groups
                .iter()
                .filter(|(_, p, _)| *p == product)
                .map(|(id, _, n)| (*id, n.as_str())),
        )
    }

    /// How an export names `id` among `(id, name)` candidates: its name where that is unique,
    /// otherwise the id.
    fn name_of<'a>(id: Uuid, candidates: impl Iterator<Item = (Uuid, &'a str)> + Clone) -> String {
        let Some(name) = candidates.clone().find(|(c, _)| *c == id).map(|(_, n)| n) else {
            return id.to_string();
        };
        let same = candidates
            .filter(|(_, n)| normalize(n) == normalize(name))
            .count();
        // A name that parses as an id would be read back as one.
        if same == 1 && Uuid::parse_str(name.trim()).is_err() {
            name.to_owned()
        } else {
            id.to_string()
        }
    }
}

/// Checks `document` against `catalog`: every error, each at its pointer, or the mappings.
pub fn validate(
    document: &MappingDocument,
    catalog: &Catalog,
) -> Result<Mappings, Vec<DocumentError>> {
    let mut errors = Vec::new();
    if document.version != VERSION {
        errors.push(DocumentError::new(
            "/version",
            format!("this build reads version {VERSION}"),
        ));
    }
    let default = document
        .default
        .as_ref()
        .map(|d| grants(&d.grants, "/default/grants", catalog, &mut errors));
    let mut rules = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, rule) in document.rules.iter().enumerate() {
        let at = format!("/rules/{i}");
        let name = match RULE_NAME.validate(&rule.name) {
            Ok(name) => {
                if let Some(first) = seen.insert(normalize(&name), i) {
                    errors.push(DocumentError::new(
                        format!("{at}/name"),
                        format!("rule names are unique per org (case-insensitive): /rules/{first} has it too"),
                    ));
                }
                name
            }
            Err(message) => {
                errors.push(DocumentError::new(format!("{at}/name"), message));
                rule.name.clone()
            }
        };
        let idp_group = rule.idp_group.trim();
        if idp_group.is_empty() || idp_group.chars().count() > 256 {
            errors.push(DocumentError::new(
                format!("{at}/idp_group"),
                "must be 1 to 256 characters",
            ));
        }
        let source = match RuleSource::parse(rule.source.trim()) {
            Ok(RuleSource::Oidc(id)) if !catalog.oidc_connections.contains(&id) => {
                errors.push(DocumentError::new(
                    format!("{at}/source"),
                    format!(
                        "no OIDC connection {id} in this org (`rolegate oidc list` names them)"
                    ),
                ));
                RuleSource::Any
            }
            Ok(source) => source,
            Err(message) => {
                errors.push(DocumentError::new(format!("{at}/source"), message));
                RuleSource::Any
            }
        };
        let given = grants(&rule.grants, &format!("{at}/grants"), catalog, &mut errors);
        rules.push(RuleSpec {
            name,
            idp_group: idp_group.to_owned(),
            source,
            priority: rule.priority,
            enabled: rule.enabled,
            grants: given,
        });
    }
    if errors.is_empty() {
        Ok(Mappings { default, rules })
    } else {
        Err(errors)
    }
}

fn grants(
    listed: &[GrantDocument],
    at: &str,
    catalog: &Catalog,
    errors: &mut Vec<DocumentError>,
) -> Vec<Grant> {
    let mut out = Vec::new();
    for (i, g) in listed.iter().enumerate() {
        let at = format!("{at}/{i}");
        match grant(g, catalog) {
            Ok(grant) => out.push(grant),
            Err((field, message)) => errors.push(DocumentError::new(
                if field.is_empty() {
                    at
                } else {
                    format!("{at}/{field}")
                },
                message,
            )),
        }
    }
    out
}

/// One grant, or the field it is wrong at (empty: the grant as a whole) and why.
fn grant(g: &GrantDocument, catalog: &Catalog) -> Result<Grant, (&'static str, String)> {
    const FORMS: &str = "a grant is one of {\"org_role\"}, {\"product\", \"role\"}, \
                         {\"product\", \"permission_group\"} or {\"module_roles\"}, the org \
                         forms with an optional \"org\"";
    let kinds = [
        g.org_role.is_some(),
        g.role.is_some(),
        g.permission_group.is_some(),
        g.module_roles.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(("", FORMS.to_owned()));
    }
    if let Some(role) = &g.org_role {
        if g.product.is_some() {
            return Err(("product", "an org role is not given on a product".into()));
        }
        let org_id = catalog.org(g.org.as_deref()).map_err(|m| ("org", m))?;
        let role = OrgRole::parse(role.trim())
            .ok_or(("org_role", "expected `owner` or `member`".to_owned()))?;
        return Ok(Grant::OrgRole { org_id, role });
    }
    if let Some(levels) = &g.module_roles {
        if g.product.is_some() {
            return Err((
                "product",
                "module roles are given in an org, not on a product".into(),
            ));
        }
        let org_id = catalog.org(g.org.as_deref()).map_err(|m| ("org", m))?;
        let mut parsed = BTreeMap::new();
        for (module, level) in levels {
            let module = Module::parse(module.trim()).ok_or_else(|| {
                let known: Vec<&str> = Module::ALL.iter().map(|m| m.as_str()).collect();
                (
                    "module_roles",
                    format!(
                        "unknown module {module:?}; expected one of {}",
                        known.join(", ")
                    ),
                )
            })?;
            let level = ModuleLevel::parse(level.trim()).ok_or((
                "module_roles",
                format!("{}: expected `none`, `read` or `write`", module.as_str()),
            ))?;
            parsed.insert(module, level);
        }
        return Ok(Grant::ModuleRoles {
            org_id,
            levels: parsed,
        });
    }
    if g.org.is_some() {
        return Err((
            "org",
            "a product grant names the product, not an org".into(),
        ));
    }
    let Some(product) = &g.product else {
        return Err((
            "product",
            "required with `role` or `permission_group`".into(),
        ));
    };
    let product_id = catalog.product(product).map_err(|m| ("product", m))?;
    if let Some(role) = &g.role {
        let role = Role::parse(role.trim()).ok_or_else(|| {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            ("role", format!("expected one of {}", known.join(", ")))
        })?;
        return Ok(Grant::ProductRole { product_id, role });
    }
    let group = g.permission_group.as_deref().unwrap_or_default();
    let group_id = catalog
        .permission_group(product_id, group)
        .map_err(|m| ("permission_group", m))?;
    Ok(Grant::PermissionGroup {
        product_id,
        group_id,
    })
}

/// Reads a JSON document; a malformed one is an error at the pointer where it went wrong.
pub fn parse_json(text: &[u8]) -> Result<MappingDocument, Vec<DocumentError>> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let document = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let inner = e.inner();
        let text = inner.to_string();
        if !inner.is_data() {
            // Not JSON (a syntax error, the end of the file): the line and column say where
            // better than the pointer to what was being read.
            return vec![DocumentError::new(
                pointer(&e.path().to_string()),
                format!("not a JSON document: {text}"),
            )];
        }
        let message = text
            .strip_suffix(&format!(
                " at line {} column {}",
                inner.line(),
                inner.column()
            ))
            .unwrap_or(&text);
        vec![serde_error(&e.path().to_string(), message)]
    })?;
    deserializer
        .end()
        .map_err(|e| vec![DocumentError::new("", format!("not a JSON document: {e}"))])?;
    Ok(document)
}

/// Reads a YAML document (what `mappings export --format yaml` writes), in two steps so that
/// its errors read like a JSON document's: the YAML is read into a JSON value first — a YAML
/// error there (syntax, an unknown anchor, a key that is not a string) is reported at the
/// pointer where the reader was, with the line and column YAML gives — and the value is then
/// read as the document, every shape error at its JSON Pointer (`/rules/0/grants/1/product`).
pub fn parse_yaml(text: &[u8]) -> Result<MappingDocument, Vec<DocumentError>> {
    let deserializer = yaml_serde::Deserializer::from_slice(text);
    let value: serde_json::Value = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        vec![DocumentError::new(
            pointer(&e.path().to_string()),
            format!("not a YAML document: {}", e.inner()),
        )]
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        // A JSON value carries no positions: serde's message alone, as `parse_json` gives it.
        vec![serde_error(&e.path().to_string(), &e.inner().to_string())]
    })
}

/// The document as pretty JSON with a trailing newline, for `mappings export` and the
/// console's download: a file meant to be kept and diffed.
pub fn to_json(document: &MappingDocument) -> Result<String, String> {
    serde_json::to_string_pretty(document)
        .map(|text| text + "\n")
        .map_err(|e| e.to_string())
}

/// The document as YAML, for `mappings export --format yaml`; `parse_yaml` reads it back to
/// the same document.
pub fn to_yaml(document: &MappingDocument) -> Result<String, String> {
    yaml_serde::to_string(document).map_err(|e| e.to_string())
}

/// A deserializer's complaint at `path`, as a document error: a missing or unknown field is
/// reported at the field itself.
pub fn serde_error(path: &str, message: &str) -> DocumentError {
    let at = pointer(path);
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(name) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
        {
            let field = if at.ends_with(&format!("/{name}")) {
                at.clone()
            } else {
                format!("{at}/{name}")
            };
            let what = if prefix.starts_with("missing") {
                "required".to_owned()
            } else {
                message.replacen(&format!("unknown field `{name}`"), "unknown field", 1)
            };
            return DocumentError::new(field, what);
        }
    }
    DocumentError::new(at, message)
}

/// The document for `mappings`: rules ordered by name, references by name where unique (else
/// by id), `"default": null` when unset. Reading it back gives the same mappings, and writing
/// those again the same bytes.
pub fn export(mappings: &Mappings, catalog: &Catalog) -> MappingDocument {
    let mut rules: Vec<&RuleSpec> = mappings.rules.iter().collect();
    rules.sort_by(|a, b| by_name(a, b));
    MappingDocument {
        version: VERSION,
        default: mappings.default.as_ref().map(|g| DefaultDocument {
            grants: g.iter().map(|g| export_grant(g, catalog)).collect(),
        }),
        rules: rules
            .into_iter()
            .map(|r| RuleDocument {
                name: r.name.clone(),
                idp_group: r.idp_group.clone(),
                source: r.source.to_string(),
                priority: r.priority,
                enabled: r.enabled,
                grants: r.grants.iter().map(|g| export_grant(g, catalog)).collect(),
            })
            .collect(),
    }
}

/// The order rules are listed in — exported, stored, audited: by name, case-insensitively
/// (names are unique so), in this process rather than by a database collation, so that both
/// backends list them alike.
pub fn by_name(a: &RuleSpec, b: &RuleSpec) -> std::cmp::Ordering {
    normalize(&a.name)
        .cmp(&normalize(&b.name))
        .then(a.name.cmp(&b.name))
}

fn export_grant(grant: &Grant, catalog: &Catalog) -> GrantDocument {
    let org = |id: Uuid| {
        (id != catalog.org_id)
            .then(|| Catalog::name_of(id, catalog.orgs.iter().map(|(i, n)| (*i, n.as_str()))))
    };
    let product = |id: Uuid| {
        Some(Catalog::name_of(
            id,
            catalog.products.iter().map(|(i, _, n)| (*i, n.as_str())),
        ))
    };
    match grant {
        Grant::OrgRole { org_id, role } => GrantDocument {
            org: org(*org_id),
            org_role: Some(role.as_str().to_owned()),
            ..Default::default()
        },
        Grant::ProductRole { product_id, role } => GrantDocument {
            product: product(*product_id),
            role: Some(role.as_str().to_owned()),
            ..Default::default()
        },
        Grant::PermissionGroup {
            product_id,
            group_id,
        } => GrantDocument {
            product: product(*product_id),
            permission_group: Some(Catalog::name_of(
                *group_id,
                catalog
                    .permission_groups
                    .iter()
                    .filter(|(_, p, _)| p == product_id)
                    .map(|(i, _, n)| (*i, n.as_str())),
            )),
            ..Default::default()
        },
        Grant::ModuleRoles { org_id, levels } => GrantDocument {
            org: org(*org_id),
            module_roles: Some(
                levels
                    .iter()
                    .map(|(m, l)| (m.as_str().to_owned(), l.as_str().to_owned()))
                    .collect(),
            ),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests;
