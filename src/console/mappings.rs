//! `/console/orgs/{org}/mappings`: the org's IdP group mapping — its rules and its default for
//! unmapped members — edited as the mapping document (`domain::mapping_document`, the one
//! `GET|PUT …/mappings` and `rolegate mappings export|import` use) or a rule at a time, always
//! through a preview (`POST …/mappings/preview`) before "Apply" replaces the document with the
//! ETag the preview was computed against. Export downloads the document; import reads a pasted
//! one (JSON or YAML) into the same preview.

use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{org_tabs, post_form};
use super::orgs::org_for;
use super::{Console, ConsoleForm, Flash, PageError, redirect_with};
use crate::admin::AdminAuth;
use crate::admin::mappings as api;
use crate::domain::mapping_document::{
    self, Catalog, DocumentError, GrantDocument, MappingDocument, RuleDocument,
};
use crate::domain::org::{Org, OrgRole};
use crate::domain::permission::{Capability, EnvAccess, Role};
use crate::domain::preview::{Preview, UserChange};
use crate::error::ApiError;
use crate::state::AppState;

/// The API routes whose requirements these pages keep.
const MAPPINGS: &str = "/api/v1/orgs/{org_id}/mappings";
const PREVIEW: &str = "/api/v1/orgs/{org_id}/mappings/preview";

/// Affected users listed on the preview page; the summary counts all of them.
const PREVIEW_USERS: u32 = 200;

fn mappings_path(org_id: Uuid) -> String {
    format!("/console/orgs/{org_id}/mappings")
}

/// `GET /console/orgs/{org}/mappings`.
pub(super) async fn page(
    State(state): State<AppState>,
    console: Console,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::GET, MAPPINGS).await?;
    render(&state, &console, &admin, &org, Editor::default()).await
}

/// What the editor shows beyond the stored mappings: a document sent back with its errors, or
/// a refusal.
#[derive(Default)]
struct Editor {
    status: Option<StatusCode>,
    flashes: Vec<Flash>,
    /// The text that was sent, shown again in the textarea.
    typed: Option<String>,
    /// The version it was written against (else the stored one).
    etag: Option<i64>,
    errors: Vec<DocumentError>,
}

impl Editor {
    /// A document refused with `error`: its field errors beside the textarea, anything else
    /// as a message.
    fn refused(typed: String, etag: Option<i64>, error: ApiError) -> Editor {
        let status = error.status();
        match error {
            ApiError::Validation(fields) => Editor {
                status: Some(status),
                flashes: vec![Flash::refused(
                    "The document is invalid: nothing was applied. See the errors below it.",
                )],
                typed: Some(typed),
                etag,
                errors: fields
                    .into_iter()
                    .map(|f| DocumentError::new(f.field, f.message))
                    .collect(),
            },
            other => Editor {
                status: Some(status),
                flashes: vec![Flash::from_error(&other)],
                typed: Some(typed),
                etag,
                errors: Vec::new(),
            },
        }
    }
}

