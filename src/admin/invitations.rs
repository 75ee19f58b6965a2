//! Invitations by e-mail (seeds 000/001/003): invite a comma-separated list with an initial
//! permission group, list, resend, revoke — and the invitee's side: look up and accept.

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::doc::{AuthErrors, BadBodyOrParams, BadParams, RateLimited, ServerErrors};
use super::extract::{ApiJson, ApiQuery};
use super::reach::{InReach, OrgInReach};
use super::{AdminAuth, NoStore};
use crate::domain::audit::Actor;
use crate::domain::invitation::{self, Invitation, InvitationStatus, InvitedAccess, ListedAddress};
use crate::domain::outbox::MailStatus;
use crate::domain::permission::Role;
use crate::domain::product::ProductDetail;
use crate::domain::token::{self, TokenKind, hash_secret};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::mail::{Delivery, OutgoingMail};
use crate::state::AppState;
use crate::store::{
    AcceptOutcome, Ctx, InvitationTarget, InviteOutcome, NewInvitation, OutboxMail,
};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, invite))
        .routes(routes!(revoke))
        .routes(routes!(resend))
        .routes(routes!(look_up, accept))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    /// Addresses: a comma-separated string, as typed into the invite screen, or an array.
    emails: AddressList,
    /// A product of this org, to grant access to on acceptance.
    product_id: Option<Uuid>,
    /// A permission group of the product, or a built-in role's id.
    permission_group_id: Option<Uuid>,
    /// A built-in role on the product (with `product_id`).
    role: Option<Role>,
}

/// The invite screen sends what was typed; API clients may send an array.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum AddressList {
    /// Separated by commas, semicolons or line breaks.
    Typed(String),
    Listed(Vec<String>),
}

impl AddressList {
    /// One string in the typed form, so both forms are split, checked and counted alike.
    fn typed(&self) -> std::borrow::Cow<'_, str> {
        match self {
            AddressList::Typed(raw) => raw.as_str().into(),
            AddressList::Listed(entries) => entries.join("\n").into(),
        }
    }
}

/// What became of one listed address.
#[derive(Serialize, ToSchema)]
pub(crate) struct AddressResult {
    pub(crate) email: String,
    /// invited | resent | already_member | duplicate | invalid
    #[schema(examples("invited", "resent", "already_member", "duplicate", "invalid"))]
    pub(crate) status: &'static str,
    /// Why a `duplicate` or `invalid` address was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) error: Option<&'static str>,
    /// With `invited` and `resent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) invitation: Option<Invitation>,
    /// How the e-mail went: sent | logged (no SMTP configured) | failed
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, examples("sent", "logged", "failed"))]
    pub(crate) delivery: Option<&'static str>,
    /// With `delivery: failed`: why, e.g. the relay refused STARTTLS or did not answer. The
    /// invitation exists; fix the relay and retry the mail (`POST /outbox/{mail_id}/retry`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) delivery_error: Option<String>,
    /// With `delivery`: the outbox's copy of the e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) mail_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
struct InviteResults {
    results: Vec<AddressResult>,
}

pub(super) fn random_secret() -> Result<(String, [u8; 32]), ApiError> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    Ok(invitation::mint_secret(random))
}

/// Addresses one invite request may list (valid or not).
const MAX_ADDRESSES: usize = 100;

/// How many entries `parse_address_list` will make of `raw`, counted before it parses and
/// checks them, so an oversized list is refused before any work per address.
fn listed_count(raw: &str) -> usize {
    raw.split([',', ';', '\n'])
        .filter(|e| !e.trim().is_empty())
        .count()
}

/// Invitation e-mails (new and resent) an org may send per hour; `None`: no cap.
pub(super) fn hourly_cap(state: &AppState) -> Option<u32> {
    Some(state.config.invitations_per_hour).filter(|&n| n > 0)
}

pub(super) fn expiry(state: &AppState) -> DateTime<Utc> {
    crate::domain::now() + chrono::Duration::days(i64::from(state.config.invitation_ttl_days))
}

