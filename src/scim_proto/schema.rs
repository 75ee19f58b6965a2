//! The SCIM schemas this service speaks, as data: core User, the enterprise User extension and
//! core Group (RFC 7643 §4, §8.7.1), plus the common attributes every resource carries (§3.1).
//!
//! The definitions drive three things: the `/Schemas` discovery documents (`to_scim_json`, the
//! RFC 7643 §7 representation), attribute resolution for filters and PATCH paths (names are
//! case-insensitive, RFC 7643 §2.1), and the evaluator's comparison rules (`case_exact`, type).
//!
//! Characteristics follow RFC 7643 §8.7.1, with these deliberate differences:
//! - complex attributes carry neither `caseExact` nor `uniqueness` (§2.3.8; errata 6004 removes
//!   the `"uniqueness": "none"` that §8.7.1 printed on `name`, `emails` and `addresses`);
//! - `x509Certificates.value` is `caseExact: true`: it is binary (base64), and §2.3.6 says a
//!   binary value is case exact, which §8.7.1's `false` contradicts;
//! - `addresses.primary` exists: §4.1.2 and §2.4 give every multi-valued attribute a `primary`
//!   flag, and §8.7.1 simply forgot it for addresses;
//! - Group `displayName` is required and server-unique (case-insensitive) in this service, and
//!   `members.display` is listed (RFC 7644 §3.5.2's own PATCH examples send it; it is derived by
//!   the server, so it is read-only);
//! - `externalId` is `caseExact: true` (§3.1 says so; IdPs treat it as an opaque key).

use serde_json::{Map, Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The schema of schema representations (RFC 7643 §7).
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// RFC 7643 §2.3 data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// RFC 7643 §7 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// RFC 7643 §7 `returned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// RFC 7643 §7 `uniqueness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute's characteristics (RFC 7643 §2.2, §7). Static data, so resolved references
/// (`&'static AttributeDef`) can travel inside filter ASTs for free.
#[derive(Debug, PartialEq, Eq)]
pub struct AttributeDef {
    pub name: &'static str,
    pub kind: AttrType,
    pub description: &'static str,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub_attributes: &'static [AttributeDef],
}

impl AttributeDef {
    /// The sub-attribute called `name`, matched case-insensitively (RFC 7643 §2.1).
    pub fn sub_attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The RFC 7643 §7 representation of this attribute.
    pub fn to_scim_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("type".into(), json!(self.kind.as_str()));
        out.insert("multiValued".into(), json!(self.multi_valued));
        out.insert("description".into(), json!(self.description));
        out.insert("required".into(), json!(self.required));
        // §2.3.8 / errata 6004: complex attributes have no case sensitivity and no uniqueness;
        // §8.7.1 gives booleans neither either.
        let has_case = !matches!(self.kind, AttrType::Complex | AttrType::Boolean);
        if has_case {
            out.insert("caseExact".into(), json!(self.case_exact));
        }
        if !self.canonical_values.is_empty() {
            out.insert("canonicalValues".into(), json!(self.canonical_values));
        }
        if self.kind == AttrType::Reference {
            out.insert("referenceTypes".into(), json!(self.reference_types));
        }
        if self.kind == AttrType::Complex {
            let subs: Vec<Value> = self
                .sub_attributes
                .iter()
                .map(AttributeDef::to_scim_json)
                .collect();
            out.insert("subAttributes".into(), Value::Array(subs));
        }
        out.insert("mutability".into(), json!(self.mutability.as_str()));
        out.insert("returned".into(), json!(self.returned.as_str()));
        if has_case {
            out.insert("uniqueness".into(), json!(self.uniqueness.as_str()));
        }
        Value::Object(out)
    }
}

/// A schema (RFC 7643 §7): its URN, name, description and top-level attributes.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceSchema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttributeDef],
}