async fn render(
    state: &AppState,
    console: &Console,
    admin: &AdminAuth,
    org: &Org,
    editor: Editor,
) -> Result<Response, PageError> {
    let tenant = admin.tenant_id();
    let stored = state.store.get_mappings(tenant, org.id).await?;
    let document = api::as_document(state, tenant, &stored).await?;
    let catalog = state.store.mapping_catalog(tenant, org.id).await?;
    let may_edit = console.may(state, Method::PUT, MAPPINGS, org.id).await
        && console.may(state, Method::POST, PREVIEW, org.id).await;
    let path = mappings_path(org.id);
    let preview = format!("{path}/preview");
    let text = match &editor.typed {
        Some(typed) => typed.clone(),
        None => mapping_document::to_json(&document).map_err(ApiError::Internal)?,
    };
    let etag = editor.etag.unwrap_or(stored.version).to_string();
    let mut rules: Vec<&RuleDocument> = document.rules.iter().collect();
    rules.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
    let body = html! {
        h1 { (org.name) ": IdP group mappings" }
        (org_tabs(org.id, "/mappings"))
        p class="note" { "Version " (stored.version) ". Members of an IdP group get a rule's grants while the group matches; the default applies to members no enabled rule matches." }
        h2 { "Rules" }
        @if rules.is_empty() {
            p { "No rules." }
        } @else {
            div class="table-wrap" role="region" aria-label="Rules" tabindex="0" {
                table id="rules" {
                    caption class="visually-hidden" { "Mapping rules of " (org.name) }
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" { "IdP group" }
                        th scope="col" { "Source" }
                        th scope="col" { "Grants" }
                        th scope="col" { "Priority" }
                        th scope="col" { "Enabled" }
                        @if may_edit { th scope="col" { "Change" } }
                    } }
                    tbody {
                        @for (index, rule) in rules.iter().enumerate() {
                            tr {
                                td { (rule.name) }
                                td { (rule.idp_group) }
                                td { (source_text(&rule.source)) }
                                td { (grants_list(&rule.grants)) }
                                td { (rule.priority) }
                                td { @if rule.enabled { "yes" } @else { "no" } }
                                @if may_edit { td { (rule_actions(console, &preview, index, rule)) } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Default for unmapped members" }
        @match &document.default {
            Some(default) if !default.grants.is_empty() => { (grants_list(&default.grants)) }
            _ => { p { "None: members no rule matches get nothing from the mapping." } }
        }
        h2 { "Export" }
        p {
            a href=(format!("{path}/export?format=json")) download { "Download as JSON" }
            " · "
            a href=(format!("{path}/export?format=yaml")) download { "Download as YAML" }
        }
        @if may_edit {
            h2 { "Add a rule" }
            (post_form(console, &preview, "stack", html! {
                input type="hidden" name="op" value="add";
                div class="field" {
                    label for="rule-name" { "Name" }
                    input id="rule-name" type="text" name="name" required maxlength="100";
                }
                div class="field" {
                    label for="rule-group" { "IdP group (display name or external id)" }
                    input id="rule-group" type="text" name="idp_group" required;
                }
                div class="field" {
                    label for="rule-source" { "Source" }
                    select id="rule-source" name="source" {
                        option value="any" { "Any of the org's IdP sources" }
                        option value="scim" { "SCIM" }
                        @for id in &catalog.oidc_connections {
                            option value=(format!("oidc:{id}")) { "OIDC connection " (id) }
                        }
                    }
                }
                div class="field" {
                    label for="rule-grant" { "Grant" }
                    select id="rule-grant" name="grant" required {
                        @for (value, label) in grant_choices(&catalog) {
                            option value=(value) { (label) }
                        }
                    }
                }
                div class="field" {
                    label for="rule-priority" { "Priority" }
                    input id="rule-priority" type="number" name="priority" value="0";
                }
                div { button type="submit" { "Preview" } }
            }))
            h2 { "Edit the document" }
            p class="note" { "The whole mapping document (JSON): rules it does not list are deleted. Every change is previewed before it is applied." }
            (post_form(console, &preview, "stack", html! {
                input type="hidden" name="op" value="edit";
                input type="hidden" name="etag" value=(etag);
                div class="field" {
                    label for="document" { "Mapping document" }
                    @if editor.errors.is_empty() {
                        textarea id="document" name="document" rows="20" spellcheck="false" required { (text) }
                    } @else {
                        textarea id="document" name="document" rows="20" spellcheck="false" required
                            aria-invalid="true" aria-describedby="document-errors" { (text) }
                        ul id="document-errors" class="errors" {
                            @for error in &editor.errors {
                                li {
                                    code { (if error.path.is_empty() { "(document)" } else { error.path.as_str() }) }
                                    ": " (error.message)
                                }
                            }
                        }
                    }
                }
                div { button type="submit" { "Preview" } }
            }))
            h2 { "Import" }
            p class="note" { "Paste (or choose the file of) a document exported from here or by " code { "rolegate mappings export" } "; it replaces the current one after the preview." }
            (post_form(console, &preview, "stack", html! {
                input type="hidden" name="op" value="import";
                input type="hidden" name="etag" value=(stored.version);
                div class="field" {
                    label for="import-format" { "Format" }
                    select id="import-format" name="format" {
                        option value="json" { "JSON" }
                        option value="yaml" { "YAML" }
                    }
                }
                div class="field" {
                    label for="import-file" hidden { "File" }
                    input id="import-file" type="file" accept=".json,.yaml,.yml,application/json,application/yaml"
                        data-load-into="import-document" data-format="import-format" hidden;
                }
                div class="field" {
                    label for="import-document" { "Document" }
                    textarea id="import-document" name="document" rows="8" spellcheck="false" required {}
                }
                div { button type="submit" { "Preview" } }
            }))
        }
    };
    Ok(console.page_with(
        editor.status.unwrap_or(StatusCode::OK),
        &format!("{}: mappings", org.name),
        editor.flashes,
        body,
    ))
}

fn rule_actions(console: &Console, preview: &str, index: usize, rule: &RuleDocument) -> Markup {
    let toggle = if rule.enabled { "disable" } else { "enable" };
    let priority_id = format!("priority-{index}");
    html! {
        (post_form(console, preview, "inline", html! {
            input type="hidden" name="rule" value=(rule.name);
            label for=(priority_id) class="visually-hidden" { "Priority of " (rule.name) }
            input id=(priority_id) type="number" name="priority" value=(rule.priority);
            button type="submit" name="op" value="priority" class="secondary" { "Set priority" }
        }))
        (post_form(console, preview, "inline", html! {
            input type="hidden" name="rule" value=(rule.name);
            button type="submit" name="op" value=(toggle) class="secondary"
                aria-label=(format!("{} {}", if rule.enabled { "Disable" } else { "Enable" }, rule.name)) {
                @if rule.enabled { "Disable" } @else { "Enable" }
            }
        }))
        (post_form(console, preview, "inline", html! {
            input type="hidden" name="rule" value=(rule.name);
            button type="submit" name="op" value="delete" class="danger"
                aria-label=(format!("Delete {}", rule.name)) { "Delete" }
        }))
    }
}

fn source_text(source: &str) -> String {
    match source {
        "any" => "any".to_owned(),
        "scim" => "SCIM".to_owned(),
        other => other
            .strip_prefix("oidc:")
            .map_or_else(|| other.to_owned(), |id| format!("OIDC connection {id}")),
    }
}

fn grants_list(grants: &[GrantDocument]) -> Markup {
    html! {
        ul class="grants" {
            @for grant in grants { li { (grant_text(grant)) } }
        }
    }
}

/// A grant as people read it: "Member of Payments", "editor on Web", "group Developers on
/// Web", "modules in Payments: feature_flags write".
fn grant_text(grant: &GrantDocument) -> String {
    let in_org = |org: &Option<String>| {
        org.as_deref()
            .map_or_else(|| "this org".to_owned(), str::to_owned)
    };
    if let Some(role) = &grant.org_role {
        return format!("org role {role} in {}", in_org(&grant.org));
    }
    if let Some(levels) = &grant.module_roles {
        let levels: Vec<String> = levels.iter().map(|(m, l)| format!("{m} {l}")).collect();
        return format!("modules in {}: {}", in_org(&grant.org), levels.join(", "));
    }
    let product = grant.product.as_deref().unwrap_or("?");
    if let Some(role) = &grant.role {
        return format!("role {role} on product {product}");
    }
    if let Some(group) = &grant.permission_group {
        return format!("permission group {group} on product {product}");
    }
    "(empty grant)".to_owned()
}

/// The add-rule form's grants: each org of the subtree with each org role, each product with
/// each built-in role and each of its permission groups; the value is the grant's document,
/// naming everything by id (always unambiguous; the export names them again).
fn grant_choices(catalog: &Catalog) -> Vec<(String, String)> {
    let mut choices = Vec::new();
    let mut push = |grant: GrantDocument, label: String| {
        if let Ok(value) = serde_json::to_string(&grant) {
            choices.push((value, label));
        }
    };
    for (org_id, name) in &catalog.orgs {
        for role in [OrgRole::Member, OrgRole::Owner] {
            push(
                GrantDocument {
                    org: (*org_id != catalog.org_id).then(|| org_id.to_string()),
                    org_role: Some(role.as_str().to_owned()),
                    ..Default::default()
                },
                format!("org role {} in {name}", role.as_str()),
            );
        }
    }
    for (product_id, _, product) in &catalog.products {
        for role in Role::ALL {
            push(
                GrantDocument {
                    product: Some(product_id.to_string()),
                    role: Some(role.as_str().to_owned()),
                    ..Default::default()
                },
                format!("role {} on product {product}", role.as_str()),
            );
        }
        for (group_id, _, group) in catalog
            .permission_groups
            .iter()
            .filter(|(_, p, _)| p == product_id)
        {
            push(
                GrantDocument {
                    product: Some(product_id.to_string()),
                    permission_group: Some(group_id.to_string()),
                    ..Default::default()
                },
                format!("permission group {group} on product {product}"),
            );
        }
    }
    choices
}

/// Every form that leads to the preview: `op` says which. `edit` and `import` send a whole
/// document; the others change one rule of the stored one.
#[derive(Deserialize)]
pub(super) struct ChangeForm {
    op: String,
    document: Option<String>,
    format: Option<String>,
    etag: Option<String>,
    rule: Option<String>,
    name: Option<String>,
    idp_group: Option<String>,
    source: Option<String>,
    grant: Option<String>,
    priority: Option<String>,
}

/// What a change produced: a document to preview against a version, or why not.
enum Built {
    Document {
        text: String,
        etag: Option<i64>,
    },
    /// Not even a document: shown in the editor with its errors.
    Invalid {
        typed: String,
        errors: Vec<DocumentError>,
    },
    Refused(Flash),
}

fn parse_priority(raw: Option<&str>) -> Result<i32, Flash> {
    match raw.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(0),
        Some(p) => p
            .parse()
            .map_err(|_| Flash::refused(format!("Priority {p:?} is not a whole number."))),
    }
}

/// The document a form describes, as compact JSON (what the preview and "Apply" carry).
async fn build(
    state: &AppState,
    admin: &AdminAuth,
    org: &Org,
    form: ChangeForm,
) -> Result<Built, PageError> {
    let etag = form
        .etag
        .as_deref()
        .and_then(|e| e.trim().trim_matches('"').parse::<i64>().ok());
    if form.op == "edit" || form.op == "import" {
        let typed = form.document.unwrap_or_default();
        let parsed = if form.format.as_deref() == Some("yaml") {
            mapping_document::parse_yaml(typed.as_bytes())
        } else {
            mapping_document::parse_json(typed.as_bytes())
        };
        return Ok(match parsed {
            Ok(document) => Built::Document {
                text: compact(&document)?,
                etag,
            },
            Err(errors) => Built::Invalid { typed, errors },
        });
    }
    let stored = state.store.get_mappings(admin.tenant_id(), org.id).await?;
    let mut document = api::as_document(state, admin.tenant_id(), &stored).await?;
    let changed = if form.op == "add" {
        add_rule(&mut document, &form)
    } else {
        change_rule(&mut document, &form)
    };
    Ok(match changed {
        Ok(()) => Built::Document {
            text: compact(&document)?,
            etag: Some(stored.version),
        },
        Err(flash) => Built::Refused(flash),
    })
}

fn compact(document: &MappingDocument) -> Result<String, PageError> {
    serde_json::to_string(document).map_err(|e| PageError(ApiError::Internal(e.to_string())))
}

fn add_rule(document: &mut MappingDocument, form: &ChangeForm) -> Result<(), Flash> {
    let grant: GrantDocument = form
        .grant
        .as_deref()
        .and_then(|g| serde_json::from_str(g).ok())
        .ok_or_else(|| Flash::refused("Choose a grant for the rule."))?;
    document.rules.push(RuleDocument {
        name: form.name.clone().unwrap_or_default(),
        idp_group: form.idp_group.clone().unwrap_or_default(),
        source: form.source.clone().unwrap_or_else(|| "any".to_owned()),
        priority: parse_priority(form.priority.as_deref())?,
        enabled: true,
        grants: vec![grant],
    });
    Ok(())
}

fn change_rule(document: &mut MappingDocument, form: &ChangeForm) -> Result<(), Flash> {
    let name = form.rule.as_deref().unwrap_or_default();
    let Some(at) = document.rules.iter().position(|r| r.name == name) else {
        return Err(Flash::refused(format!(
            "There is no rule named {name:?} (any more)."
        )));
    };
    match form.op.as_str() {
        "enable" => document.rules[at].enabled = true,
        "disable" => document.rules[at].enabled = false,
        "delete" => {
            document.rules.remove(at);
        }
        "priority" => document.rules[at].priority = parse_priority(form.priority.as_deref())?,
        other => return Err(Flash::refused(format!("Unknown change {other:?}."))),
    }
    Ok(())
}

/// `POST /console/orgs/{org}/mappings/preview`: as `POST /api/v1/orgs/{org_id}/mappings/preview`
/// with the document the form describes.
pub(super) async fn preview(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<ChangeForm>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::POST, PREVIEW).await?;
    let (text, etag) = match build(&state, &admin, &org, form).await? {
        Built::Document { text, etag } => (text, etag),
        Built::Invalid { typed, errors } => {
            let editor = Editor {
                status: Some(StatusCode::UNPROCESSABLE_ENTITY),
                flashes: vec![Flash::refused(
                    "The document could not be read: nothing was applied. See the errors below it.",
                )],
                typed: Some(typed),
                etag: None,
                errors,
            };
            return render(&state, &console, &admin, &org, editor).await;
        }
        Built::Refused(flash) => {
            return Ok(redirect_with(&state, &mappings_path(org.id), flash));
        }
    };
    let tenant = admin.tenant_id();
    let preview =
        match api::preview(&state, tenant, org.id, text.as_bytes(), None, PREVIEW_USERS).await {
            Ok(preview) => preview,
            Err(error @ ApiError::Validation(_)) => {
                let editor = Editor::refused(pretty(&text), etag, error);
                return render(&state, &console, &admin, &org, editor).await;
            }
            Err(error) => return Err(error.into()),
        };
    let may_apply = console.may(&state, Method::PUT, MAPPINGS, org.id).await;
    let body = preview_body(&state, &console, &org, &preview, &text, etag, may_apply).await?;
    Ok(console.page(&format!("{}: preview of the mappings", org.name), body))
}

/// The compact document as the textarea shows it.
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned())
}

async fn preview_body(
    state: &AppState,
    console: &Console,
    org: &Org,
    preview: &Preview,
    text: &str,
    etag: Option<i64>,
    may_apply: bool,
) -> Result<Markup, PageError> {
    let catalog = state.store.mapping_catalog(org.tenant_id, org.id).await?;
    let mut rows = Vec::new();
    for change in &preview.users {
        let who = match state.store.get_user(org.tenant_id, change.user_id).await {
            Ok(found) => found
                .user
                .email
                .clone()
                .unwrap_or_else(|| found.user.user_name.clone()),
            Err(_) => change.user_id.to_string(),
        };
        rows.extend(change_rows(&who, change, &catalog));
    }
    let blocked = !preview.owner_rule_violations.is_empty();
    let path = mappings_path(org.id);
    Ok(html! {
        h1 { (org.name) ": preview of the mappings" }
        (org_tabs(org.id, "/mappings"))
        p { "Nothing has been applied yet." }
        h2 { "Summary" }
        ul id="summary" {
            li { "Users affected: " strong { (preview.summary.users_affected) } }
            li { "Gains: " strong { (preview.summary.gains) } }
            li { "Losses: " strong { (preview.summary.losses) } }
        }
        @if blocked {
            div class="flash refused" role="alert" id="owner-rule" {
                p { strong { "Owner rule: " } "applying this document would leave these organizations without an active Owner, so it cannot be applied:" }
                ul {
                    @for v in &preview.owner_rule_violations {
                        li { (v.name) " (" (v.before) " Owner(s) now, " (v.after) " after)" }
                    }
                }
            }
        }
        h2 { "Owners" }
        div class="table-wrap" role="region" aria-label="Owners" tabindex="0" {
            table id="owners" {
                caption class="visually-hidden" { "Active Owners before and after" }
                thead { tr { th scope="col" { "Organization" } th scope="col" { "Before" } th scope="col" { "After" } } }
                tbody {
                    @for o in &preview.owners {
                        tr { td { (o.name) } td { (o.before) } td { (o.after) } }
                    }
                }
            }
        }
        h2 { "Changes per user" }
        @if rows.is_empty() {
            p { "No user's permissions change." }
        } @else {
            div class="field" {
                label for="changes-filter" hidden { "Filter the changes (user, product, capability)" }
                input id="changes-filter" type="search" data-filter="changes" hidden;
                span id="changes-count" class="note" aria-live="polite" {}
            }
            div class="table-wrap" role="region" aria-label="Changes per user" tabindex="0" {
                table id="changes" {
                    caption class="visually-hidden" { "Who gains and loses what" }
                    thead { tr {
                        th scope="col" { "User" }
                        th scope="col" { "Where" }
                        th scope="col" { "Gains" }
                        th scope="col" { "Losses" }
                    } }
                    tbody {
                        @for row in &rows {
                            tr {
                                td { (row.who) }
                                td { (row.place) }
                                td { (row.gains.join("; ")) }
                                td { (row.losses.join("; ")) }
                            }
                        }
                    }
                }
            }
            @if preview.next.is_some() {
                p class="note" { "The first " (PREVIEW_USERS) " affected users; the summary counts all " (preview.summary.users_affected) "." }
            }
        }
        @if may_apply {
            (post_form(console, &format!("{path}/apply"), "inline", html! {
                input type="hidden" name="document" value=(text);
                @if let Some(etag) = etag { input type="hidden" name="etag" value=(etag); }
                @if blocked {
                    button type="submit" disabled { "Apply" }
                } @else {
                    button type="submit" { "Apply" }
                }
            }))
        }
        p { a href=(path) { "Back to the mappings (discard)" } }
    })
}

struct Row {
    who: String,
    place: String,
    gains: Vec<String>,
    losses: Vec<String>,
}

fn rank(role: Option<OrgRole>) -> u8 {
    match role {
        None => 0,
        Some(OrgRole::Member) => 1,
        Some(OrgRole::Owner) => 2,
    }
}

fn role_name(role: Option<OrgRole>) -> &'static str {
    role.map_or("none", OrgRole::as_str)
}