/// Builds the link from `ROLEGATE_PUBLIC_URL`, never from the request's Host header. It opens
/// the console's invitation page (a person follows it); API clients accept the same token at
/// `/api/v1/invitations/accept`.
fn accept_link(state: &AppState, secret: &str) -> Result<url::Url, ApiError> {
    let mut link = state
        .config
        .public_url()
        .join("console/invitations/accept")
        .map_err(|e| ApiError::Internal(format!("bad public URL: {e}")))?;
    link.query_pairs_mut().append_pair("token", secret);
    Ok(link)
}

/// Who the e-mail says invites: the person, or the token by the name an admin gave it. A
/// token left with its default name ("admin token") names nobody, so the org's administrators
/// are named instead.
fn inviter(actor: &Actor, org_name: &str) -> String {
    match actor {
        Actor::AdminToken { name, .. } if *name != token::default_name(TokenKind::Admin) => {
            name.clone()
        }
        Actor::User { email, .. } => email.clone(),
        _ => format!("An administrator of {org_name}"),
    }
}

/// The product and group an invitation grants, as its e-mail names them; `None` for a plain
/// membership. A product that has gone since (deleted) is left unnamed rather than failing the
/// resend.
pub(crate) fn invited_access(
    detail: &ProductDetail,
    invitation: &Invitation,
) -> Option<InvitedAccess> {
    let group = detail.permission_groups.iter().find(|g| {
        Some(g.id) == invitation.permission_group_id
            || (invitation.role.is_some() && g.role == invitation.role)
    })?;
    Some(InvitedAccess {
        product: detail.product.name.clone(),
        permission_group: group.name.clone(),
    })
}

/// How one invitation e-mail went: `sent`, `logged` or `failed` with the reason, and its copy
/// in the outbox.
struct MailOutcome {
    status: MailStatus,
    error: Option<String>,
    mail_id: Uuid,
}

/// Sends the invitation e-mail and keeps a copy in the outbox (as the retry of the outbox mail
/// `retry_of`, if it is one). A failed send is reported per address, never as a failure of the
/// whole request: the invitation exists, and its mail can be retried.
async fn send_invitation(
    state: &AppState,
    ctx: &Ctx,
    org_name: &str,
    access: Option<&InvitedAccess>,
    invitation: &Invitation,
    secret: &str,
    retry_of: Option<Uuid>,
) -> Result<MailOutcome, ApiError> {
    let link = accept_link(state, secret)?;
    let (subject, text_body) = invitation::email_text(
        &inviter(&ctx.actor, org_name),
        org_name,
        access,
        link.as_str(),
        invitation.expires_at,
    );
    let mail = OutgoingMail {
        to: invitation.email.clone(),
        subject,
        text_body,
    };
    let (status, error) = match state.mailer.send(&mail).await {
        Ok(Delivery::Sent) => (MailStatus::Sent, None),
        Ok(Delivery::LoggedOnly) => (MailStatus::Logged, None),
        Err(e) => {
            tracing::warn!(error = %e, invitation_id = %invitation.id, "invitation e-mail not sent");
            (MailStatus::Failed, Some(e.to_string()))
        }
    };
    // Without SMTP the outbox is the only copy an operator can forward; otherwise keep no live
    // link in the database.
    let stored_body = if status == MailStatus::Logged {
        mail.text_body.clone()
    } else {
        mail.text_body.replace(secret, "[redacted]")
    };
    let copy = OutboxMail {
        org_id: invitation.org_id,
        invitation_id: Some(invitation.id),
        recipient: mail.to.clone(),
        subject: mail.subject.clone(),
        body: stored_body,
        status,
        error: error.clone(),
        retry_of,
    };
    let mail_id = state
        .store
        .record_mail(ctx, invitation.tenant_id, &copy)
        .await?;
    Ok(MailOutcome {
        status,
        error,
        mail_id,
    })
}