impl ResourceSchema {
    /// The top-level attribute called `name`, matched case-insensitively.
    pub fn attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The RFC 7643 §7 schema representation served under `/Schemas`. `meta.location` depends on
    /// the public base URL, so the discovery handler adds it.
    pub fn to_scim_json(&self) -> Value {
        let attributes: Vec<Value> = self
            .attributes
            .iter()
            .map(AttributeDef::to_scim_json)
            .collect();
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": attributes,
            "meta": { "resourceType": "Schema" },
        })
    }
}

/// The SCIM resource types this service serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    User,
    Group,
}

impl ResourceType {
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::User => "User",
            ResourceType::Group => "Group",
        }
    }

    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceType::User => "/Users",
            ResourceType::Group => "/Groups",
        }
    }

    /// The resource type's core schema.
    pub fn schema(self) -> &'static ResourceSchema {
        match self {
            ResourceType::User => &USER,
            ResourceType::Group => &GROUP,
        }
    }
}

/// The schemas a service serves: the built-in ones, plus the extensions the operator configured
/// (`ROLEGATE_SCIM_SCHEMA_EXTENSIONS`). A value carried by the application state, not a
/// process-wide registry, so two services in one process (tests, an embedding) may differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schemas {
    user_extensions: Vec<&'static ResourceSchema>,
    group_extensions: Vec<&'static ResourceSchema>,
    all: Vec<&'static ResourceSchema>,
}

static BUILT_IN_USER_EXTENSIONS: [&ResourceSchema; 1] = [&ENTERPRISE_USER];
static BUILT_IN: [&ResourceSchema; 3] = [&USER, &GROUP, &ENTERPRISE_USER];

impl Default for Schemas {
    fn default() -> Self {
        Schemas {
            user_extensions: BUILT_IN_USER_EXTENSIONS.to_vec(),
            group_extensions: Vec::new(),
            all: BUILT_IN.to_vec(),
        }
    }
}

/// Why configured extensions cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigureError {
    #[error("schema \"{0}\" is configured twice or clashes with a built-in schema")]
    Duplicate(String),
}

impl Schemas {
    /// The built-in schemas plus configured extensions, each for Users or Groups.
    pub fn with_extensions(
        extensions: Vec<(ResourceType, &'static ResourceSchema)>,
    ) -> Result<Self, ConfigureError> {
        let mut schemas = Schemas::default();
        for (resource_type, extension) in extensions {
            if schemas
                .all
                .iter()
                .any(|s| s.id.eq_ignore_ascii_case(extension.id))
            {
                return Err(ConfigureError::Duplicate(extension.id.to_owned()));
            }
            schemas.all.push(extension);
            match resource_type {
                ResourceType::User => schemas.user_extensions.push(extension),
                ResourceType::Group => schemas.group_extensions.push(extension),
            }
        }
        Ok(schemas)
    }

    /// Schema extensions the resource type accepts (RFC 7643 §6 `schemaExtensions`): the
    /// enterprise User extension, then the configured ones.
    pub fn extensions(&self, resource_type: ResourceType) -> &[&'static ResourceSchema] {
        match resource_type {
            ResourceType::User => &self.user_extensions,
            ResourceType::Group => &self.group_extensions,
        }
    }

    /// Every schema served under `/Schemas`.
    pub fn all(&self) -> &[&'static ResourceSchema] {
        &self.all
    }
}

/// An attribute path resolved against the schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrRef {
    /// URN of the schema the attribute belongs to (the core schema for common attributes).
    pub schema: &'static str,
    /// True when the attribute lives in an extension, i.e. under the extension's URN key in
    /// the resource's JSON.
    pub extension: bool,
    /// The top-level attribute.
    pub attr: &'static AttributeDef,
    /// The sub-attribute, when the path named one.
    pub sub: Option<&'static AttributeDef>,
}

