//! Permission questions: `POST /authz/check` (one question, or a batch answered item by item)
//! and `GET /authz/explain`. Asked by an admin token or a read-only service token — a flag
//! backend's — each within its org's subtree: a user or product out of reach is not found, as
//! if the id named nothing.
//!
//! Every answer comes from the resolver (`domain::resolve`) over snapshots read in a fixed
//! number of queries, however many questions a batch asks: the cached resolver's snapshots,
//! with one snapshot read for all the users it lacks and one for all the products.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::doc::{AuthErrors, BadBody, BadParams, ServerErrors};
use super::extract::{ApiJson, ApiQuery, parse_json_value};
use super::reach::{ReachedOrgs, person_orgs, reached_by};
use crate::auth::{self, Principal};
use crate::authz::check::{Ask, Decision, decide};
use crate::authz::explain::Explanation;
use crate::authz::{ProductEntry, UserEntry};
use crate::domain::permission::{Action, Capability};
use crate::domain::resolve::{self, Resolved};
use crate::domain::token::TokenKind;
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(check))
        .routes(routes!(explain))
}

/// The most questions one batch may ask. A flag backend checks a page's worth at once; more
/// than this is one request holding the resolver for too long.
pub const MAX_BATCH: usize = 1000;

/// Who may ask permission questions: an admin token, or a service token (which may ask nothing
/// else). Asking changes nothing, so there is no audit context.
pub struct Asker {
    pub principal: Principal,
}

impl FromRequestParts<AppState> for Asker {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal =
            auth::authenticate(state, parts, &[TokenKind::Admin, TokenKind::Service]).await?;
        Ok(Asker { principal })
    }
}

/// One question: may the user do `action` (or have `capability`) on the product — or, without
/// a product, in the org?
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckItem {
    user_id: Uuid,
    /// The product asked about. Absent: an org-level question (module roles, org settings),
    /// asked in `org_id`.
    product_id: Option<Uuid>,
    /// Org-level questions only (without `product_id`): the org asked about, within reach.
    /// Default: the org of the token asking.
    org_id: Option<Uuid>,
    /// One of seed 002's actions. An action done in an environment (`view`, `flag_edit`,
    /// `flag_launch`, …) needs `product_id` and `environment_id`. Exactly one of `action` and
    /// `capability`.
    action: Option<Action>,
    /// A capability by name. Exactly one of `action` and `capability`.
    capability: Option<Capability>,
    /// The environment the action is done in: one of the product's.
    environment_id: Option<Uuid>,
}

/// Many questions at once, answered in order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckBatch {
    /// At most 1,000 questions. Each is read on its own: one that is malformed gets its own
    /// error in `results`, and the others are answered.
    #[schema(value_type = Vec<CheckItem>, max_items = 1000)]
    checks: Vec<Value>,
}

/// One question, or a batch of them (`{"checks": [...]}`).
#[derive(Debug, ToSchema)]
#[serde(untagged)]
enum CheckRequest {
    One(CheckItem),
    Batch(CheckBatch),
}

/// A batch question that could not be answered, with why.
#[derive(Debug, Serialize, ToSchema)]
struct ItemError {
    /// As in every error body: `not_found` (a user or product unknown or out of reach),
    /// `validation_failed` (with `fields`, named by their path in the body, e.g.
    /// `checks[3].environment_id`).
    #[schema(value_type = ErrorDetail)]
    error: Value,
}

/// One answer of a batch: a decision, or the question's own error.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum CheckResult {
    Decision(Decision),
    Error(ItemError),
}

#[derive(Debug, Serialize, ToSchema)]
struct CheckResults {
    /// One per question, in the order asked.
    results: Vec<CheckResult>,
}

/// The answer: one decision, or a batch's results.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum CheckResponse {
    One(Decision),
    Batch(CheckResults),
}

