//! Invitations: pending → accepted | revoked (expired is derived), resend with a new token,
//! single-use acceptance; plus the mail outbox.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

use super::db::{
    Ctx, IdRow, OrgLock, SqlBuilder, TenantResource, WriteTx, load_in_tenant,
    load_in_tenant_for_update, lock_org, push_list, sql,
};
use super::team::{OwnerRule, check_owner_rule, ensure_user, insert_grant, tenant_tree};
use super::{SqlStore, StoreError};
use crate::domain::audit::{Actor, AuditRecord};
use crate::domain::invitation::{Invitation, InvitationStatus, status_at};
use crate::domain::org::{self, Org};
use crate::domain::outbox::{self, MailStatus, OutboxEntry, OutboxFilter};
use crate::domain::permission::Role;
use crate::domain::{Source, normalize, now};

/// Where invitations lead: an org, and optionally a product with a group or a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationTarget {
    pub org_id: Uuid,
    pub product_id: Option<Uuid>,
    pub permission_group_id: Option<Uuid>,
    pub role: Option<Role>,
    pub expires_at: DateTime<Utc>,
}

/// One address to invite, with the hash of its fresh link secret.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub email: String,
    pub token_hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteOutcome {
    Invited(Invitation),
    /// A pending invitation existed: it got the new token (the old link died).
    Resent(Invitation),
    /// Already a direct member of the org: nothing to send.
    AlreadyMember {
        user_id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    Accepted {
        invitation: Box<Invitation>,
        user_id: Uuid,
    },
    AlreadyAccepted,
    Revoked,
    Expired,
}

/// A copy of an e-mail for the outbox.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    /// The org it is sent for: whose admins see it in the outbox.
    pub org_id: Uuid,
    /// The invitation it carries.
    pub invitation_id: Option<Uuid>,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub status: MailStatus,
    pub error: Option<String>,
    /// The outbox mail this one retries (claimed by [`InvitationStore::retry_mail`]), for the
    /// audit log. Recording any mail of an invitation marks the invitation's earlier mail as
    /// superseded by it (`retried_by`), a retried one included.
    pub retry_of: Option<Uuid>,
}

/// A page of the outbox: `org_id`'s mail and that of the orgs below it, newest first.
#[derive(Debug, Clone)]
pub struct OutboxQuery {
    pub org_id: Uuid,
    pub filter: OutboxFilter,
    /// Only mail older than this one (the `next` of the page before).
    pub before: Option<Uuid>,
    pub limit: u32,
}

