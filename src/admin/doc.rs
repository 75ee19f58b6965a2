//! The OpenAPI document's frame — info, the bearer scheme, tags, the error schema — and the
//! error responses many operations share. Each operation is described on its handler
//! (`#[utoipa::path]`), and `routes!` registers the route and its description together.

use std::collections::BTreeMap;

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, Ref, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, RefOr};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

use crate::error::ErrorBody;

/// The security scheme every authenticated operation names: an admin token as a bearer token.
pub(super) const BEARER: &str = "bearer";

const TAGS: [(&str, &str); 15] = [
    (
        "orgs",
        "The org tree: the root org (the tenant) and its sub-orgs. A token reaches its own org \
         and the orgs below it; anything else is not found.",
    ),
    (
        "members",
        "Org membership and roles, module roles, a member's access to a product and their \
         effective permissions.",
    ),
    (
        "users",
        "The tenant's people, read-only: a person is seen through the orgs within reach they \
         are a member of or held by.",
    ),
    ("products", "Products (projects) of an org."),
    (
        "environments",
        "A product's environments; restricted ones get a permission group's restricted access.",
    ),
    (
        "permission-groups",
        "A product's permission groups, beside its built-in, read-only roles.",
    ),
    (
        "invitations",
        "Invitations by e-mail, and the invitee's side: look up and accept a link.",
    ),
    (
        "outbox",
        "Copies of the invitation e-mails and how each went (links redacted); an undelivered \
         one can be retried.",
    ),
    (
        "tokens",
        "Admin, SCIM and service tokens. A secret is shown once, when the token is created.",
    ),
    (
        "idp-groups",
        "The groups an org's IdP pushed through its SCIM tokens, read-only.",
    ),
    (
        "authz",
        "Permission questions — may this user do this, and why — answered by the resolver \
         every permission answer goes through. An admin token or a read-only service token \
         (`rg_service_…`), which may call nothing else; either reaches its org's subtree.",
    ),
    (
        "mappings",
        "An org's group mapping as one document: rules that turn its IdP groups into org \
         roles, product roles, permission groups and module roles, and a default for members \
         no rule matches. Read, replace whole (with `If-Match`), or preview a replacement.",
    ),
    (
        "oidc-connections",
        "An org's connections to OpenID Providers for single sign-on. The client secret is \
         write-only: sealed at rest, never returned.",
    ),
    ("audit", "The audit log, newest first."),
    ("meta", "This document, and who is calling."),
];

/// The document's frame; `admin::router()` adds the operations and their schemas.
pub(super) fn document() -> OpenApi {
    let mut schemas = Vec::new();
    // Shared responses (below) refer to `ErrorBody` by name, which `routes!` cannot see.
    schemas.push((ErrorBody::name().into_owned(), ErrorBody::schema()));
    ErrorBody::schemas(&mut schemas);
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin token (`rg_admin_…`), issued by `rolegate token create` or \
                         `POST /api/v1/tokens`; on the `authz` operations, a service token \
                         (`rg_service_…`) too.",
                    ))
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("rolegate admin API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(env!("CARGO_PKG_DESCRIPTION")))
                .license(Some(
                    LicenseBuilder::new()
                        .name(env!("CARGO_PKG_LICENSE"))
                        .identifier(Some(env!("CARGO_PKG_LICENSE")))
                        .build(),
                )),
        )
        .components(Some(components))
        .tags(Some(TAGS.map(|(name, description)| {
            TagBuilder::new()
                .name(name)
                .description(Some(description))
                .build()
        })))
        .build()
}

fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

fn too_many_requests() -> (String, RefOr<Response>) {
    (
        "429".into(),
        error("Too many failed attempts from this address; retry after the given delay.")
            .header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                    .description(Some("Seconds to wait."))
                    .build(),
            )
            .build()
            .into(),
    )
}

/// What the `AdminAuth` extractor refuses: 401, 403, 429.
pub(super) struct AuthErrors;

impl IntoResponses for AuthErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            (
                "401".into(),
                error("No bearer token, or an unknown, revoked or expired one.")
                    .header(
                        "WWW-Authenticate",
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .description(Some("`Bearer`"))
                            .build(),
                    )
                    .build()
                    .into(),
            ),
            (
                "403".into(),
                error("The token is not of a kind this operation takes: a SCIM token, or a service token outside the `authz` operations.")
                    .build()
                    .into(),
            ),
            too_many_requests(),
        ])
    }
}

/// The invitee's side has no token, only the link's secret; guessing is rate limited.
pub(super) struct RateLimited;

impl IntoResponses for RateLimited {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([too_many_requests()])
    }
}

const PARAM_INVALID: &str = "A path or query parameter is missing, unknown, or not of its form \
                             (an id, an RFC 3339 timestamp, a number); `fields` names it and \
                             says what it expects.";

/// What `ApiPath` and `ApiQuery` reject: a parameter that does not parse (e.g. not a UUID).
/// An operation that answers 422 for a reason of its own lists its 422 after this one, saying
/// both.
pub(super) struct BadParams;

impl IntoResponses for BadParams {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([("422".into(), error(PARAM_INVALID).build().into())])
    }
}

const BODY_TOO_LARGE: &str = "The body is larger than the configured limit.";
const BODY_INVALID: &str = "The body is JSON of the wrong shape (unknown or missing fields, \
                            wrong types), or a field is invalid; `fields` says which, by its \
                            path in the body (`environments[1].name`).";

/// `ApiJson` rejections of a body, on an operation without path parameters.
pub(super) struct BadBody;

impl IntoResponses for BadBody {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            (
                "400".into(),
                error("The body is not JSON, or not sent as `application/json`.")
                    .build()
                    .into(),
            ),
            ("413".into(), error(BODY_TOO_LARGE).build().into()),
            ("422".into(), error(BODY_INVALID).build().into()),
        ])
    }
}

/// `ApiJson` rejections of a body, and `ApiPath`'s and `ApiQuery`'s of a parameter.
pub(super) struct BadBodyOrParams;

impl IntoResponses for BadBodyOrParams {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = BadBody::responses();
        responses.insert(
            "422".into(),
            error(&format!("{BODY_INVALID} Or: {PARAM_INVALID}"))
                .build()
                .into(),
        );
        responses
    }
}

/// What any operation that reads the database may answer: 500 and 503.
pub(super) struct ServerErrors;

impl IntoResponses for ServerErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            (
                "500".into(),
                error("Internal error; the detail is logged with the request id, never sent.")
                    .build()
                    .into(),
            ),
            (
                "503".into(),
                error("The database is unavailable.").build().into(),
            ),
        ])
    }
}