/// Whether a user may do an action, or has a capability, on a product or in an org.
///
/// `{"user_id", "product_id"?, "org_id"?, "action" | "capability", "environment_id"?}` answers
/// `{"allowed", "reason"}`: `owner` (an effective Owner of the org: everything), `granted`,
/// `insufficient` (a member, not given it), `inactive` (deactivated), `not_member`. Without
/// `product_id` the question is about the org (`org_id`, default the token's org): module roles
/// and org settings. `{"checks": [...]}` asks up to 1,000 questions at once and answers
/// `{"results": [...]}` in order, each a decision or its own `{"error"}`. An admin or service
/// token; a user or product out of the token's reach is not found.
#[utoipa::path(
    post,
    path = "/authz/check",
    tag = "authz",
    security(("bearer" = [])),
    request_body = CheckRequest,
    responses(
        (status = 200, description = "The decision, or a batch's results.", body = CheckResponse),
        (status = 404, description = "One question: the user or product is unknown or out of reach (or `org_id` is).", body = ErrorBody),
        AuthErrors, BadBody, ServerErrors,
        (status = 422, description = "The body is JSON of the wrong shape (`fields` names the field), or: not exactly one of `action` and `capability`; an environment action without `environment_id` (or `product_id`), or with an environment of another product; `org_id` with `product_id`; more than 1,000 `checks`.", body = ErrorBody)
    )
)]
async fn check(
    State(state): State<AppState>,
    asker: Asker,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<ApiJson<CheckResponse>, ApiError> {
    match parse_check(body)? {
        CheckRequest::One(item) => {
            // What needs no database is refused before anything is read.
            item.ask()?;
            let facts = Facts::load(&state, &asker.principal, &[&item]).await?;
            Ok(ApiJson(CheckResponse::One(facts.answer(&item)?)))
        }
        CheckRequest::Batch(batch) => {
            let items: Vec<Result<CheckItem, ApiError>> = batch
                .checks
                .into_iter()
                .enumerate()
                .map(|(i, v)| parse_json_value(v, &format!("checks[{i}]")))
                .collect();
            let asked: Vec<&CheckItem> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
            let facts = Facts::load(&state, &asker.principal, &asked).await?;
            let results = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let answer = item.and_then(|item| {
                        facts
                            .answer(&item)
                            .map_err(|e| at_item(e, &format!("checks[{i}]")))
                    });
                    match answer {
                        Ok(decision) => CheckResult::Decision(decision),
                        Err(e) => CheckResult::Error(ItemError {
                            error: e.body()["error"].take(),
                        }),
                    }
                })
                .collect();
            Ok(ApiJson(CheckResponse::Batch(CheckResults { results })))
        }
    }
}

/// The body as one question or a batch; a batch's items are read later, each on its own.
fn parse_check(body: Map<String, Value>) -> Result<CheckRequest, ApiError> {
    if !body.contains_key("checks") {
        return parse_json_value(Value::Object(body), "").map(CheckRequest::One);
    }
    let batch: CheckBatch = parse_json_value(Value::Object(body), "")?;
    if batch.checks.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "checks",
            format!(
                "at most {MAX_BATCH} questions per request, got {}; split the batch",
                batch.checks.len()
            ),
        ));
    }
    Ok(CheckRequest::Batch(batch))
}

/// A batch item's validation error with its fields named by their path in the whole body.
fn at_item(error: ApiError, at: &str) -> ApiError {
    match error {
        ApiError::Validation(fields) => ApiError::Validation(
            fields
                .into_iter()
                .map(|mut f| {
                    f.field = format!("{at}.{}", f.field);
                    f
                })
                .collect(),
        ),
        other => other,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExplainParams {
    user_id: Uuid,
    /// The product to explain. Absent: the org level (org role and module roles) in `org_id`.
    product_id: Option<Uuid>,
    /// Without `product_id` only: the org to explain, within reach. Default: the org of the
    /// token asking.
    org_id: Option<Uuid>,
}

/// Why a user may do what they may: every permission with the grants that gave it.
///
/// For each capability the paths that give it, for each environment the access with the paths
/// that give it and those that lost, and the org role with the paths that decided it. A path's
/// `kind` is `manual`, `invite`, `provisioned` (made by the IdP), `inherited` (decided in an
/// org above), `mapped` (an IdP group matched a mapping rule, with `rule` and `via_group`),
/// `default` (the org's default for unmapped members) or `owner`. A user within reach who is
/// not a member gets `org_role: null` and nothing. An admin or service token.
#[utoipa::path(
    get,
    path = "/authz/explain",
    tag = "authz",
    security(("bearer" = [])),
    params(ExplainParams),
    responses(
        (status = 200, description = "The explanation.", body = Explanation),
        (status = 404, description = "The user, product or org is unknown or out of reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A parameter not of its form (`fields` names it), or: `org_id` with `product_id`.", body = ErrorBody)
    )
)]
async fn explain(
    State(state): State<AppState>,
    asker: Asker,
    ApiQuery(p): ApiQuery<ExplainParams>,
) -> Result<ApiJson<Explanation>, ApiError> {
    let question = Subject {
        user_id: p.user_id,
        product_id: p.product_id,
        org_id: p.org_id,
    };
    question.validate()?;
    let facts = Facts::load_subjects(&state, &asker.principal, &[question]).await?;
    let resolved = facts.resolve(&question)?;
    Ok(ApiJson(Explanation::from(resolved.as_ref())))
}

/// Whom a question is about, and where.
#[derive(Debug, Clone, Copy)]
struct Subject {
    user_id: Uuid,
    product_id: Option<Uuid>,
    org_id: Option<Uuid>,
}

impl Subject {
    fn validate(&self) -> Result<(), ApiError> {
        if self.product_id.is_some() && self.org_id.is_some() {
            return Err(ApiError::invalid(
                "org_id",
                "only without product_id: a product's question is asked in the product's org",
            ));
        }
        Ok(())
    }
}

impl CheckItem {
    fn subject(&self) -> Subject {
        Subject {
            user_id: self.user_id,
            product_id: self.product_id,
            org_id: self.org_id,
        }
    }

