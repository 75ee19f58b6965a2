//! Sessions: started at sign-in, found by their id's hash before the tenant is known, ended
//! for good. Every start and end is a write like any other — audited, and an invalidation
//! naming the user, which is how a cached session check on every instance learns of it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::db::{Conn, Ctx, WriteTx, load_in_tenant, sql};
use super::{SqlStore, StoreError};
use crate::domain::audit::{Actor, AuditRecord};
use crate::domain::now;
use crate::domain::secret::Sealed;
use crate::domain::session::{EndReason, Session, SignInMethod};
use crate::domain::user::User;

/// A session to start.
#[derive(Debug, Clone)]
pub struct NewSessionRow {
    pub user_id: Uuid,
    pub method: SignInMethod,
    pub secret_hash: [u8; 32],
    pub user_agent: Option<String>,
    pub idle_expires_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The session the browser carried, if any: it ends as this one starts (rotation).
    pub replaces: Option<[u8; 32]>,
    /// The provider's ID token, sealed with the session's secret hash as context: the
    /// `id_token_hint` of an RP-initiated logout.
    pub id_token_hint: Option<Sealed>,
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartRefused {
    #[error("no such user")]
    NoUser,
    #[error("the user is deactivated")]
    Inactive,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait SessionStore {
    /// Starts a session for an active user, ending the one it replaces, in one transaction
    /// audited as the user (`request_id` and `client_addr` from the request).
    async fn start_session(
        &self,
        request_id: Option<String>,
        client_addr: Option<String>,
        new: NewSessionRow,
    ) -> Result<(Session, User), StartRefused>;
    /// The session whose id hashes to this, in any tenant (the cookie is the credential), and
    /// whether its user is active.
    async fn session_by_hash(
        &self,
        secret_hash: &[u8; 32],
    ) -> Result<Option<(Session, bool)>, StoreError>;
    /// The tenant's session with this public id (a session token's `sid`), and whether its user
    /// is active.
    async fn session_by_id(
        &self,
        tenant_id: Uuid,
        session_id: Uuid,
    ) -> Result<Option<(Session, bool)>, StoreError>;
    /// The sealed ID token a live session of the tenant keeps for RP-initiated logout.
    async fn id_token_hint(
        &self,
        tenant_id: Uuid,
        session_id: Uuid,
    ) -> Result<Option<Sealed>, StoreError>;
    /// Records use of a live session. Not audited, not an invalidation: bookkeeping.
    async fn touch_session(
        &self,
        session_id: Uuid,
        at: DateTime<Utc>,
        idle_expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Ends one session of the tenant (only if it is `user_id`'s, when given). Ending an ended
    /// session changes nothing.
    async fn end_session(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        session_id: Uuid,
        user_id: Option<Uuid>,
        reason: EndReason,
    ) -> Result<Session, StoreError>;
    /// Ends every live session of a user; returns how many.
    async fn end_user_sessions(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        user_id: Uuid,
        reason: EndReason,
    ) -> Result<u64, StoreError>;
    /// Ends the live OIDC sessions begun through `connection_id` with `issuer` matching
    /// `subject` and/or `sid` (at least one is given); returns how many.
    async fn end_oidc_sessions(
        &self,
        ctx: &Ctx,
        connection_id: Uuid,
        issuer: &str,
        subject: Option<&str>,
        sid: Option<&str>,
    ) -> Result<u64, StoreError>;
    /// A user's live sessions (not ended, not past their absolute expiry), newest first.
    async fn list_sessions(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<Session>, StoreError>;
    /// Users of any tenant who may be sent an e-mail sign-in link for `email` (matched on
    /// e-mail or userName, case-insensitively): active, a member somewhere, and no org of
    /// theirs (or above it) requiring SSO. Each with the org the link is for (their first
    /// membership's).
    async fn email_sign_in_candidates(
        &self,
        email: &str,
    ) -> Result<Vec<SignInCandidate>, StoreError>;
    /// Whether an org of the user's (or one above it) requires SSO.
    async fn sso_required_for(&self, tenant_id: Uuid, user_id: Uuid) -> Result<bool, StoreError>;
    /// Stores a one-time sign-in link (its secret's hash), audited.
    async fn create_sign_in_link(
        &self,
        ctx: &Ctx,
        link: &SignInLink,
        secret_hash: &[u8; 32],
    ) -> Result<(), StoreError>;
    /// The link whose secret hashes to this, used or not, in any tenant.
    async fn sign_in_link(&self, secret_hash: &[u8; 32]) -> Result<Option<SignInLink>, StoreError>;
    /// Uses a link once: `None` when it is unknown, used or expired. Audited.
    async fn use_sign_in_link(
        &self,
        request_id: Option<String>,
        secret_hash: &[u8; 32],
    ) -> Result<Option<SignInLink>, StoreError>;
    /// Sets whether the org requires SSO (e-mail sign-in off for its members and those below).
    async fn set_require_sso(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        require_sso: bool,
    ) -> Result<bool, StoreError>;
    async fn require_sso(&self, tenant_id: Uuid, org_id: Uuid) -> Result<bool, StoreError>;
}

/// Someone an e-mail sign-in link may go to.
#[derive(Debug, Clone)]
pub struct SignInCandidate {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub email: String,
}

/// A one-time sign-in link (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignInLink {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub org_id: Uuid,
    /// `email` or `login_link`.
    pub purpose: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

#[derive(FromRow)]
struct SignInLinkRow {
    id: Uuid,
    tenant_id: Uuid,
    user_id: Uuid,
    org_id: Uuid,
    purpose: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
}

impl From<SignInLinkRow> for SignInLink {
    fn from(r: SignInLinkRow) -> Self {
        SignInLink {
            id: r.id,
            tenant_id: r.tenant_id,
            user_id: r.user_id,
            org_id: r.org_id,
            purpose: r.purpose,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
        }
    }
}

#[derive(FromRow)]
struct CandidateRow {
    tenant_id: Uuid,
    user_id: Uuid,
    email: Option<String>,
    user_name: String,
}

#[derive(FromRow)]
struct OrgSsoRow {
    id: Uuid,
    parent_id: Option<Uuid>,
    require_sso: bool,
}

#[derive(FromRow)]
struct MemberOrgRow {
    org_id: Uuid,
}

#[derive(FromRow)]
struct RequireSsoRow {
    require_sso: bool,
}

/// The user's membership orgs, first first, and whether one of them or an org above requires
/// SSO.
fn sso_standing(conn_orgs: Vec<OrgSsoRow>, member_of: &[Uuid]) -> bool {
    let orgs: std::collections::HashMap<Uuid, &OrgSsoRow> =
        conn_orgs.iter().map(|o| (o.id, o)).collect();
    member_of.iter().any(|start| {
        let mut at = orgs.get(start).copied();
        // The tree has no cycles (a CHECK and the parent rule); the bound is a guard.
        for _ in 0..orgs.len() {
            match at {
                Some(org) if org.require_sso => return true,
                Some(org) => at = org.parent_id.and_then(|p| orgs.get(&p).copied()),
                None => break,
            }
        }
        false
    })
}

macro_rules! session_columns {
    () => {
        "id, tenant_id, user_id, method, oidc_connection_id, oidc_issuer, oidc_subject, \
         oidc_sid, user_agent, client_addr, created_at, last_seen_at, idle_expires_at, \
         expires_at, ended_at, end_reason"
    };
}

#[derive(FromRow)]
struct SessionRow {
    id: Uuid,
    tenant_id: Uuid,
    user_id: Uuid,
    method: String,
    oidc_connection_id: Option<Uuid>,
    oidc_issuer: Option<String>,
    oidc_subject: Option<String>,
    oidc_sid: Option<String>,
    user_agent: Option<String>,
    client_addr: Option<String>,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    idle_expires_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    end_reason: Option<String>,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            id: r.id,
            tenant_id: r.tenant_id,
            user_id: r.user_id,
            method: r.method,
            oidc_connection_id: r.oidc_connection_id,
            oidc_issuer: r.oidc_issuer,
            oidc_subject: r.oidc_subject,
            oidc_sid: r.oidc_sid,
            user_agent: r.user_agent,
            client_addr: r.client_addr,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            idle_expires_at: r.idle_expires_at,
            expires_at: r.expires_at,
            ended_at: r.ended_at,
            end_reason: r.end_reason,
        }
    }
}

#[derive(FromRow)]
struct SessionWithUserRow {
    #[sqlx(flatten)]
    session: SessionRow,
    user_active: bool,
}

#[derive(FromRow)]
struct HintRow {
    oidc_id_token_key: Option<String>,
    oidc_id_token: Option<Vec<u8>>,
}

#[derive(FromRow)]
struct UserTenantRow {
    tenant_id: Uuid,
}

#[derive(FromRow)]
struct EndedRow {
    id: Uuid,
    tenant_id: Uuid,
    user_id: Uuid,
}

/// Ends `user_id`'s live sessions inside a write already open (SCIM deactivation and deletion,
/// membership removal): one audit record per user, and the invalidation names the user.
pub(crate) async fn end_sessions_in(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    user_id: Uuid,
    reason: EndReason,
) -> Result<u64, StoreError> {
    let ended = sql("UPDATE sessions SET ended_at = $1, end_reason = $2, \
         oidc_id_token_key = NULL, oidc_id_token = NULL \
         WHERE tenant_id = $3 AND user_id = $4 AND ended_at IS NULL")
    .bind(now())
    .bind(reason.as_str())
    .bind(tenant_id)
    .bind(user_id)
    .execute(tx.conn())
    .await?;
    if ended > 0 {
        tx.audit(
            AuditRecord::new("session.end", "user", user_id)
                .after(serde_json::json!({ "sessions": ended, "reason": reason })),
        );
    }
    tx.invalidate_user(user_id);
    Ok(ended)
}

async fn end_one(
    tx: &mut WriteTx,
    session: &Session,
    reason: EndReason,
) -> Result<Session, StoreError> {
    let at = now();
    sql(
        "UPDATE sessions SET ended_at = $1, end_reason = $2, oidc_id_token_key = NULL, \
         oidc_id_token = NULL WHERE id = $3 AND ended_at IS NULL",
    )
    .bind(at)
    .bind(reason.as_str())
    .bind(session.id)
    .execute(tx.conn())
    .await?;
    let ended = Session {
        ended_at: Some(at),
        end_reason: Some(reason.as_str().to_owned()),
        ..session.clone()
    };
    tx.audit(
        AuditRecord::new("session.end", "session", session.id)
            .before(session)
            .after(&ended),
    );
    tx.invalidate_user(session.user_id);
    Ok(ended)
}

async fn session_in(
    conn: Conn<'_>,
    tenant_id: Uuid,
    session_id: Uuid,
) -> Result<Session, StoreError> {
    Ok(sql(concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(session_id)
    .bind(tenant_id)
    .fetch_one::<SessionRow>(conn)
    .await?
    .into())
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn start_session(
        &self,
        request_id: Option<String>,
        client_addr: Option<String>,
        new: NewSessionRow,
    ) -> Result<(Session, User), StartRefused> {
        let tenant_id = {
            let mut h = self.db.read().await?;
            sql("SELECT tenant_id FROM users WHERE id = $1")
                .bind(new.user_id)
                .fetch_optional::<UserTenantRow>(h.conn())
                .await?
                .ok_or(StartRefused::NoUser)?
                .tenant_id
        };
        // The actor is the user: known only once read, so the write opens under a provisional
        // context that the read then names.
        let user: User = {
            let mut h = self.db.read().await?;
            load_in_tenant(h.conn(), tenant_id, new.user_id).await?
        };
        let ctx = Ctx::new(Actor::User {
            id: user.id,
            email: user.email.clone().unwrap_or_else(|| user.user_name.clone()),
        })
        .with_request_id(request_id)
        .with_client_addr(client_addr.clone());
        let mut tx = self.db.begin_write(&ctx, tenant_id).await?;
        // Read again inside the write: a deactivation that committed meanwhile wins.
        let user: User = load_in_tenant(tx.conn(), tenant_id, new.user_id).await?;
        if !user.active {
            return Err(StartRefused::Inactive);
        }
        if let Some(old) = new.replaces {
            let replaced = sql(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE secret_hash = $1 AND ended_at IS NULL"
            ))
            .bind(old.as_slice())
            .fetch_optional::<SessionRow>(tx.conn())
            .await?;
            // Another tenant's session in the same browser ends too, but is audited (and
            // invalidated) in its own tenant: this write belongs to the new one's.
            match replaced.map(Session::from) {
                Some(s) if s.tenant_id == tenant_id => {
                    end_one(&mut tx, &s, EndReason::Rotated).await?;
                }
                Some(s) => {
                    drop(tx);
                    self.end_session(&ctx, s.tenant_id, s.id, None, EndReason::Rotated)
                        .await?;
                    tx = self.db.begin_write(&ctx, tenant_id).await?;
                }
                None => {}
            }
        }
        let at = now();
        let (connection_id, issuer, subject, sid) = match &new.method {
            SignInMethod::Oidc {
                connection_id,
                issuer,
                subject,
                sid,
            } => (
                Some(*connection_id),
                Some(issuer.clone()),
                Some(subject.clone()),
                sid.clone(),
            ),
            _ => (None, None, None, None),
        };
        let session = Session {
            id: Uuid::now_v7(),
            tenant_id,
            user_id: user.id,
            method: new.method.as_str().to_owned(),
            oidc_connection_id: connection_id,
            oidc_issuer: issuer,
            oidc_subject: subject,
            oidc_sid: sid,
            user_agent: new.user_agent,
            client_addr,
            created_at: at,
            last_seen_at: at,
            idle_expires_at: new.idle_expires_at,
            expires_at: new.expires_at,
            ended_at: None,
            end_reason: None,
        };
        sql(
            "INSERT INTO sessions (id, tenant_id, user_id, secret_hash, method, \
             oidc_connection_id, oidc_issuer, oidc_subject, oidc_sid, user_agent, client_addr, \
             created_at, last_seen_at, idle_expires_at, expires_at, oidc_id_token_key, \
             oidc_id_token) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(session.id)
        .bind(tenant_id)
        .bind(user.id)
        .bind(new.secret_hash.as_slice())
        .bind(session.method.as_str())
        .bind(session.oidc_connection_id)
        .bind(session.oidc_issuer.clone())
        .bind(session.oidc_subject.clone())
        .bind(session.oidc_sid.clone())
        .bind(session.user_agent.clone())
        .bind(session.client_addr.clone())
        .bind(at)
        .bind(at)
        .bind(session.idle_expires_at)
        .bind(session.expires_at)
        .bind(new.id_token_hint.as_ref().map(|h| h.key_id.clone()))
        .bind(new.id_token_hint.map(|h| h.bytes))
        .execute(tx.conn())
        .await?;
        tx.audit(AuditRecord::new("session.start", "session", session.id).after(&session));
        tx.invalidate_user(user.id);
        tx.commit().await?;
        Ok((session, user))
    }

    async fn session_by_hash(
        &self,
        secret_hash: &[u8; 32],
    ) -> Result<Option<(Session, bool)>, StoreError> {
        let mut h = self.db.read().await?;
        Ok(sql(
            "SELECT s.id, s.tenant_id, s.user_id, s.method, s.oidc_connection_id, \
             s.oidc_issuer, s.oidc_subject, s.oidc_sid, s.user_agent, s.client_addr, \
             s.created_at, s.last_seen_at, s.idle_expires_at, s.expires_at, s.ended_at, \
             s.end_reason, u.active AS user_active \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_hash = $1",
        )
        .bind(secret_hash.as_slice())
        .fetch_optional::<SessionWithUserRow>(h.conn())
        .await?
        .map(|r| (r.session.into(), r.user_active)))
    }

    async fn session_by_id(
        &self,
        tenant_id: Uuid,
        session_id: Uuid,
    ) -> Result<Option<(Session, bool)>, StoreError> {
        let mut h = self.db.read().await?;
        Ok(sql(
            "SELECT s.id, s.tenant_id, s.user_id, s.method, s.oidc_connection_id, \
             s.oidc_issuer, s.oidc_subject, s.oidc_sid, s.user_agent, s.client_addr, \
             s.created_at, s.last_seen_at, s.idle_expires_at, s.expires_at, s.ended_at, \
             s.end_reason, u.active AS user_active \
             FROM sessions s JOIN users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id \
             WHERE s.tenant_id = $1 AND s.id = $2",
        )
        .bind(tenant_id)
        .bind(session_id)
        .fetch_optional::<SessionWithUserRow>(h.conn())
        .await?
        .map(|r| (r.session.into(), r.user_active)))
    }

    async fn id_token_hint(
        &self,
        tenant_id: Uuid,
        session_id: Uuid,
    ) -> Result<Option<Sealed>, StoreError> {
        let mut h = self.db.read().await?;
        let row = sql("SELECT oidc_id_token_key, oidc_id_token FROM sessions \
             WHERE tenant_id = $1 AND id = $2 AND ended_at IS NULL")
        .bind(tenant_id)
        .bind(session_id)
        .fetch_optional::<HintRow>(h.conn())
        .await?;
        Ok(
            row.and_then(|r| match (r.oidc_id_token_key, r.oidc_id_token) {
                (Some(key_id), Some(bytes)) => Some(Sealed { key_id, bytes }),
                _ => None,
            }),
        )
    }

    async fn touch_session(
        &self,
        session_id: Uuid,
        at: DateTime<Utc>,
        idle_expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut h = self.db.read().await?;
        // Never moves the expiry back (another instance may have written a later use), never
        // revives an ended session.
        sql(
            "UPDATE sessions SET last_seen_at = $1, idle_expires_at = $2 \
             WHERE id = $3 AND ended_at IS NULL AND idle_expires_at < $2",
        )
        .bind(at)
        .bind(idle_expires_at)
        .bind(session_id)
        .execute(h.conn())
        .await?;
        Ok(())
    }

    async fn end_session(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        session_id: Uuid,
        user_id: Option<Uuid>,
        reason: EndReason,
    ) -> Result<Session, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let session = session_in(tx.conn(), tenant_id, session_id).await?;
        if user_id.is_some_and(|u| u != session.user_id) {
            return Err(StoreError::NotFound);
        }
        if session.ended_at.is_some() {
            return Ok(session);
        }
        let ended = end_one(&mut tx, &session, reason).await?;
        tx.commit().await?;
        Ok(ended)
    }

    async fn end_user_sessions(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        user_id: Uuid,
        reason: EndReason,
    ) -> Result<u64, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let ended = end_sessions_in(&mut tx, tenant_id, user_id, reason).await?;
        if ended == 0 {
            return Ok(0);
        }
        tx.commit().await?;
        Ok(ended)
    }

    async fn end_oidc_sessions(
        &self,
        ctx: &Ctx,
        connection_id: Uuid,
        issuer: &str,
        subject: Option<&str>,
        sid: Option<&str>,
    ) -> Result<u64, StoreError> {
        if subject.is_none() && sid.is_none() {
            return Ok(0);
        }
        let found = {
            let mut h = self.db.read().await?;
            sql("SELECT id, tenant_id, user_id FROM sessions \
                 WHERE oidc_issuer = $1 AND oidc_connection_id = $4 AND ended_at IS NULL \
                 AND ($2 IS NULL OR oidc_subject = $2) AND ($3 IS NULL OR oidc_sid = $3) \
                 ORDER BY tenant_id, id")
            .bind(issuer)
            .bind(subject)
            .bind(sid)
            .bind(connection_id)
            .fetch_all::<EndedRow>(h.conn())
            .await?
        };
        let mut ended = 0;
        let mut by_tenant: std::collections::BTreeMap<Uuid, Vec<&EndedRow>> =
            std::collections::BTreeMap::new();
        for row in &found {
            by_tenant.entry(row.tenant_id).or_default().push(row);
        }
        for (tenant_id, rows) in by_tenant {
            let mut tx = self.db.begin_write(ctx, tenant_id).await?;
            let mut any = false;
            for row in rows {
                let session = session_in(tx.conn(), tenant_id, row.id).await?;
                if session.ended_at.is_none() {
                    debug_assert_eq!(session.user_id, row.user_id);
                    end_one(&mut tx, &session, EndReason::ProviderLogout).await?;
                    ended += 1;
                    any = true;
                }
            }
            if any {
                tx.commit().await?;
            }
        }
        Ok(ended)
    }

    async fn list_sessions(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<Session>, StoreError> {
        let mut h = self.db.read().await?;
        Ok(sql(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND ended_at IS NULL \
             AND expires_at > $3 AND idle_expires_at > $3 ORDER BY id DESC"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .bind(now())
        .fetch_all::<SessionRow>(h.conn())
        .await?
        .into_iter()
        .map(Session::from)
        .collect())
    }

    async fn email_sign_in_candidates(
        &self,
        email: &str,
    ) -> Result<Vec<SignInCandidate>, StoreError> {
        let norm = crate::domain::normalize(email);
        let users = {
            let mut h = self.db.read().await?;
            sql(
                "SELECT tenant_id, id AS user_id, email, user_name FROM users \
                 WHERE (email_norm = $1 OR user_name_norm = $1) AND active ORDER BY id",
            )
            .bind(norm)
            .fetch_all::<CandidateRow>(h.conn())
            .await?
        };
        let mut out = Vec::new();
        for user in users {
            let (member_of, blocked) = self.membership_sso(user.tenant_id, user.user_id).await?;
            if let (Some(org_id), false) = (member_of.first(), blocked) {
                out.push(SignInCandidate {
                    tenant_id: user.tenant_id,
                    user_id: user.user_id,
                    org_id: *org_id,
                    email: user.email.unwrap_or(user.user_name),
                });
            }
        }
        Ok(out)
    }

    async fn sso_required_for(&self, tenant_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
        Ok(self.membership_sso(tenant_id, user_id).await?.1)
    }

    async fn create_sign_in_link(
        &self,
        ctx: &Ctx,
        link: &SignInLink,
        secret_hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, link.tenant_id).await?;
        sql(
            "INSERT INTO sign_in_links (id, tenant_id, user_id, org_id, purpose, secret_hash, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(link.id)
        .bind(link.tenant_id)
        .bind(link.user_id)
        .bind(link.org_id)
        .bind(link.purpose.as_str())
        .bind(secret_hash.as_slice())
        .bind(link.created_at)
        .bind(link.expires_at)
        .execute(tx.conn())
        .await?;
        tx.audit(
            AuditRecord::new("sign_in_link.create", "user", link.user_id)
                .org(link.org_id)
                .after(link),
        );
        tx.commit().await?;
        Ok(())
    }

    async fn sign_in_link(&self, secret_hash: &[u8; 32]) -> Result<Option<SignInLink>, StoreError> {
        let mut h = self.db.read().await?;
        Ok(sql(concat!(
            "SELECT id, tenant_id, user_id, org_id, purpose, created_at, expires_at, used_at",
            " FROM sign_in_links WHERE secret_hash = $1"
        ))
        .bind(secret_hash.as_slice())
        .fetch_optional::<SignInLinkRow>(h.conn())
        .await?
        .map(SignInLink::from))
    }

    async fn use_sign_in_link(
        &self,
        request_id: Option<String>,
        secret_hash: &[u8; 32],
    ) -> Result<Option<SignInLink>, StoreError> {
        let Some(link) = self.sign_in_link(secret_hash).await? else {
            return Ok(None);
        };
        let ctx = Ctx::new(Actor::System).with_request_id(request_id);
        let mut tx = self.db.begin_write(&ctx, link.tenant_id).await?;
        let at = now();
        // One statement decides: of two concurrent uses, one updates the row, the other nothing.
        let used = sql("UPDATE sign_in_links SET used_at = $1 \
                        WHERE id = $2 AND used_at IS NULL AND expires_at > $1")
        .bind(at)
        .bind(link.id)
        .execute(tx.conn())
        .await?;
        if used == 0 {
            return Ok(None);
        }
        let used = SignInLink {
            used_at: Some(at),
            ..link
        };
        tx.audit(
            AuditRecord::new("sign_in_link.use", "user", used.user_id)
                .org(used.org_id)
                .after(&used),
        );
        tx.commit().await?;
        Ok(Some(used))
    }

    async fn set_require_sso(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        require_sso: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let before = sql("SELECT require_sso FROM orgs WHERE id = $1 AND tenant_id = $2")
            .bind(org_id)
            .bind(tenant_id)
            .fetch_one::<RequireSsoRow>(tx.conn())
            .await?
            .require_sso;
        if before == require_sso {
            return Ok(require_sso);
        }
        sql("UPDATE orgs SET require_sso = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(require_sso)
            .bind(org_id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        tx.audit(
            AuditRecord::new("org.set_settings", "org", org_id)
                .org(org_id)
                .before(serde_json::json!({ "require_sso": before }))
                .after(serde_json::json!({ "require_sso": require_sso })),
        );
        tx.commit().await?;
        Ok(require_sso)
    }

    async fn require_sso(&self, tenant_id: Uuid, org_id: Uuid) -> Result<bool, StoreError> {
        let mut h = self.db.read().await?;
        Ok(
            sql("SELECT require_sso FROM orgs WHERE id = $1 AND tenant_id = $2")
                .bind(org_id)
                .bind(tenant_id)
                .fetch_one::<RequireSsoRow>(h.conn())
                .await?
                .require_sso,
        )
    }
}

impl SqlStore {
    /// The user's membership orgs (oldest first), and whether SSO is required for them.
    async fn membership_sso(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<(Vec<Uuid>, bool), StoreError> {
        let mut h = self.db.read().await?;
        let member_of: Vec<Uuid> = sql(
            "SELECT org_id FROM memberships WHERE tenant_id = $1 AND user_id = $2 \
             ORDER BY created_at, org_id",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all::<MemberOrgRow>(h.conn())
        .await?
        .into_iter()
        .map(|r| r.org_id)
        .collect();
        let orgs = sql("SELECT id, parent_id, require_sso FROM orgs WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_all::<OrgSsoRow>(h.conn())
            .await?;
        let blocked = sso_standing(orgs, &member_of);
        Ok((member_of, blocked))
    }
}
