use serde_json::json;

use super::*;

const ROOT: Uuid = Uuid::from_u128(1);
const PAYMENTS: Uuid = Uuid::from_u128(2);
const WEB: Uuid = Uuid::from_u128(10);
const API: Uuid = Uuid::from_u128(11);
const API_TOO: Uuid = Uuid::from_u128(12);
const DEVELOPERS: Uuid = Uuid::from_u128(20);

/// The root org `Acme` with the sub-org `Payments`; products `Web` (with `Developers`) and two
/// named `API`.
fn catalog() -> Catalog {
    Catalog {
        org_id: ROOT,
        orgs: vec![(ROOT, "Acme".into()), (PAYMENTS, "Payments".into())],
        products: vec![
            (WEB, ROOT, "Web".into()),
            (API, ROOT, "API".into()),
            (API_TOO, PAYMENTS, "api".into()),
        ],
        permission_groups: vec![(DEVELOPERS, WEB, "Developers".into())],
        oidc_connections: vec![CONNECTION],
    }
}

const CONNECTION: Uuid = Uuid::from_u128(30);

#[test]
fn an_oidc_source_names_a_connection_of_the_mappings_org() {
    let mappings = read(json!({"version": 1, "rules": [
        {"name": "eng", "idp_group": "eng", "source": format!("oidc:{CONNECTION}"), "grants": []}
    ]}))
    .expect("a connection of the org");
    assert_eq!(mappings.rules[0].source, RuleSource::Oidc(CONNECTION));
    let errors = read(json!({"version": 1, "rules": [
        {"name": "eng", "idp_group": "eng", "source": format!("oidc:{}", Uuid::from_u128(31)), "grants": []}
    ]}))
    .expect_err("another org's, or nobody's");
    assert_eq!(paths(&errors), ["/rules/0/source"]);
    assert!(
        errors[0].message.contains("no OIDC connection"),
        "{errors:?}"
    );
}

fn read(value: serde_json::Value) -> Result<Mappings, Vec<DocumentError>> {
    let document = parse_json(value.to_string().as_bytes())?;
    validate(&document, &catalog())
}