#[async_trait]
pub trait InvitationStore {
    /// Invites each address (or re-sends a pending invitation with the new token). With
    /// `hourly_cap`, refuses the whole request (`InvitationQuota`) if its e-mails would take the
    /// org past that many sent (new and resent) in the last hour.
    async fn invite(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        target: &InvitationTarget,
        entries: &[NewInvitation],
        hourly_cap: Option<u32>,
    ) -> Result<Vec<(String, InviteOutcome)>, StoreError>;
    async fn list_invitations(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<Invitation>, StoreError>;
    async fn get_invitation(&self, tenant_id: Uuid, id: Uuid) -> Result<Invitation, StoreError>;
    /// A new token for a pending (or expired) invitation; the old link dies. `hourly_cap` as
    /// for [`InvitationStore::invite`].
    async fn reissue_invitation(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
        token_hash: &[u8; 32],
        expires_at: DateTime<Utc>,
        hourly_cap: Option<u32>,
    ) -> Result<Invitation, StoreError>;
    /// Revokes a pending invitation; revoking a revoked one changes nothing.
    async fn revoke_invitation(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Invitation, StoreError>;
    /// Finds an invitation by its link's secret hash, in any tenant: the link is the credential.
    async fn invitation_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<Invitation>, StoreError>;
    /// Whether this link was an invitation's until a resend replaced it (in any tenant: like
    /// `invitation_by_token`, it is asked before the tenant is known).
    async fn link_replaced(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError>;
    /// Accepts once: makes (or joins) the user, the membership and the invited group.
    /// `request_id` and `client_addr` are the request's, for the audit log.
    async fn accept_invitation(
        &self,
        token_hash: &[u8; 32],
        request_id: Option<String>,
        client_addr: Option<String>,
    ) -> Result<AcceptOutcome, StoreError>;
    /// Keeps a copy of an e-mail in the outbox (audited as sent, logged or failed) → its id.
    async fn record_mail(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        mail: &OutboxMail,
    ) -> Result<Uuid, StoreError>;
    /// A page of the outbox: mail of `q.org_id` and the orgs below it.
    async fn list_outbox(
        &self,
        tenant_id: Uuid,
        q: &OutboxQuery,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    async fn get_mail(&self, tenant_id: Uuid, id: Uuid) -> Result<OutboxEntry, StoreError>;
    /// Starts a retry of an undelivered invitation mail: claims the mail (a second retry is
    /// refused until this one records its mail) and reissues its invitation as
    /// [`InvitationStore::reissue_invitation`] does (a new token, the old link dies, counted
    /// against `hourly_cap`). A mail that cannot be retried is a `Rule` naming why
    /// (`outbox::retry_refusal`). The caller sends the new link and records that mail with
    /// `retry_of`.
    async fn retry_mail(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        mail_id: Uuid,
        token_hash: &[u8; 32],
        expires_at: DateTime<Utc>,
        hourly_cap: Option<u32>,
    ) -> Result<Invitation, StoreError>;
}

macro_rules! outbox_columns {
    () => {
        "id, tenant_id, org_id, invitation_id, recipient, subject, body, status, error, \
         created_at, retried_at, retried_by"
    };
}

#[derive(FromRow)]
pub(crate) struct OutboxRow {
    id: Uuid,
    tenant_id: Uuid,
    org_id: Uuid,
    invitation_id: Option<Uuid>,
    recipient: String,
    subject: String,
    body: String,
    status: String,
    error: Option<String>,
    created_at: DateTime<Utc>,
    retried_at: Option<DateTime<Utc>>,
    retried_by: Option<Uuid>,
}

impl TenantResource for OutboxEntry {
    type Row = OutboxRow;
    const FROM: &'static str = "outbox";
    const COLUMNS: &'static str = outbox_columns!();
    fn from_row(row: OutboxRow) -> Result<Self, StoreError> {
        Ok(OutboxEntry {
            status: MailStatus::parse(&row.status)
                .ok_or_else(|| StoreError::Other(format!("unknown mail status {}", row.status)))?,
            id: row.id,
            tenant_id: row.tenant_id,
            org_id: row.org_id,
            invitation_id: row.invitation_id,
            recipient: row.recipient,
            subject: row.subject,
            body: row.body,
            error: row.error,
            created_at: row.created_at,
            retried_at: row.retried_at,
            retried_by: row.retried_by,
        })
    }
}

macro_rules! invitation_columns {
    () => {
        "id, tenant_id, org_id, product_id, permission_group_id, role, email, status, expires_at, \
         invited_by, sent_count, last_sent_at, accepted_at, accepted_user_id, created_at"
    };
}

#[derive(FromRow)]
pub(crate) struct InvitationRow {
    id: Uuid,
    tenant_id: Uuid,
    org_id: Uuid,
    product_id: Option<Uuid>,
    permission_group_id: Option<Uuid>,
    role: Option<String>,
    email: String,
    status: String,
    expires_at: DateTime<Utc>,
    invited_by: Option<String>,
    sent_count: i64,
    last_sent_at: Option<DateTime<Utc>>,
    accepted_at: Option<DateTime<Utc>>,
    accepted_user_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

impl InvitationRow {
    fn into_invitation(self, at: DateTime<Utc>) -> Result<Invitation, StoreError> {
        Ok(Invitation {
            status: status_at(&self.status, self.expires_at, at).ok_or_else(|| {
                StoreError::Other(format!("unknown invitation status {}", self.status))
            })?,
            id: self.id,
            tenant_id: self.tenant_id,
            org_id: self.org_id,
            product_id: self.product_id,
            permission_group_id: self.permission_group_id,
            role: self.role.as_deref().and_then(Role::parse),
            email: self.email,
            expires_at: self.expires_at,
            invited_by: self.invited_by,
            sent_count: self.sent_count,
            last_sent_at: self.last_sent_at,
            accepted_at: self.accepted_at,
            accepted_user_id: self.accepted_user_id,
            created_at: self.created_at,
        })
    }
}

impl TenantResource for Invitation {
    type Row = InvitationRow;
    const FROM: &'static str = "invitations";
    const COLUMNS: &'static str = invitation_columns!();
    fn from_row(row: InvitationRow) -> Result<Self, StoreError> {
        row.into_invitation(now())
    }
}

async fn replace_token(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    id: Uuid,
    token_hash: &[u8; 32],
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = now();
    sql(
        "INSERT INTO replaced_invitation_links (token_hash, tenant_id, invitation_id, replaced_at) \
         SELECT token_hash, tenant_id, id, $1 FROM invitations WHERE id = $2 AND tenant_id = $3",
    )
    .bind(at)
    .bind(id)
    .bind(tenant_id)
    .execute(tx.conn())
    .await?;
    sql("UPDATE invitations SET token_hash = $1, expires_at = $2, sent_count = sent_count + 1, last_sent_at = $3, \
         updated_at = $3 WHERE id = $4 AND tenant_id = $5")
    .bind(token_hash.as_slice())
    .bind(expires_at)
    .bind(at)
    .bind(id)
    .bind(tenant_id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The org's invitation e-mails of the last hour against a cap, counted in the database so the
/// cap holds across instances, under an org-wide lock so concurrent requests cannot both pass.
struct SendQuota {
    cap: u32,
    used: u64,
    oldest: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
}

impl SendQuota {
    async fn load(
        tx: &mut WriteTx,
        tenant_id: Uuid,
        org_id: Uuid,
        cap: u32,
    ) -> Result<Self, StoreError> {
        lock_org(tx, OrgLock::InvitationSends, org_id).await?;
        let at = now();
        let since = at - Duration::hours(1);
        #[derive(FromRow)]
        struct Sent {
            n: i64,
            oldest: Option<DateTime<Utc>>,
        }
        // Every send is an audited event (`invitation.create`, `invitation.resend`), and audit ids
        // are UUIDv7, so "the last hour" is a range of the `(tenant_id, id)` index. The
        // invitations table cannot count them: it keeps only each invitation's latest send, so
        // an invitation resent over and over would count once.
        let sent = sql(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM audit_events \
             WHERE tenant_id = $1 AND id >= $2 AND created_at >= $3 AND org_id = $4 \
             AND action IN ('invitation.create', 'invitation.resend')",
        )
        .bind(tenant_id)
        .bind(first_id_at(since))
        .bind(since)
        .bind(org_id)
        .fetch_one::<Sent>(tx.conn())
        .await?;
        Ok(SendQuota {
            cap,
            used: u64::try_from(sent.n).unwrap_or(0),
            oldest: sent.oldest,
            at,
        })
    }

    /// Counts one more e-mail, or refuses it: the whole request then rolls back.
    fn take(&mut self) -> Result<(), StoreError> {
        if self.used >= u64::from(self.cap) {
            // When the oldest counted send leaves the window; a request larger than the whole
            // cap gets the full hour.
            let retry_after_secs = self
                .oldest
                .map_or(3600, |o| (o + Duration::hours(1) - self.at).num_seconds())
                .clamp(1, 3600);
            return Err(StoreError::InvitationQuota {
                limit: self.cap,
                retry_after_secs: u64::try_from(retry_after_secs).unwrap_or(3600),
            });
        }
        self.used += 1;
        Ok(())
    }
}

/// A new token for a pending (or expired) invitation, in `tx`: the old link dies, the send is
/// counted against `hourly_cap` and audited as `invitation.resend` (which the cap counts). The
/// one path of a resend, an invite of a pending address aside, and of an outbox retry.
async fn reissue(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    id: Uuid,
    token_hash: &[u8; 32],
    expires_at: DateTime<Utc>,
    hourly_cap: Option<u32>,
) -> Result<Invitation, StoreError> {
    let current = load_in_tenant::<Invitation>(tx.conn(), tenant_id, id).await?;
    if !matches!(
        current.status,
        InvitationStatus::Pending | InvitationStatus::Expired
    ) {
        return Err(StoreError::Rule(
            format!(
                "only a pending invitation can be resent (this one is {:?})",
                current.status
            )
            .to_lowercase(),
        ));
    }
    if let Some(cap) = hourly_cap {
        SendQuota::load(tx, tenant_id, current.org_id, cap)
            .await?
            .take()?;
    }
    replace_token(tx, tenant_id, id, token_hash, expires_at).await?;
    tx.audit(AuditRecord::new("invitation.resend", "invitation", id).org(current.org_id));
    load_in_tenant::<Invitation>(tx.conn(), tenant_id, id).await
}

/// The smallest UUIDv7 of the millisecond `at` (random bits zero): ids at or after it were made
/// at or after `at`.
fn first_id_at(at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &[0; 10]).into_uuid()
}

#[async_trait]
impl InvitationStore for SqlStore {
    async fn invite(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        target: &InvitationTarget,
        entries: &[NewInvitation],
        hourly_cap: Option<u32>,
    ) -> Result<Vec<(String, InviteOutcome)>, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        load_in_tenant::<Org>(tx.conn(), tenant_id, target.org_id).await?;
        let mut quota = match hourly_cap {
            Some(cap) => Some(SendQuota::load(&mut tx, tenant_id, target.org_id, cap).await?),
            None => None,
        };
        let at = now();
        let mut results = Vec::new();
        for entry in entries {
            let norm = normalize(&entry.email);
            #[derive(FromRow)]
            struct Direct {
                user_id: Uuid,
            }
            let member = sql(
                "SELECT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id \
                 AND u.tenant_id = m.tenant_id WHERE m.tenant_id = $1 AND m.org_id = $2 \
                 AND (u.email_norm = $3 OR u.user_name_norm = $3)",
            )
            .bind(tenant_id)
            .bind(target.org_id)
            .bind(norm.as_str())
            .fetch_optional::<Direct>(tx.conn())
            .await?;
            if let Some(Direct { user_id }) = member {
                results.push((
                    entry.email.clone(),
                    InviteOutcome::AlreadyMember { user_id },
                ));
                continue;
            }
            #[derive(FromRow)]
            struct Pending {
                id: Uuid,
            }
            let pending = sql("SELECT id FROM invitations WHERE tenant_id = $1 AND org_id = $2 AND email_norm = $3 \
                               AND status = 'pending'")
                .bind(tenant_id)
                .bind(target.org_id)
                .bind(norm.as_str())
                .fetch_optional::<Pending>(tx.conn())
                .await?;
            if let Some(quota) = quota.as_mut() {
                quota.take()?;
            }
            if let Some(Pending { id }) = pending {
                // Inviting again re-sends: a new link, and the old one dies.
                replace_token(&mut tx, tenant_id, id, &entry.token_hash, target.expires_at).await?;
                tx.audit(
                    AuditRecord::new("invitation.resend", "invitation", id).org(target.org_id),
                );
                results.push((
                    entry.email.clone(),
                    InviteOutcome::Resent(
                        load_in_tenant::<Invitation>(tx.conn(), tenant_id, id).await?,
                    ),
                ));
                continue;
            }
            let id = Uuid::now_v7();
            sql("INSERT INTO invitations (id, tenant_id, org_id, product_id, permission_group_id, role, email, email_norm, \
                 token_hash, status, expires_at, invited_by, sent_count, last_sent_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, 1, $12, $12, $12)")
            .bind(id)
            .bind(tenant_id)
            .bind(target.org_id)
            .bind(target.product_id)
            .bind(target.permission_group_id)
            .bind(target.role.map(Role::as_str))
            .bind(entry.email.as_str())
            .bind(norm.as_str())
            .bind(entry.token_hash.as_slice())
            .bind(target.expires_at)
            .bind(ctx.actor.name())
            .bind(at)
            .execute(tx.conn())
            .await?;
            let invitation = load_in_tenant::<Invitation>(tx.conn(), tenant_id, id).await?;
            tx.audit(
                AuditRecord::new("invitation.create", "invitation", id)
                    .org(target.org_id)
                    .after(&invitation)
                    .product_opt(target.product_id),
            );
            results.push((entry.email.clone(), InviteOutcome::Invited(invitation)));
        }
        if tx.has_audit() {
            tx.commit().await?;
        }
        Ok(results)
    }

    async fn list_invitations(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<Invitation>, StoreError> {
        let mut h = self.db.read().await?;
        load_in_tenant::<Org>(h.conn(), tenant_id, org_id).await?;
        let at = now();
        sql(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM invitations WHERE tenant_id = $1 AND org_id = $2 ORDER BY id"
        ))
        .bind(tenant_id)
        .bind(org_id)
        .fetch_all::<InvitationRow>(h.conn())
        .await?
        .into_iter()
        .map(|r| r.into_invitation(at))
        .collect()
    }

    async fn get_invitation(&self, tenant_id: Uuid, id: Uuid) -> Result<Invitation, StoreError> {
        let mut h = self.db.read().await?;
        load_in_tenant::<Invitation>(h.conn(), tenant_id, id).await
    }

    async fn reissue_invitation(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
        token_hash: &[u8; 32],
        expires_at: DateTime<Utc>,
        hourly_cap: Option<u32>,
    ) -> Result<Invitation, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let updated = reissue(&mut tx, tenant_id, id, token_hash, expires_at, hourly_cap).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn revoke_invitation(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Invitation, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let current = load_in_tenant::<Invitation>(tx.conn(), tenant_id, id).await?;
        match current.status {
            InvitationStatus::Revoked => return Ok(current),
            InvitationStatus::Accepted => {
                return Err(StoreError::Rule(
                    "an accepted invitation cannot be revoked".into(),
                ));
            }
            InvitationStatus::Pending | InvitationStatus::Expired => {}
        }
        sql("UPDATE invitations SET status = 'revoked', updated_at = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(now())
            .bind(id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        tx.audit(
            AuditRecord::new("invitation.revoke", "invitation", id)
                .org(current.org_id)
                .before(&current),
        );
        let revoked = load_in_tenant::<Invitation>(tx.conn(), tenant_id, id).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    async fn invitation_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<Invitation>, StoreError> {
        let mut h = self.db.read().await?;
        sql(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM invitations WHERE token_hash = $1"
        ))
        .bind(token_hash.as_slice())
        .fetch_optional::<InvitationRow>(h.conn())
        .await?
        .map(|r| r.into_invitation(now()))
        .transpose()
    }

    async fn link_replaced(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        let mut h = self.db.read().await?;
        Ok(
            sql("SELECT invitation_id AS id FROM replaced_invitation_links WHERE token_hash = $1")
                .bind(token_hash.as_slice())
                .fetch_optional::<IdRow>(h.conn())
                .await?
                .is_some(),
        )
    }

    async fn accept_invitation(
        &self,
        token_hash: &[u8; 32],
        request_id: Option<String>,
        client_addr: Option<String>,
    ) -> Result<AcceptOutcome, StoreError> {
        let Some(found) = self.invitation_by_token(token_hash).await? else {
            return Err(StoreError::NotFound);
        };
        let ctx = Ctx::new(Actor::Invitee {
            invitation_id: found.id,
            email: found.email.clone(),
        })
        .with_request_id(request_id)
        .with_client_addr(client_addr);
        let mut tx = self.db.begin_write(&ctx, found.tenant_id).await?;
        // Re-read inside the transaction: a concurrent accept or revoke may have won.
        let invitation = load_in_tenant::<Invitation>(tx.conn(), found.tenant_id, found.id).await?;
        match invitation.status {
            InvitationStatus::Accepted => return Ok(AcceptOutcome::AlreadyAccepted),
            InvitationStatus::Revoked => return Ok(AcceptOutcome::Revoked),
            InvitationStatus::Expired => return Ok(AcceptOutcome::Expired),
            InvitationStatus::Pending => {}
        }
        let at = now();
        // The status guard makes the token single-use even against a racing request.
        let claimed = sql(
            "UPDATE invitations SET status = 'accepted', accepted_at = $1, updated_at = $1 \
             WHERE id = $2 AND tenant_id = $3 AND status = 'pending' AND token_hash = $4",
        )
        .bind(at)
        .bind(invitation.id)
        .bind(invitation.tenant_id)
        .bind(token_hash.as_slice())
        .execute(tx.conn())
        .await?;
        if claimed == 0 {
            return Ok(AcceptOutcome::AlreadyAccepted);
        }
        let tenant_id = invitation.tenant_id;
        let user = ensure_user(&mut tx, tenant_id, &invitation.email, Source::Invite).await?;
        sql("UPDATE invitations SET accepted_user_id = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(user.id)
            .bind(invitation.id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        // Role NULL, "inherit": the invitee is a Member here unless an org above makes them
        // more. An explicit 'member' would override an Owner inherited from above and could
        // leave the org without an Owner. An existing membership is left as it is.
        sql("INSERT INTO memberships (tenant_id, org_id, user_id, role, source, created_at, updated_at) \
             VALUES ($1, $2, $3, NULL, 'invite', $4, $4) ON CONFLICT (org_id, user_id) DO NOTHING")
        .bind(tenant_id)
        .bind(invitation.org_id)
        .bind(user.id)
        .bind(at)
        .execute(tx.conn())
        .await?;
        if let Some(product_id) = invitation.product_id {
            if let Some(group) = invitation.permission_group_id {
                insert_grant(
                    &mut tx,
                    tenant_id,
                    invitation.org_id,
                    user.id,
                    "permission_group",
                    Some(product_id),
                    &group.to_string(),
                    None,
                    Source::Invite,
                )
                .await?;
            }
            if let Some(role) = invitation.role {
                insert_grant(
                    &mut tx,
                    tenant_id,
                    invitation.org_id,
                    user.id,
                    "role",
                    Some(product_id),
                    role.as_str(),
                    None,
                    Source::Invite,
                )
                .await?;
            }
        }
        tx.audit(AuditRecord::new("invitation.accept", "invitation", invitation.id)
            .org(invitation.org_id)
            .after(json!({ "user_id": user.id, "permission_group_id": invitation.permission_group_id, "role": invitation.role })).product_opt(invitation.product_id));
        tx.invalidate_user(user.id);
        // Enforced, not warned: joining never needs to take an Owner away, so a breach here is a
        // bug, not IdP offboarding that must win. Refusing rolls the acceptance back, and the
        // link stays usable once an admin has fixed what was wrong.
        check_owner_rule(&mut tx, tenant_id, invitation.org_id, OwnerRule::Enforce).await?;
        let accepted = load_in_tenant::<Invitation>(tx.conn(), tenant_id, invitation.id).await?;
        tx.commit().await?;
        Ok(AcceptOutcome::Accepted {
            invitation: Box::new(accepted),
            user_id: user.id,
        })
    }

    async fn record_mail(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        mail: &OutboxMail,
    ) -> Result<Uuid, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let id = Uuid::now_v7();
        let at = now();
        sql("INSERT INTO outbox (id, tenant_id, org_id, invitation_id, recipient, subject, body, status, \
             error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(id)
        .bind(tenant_id)
        .bind(mail.org_id)
        .bind(mail.invitation_id)
        .bind(mail.recipient.as_str())
        .bind(mail.subject.as_str())
        .bind(mail.body.as_str())
        .bind(mail.status.as_str())
        .bind(mail.error.clone())
        .bind(at)
        .execute(tx.conn())
        .await?;
        if let Some(invitation_id) = mail.invitation_id {
            // A new mail of an invitation carries its newest link and kills every older one, so
            // it supersedes the invitation's earlier mail — the one it retries, and any a resend
            // or a new invite of the address left undelivered: retrying those would only kill
            // this link in turn.
            sql(
                "UPDATE outbox SET retried_by = $1, retried_at = COALESCE(retried_at, $2) \
                 WHERE tenant_id = $3 AND invitation_id = $4 AND id <> $1 AND retried_by IS NULL",
            )
            .bind(id)
            .bind(at)
            .bind(tenant_id)
            .bind(invitation_id)
            .execute(tx.conn())
            .await?;
        }
        // The body holds a live invitation link: the audit log records that mail went out, not what it said.
        tx.audit(AuditRecord::new("mail.send", "mail", id).org(mail.org_id).after(
            json!({ "to": mail.recipient, "subject": mail.subject, "status": mail.status.as_str(), "error": mail.error, "invitation_id": mail.invitation_id, "retry_of": mail.retry_of }),
        ));
        tx.commit().await?;
        Ok(id)
    }

    async fn list_outbox(
        &self,
        tenant_id: Uuid,
        q: &OutboxQuery,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut h = self.db.read().await?;
        let tree = tenant_tree(h.conn(), tenant_id).await?;
        if !tree.iter().any(|(id, _)| *id == q.org_id) {
            return Err(StoreError::NotFound);
        }
        let mut b = SqlBuilder::new(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox WHERE tenant_id = "
        ));
        b.push_bind(tenant_id);
        // The root org's subtree is the whole tenant: no list of every org to bind.
        if q.org_id != tenant_id {
            b.push(" AND org_id IN (");
            push_list(&mut b, &org::subtree(&tree, &[q.org_id]));
            b.push(")");
        }
        b.push(match q.filter {
            OutboxFilter::Undelivered => {
                " AND status IN ('failed', 'logged') AND retried_by IS NULL"
            }
            OutboxFilter::Failed => " AND status = 'failed'",
            OutboxFilter::Logged => " AND status = 'logged'",
            OutboxFilter::Sent => " AND status = 'sent'",
            OutboxFilter::All => "",
        });
        if let Some(before) = q.before {
            b.push(" AND id < ").push_bind(before);
        }
        // Ids are UUIDv7: by id is by time, newest first.
        b.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(q.limit.clamp(1, 1000)));
        b.build()
            .fetch_all::<OutboxRow>(h.conn())
            .await?
            .into_iter()
            .map(OutboxEntry::from_row)
            .collect()
    }

    async fn get_mail(&self, tenant_id: Uuid, id: Uuid) -> Result<OutboxEntry, StoreError> {
        let mut h = self.db.read().await?;
        load_in_tenant::<OutboxEntry>(h.conn(), tenant_id, id).await
    }

    async fn retry_mail(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        mail_id: Uuid,
        token_hash: &[u8; 32],
        expires_at: DateTime<Utc>,
        hourly_cap: Option<u32>,
    ) -> Result<Invitation, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        // Locked: of two retries of one mail, the second waits and then finds it claimed.
        let mail = load_in_tenant_for_update::<OutboxEntry>(&mut tx, tenant_id, mail_id).await?;
        let invitation = match mail.invitation_id {
            Some(id) => Some(load_in_tenant::<Invitation>(tx.conn(), tenant_id, id).await?),
            None => None,
        };
        let at = now();
        let refusal = outbox::retry_refusal(&mail, invitation.as_ref().map(|i| i.status), at);
        let invitation = match (refusal, invitation) {
            (None, Some(invitation)) => invitation,
            (Some(refusal), _) => return Err(StoreError::Rule(refusal)),
            (None, None) => return Err(StoreError::Rule("this mail names no invitation".into())),
        };
        let reissued = reissue(
            &mut tx,
            tenant_id,
            invitation.id,
            token_hash,
            expires_at,
            hourly_cap,
        )
        .await?;
        sql("UPDATE outbox SET retried_at = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(at)
            .bind(mail_id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        tx.audit(
            AuditRecord::new("mail.retry", "mail", mail_id)
                .org(mail.org_id)
                .before(json!({ "status": mail.status.as_str(), "error": mail.error }))
                .after(json!({ "invitation_id": invitation.id })),
        );
        tx.commit().await?;
        Ok(reissued)
    }
}