fn capability_name(capability: Capability) -> String {
    serde_json::to_value(capability)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_else(|| format!("{capability:?}"))
}

fn access_name(access: EnvAccess) -> String {
    access.as_str().replace('_', " ")
}

/// One row per org and per product where the user's standing changes.
fn change_rows(who: &str, change: &UserChange, catalog: &Catalog) -> Vec<Row> {
    let org_name = |id: Uuid| {
        catalog
            .orgs
            .iter()
            .find(|(o, _)| *o == id)
            .map_or_else(|| id.to_string(), |(_, n)| n.clone())
    };
    let product_name = |id: Uuid| {
        catalog
            .products
            .iter()
            .find(|(p, _, _)| *p == id)
            .map_or_else(|| id.to_string(), |(_, _, n)| n.clone())
    };
    let mut rows = Vec::new();
    for role in &change.org_roles {
        let text = format!(
            "org role {} → {}",
            role_name(role.before),
            role_name(role.after)
        );
        let (gains, losses) = if rank(role.after) > rank(role.before) {
            (vec![text], Vec::new())
        } else {
            (Vec::new(), vec![text])
        };
        rows.push(Row {
            who: who.to_owned(),
            place: format!("organization {}", org_name(role.org_id)),
            gains,
            losses,
        });
    }
    for product in &change.products {
        let mut gains: Vec<String> = product.gained.iter().map(|c| capability_name(*c)).collect();
        let mut losses: Vec<String> = product.lost.iter().map(|c| capability_name(*c)).collect();
        for env in &product.environments {
            let text = format!(
                "{}: {} → {}",
                env.name,
                access_name(env.before),
                access_name(env.after)
            );
            if env.after > env.before {
                gains.push(text);
            } else {
                losses.push(text);
            }
        }
        rows.push(Row {
            who: who.to_owned(),
            place: format!("product {}", product_name(product.product_id)),
            gains,
            losses,
        });
    }
    rows
}