impl AttrRef {
    /// The attribute the path finally designates: the sub-attribute if any, else the attribute.
    pub fn target(&self) -> &'static AttributeDef {
        self.sub.unwrap_or(self.attr)
    }
}

/// Why an attribute path names nothing. Messages are safe to show a SCIM client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("schema \"{urn}\" is not a schema of the {resource_type} resource type")]
    UnknownSchema {
        urn: String,
        resource_type: &'static str,
    },
    #[error("no such attribute \"{name}\" on the {resource_type} resource type")]
    NoSuchAttribute {
        name: String,
        resource_type: &'static str,
    },
    #[error("attribute \"{attr}\" has no sub-attribute \"{sub}\"")]
    NoSuchSubAttribute { attr: String, sub: String },
}

impl Schemas {
    /// Resolves `[schema ":"] name ["." sub]` for a resource type. Everything matches
    /// case-insensitively. Without a URN prefix the common and core attributes are searched first,
    /// then the extensions' (RFC 7644 §3.10 lets clients omit the core prefix and only *advises*
    /// qualifying extension attributes; none of our extension names clashes with a core name).
    pub fn resolve_attribute(
        &self,
        resource_type: ResourceType,
        schema: Option<&str>,
        name: &str,
        sub: Option<&str>,
    ) -> Result<AttrRef, SchemaError> {
        let core = resource_type.schema();
        let no_such = || SchemaError::NoSuchAttribute {
            name: name.to_string(),
            resource_type: resource_type.name(),
        };
        let found = match schema {
            Some(urn) if urn.eq_ignore_ascii_case(core.id) => find_core(core, name),
            Some(urn) => {
                let extension = self
                    .extensions(resource_type)
                    .iter()
                    .find(|e| e.id.eq_ignore_ascii_case(urn))
                    .ok_or_else(|| SchemaError::UnknownSchema {
                        urn: urn.to_string(),
                        resource_type: resource_type.name(),
                    })?;
                extension
                    .attribute(name)
                    .map(|attr| (extension.id, true, attr))
            }
            None => find_core(core, name).or_else(|| {
                self.extensions(resource_type)
                    .iter()
                    .find_map(|e| e.attribute(name).map(|attr| (e.id, true, attr)))
            }),
        };
        let (schema, extension, attr) = found.ok_or_else(no_such)?;
        let sub = match sub {
            None => None,
            Some(sub_name) => Some(attr.sub_attribute(sub_name).ok_or_else(|| {
                SchemaError::NoSuchSubAttribute {
                    attr: attr.name.to_string(),
                    sub: sub_name.to_string(),
                }
            })?),
        };
        Ok(AttrRef {
            schema,
            extension,
            attr,
            sub,
        })
    }
}

fn find_core(
    core: &'static ResourceSchema,
    name: &str,
) -> Option<(&'static str, bool, &'static AttributeDef)> {
    COMMON_ATTRIBUTES
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .or_else(|| core.attribute(name))
        .map(|attr| (core.id, false, attr))
}

// ---------------------------------------------------------------------------------------------
// Definitions. `const fn` builders keep each attribute to the characteristics that differ from
// RFC 7643 §2.2's defaults (readWrite, default, none, caseExact false, single-valued, optional).

const fn attr(name: &'static str, kind: AttrType, description: &'static str) -> AttributeDef {
    AttributeDef {
        name,
        kind,
        description,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        canonical_values: &[],
        reference_types: &[],
        sub_attributes: &[],
    }
}

const fn string(name: &'static str, description: &'static str) -> AttributeDef {
    attr(name, AttrType::String, description)
}

const fn boolean(name: &'static str, description: &'static str) -> AttributeDef {
    attr(name, AttrType::Boolean, description)
}

const fn reference(
    name: &'static str,
    reference_types: &'static [&'static str],
    description: &'static str,
) -> AttributeDef {
    AttributeDef {
        reference_types,
        ..attr(name, AttrType::Reference, description)
    }
}