/// Sends an invitation the store has just reissued (its new link `secret`): the one path of a
/// resend and of an outbox retry (`retry_of`, the mail it retries). Answered as an invite
/// result with status `resent`.
pub(super) async fn send_reissued(
    state: &AppState,
    admin: &AdminAuth,
    invitation: Invitation,
    secret: &str,
    retry_of: Option<Uuid>,
) -> Result<AddressResult, ApiError> {
    // The org's name, for the e-mail.
    let org = state
        .store
        .get_org(admin.tenant_id(), invitation.org_id)
        .await?;
    let access = match invitation.product_id {
        Some(product_id) => match state.store.get_product(admin.tenant_id(), product_id).await {
            Ok(detail) => invited_access(&detail, &invitation),
            Err(crate::store::StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let sent = send_invitation(
        state,
        &admin.ctx,
        &org.name,
        access.as_ref(),
        &invitation,
        secret,
        retry_of,
    )
    .await?;
    Ok(AddressResult {
        email: invitation.email.clone(),
        status: "resent",
        error: None,
        invitation: Some(invitation),
        delivery: Some(sent.status.as_str()),
        delivery_error: sent.error,
        mail_id: Some(sent.mail_id),
    })
}

/// Invites a comma-separated list of addresses to the org, optionally with access to a product.
///
/// Each address gets its own result; an address with a pending invitation gets a new link.
/// A failed e-mail is reported per address: the invitation exists and can be resent.
/// At most 100 addresses per request (422 otherwise); the org's new and resent invitations
/// are capped per hour (429 with `Retry-After`, and nothing is sent).
#[utoipa::path(
    post,
    path = "/orgs/{org_id}/invitations",
    tag = "invitations",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path)),
    request_body = InviteBody,
    responses(
        (status = 200, description = "One result per listed address.", body = InviteResults),
        (status = 404, description = "No such org, or no such product, within reach.", body = ErrorBody),
        (status = 429, description = "The org's invitation e-mails of the last hour would pass `ROLEGATE_INVITATIONS_PER_HOUR`: nothing was sent; `Retry-After` says when to try again.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn invite(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<(StatusCode, NoStore, ApiJson<InviteResults>), ApiError> {
    let asked = InviteRequest {
        emails: body.emails.typed().into_owned(),
        product_id: body.product_id,
        permission_group_id: body.permission_group_id,
        role: body.role,
    };
    let results = invite_addresses(&state, &admin, &item, &asked).await?;
    Ok((StatusCode::OK, NoStore, ApiJson(InviteResults { results })))
}

/// An invite as typed into the invite screen (the API's body or the console's form).
pub(crate) struct InviteRequest {
    /// Addresses separated by commas, semicolons or line breaks.
    pub(crate) emails: String,
    pub(crate) product_id: Option<Uuid>,
    pub(crate) permission_group_id: Option<Uuid>,
    pub(crate) role: Option<Role>,
}

/// Invites the listed addresses to `item` (an org the caller may invite to): one result per
/// listed address, in the order listed. The one path of the API's invite and the console's.
pub(crate) async fn invite_addresses(
    state: &AppState,
    admin: &AdminAuth,
    item: &crate::domain::org::Org,
    body: &InviteRequest,
) -> Result<Vec<AddressResult>, ApiError> {
    let typed = body.emails.as_str();
    let listed_count = listed_count(typed);
    if listed_count > MAX_ADDRESSES {
        return Err(ApiError::invalid(
            "emails",
            format!("at most {MAX_ADDRESSES} addresses per request (got {listed_count})"),
        ));
    }
    let listed = invitation::parse_address_list(typed);
    if listed.is_empty() {
        return Err(ApiError::invalid(
            "emails",
            "must list at least one address",
        ));
    }
    let mut role = body.role;
    let mut group = None;
    let mut product = None;
    if let Some(product_id) = body.product_id {
        let detail = product.insert(admin.product(state, product_id).await?);
        if detail.product.org_id != item.id {
            return Err(ApiError::invalid(
                "product_id",
                "must be a product of this organization",
            ));
        }
        if let Some(gid) = body.permission_group_id {
            match detail.permission_groups.iter().find(|g| g.id == gid) {
                Some(g) if g.role.is_some() => role = g.role,
                Some(_) => group = Some(gid),
                None => {
                    return Err(ApiError::invalid(
                        "permission_group_id",
                        "must be a permission group of the product",
                    ));
                }
            }
        }
    } else if body.permission_group_id.is_some() || body.role.is_some() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "product_id",
            "is required with a permission group or role",
        )]));
    }
    let target = InvitationTarget {
        org_id: item.id,
        product_id: body.product_id,
        permission_group_id: group,
        role,
        expires_at: expiry(state),
    };
    // Results come back in the order the addresses were listed: each slot is filled either
    // now (skipped addresses) or once the store has answered for the valid ones.
    let mut slots: Vec<Option<AddressResult>> = Vec::with_capacity(listed.len());
    let mut entries = Vec::new();
    let mut pending = Vec::new();
    for entry in listed {
        let skipped = |email, status, error| AddressResult {
            email,
            status,
            error: Some(error),
            invitation: None,
            delivery: None,
            delivery_error: None,
            mail_id: None,
        };
        match entry {
            ListedAddress::Valid(email) => {
                let (secret, hash) = random_secret()?;
                entries.push(NewInvitation {
                    email,
                    token_hash: hash,
                });
                pending.push((slots.len(), secret));
                slots.push(None);
            }
            ListedAddress::Duplicate(email) => {
                slots.push(Some(skipped(email, "duplicate", "listed more than once")));
            }
            ListedAddress::Invalid { input, reason } => {
                slots.push(Some(skipped(input, "invalid", reason)));
            }
        }
    }
    let outcomes = if entries.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .invite(
                &admin.ctx,
                admin.tenant_id(),
                &target,
                &entries,
                hourly_cap(state),
            )
            .await?
    };
    for ((email, outcome), (slot, secret)) in outcomes.into_iter().zip(pending) {
        let (status, invitation) = match outcome {
            InviteOutcome::Invited(i) => ("invited", i),
            InviteOutcome::Resent(i) => ("resent", i),
            InviteOutcome::AlreadyMember { .. } => {
                slots[slot] = Some(AddressResult {
                    email,
                    status: "already_member",
                    error: None,
                    invitation: None,
                    delivery: None,
                    delivery_error: None,
                    mail_id: None,
                });
                continue;
            }
        };
        let access = product
            .as_ref()
            .and_then(|detail| invited_access(detail, &invitation));
        let sent = send_invitation(
            state,
            &admin.ctx,
            &item.name,
            access.as_ref(),
            &invitation,
            &secret,
            None,
        )
        .await?;
        slots[slot] = Some(AddressResult {
            email,
            status,
            error: None,
            invitation: Some(invitation),
            delivery: Some(sent.status.as_str()),
            delivery_error: sent.error,
            mail_id: Some(sent.mail_id),
        });
    }
    Ok(slots.into_iter().flatten().collect())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only invitations in this state.
    status: Option<InvitationStatus>,
}