fn paths(errors: &[DocumentError]) -> Vec<&str> {
    errors.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn the_example_document_reads_with_every_grant_form() {
    let mappings = read(json!({
        "version": 1,
        "default": {"grants": [{"product": "Web", "role": "viewer"}]},
        "rules": [{"name": "eng", "idp_group": "Engineering", "source": "any", "priority": 10,
                   "enabled": true,
                   "grants": [{"org_role": "member"},
                              {"product": "web", "role": "editor"},
                              {"product": "Web", "permission_group": "developers"},
                              {"org": "Payments", "module_roles": {"feature_flags": "write"}}]}]
    }))
    .expect("valid");
    assert_eq!(
        mappings.default,
        Some(vec![Grant::ProductRole {
            product_id: WEB,
            role: Role::Viewer
        }])
    );
    let rule = &mappings.rules[0];
    assert_eq!(rule.source, RuleSource::Any);
    assert_eq!(
        rule.grants,
        vec![
            Grant::OrgRole {
                org_id: ROOT,
                role: OrgRole::Member
            },
            Grant::ProductRole {
                product_id: WEB,
                role: Role::Editor
            },
            Grant::PermissionGroup {
                product_id: WEB,
                group_id: DEVELOPERS
            },
            Grant::ModuleRoles {
                org_id: PAYMENTS,
                levels: BTreeMap::from([(Module::FeatureFlags, ModuleLevel::Write)]),
            },
        ]
    );
}

#[test]
fn every_error_is_reported_at_its_pointer_and_nothing_is_returned() {
    let errors = read(json!({
        "version": 1,
        "rules": [
            {"name": "eng", "idp_group": "Eng", "grants": [
                {"product": "API", "role": "editor"},
                {"product": "Nope", "role": "editor"},
                {"product": "Web", "role": "boss"},
                {"org_role": "member", "product": "Web"},
                {"org": "Elsewhere", "org_role": "owner"},
                {"product": "Web", "permission_group": "Testers"},
                {"module_roles": {"flags": "write"}},
                {}
            ]},
            {"name": "ENG", "idp_group": " ", "source": "oidc:7c9e6679-7425-40de-944b-e07fc1f90ae7", "grants": []},
            {"name": "x", "idp_group": "X", "source": "ldap", "grants": []}
        ]
    }))
    .expect_err("invalid");
    assert_eq!(
        paths(&errors),
        [
            "/rules/0/grants/0/product",
            "/rules/0/grants/1/product",
            "/rules/0/grants/2/role",
            "/rules/0/grants/3/product",
            "/rules/0/grants/4/org",
            "/rules/0/grants/5/permission_group",
            "/rules/0/grants/6/module_roles",
            "/rules/0/grants/7",
            "/rules/1/name",
            "/rules/1/idp_group",
            "/rules/1/source",
            "/rules/2/source",
        ],
        "{errors:#?}"
    );
    assert!(
        errors[0].message.contains("use the id"),
        "ambiguous: {}",
        errors[0].message
    );
    assert!(
        errors[8].message.contains("/rules/0"),
        "{}",
        errors[8].message
    );
}

#[test]
fn shape_errors_point_at_the_field() {
    let errors = read(json!({"version": 1, "rules": [{"name": "a", "grants": []}]}))
        .expect_err("missing idp_group");
    assert_eq!(errors[0].path, "/rules/0/idp_group");
    assert_eq!(errors[0].message, "required");
    let errors = read(json!({"version": 1, "rules": [], "colour": 1})).expect_err("unknown");
    assert_eq!(errors[0].path, "/colour");
    let errors = read(
        json!({"version": 1, "rules": [{"name": "a", "idp_group": "A",
        "grants": [{"product": "Web", "role": "viewer", "expires": "never"}]}]}),
    )
    .expect_err("unknown in a grant");
    assert_eq!(errors[0].path, "/rules/0/grants/0/expires");
    let errors = read(json!({"version": 2})).expect_err("version");
    assert_eq!(paths(&errors), ["/version"]);
    assert!(parse_json(b"{\"version\": 1,").is_err());
}

#[test]
fn ids_work_where_names_do_not() {
    let mappings = read(
        json!({"version": 1, "rules": [{"name": "api", "idp_group": "Api",
        "grants": [{"product": API_TOO.to_string(), "role": "viewer"}]}]}),
    )
    .expect("by id");
    assert_eq!(
        mappings.rules[0].grants,
        vec![Grant::ProductRole {
            product_id: API_TOO,
            role: Role::Viewer
        }]
    );
    let errors = read(
        json!({"version": 1, "rules": [{"name": "x", "idp_group": "X",
        "grants": [{"product": Uuid::from_u128(99).to_string(), "role": "viewer"}]}]}),
    )
    .expect_err("unknown id");
    assert_eq!(paths(&errors), ["/rules/0/grants/0/product"]);
}

#[test]
fn export_then_import_then_export_is_byte_identical() {
    let document = json!({
        "version": 1,
        "rules": [
            {"name": "zeta", "idp_group": "Z", "grants": [{"product": API.to_string(), "role": "viewer"}]},
            {"name": "Alpha", "idp_group": "A", "source": "scim", "priority": -3, "enabled": false,
             "grants": [{"org": "payments", "module_roles": {"sdk_keys": "read", "feature_flags": "write"}},
                        {"org_role": "owner"},
                        {"product": "Web", "permission_group": "Developers"}]}
        ]
    });
    let first = export(&read(document).expect("valid"), &catalog());
    let text = serde_json::to_string_pretty(&first).expect("json");
    assert!(text.contains("\"default\": null"), "{text}");
    let names: Vec<&str> = first.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Alpha", "zeta"], "ordered by name");
    assert_eq!(
        first.rules[1].grants[0].product.as_deref(),
        Some(API.to_string().as_str()),
        "an ambiguous name is exported as the id"
    );
    assert_eq!(first.rules[0].grants[0].org.as_deref(), Some("Payments"));
    assert_eq!(
        first.rules[0].grants[1].org, None,
        "the mapping's own org is implied"
    );
    let again = validate(&parse_json(text.as_bytes()).expect("parse"), &catalog()).expect("valid");
    let second = serde_json::to_string_pretty(&export(&again, &catalog())).expect("json");
    assert_eq!(text, second);
}

#[test]
fn serde_paths_become_json_pointers() {
    assert_eq!(pointer("."), "");
    assert_eq!(
        pointer("rules[0].grants[12].product"),
        "/rules/0/grants/12/product"
    );
    assert_eq!(pointer("default.grants[1]"), "/default/grants/1");
    assert_eq!(pointer("module_roles.a/b"), "/module_roles/a~1b");
    assert_eq!(pointer("?"), "", "an unread key: the object");
    assert_eq!(pointer("rules[0].?"), "/rules/0");
}

#[test]
fn yaml_export_reads_back_to_the_same_mappings_and_bytes() {
    let document = json!({
        "version": 1,
        "default": {"grants": [{"product": "Web", "role": "viewer"}]},
        "rules": [
            // Values YAML would read as something else unless quoted: a boolean, a number,
            // null, and an id.
            {"name": "yes", "idp_group": "123", "source": "scim", "priority": -3, "enabled": false,
             "grants": [{"org": "payments", "module_roles": {"sdk_keys": "read"}},
                        {"product": API.to_string(), "role": "viewer"}]},
            {"name": "null", "idp_group": "Engineering: Platform #1", "grants": [{"org_role": "owner"}]}
        ]
    });
    let mut mappings = read(document).expect("valid");
    let yaml = to_yaml(&export(&mappings, &catalog())).expect("yaml");
    let again = validate(&parse_yaml(yaml.as_bytes()).expect("parse"), &catalog()).expect("valid");
    // The export orders rules by name; nothing else changes.
    mappings.rules.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(again, mappings, "{yaml}");
    assert_eq!(
        to_yaml(&export(&again, &catalog())).expect("yaml"),
        yaml,
        "byte-identical"
    );
}

#[test]
fn yaml_errors_are_reported_at_their_pointer() {
    let errors = parse_yaml(
        b"version: 1\nrules:\n  - name: a\n    idp_group: A\n    grants:\n      - product: Web\n        role: viewer\n        expires: never\n",
    )
    .expect_err("unknown field");
    assert_eq!(paths(&errors), ["/rules/0/grants/0/expires"]);
    assert!(errors[0].message.starts_with("unknown field"), "{errors:?}");
    let errors = parse_yaml(b"rules: []\n").expect_err("no version");
    assert_eq!(
        errors,
        [DocumentError::new("/version", "required")],
        "as JSON reports it"
    );
    let errors = parse_yaml(b"version: 1\nrules:\n  - name: [a\n").expect_err("syntax");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.starts_with("not a YAML document") && errors[0].message.contains("line"),
        "{errors:?}"
    );
    let errors = parse_yaml(b"version: one\n").expect_err("type");
    assert_eq!(paths(&errors), ["/version"]);
}