    /// What is asked, and the checks that need no database: exactly one of `action` and
    /// `capability`; an environment only with a product, and always with an environment action.
    fn ask(&self) -> Result<Ask, ApiError> {
        let ask = match (self.action, self.capability) {
            (Some(a), None) => Ask::Action(a),
            (None, Some(c)) => Ask::Capability(c),
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "capability",
                    "give exactly one of action and capability, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "action",
                    "required: give exactly one of action and capability",
                ));
            }
        };
        self.subject().validate()?;
        let in_environment = ask.environment_access().is_some();
        match (self.product_id, self.environment_id) {
            (None, Some(_)) => Err(ApiError::invalid(
                "environment_id",
                "an environment belongs to a product: give its product_id too",
            )),
            (None, None) if in_environment => Err(ApiError::invalid(
                "product_id",
                format!(
                    "required: {} is done in an environment of a product; give product_id and \
                     environment_id",
                    action_name(self.action)
                ),
            )),
            (Some(_), None) if in_environment => Err(ApiError::invalid(
                "environment_id",
                format!(
                    "required: {} is done in an environment; give one of the product's",
                    action_name(self.action)
                ),
            )),
            _ => Ok(ask),
        }
    }
}

/// The action as the client spelled it (`flag_launch`).
fn action_name(action: Option<Action>) -> String {
    action
        .and_then(|a| serde_json::to_value(a).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "this action".to_owned())
}

/// What the questions of one request need, read once: the caller's reach, the users' and the
/// products' snapshots.
struct Facts {
    tenant_id: Uuid,
    token_org: Uuid,
    reached: ReachedOrgs,
    users: HashMap<Uuid, Arc<UserEntry>>,
    products: HashMap<Uuid, Arc<ProductEntry>>,
}

impl Facts {
    async fn load(
        state: &AppState,
        principal: &Principal,
        items: &[&CheckItem],
    ) -> Result<Facts, ApiError> {
        let subjects: Vec<Subject> = items.iter().map(|i| i.subject()).collect();
        Self::load_subjects(state, principal, &subjects).await
    }

    /// The cached snapshots of every distinct user and product; what the cache lacks is read
    /// in one call for the users and one for the products, whatever the number of questions.
    async fn load_subjects(
        state: &AppState,
        principal: &Principal,
        subjects: &[Subject],
    ) -> Result<Facts, ApiError> {
        let tenant_id = principal.tenant_id();
        let user_ids: Vec<Uuid> = subjects
            .iter()
            .map(|s| s.user_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let product_ids: Vec<Uuid> = subjects
            .iter()
            .filter_map(|s| s.product_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let reached = reached_by(state, principal).await?;
        // From the cache: what it lacks is loaded in one snapshot read each.
        let users = state
            .resolver
            .user_entries(tenant_id, &user_ids)
            .await?
            .into_iter()
            .map(|u| (u.snapshot().user_id, u))
            .collect();
        let products = state
            .resolver
            .product_entries(tenant_id, &product_ids)
            .await?
            .into_iter()
            .map(|p| (p.snapshot().id, p))
            .collect();
        Ok(Facts {
            tenant_id,
            token_org: principal.org_id(),
            reached,
            users,
            products,
        })
    }

    /// The user, if the caller reaches them: through an org they are a member of, or whose
    /// SCIM token holds them (as `GET /users/{user_id}` reaches them).
    fn user(&self, id: Uuid) -> Result<&Arc<UserEntry>, ApiError> {
        self.users
            .get(&id)
            .filter(|entry| {
                let u = entry.snapshot();
                person_orgs(
                    u.memberships.iter().map(|m| m.org_id),
                    u.scim_org_id,
                    self.tenant_id,
                )
                .into_iter()
                .any(|o| self.reached.contains(o))
            })
            .ok_or(ApiError::NotFound)
    }

    /// The product, if its org is within reach.
    fn product(&self, id: Uuid) -> Result<&Arc<ProductEntry>, ApiError> {
        self.products
            .get(&id)
            .filter(|p| self.reached.contains(p.snapshot().org_id))
            .ok_or(ApiError::NotFound)
    }

    /// The subject's permissions: on the product (the cached answer), or in the org asked
    /// about.
    fn resolve(&self, subject: &Subject) -> Result<Arc<Resolved>, ApiError> {
        // The product first: an unknown product is reported whoever the user is.
        let product = subject.product_id.map(|id| self.product(id)).transpose()?;
        let user = self.user(subject.user_id)?;
        Ok(match product {
            Some(product) => user.answer(product),
            None => {
                let org = subject.org_id.unwrap_or(self.token_org);
                // The snapshot lists every org of the tenant: another tenant's is unknown.
                if !user.snapshot().orgs.iter().any(|(o, _)| *o == org)
                    || !self.reached.contains(org)
                {
                    return Err(ApiError::NotFound);
                }
                Arc::new(resolve::resolve_org(user.snapshot(), org))
            }
        })
    }

    fn answer(&self, item: &CheckItem) -> Result<Decision, ApiError> {
        let ask = item.ask()?;
        let resolved = self.resolve(&item.subject())?;
        if let (Some(product), Some(environment)) = (item.product_id, item.environment_id)
            && !resolved.environments.contains_key(&environment)
        {
            return Err(ApiError::invalid(
                "environment_id",
                format!("not an environment of the product {product}"),
            ));
        }
        Ok(decide(&resolved, ask, item.environment_id))
    }
}