#[derive(Serialize, ToSchema)]
struct InvitationList {
    invitations: Vec<Invitation>,
}

/// The org's invitations.
#[utoipa::path(
    get,
    path = "/orgs/{org_id}/invitations",
    tag = "invitations",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ListParams),
    responses(
        (status = 200, description = "The invitations, in every state unless `status` is given.", body = InvitationList),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn list(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<ApiJson<InvitationList>, ApiError> {
    let mut invitations = state
        .store
        .list_invitations(admin.tenant_id(), item.id)
        .await?;
    if let Some(status) = p.status {
        invitations.retain(|i| i.status == status);
    }
    Ok(ApiJson(InvitationList { invitations }))
}

/// Sends a pending invitation again, with a new link (the old one dies).
#[utoipa::path(
    post,
    path = "/invitations/{invitation_id}/resend",
    tag = "invitations",
    security(("bearer" = [])),
    params(("invitation_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The invitation with its new expiry, and how the e-mail went.", body = AddressResult),
        (status = 404, description = "No such invitation within reach.", body = ErrorBody),
        (status = 409, description = "The invitation is accepted or revoked.", body = ErrorBody),
        (status = 429, description = "The org has sent `ROLEGATE_INVITATIONS_PER_HOUR` invitation e-mails in the last hour; `Retry-After` says when to try again.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn resend(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<Invitation>,
) -> Result<(NoStore, ApiJson<AddressResult>), ApiError> {
    let result = resend_invitation(&state, &admin, item.id).await?;
    Ok((NoStore, ApiJson(result)))
}

/// Reissues a pending invitation the caller reaches (a new link; the old one dies) and sends
/// it: the API's resend and the console's.
pub(crate) async fn resend_invitation(
    state: &AppState,
    admin: &AdminAuth,
    invitation_id: Uuid,
) -> Result<AddressResult, ApiError> {
    let (secret, hash) = random_secret()?;
    let invitation = state
        .store
        .reissue_invitation(
            &admin.ctx,
            admin.tenant_id(),
            invitation_id,
            &hash,
            expiry(state),
            hourly_cap(state),
        )
        .await?;
    send_reissued(state, admin, invitation, &secret, None).await
}

/// Revokes an invitation: its link stops working. Revoking it again changes nothing.
#[utoipa::path(
    delete,
    path = "/invitations/{invitation_id}",
    tag = "invitations",
    security(("bearer" = [])),
    params(("invitation_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The revoked invitation.", body = Invitation),
        (status = 404, description = "No such invitation within reach.", body = ErrorBody),
        (status = 409, description = "The invitation is already accepted.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn revoke(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<Invitation>,
) -> Result<ApiJson<Invitation>, ApiError> {
    Ok(ApiJson(
        state
            .store
            .revoke_invitation(&admin.ctx, admin.tenant_id(), item.id)
            .await?,
    ))
}

/// The invitee's credential: the link's token, from the query (`?token=`). Failed links count
/// against the client address like bad bearer tokens: a link that works always works, a
/// repeated bad one from an address over its limit is refused without a lookup.
pub(crate) struct InvitationToken {
    hash: [u8; 32],
    request_id: Option<String>,
    addr: std::net::IpAddr,
}

impl InvitationToken {
    /// The answer to a link that names no current invitation. A link a resend replaced is no
    /// guess: it says so (410), without counting against the address.
    async fn not_found(&self, state: &AppState) -> ApiError {
        match state.store.link_replaced(&self.hash).await {
            Ok(true) => ApiError::Gone(
                "invitation_replaced",
                "this link was replaced by a newer invitation: use the link in the most recent \
                 e-mail, or ask for the invitation to be resent",
            ),
            Ok(false) => link_not_found(state, self.addr, Some(self.hash)),
            Err(e) => e.into(),
        }
    }
}

/// The answer to a link that names no invitation: 404, or 429 once the address is over its
/// limit.
fn link_not_found(state: &AppState, addr: std::net::IpAddr, hash: Option<[u8; 32]>) -> ApiError {
    match state.auth.reject(addr, hash, "invalid invitation link") {
        crate::auth::AuthFailure::Unauthenticated(_) => ApiError::NotFound,
        other => other.into(),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TokenParam {
    /// The secret from the invitation link (`rg_inv_…`). Without it: 404.
    #[param(required = true, nullable = false)]
    token: Option<String>,
}

impl FromRequestParts<AppState> for InvitationToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let addr = crate::request::client_addr(&parts.extensions);
        let ApiQuery(TokenParam { token }) =
            ApiQuery::<TokenParam>::from_request_parts(parts, state).await?;
        let hash = token
            .filter(|t| t.starts_with(invitation::SECRET_PREFIX))
            .map(|t| hash_secret(&t));
        state.auth.gate(addr, hash.as_ref())?;
        let Some(hash) = hash else {
            return Err(link_not_found(state, addr, None));
        };
        Ok(InvitationToken {
            hash,
            request_id: crate::request::request_id(&parts.extensions),
            addr,
        })
    }
}

#[derive(Serialize, ToSchema)]
struct InvitationView {
    email: String,
    org_id: Uuid,
    org_name: String,
    product_id: Option<Uuid>,
    status: InvitationStatus,
    expires_at: DateTime<Utc>,
}

/// Shows what an invitation link is for, without using it up (mail scanners follow links with GET).
#[utoipa::path(
    get,
    path = "/invitations/accept",
    tag = "invitations",
    params(TokenParam),
    responses(
        (status = 200, description = "What the link is for.", body = InvitationView),
        (status = 400, description = "The query string does not parse.", body = ErrorBody),
        (status = 404, description = "No `token`, or not one of ours.", body = ErrorBody),
        (status = 410, description = "A link a resend replaced (`invitation_replaced`).", body = ErrorBody),
        RateLimited, ServerErrors
    )
)]
async fn look_up(
    State(state): State<AppState>,
    token: InvitationToken,
) -> Result<ApiJson<InvitationView>, ApiError> {
    let found = look_up_by_token(&state, &token).await?;
    let org = state.store.get_org(found.tenant_id, found.org_id).await?;
    Ok(ApiJson(InvitationView {
        email: found.email,
        org_id: org.id,
        org_name: org.name,
        product_id: found.product_id,
        status: found.status,
        expires_at: found.expires_at,
    }))
}

/// The invitation a link names, whatever its state, without using it up; a link that names
/// none is "not found" (or "replaced"), counted against the client address.
pub(crate) async fn look_up_by_token(
    state: &AppState,
    token: &InvitationToken,
) -> Result<Invitation, ApiError> {
    match state.store.invitation_by_token(&token.hash).await? {
        Some(found) => Ok(found),
        None => Err(token.not_found(state).await),
    }
}

#[derive(Serialize, ToSchema)]
struct Accepted {
    user_id: Uuid,
    org_id: Uuid,
    product_id: Option<Uuid>,
    permission_group_id: Option<Uuid>,
    role: Option<Role>,
}

/// Accepts an invitation; the link works once.
///
/// The invitee becomes a member of the org (a user is created if needed) with the invited
/// access.
#[utoipa::path(
    post,
    path = "/invitations/accept",
    tag = "invitations",
    params(TokenParam),
    responses(
        (status = 200, description = "Accepted: the invitee is now a member.", body = Accepted),
        (status = 400, description = "The query string does not parse.", body = ErrorBody),
        (status = 404, description = "No `token`, or not one of ours.", body = ErrorBody),
        (status = 409, description = "Already accepted.", body = ErrorBody),
        (status = 410, description = "Revoked (`invitation_revoked`), expired (`invitation_expired`), or a link a resend replaced (`invitation_replaced`).", body = ErrorBody),
        RateLimited, ServerErrors
    )
)]
async fn accept(
    State(state): State<AppState>,
    token: InvitationToken,
) -> Result<ApiJson<Accepted>, ApiError> {
    let (invitation, user_id) = accept_by_token(&state, &token).await?;
    Ok(ApiJson(Accepted {
        user_id,
        org_id: invitation.org_id,
        product_id: invitation.product_id,
        permission_group_id: invitation.permission_group_id,
        role: invitation.role,
    }))
}