const fn complex(
    name: &'static str,
    sub_attributes: &'static [AttributeDef],
    description: &'static str,
) -> AttributeDef {
    AttributeDef {
        sub_attributes,
        ..attr(name, AttrType::Complex, description)
    }
}

const fn multi_complex(
    name: &'static str,
    sub_attributes: &'static [AttributeDef],
    description: &'static str,
) -> AttributeDef {
    AttributeDef {
        multi_valued: true,
        ..complex(name, sub_attributes, description)
    }
}

const fn read_only(def: AttributeDef) -> AttributeDef {
    AttributeDef {
        mutability: Mutability::ReadOnly,
        ..def
    }
}

const fn immutable(def: AttributeDef) -> AttributeDef {
    AttributeDef {
        mutability: Mutability::Immutable,
        ..def
    }
}

const fn canonical(def: AttributeDef, values: &'static [&'static str]) -> AttributeDef {
    AttributeDef {
        canonical_values: values,
        ..def
    }
}

const DISPLAY_DESC: &str = "A human-readable name, primarily used for display purposes.";
const PRIMARY_DESC: &str =
    "Whether this is the primary or preferred value; at most one value has primary true.";

/// `id`, `externalId`, `meta` (RFC 7643 §3.1) and `schemas` (§3). They belong to every resource
/// but to no schema, so they are resolvable yet absent from the §8.7.1 representations.
pub static COMMON_ATTRIBUTES: [AttributeDef; 4] = [
    AttributeDef {
        case_exact: true,
        mutability: Mutability::ReadOnly,
        returned: Returned::Always,
        uniqueness: Uniqueness::Server,
        ..string(
            "id",
            "Identifier of the resource, assigned by the service provider.",
        )
    },
    AttributeDef {
        case_exact: true,
        ..string(
            "externalId",
            "Identifier of the resource as defined by the provisioning client.",
        )
    },
    read_only(complex(
        "meta",
        &[
            AttributeDef {
                case_exact: true,
                ..read_only(string("resourceType", "Name of the resource's type."))
            },
            read_only(attr(
                "created",
                AttrType::DateTime,
                "When the resource was added to the service provider.",
            )),
            read_only(attr(
                "lastModified",
                AttrType::DateTime,
                "When the resource was last changed.",
            )),
            AttributeDef {
                case_exact: true,
                ..read_only(reference(
                    "location",
                    &["uri"],
                    "URI of the resource being returned.",
                ))
            },
            AttributeDef {
                case_exact: true,
                ..read_only(string("version", "Version (entity tag) of the resource."))
            },
        ],
        "Resource metadata maintained by the service provider.",
    )),
    // Schema URNs are case-insensitive (RFC 8141), hence caseExact false.
    AttributeDef {
        multi_valued: true,
        required: true,
        returned: Returned::Always,
        ..reference(
            "schemas",
            &["uri"],
            "URIs of the schemas the resource conforms to.",
        )
    },
];

/// Sub-attributes shared by the plain multi-valued attributes (emails, phoneNumbers, …).
macro_rules! value_display_type_primary {
    ($value:expr, $types:expr) => {
        &[
            $value,
            string("display", DISPLAY_DESC),
            canonical(
                string("type", "A label indicating the attribute's function."),
                $types,
            ),
            boolean("primary", PRIMARY_DESC),
        ]
    };
}

