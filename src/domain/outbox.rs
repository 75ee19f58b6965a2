//! The mail outbox: a copy of every invitation e-mail and how it went, which an admin lists
//! and, when it was not delivered, retries.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::invitation::{InvitationStatus, SECRET_PREFIX};

/// How an e-mail went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    /// The SMTP relay accepted it.
    Sent,
    /// No relay is configured: written to the log, and kept here with its link.
    Logged,
    /// The relay refused it or could not be reached; `error` says why.
    Failed,
}

impl MailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MailStatus::Sent => "sent",
            MailStatus::Logged => "logged",
            MailStatus::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "sent" => MailStatus::Sent,
            "logged" => MailStatus::Logged,
            "failed" => MailStatus::Failed,
            _ => return None,
        })
    }
}

/// Which mail a list of the outbox shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxFilter {
    /// `failed` and `logged` mail that no retry has superseded: what still needs doing.
    #[default]
    Undelivered,
    Failed,
    Logged,
    Sent,
    /// Every mail, retried or not.
    All,
}

/// One mail of the outbox. `body` is as stored: with SMTP the link is redacted already, in
/// logged mode it is live, so whoever shows it to a client redacts it first
/// ([`redact_links`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The org the mail was sent for (the invitation's); the tenant's root org for mail
    /// recorded before migration 0007.
    pub org_id: Uuid,
    /// The invitation it carried; `None` for mail recorded before migration 0007.
    pub invitation_id: Option<Uuid>,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub status: MailStatus,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When a retry of this mail started, or when a newer mail superseded it.
    pub retried_at: Option<DateTime<Utc>>,
    /// The newer mail of the same invitation that superseded this one: its retry, or the mail
    /// of a resend or of a new invite of the address (each kills this mail's link).
    pub retried_by: Option<Uuid>,
}

/// How long a retry that has started (claimed the mail) but recorded no newer mail keeps others
/// from retrying the same mail. Longer than a send may take (`mail::SEND_DEADLINE`, 30 s), so
/// only a retry that died on the way (the process stopped mid-send) is taken over.
pub const RETRY_CLAIM: Duration = Duration::seconds(120);

/// Why `entry` cannot be retried now, given the status of the invitation it carried; `None`:
/// it can. A retry reissues the invitation (a new link; the old one dies) and sends it again,
/// so it makes sense only for mail that did not arrive, of an invitation that can still be
/// accepted (an expired one gets a new expiry, as a resend gives it).
pub fn retry_refusal(
    entry: &OutboxEntry,
    invitation: Option<InvitationStatus>,
    at: DateTime<Utc>,
) -> Option<String> {
    if let Some(newer) = entry.retried_by {
        return Some(format!(
            "this mail was already retried or resent: mail {newer} is the newer one (its link \
             replaced this one's); retry that one if it was not delivered either"
        ));
    }
    if entry
        .retried_at
        .is_some_and(|started| at - started < RETRY_CLAIM)
    {
        return Some("a retry of this mail is under way; list the outbox again in a minute".into());
    }
    if entry.status == MailStatus::Sent {
        return Some(
            "this mail was delivered (status sent); to send a new link, resend the invitation"
                .into(),
        );
    }
    let Some(invitation) = invitation else {
        return Some(
            "this mail names no invitation (it was recorded before rolegate kept which one it \
             carried): resend the invitation instead"
                .into(),
        );
    };
    match invitation {
        InvitationStatus::Pending | InvitationStatus::Expired => None,
        InvitationStatus::Accepted => Some(
            "the invitation this mail carried has been accepted: there is nothing to send".into(),
        ),
        InvitationStatus::Revoked => Some(
            "the invitation this mail carried was revoked: invite the address again to send a \
             new one"
                .into(),
        ),
    }
}

/// `body` with every invitation secret (`rg_inv_…`) replaced by `[redacted]`, as the outbox
/// stores mail sent through a relay: a link is a credential, and a list of the outbox is no
/// place to hand it out, even in logged mode where the stored copy keeps it.
pub fn redact_links(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find(SECRET_PREFIX) {
        out.push_str(&rest[..start]);
        out.push_str("[redacted]");
        let secret = &rest[start + SECRET_PREFIX.len()..];
        // The secret is URL-safe base64 without padding (`invitation::mint_secret`).
        let end = secret
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(secret.len());
        rest = &secret[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::invitation::mint_secret;

    #[test]
    fn every_invitation_secret_in_a_body_is_redacted_and_nothing_else() {
        let (secret, _) = mint_secret([7; 32]);
        let (other, _) = mint_secret([255; 32]);
        let body = format!(
            "Accept: https://rg.example/api/v1/invitations/accept?token={secret}\n\
             Again: ?token={other}&x=1 and {secret}"
        );
        let redacted = redact_links(&body);
        assert!(!redacted.contains(&secret), "{redacted}");
        assert!(!redacted.contains(&other), "{redacted}");
        assert!(!redacted.contains(SECRET_PREFIX), "{redacted}");
        assert_eq!(
            redacted,
            "Accept: https://rg.example/api/v1/invitations/accept?token=[redacted]\n\
             Again: ?token=[redacted]&x=1 and [redacted]"
        );
        let plain = "no link here, token=[redacted]";
        assert_eq!(redact_links(plain), plain);
    }

    fn entry(status: MailStatus) -> OutboxEntry {
        OutboxEntry {
            id: Uuid::from_u128(1),
            tenant_id: Uuid::from_u128(2),
            org_id: Uuid::from_u128(2),
            invitation_id: Some(Uuid::from_u128(3)),
            recipient: "ada@example.com".into(),
            subject: "s".into(),
            body: "b".into(),
            status,
            error: None,
            created_at: Utc::now(),
            retried_at: None,
            retried_by: None,
        }
    }

    #[test]
    fn undelivered_mail_of_a_live_invitation_can_be_retried_and_nothing_else() {
        let at = Utc::now();
        for status in [MailStatus::Failed, MailStatus::Logged] {
            for invitation in [InvitationStatus::Pending, InvitationStatus::Expired] {
                assert_eq!(retry_refusal(&entry(status), Some(invitation), at), None);
            }
        }
        let pending = Some(InvitationStatus::Pending);
        let refused = |e: &OutboxEntry, i| retry_refusal(e, i, at).unwrap_or_default();
        assert!(refused(&entry(MailStatus::Sent), pending).contains("delivered"));
        let failed = entry(MailStatus::Failed);
        assert!(refused(&failed, Some(InvitationStatus::Accepted)).contains("accepted"));
        assert!(refused(&failed, Some(InvitationStatus::Revoked)).contains("revoked"));
        assert!(refused(&failed, None).contains("resend the invitation"));

        let mut retried = entry(MailStatus::Failed);
        retried.retried_at = Some(at);
        retried.retried_by = Some(Uuid::from_u128(9));
        assert!(refused(&retried, pending).contains(&Uuid::from_u128(9).to_string()));
        // Started but never recorded: refused while it may still be sending, then taken over.
        retried.retried_by = None;
        assert!(refused(&retried, pending).contains("under way"));
        retried.retried_at = Some(at - RETRY_CLAIM);
        assert_eq!(retry_refusal(&retried, pending, at), None);
    }
}