/// Accepts the invitation a link names, once: the accepted invitation and the invitee's user
/// id. The API's accept and the console's invitation page.
pub(crate) async fn accept_by_token(
    state: &AppState,
    token: &InvitationToken,
) -> Result<(Box<Invitation>, Uuid), ApiError> {
    let outcome = match state
        .store
        .accept_invitation(
            &token.hash,
            token.request_id.clone(),
            Some(token.addr.to_string()),
        )
        .await
    {
        Err(crate::store::StoreError::NotFound) => {
            return Err(token.not_found(state).await);
        }
        other => other?,
    };
    match outcome {
        AcceptOutcome::Accepted {
            invitation,
            user_id,
        } => Ok((invitation, user_id)),
        AcceptOutcome::AlreadyAccepted => Err(ApiError::Conflict(
            "this invitation has already been accepted".into(),
        )),
        AcceptOutcome::Revoked => Err(ApiError::Gone(
            "invitation_revoked",
            "this invitation was revoked",
        )),
        AcceptOutcome::Expired => Err(ApiError::Gone(
            "invitation_expired",
            "this invitation has expired: ask for a new one",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_cap_counts_what_the_parser_lists() {
        for raw in [
            "",
            " , ;\n",
            "a@x.test",
            " ana@x.test, ,bob@y.test;ANA@X.test,not-an-email\nélo@ü.test,",
        ] {
            assert_eq!(
                listed_count(raw),
                invitation::parse_address_list(raw).len(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn the_inviter_is_a_person_or_a_named_token_never_a_default_name() {
        let token = |name: &str| Actor::AdminToken {
            id: Uuid::nil(),
            name: name.into(),
        };
        assert_eq!(inviter(&token("Ops team"), "Acme"), "Ops team");
        assert_eq!(
            inviter(&token(&token::default_name(TokenKind::Admin)), "Acme"),
            "An administrator of Acme"
        );
        assert_eq!(inviter(&Actor::Cli, "Acme"), "An administrator of Acme");
    }
}