#[derive(Deserialize)]
pub(super) struct ApplyForm {
    document: String,
    etag: Option<String>,
}

/// `POST /console/orgs/{org}/mappings/apply`: as `PUT /api/v1/orgs/{org_id}/mappings` with
/// `If-Match` the version the preview was computed against — a change made since is refused.
pub(super) async fn apply(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ConsoleForm { console, form }: ConsoleForm<ApplyForm>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::PUT, MAPPINGS).await?;
    let Some(etag) = form
        .etag
        .as_deref()
        .and_then(|e| e.trim().trim_matches('"').parse::<i64>().ok())
    else {
        return Err(PageError(ApiError::BadRequest(
            "the preview's ETag is missing: preview the change again".into(),
        )));
    };
    match api::replace(&state, &admin, org.id, form.document.as_bytes(), Some(etag)).await {
        Ok(stored) => Ok(redirect_with(
            &state,
            &mappings_path(org.id),
            Flash::done(format!("Mappings applied: now version {}.", stored.version)),
        )),
        Err(ApiError::PreconditionFailed(_)) => Ok(redirect_with(
            &state,
            &mappings_path(org.id),
            Flash::refused(
                "Not applied: the mappings changed since this preview. Review the current ones and make the change again.",
            ),
        )),
        Err(error) => {
            let editor = Editor::refused(pretty(&form.document), Some(etag), error);
            render(&state, &console, &admin, &org, editor).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ExportParams {
    format: Option<String>,
}

/// `GET /console/orgs/{org}/mappings/export?format=json|yaml`: the document as
/// `rolegate mappings export` writes it, as a download.
pub(super) async fn export(
    State(state): State<AppState>,
    console: Console,
    Path(raw): Path<String>,
    Query(params): Query<ExportParams>,
) -> Result<Response, PageError> {
    let (admin, org) = org_for(&state, &console, &raw, Method::GET, MAPPINGS).await?;
    let stored = state.store.get_mappings(admin.tenant_id(), org.id).await?;
    let document = api::as_document(&state, admin.tenant_id(), &stored).await?;
    let (text, extension, content_type) = match params.format.as_deref() {
        None | Some("json") => (
            mapping_document::to_json(&document),
            "json",
            "application/json",
        ),
        Some("yaml") => (
            mapping_document::to_yaml(&document),
            "yaml",
            "application/yaml",
        ),
        Some(other) => {
            return Err(PageError(ApiError::invalid(
                "format",
                format!("{other:?}: expected json or yaml"),
            )));
        }
    };
    let text = text.map_err(ApiError::Internal)?;
    let mut response = (StatusCode::OK, text).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition = format!("attachment; filename=\"mappings-{}.{extension}\"", org.id);
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