pub static USER: ResourceSchema = ResourceSchema {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: &[
        AttributeDef {
            required: true,
            uniqueness: Uniqueness::Server,
            ..string(
                "userName",
                "Unique identifier for the User, used by the user to sign in. REQUIRED.",
            )
        },
        complex(
            "name",
            &[
                string("formatted", "The full name, formatted for display."),
                string("familyName", "The family (last) name."),
                string("givenName", "The given (first) name."),
                string("middleName", "The middle name(s)."),
                string("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
                string("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
            ],
            "The components of the user's real name.",
        ),
        string("displayName", "The name of the User, suitable for display."),
        string("nickName", "The casual way to address the user."),
        reference(
            "profileUrl",
            &["external"],
            "A URL of a page representing the User's online profile.",
        ),
        string("title", "The user's title, such as 'Vice President'."),
        string(
            "userType",
            "The relationship between the organization and the user, e.g. 'Employee'.",
        ),
        string(
            "preferredLanguage",
            "The User's preferred written or spoken language, e.g. 'en-US'.",
        ),
        string(
            "locale",
            "The User's default location for localizing dates, currency and numbers.",
        ),
        string(
            "timezone",
            "The User's time zone in IANA database format, e.g. 'America/Los_Angeles'.",
        ),
        boolean("active", "The User's administrative status."),
        AttributeDef {
            mutability: Mutability::WriteOnly,
            returned: Returned::Never,
            ..string(
                "password",
                "The User's cleartext password, only ever written, never returned.",
            )
        },
        multi_complex(
            "emails",
            value_display_type_primary!(
                string("value", "An e-mail address of the User."),
                &["work", "home", "other"]
            ),
            "E-mail addresses of the User.",
        ),
        multi_complex(
            "phoneNumbers",
            value_display_type_primary!(
                string("value", "A phone number of the User."),
                &["work", "home", "mobile", "fax", "pager", "other"]
            ),
            "Phone numbers of the User.",
        ),
        multi_complex(
            "ims",
            value_display_type_primary!(
                string("value", "An instant messaging address of the User."),
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
            ),
            "Instant messaging addresses of the User.",
        ),
        multi_complex(
            "photos",
            value_display_type_primary!(
                reference("value", &["external"], "URL of a photo of the User."),
                &["photo", "thumbnail"]
            ),
            "URLs of photos of the User.",
        ),
        multi_complex(
            "addresses",
            &[
                string(
                    "formatted",
                    "The full mailing address, formatted for display.",
                ),
                string("streetAddress", "The full street address component."),
                string("locality", "The city or locality component."),
                string("region", "The state or region component."),
                string("postalCode", "The zip or postal code component."),
                string("country", "The country name component."),
                canonical(
                    string("type", "A label indicating the address's function."),
                    &["work", "home", "other"],
                ),
                boolean("primary", PRIMARY_DESC),
            ],
            "Physical mailing addresses of the User.",
        ),
        read_only(multi_complex(
            "groups",
            &[
                read_only(string("value", "The id of a Group the User belongs to.")),
                read_only(reference(
                    "$ref",
                    &["User", "Group"],
                    "The URI of the Group the User belongs to.",
                )),
                read_only(string("display", DISPLAY_DESC)),
                read_only(canonical(
                    string("type", "How the User belongs to the group."),
                    &["direct", "indirect"],
                )),
            ],
            "The groups the User belongs to, directly or through nested groups.",
        )),
        multi_complex(
            "entitlements",
            value_display_type_primary!(string("value", "The value of an entitlement."), &[]),
            "Entitlements of the User: things the User has.",
        ),
        multi_complex(
            "roles",
            value_display_type_primary!(string("value", "The value of a role."), &[]),
            "Roles of the User: who the User is, e.g. 'Student'.",
        ),
        multi_complex(
            "x509Certificates",
            value_display_type_primary!(
                AttributeDef {
                    case_exact: true,
                    ..attr(
                        "value",
                        AttrType::Binary,
                        "A DER-encoded X.509 certificate, base64.",
                    )
                },
                &[]
            ),
            "Certificates issued to the User.",
        ),
    ],
};

pub static ENTERPRISE_USER: ResourceSchema = ResourceSchema {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        string(
            "employeeNumber",
            "Identifier assigned to a person by the organization, e.g. by order of hire.",
        ),
        string("costCenter", "Name of a cost center."),
        string("organization", "Name of an organization."),
        string("division", "Name of a division."),
        string("department", "Name of a department."),
        complex(
            "manager",
            &[
                string(
                    "value",
                    "The id of the SCIM resource of the User's manager.",
                ),
                reference("$ref", &["User"], "The URI of the manager's SCIM resource."),
                read_only(string("displayName", "The manager's display name.")),
            ],
            "The User's manager.",
        ),
    ],
};

pub static GROUP: ResourceSchema = ResourceSchema {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: &[
        AttributeDef {
            required: true,
            uniqueness: Uniqueness::Server,
            ..string(
                "displayName",
                "A human-readable name for the Group, unique in the organization. REQUIRED.",
            )
        },
        multi_complex(
            "members",
            &[
                immutable(string("value", "Identifier of the member of this Group.")),
                immutable(reference(
                    "$ref",
                    &["User", "Group"],
                    "The URI of the member's SCIM resource.",
                )),
                read_only(string("display", DISPLAY_DESC)),
                immutable(canonical(
                    string("type", "The member's resource type."),
                    &["User", "Group"],
                )),
            ],
            "The members of the Group.",
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn all_defs() -> Vec<(&'static str, &'static AttributeDef)> {
        let mut out = Vec::new();
        let schemas = Schemas::default().all().to_vec();
        let tops = schemas
            .iter()
            .flat_map(|s| s.attributes.iter())
            .chain(COMMON_ATTRIBUTES.iter());
        for a in tops {
            out.push((a.name, a));
            for s in a.sub_attributes {
                out.push((s.name, s));
            }
        }
        out
    }

    #[test]
    fn user_name_characteristics_follow_rfc7643_8_7_1() {
        let a = USER.attribute("username").expect("userName");
        assert_eq!(a.name, "userName");
        assert!(a.required && !a.case_exact);
        assert_eq!(a.uniqueness, Uniqueness::Server);
        assert_eq!(a.mutability, Mutability::ReadWrite);
        assert_eq!(a.returned, Returned::Default);
    }

    #[test]
    fn password_is_write_only_and_never_returned() {
        let a = USER.attribute("password").expect("password");
        assert_eq!(a.mutability, Mutability::WriteOnly);
        assert_eq!(a.returned, Returned::Never);
    }

    #[test]
    fn id_is_case_exact_read_only_and_always_returned_and_external_id_is_case_exact() {
        let id = &COMMON_ATTRIBUTES[0];
        assert_eq!(id.name, "id");
        assert!(id.case_exact);
        assert_eq!(id.mutability, Mutability::ReadOnly);
        assert_eq!(id.returned, Returned::Always);
        let ext = &COMMON_ATTRIBUTES[1];
        assert_eq!(ext.name, "externalId");
        assert!(ext.case_exact);
        assert_eq!(ext.mutability, Mutability::ReadWrite);
    }

    #[test]
    fn group_display_name_is_required_and_server_unique_and_members_value_immutable() {
        let d = GROUP.attribute("displayName").expect("displayName");
        assert!(d.required && !d.case_exact);
        assert_eq!(d.uniqueness, Uniqueness::Server);
        let m = GROUP.attribute("members").expect("members");
        assert!(m.multi_valued);
        let v = m.sub_attribute("VALUE").expect("value");
        assert_eq!(v.mutability, Mutability::Immutable);
        let t = m.sub_attribute("type").expect("type");
        assert_eq!(t.canonical_values, &["User", "Group"]);
        assert_eq!(
            m.sub_attribute("$ref").expect("$ref").reference_types,
            &["User", "Group"]
        );
    }

    #[test]
    fn groups_on_user_are_read_only_down_to_every_sub_attribute() {
        let g = USER.attribute("groups").expect("groups");
        assert_eq!(g.mutability, Mutability::ReadOnly);
        assert!(
            g.sub_attributes
                .iter()
                .all(|s| s.mutability == Mutability::ReadOnly)
        );
    }

    #[test]
    fn every_attribute_name_is_addressable_by_the_filter_grammar() {
        // ATTRNAME = ALPHA *(nameChar), plus "$ref" as a sub-attribute (RFC 7644 §3.10).
        for (name, _) in all_defs() {
            let body = name.strip_prefix('$').unwrap_or(name);
            let mut chars = body.chars();
            assert!(
                chars.next().is_some_and(|c| c.is_ascii_alphabetic()),
                "{name}"
            );
            assert!(
                chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn attribute_names_are_unique_case_insensitively_within_each_level() {
        fn check(level: &[AttributeDef]) {
            for (i, a) in level.iter().enumerate() {
                for b in &level[i + 1..] {
                    assert!(!a.name.eq_ignore_ascii_case(b.name), "{}", a.name);
                }
                check(a.sub_attributes);
                // Sub-attributes never nest further (RFC 7643 §2.3.8).
                assert!(a.sub_attributes.iter().all(|s| s.sub_attributes.is_empty()));
            }
        }
        for s in Schemas::default().all().to_vec() {
            check(s.attributes);
        }
        check(&COMMON_ATTRIBUTES);
    }

    #[test]
    fn only_complex_attributes_have_sub_attributes() {
        for (name, a) in all_defs() {
            assert_eq!(
                a.kind == AttrType::Complex,
                !a.sub_attributes.is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn user_schema_json_matches_the_rfc_shape() {
        let j = USER.to_scim_json();
        assert_eq!(j["schemas"], json!([SCHEMA_SCHEMA]));
        assert_eq!(j["id"], USER_SCHEMA);
        assert_eq!(j["name"], "User");
        let attrs = j["attributes"].as_array().expect("attributes");
        let user_name = &attrs[0];
        assert_eq!(
            user_name,
            &json!({
                "name": "userName",
                "type": "string",
                "multiValued": false,
                "description": USER.attributes[0].description,
                "required": true,
                "caseExact": false,
                "mutability": "readWrite",
                "returned": "default",
                "uniqueness": "server",
            })
        );
        // Common attributes are not part of the §8.7.1 representation.
        assert!(
            attrs
                .iter()
                .all(|a| a["name"] != "id" && a["name"] != "meta")
        );
        let emails = attrs
            .iter()
            .find(|a| a["name"] == "emails")
            .expect("emails");
        assert_eq!(emails["multiValued"], true);
        assert!(emails.get("caseExact").is_none() && emails.get("uniqueness").is_none());
        let email_type = emails["subAttributes"]
            .as_array()
            .and_then(|s| s.iter().find(|a| a["name"] == "type"))
            .expect("emails.type");
        assert_eq!(
            email_type["canonicalValues"],
            json!(["work", "home", "other"])
        );
        let photos_value = attrs
            .iter()
            .find(|a| a["name"] == "photos")
            .and_then(|p| p["subAttributes"].as_array())
            .and_then(|s| s.iter().find(|a| a["name"] == "value"))
            .expect("photos.value");
        assert_eq!(photos_value["type"], "reference");
        assert_eq!(photos_value["referenceTypes"], json!(["external"]));
        let active = attrs
            .iter()
            .find(|a| a["name"] == "active")
            .expect("active");
        assert_eq!(active["type"], "boolean");
        assert!(active.get("caseExact").is_none());
    }

    #[test]
    fn enterprise_and_group_schema_json_carry_their_ids_and_sub_attributes() {
        let e = ENTERPRISE_USER.to_scim_json();
        assert_eq!(e["id"], ENTERPRISE_USER_SCHEMA);
        let manager = e["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "manager"))
            .expect("manager");
        let subs: Vec<&str> = manager["subAttributes"]
            .as_array()
            .expect("subs")
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(subs, ["value", "$ref", "displayName"]);
        assert_eq!(manager["subAttributes"][2]["mutability"], "readOnly");
        let g = GROUP.to_scim_json();
        assert_eq!(g["attributes"][0]["required"], true);
        assert_eq!(g["attributes"][0]["uniqueness"], "server");
        assert_eq!(
            g["attributes"][1]["subAttributes"][0]["mutability"],
            "immutable"
        );
    }

    #[test]
    fn resolve_is_case_insensitive_and_the_core_prefix_is_optional() {
        let plain = Schemas::default()
            .resolve_attribute(ResourceType::User, None, "USERNAME", None)
            .expect("plain");
        let prefixed = Schemas::default()
            .resolve_attribute(
                ResourceType::User,
                Some("URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER"),
                "userName",
                None,
            )
            .expect("prefixed");
        assert_eq!(plain, prefixed);
        assert_eq!(plain.attr.name, "userName");
        assert!(!plain.extension);
        let sub = Schemas::default()
            .resolve_attribute(ResourceType::User, None, "Name", Some("FAMILYNAME"))
            .expect("name.familyName");
        assert_eq!(sub.target().name, "familyName");
    }

    #[test]
    fn resolve_finds_extension_attributes_with_or_without_their_urn() {
        let with = Schemas::default()
            .resolve_attribute(
                ResourceType::User,
                Some(ENTERPRISE_USER_SCHEMA),
                "manager",
                Some("value"),
            )
            .expect("manager.value");
        assert!(with.extension);
        assert_eq!(with.schema, ENTERPRISE_USER_SCHEMA);
        let without = Schemas::default()
            .resolve_attribute(ResourceType::User, None, "employeeNumber", None)
            .expect("bare");
        assert!(without.extension);
    }

    #[test]
    fn resolve_finds_common_attributes_on_both_resource_types() {
        for rt in [ResourceType::User, ResourceType::Group] {
            for name in ["id", "externalId", "meta", "schemas"] {
                let r = Schemas::default()
                    .resolve_attribute(rt, None, name, None)
                    .expect(name);
                assert!(!r.extension);
                assert_eq!(r.schema, rt.schema().id);
            }
        }
        let created = Schemas::default()
            .resolve_attribute(ResourceType::Group, None, "meta", Some("created"))
            .expect("meta.created");
        assert_eq!(created.target().kind, AttrType::DateTime);
    }

    #[test]
    fn resolve_rejects_unknown_attributes_schemas_and_sub_attributes() {
        assert!(matches!(
            Schemas::default().resolve_attribute(ResourceType::User, None, "nope", None),
            Err(SchemaError::NoSuchAttribute { .. })
        ));
        // A Group attribute is not a User attribute.
        assert!(
            Schemas::default()
                .resolve_attribute(ResourceType::User, None, "members", None)
                .is_err()
        );
        assert!(matches!(
            Schemas::default().resolve_attribute(
                ResourceType::Group,
                Some(ENTERPRISE_USER_SCHEMA),
                "manager",
                None
            ),
            Err(SchemaError::UnknownSchema { .. })
        ));
        assert!(matches!(
            Schemas::default().resolve_attribute(
                ResourceType::User,
                Some(GROUP_SCHEMA),
                "userName",
                None
            ),
            Err(SchemaError::UnknownSchema { .. })
        ));
        // A core attribute under the extension's URN does not exist.
        assert!(
            Schemas::default()
                .resolve_attribute(
                    ResourceType::User,
                    Some(ENTERPRISE_USER_SCHEMA),
                    "userName",
                    None
                )
                .is_err()
        );
        assert!(matches!(
            Schemas::default().resolve_attribute(ResourceType::User, None, "userName", Some("x")),
            Err(SchemaError::NoSuchSubAttribute { .. })
        ));
        assert!(matches!(
            Schemas::default().resolve_attribute(ResourceType::User, None, "emails", Some("nope")),
            Err(SchemaError::NoSuchSubAttribute { .. })
        ));
    }
}
