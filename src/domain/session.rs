//! Sessions, pure: how long one lives, what its cookie is called and carries, and what state a
//! stored session is in at a given moment. The store keeps them, `session` (the HTTP edge) sets
//! the cookie.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The cookie's name where it may carry the `__Host-` prefix: the browser then refuses it
/// unless it is `Secure`, has `Path=/` and no `Domain` — so a sibling subdomain cannot plant
/// or shadow it.
pub const HOST_COOKIE: &str = "__Host-rolegate_session";
/// The name for the one-command start on plain `http://` loopback, where `Secure` cookies (and
/// so `__Host-`) would never come back.
pub const PLAIN_COOKIE: &str = "rolegate_session";
/// The double-submit CSRF cookie: readable by the page's scripts (not `HttpOnly`), echoed in
/// `X-CSRF-Token` or a `csrf` form field.
pub const CSRF_COOKIE: &str = "rolegate_csrf";

/// Random bytes in a session id: 256 bits.
pub const SECRET_BYTES: usize = 32;

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Without use for this long, a session ends.
    pub idle: Duration,
    /// Used or not, a session ends this long after sign-in.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle: Duration::hours(8),
            absolute: Duration::days(7),
        }
    }
}

impl SessionPolicy {
    /// When a session started at `created` ends without further use, and at the latest.
    pub fn expiries(&self, created: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let absolute = created + self.absolute;
        ((created + self.idle).min(absolute), absolute)
    }

    /// The idle expiry after use at `now`, never past the absolute one.
    pub fn idle_expiry(&self, now: DateTime<Utc>, absolute: DateTime<Utc>) -> DateTime<Utc> {
        (now + self.idle).min(absolute)
    }

    /// Whether use at `now` should be written down, the last being at `last_seen`: at most once
    /// a minute (a session check stays a cache read), but often enough that a short idle
    /// timeout is honoured within a tenth of it.
    pub fn touch_due(&self, last_seen: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let every = (self.idle / 10).min(Duration::minutes(1));
        now - last_seen >= every
    }
}

/// What the cookie is called and whether it is `Secure`, decided by the public URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieMode {
    /// `__Host-rolegate_session`, `Secure`.
    Host,
    /// `rolegate_session` without `Secure`: only for plain `http://` on a loopback address.
    PlainLoopback,
}

impl CookieMode {
    /// `scheme` and `host` of `ROLEGATE_PUBLIC_URL`. Anything but plain `http://` on a loopback
    /// address gets the `__Host-` cookie, even a plain-http non-loopback URL (a browser will
    /// then not send it back: sign-in fails loudly rather than carry a session in clear text
    /// over a network).
    pub fn for_public_url(scheme: &str, host: Option<&str>) -> Self {
        let loopback = host.is_some_and(|h| {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h.eq_ignore_ascii_case("localhost")
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if scheme.eq_ignore_ascii_case("http") && loopback {
            CookieMode::PlainLoopback
        } else {
            CookieMode::Host
        }
    }

    pub fn session_cookie(self) -> &'static str {
        match self {
            CookieMode::Host => HOST_COOKIE,
            CookieMode::PlainLoopback => PLAIN_COOKIE,
        }
    }

    fn secure(self) -> &'static str {
        match self {
            CookieMode::Host => "; Secure",
            CookieMode::PlainLoopback => "",
        }
    }

    /// The `Set-Cookie` value that gives the browser a session for `max_age`.
    pub fn set_session(self, secret: &str, max_age: Duration) -> String {
        format!(
            "{}={secret}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.session_cookie(),
            max_age.num_seconds().max(0),
            self.secure()
        )
    }

    /// The `Set-Cookie` value that gives the page the CSRF token (scripts read it; see
    /// [`CSRF_COOKIE`]).
    pub fn set_csrf(self, token: &str, max_age: Duration) -> String {
        format!(
            "{CSRF_COOKIE}={token}; Path=/; Max-Age={}; SameSite=Lax{}",
            max_age.num_seconds().max(0),
            self.secure()
        )
    }

    /// The `Set-Cookie` values that make the browser forget both cookies.
    pub fn clear(self) -> [String; 2] {
        [
            format!(
                "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
                self.session_cookie(),
                self.secure()
            ),
            format!(
                "{CSRF_COOKIE}=; Path=/; Max-Age=0; SameSite=Lax{}",
                self.secure()
            ),
        ]
    }
}

/// A fresh session id (shown once, to the browser) and its hash (what is stored).
#[derive(Clone)]
pub struct SessionSecret {
    pub secret: String,
    pub hash: [u8; 32],
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(…)")
    }
}

/// Builds a session id from random bytes (drawn by the caller, so this stays pure).
pub fn mint(random: [u8; SECRET_BYTES]) -> SessionSecret {
    let secret = URL_SAFE_NO_PAD.encode(random);
    let hash = hash_secret(&secret);
    SessionSecret { secret, hash }
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The CSRF token of a session: derived from its id, so nothing more is stored, and useless
/// without the id (which the page's scripts never see: the session cookie is `HttpOnly`).
pub fn csrf_token(secret: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"rolegate csrf v1\0");
    digest.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.finalize())
}

/// Whether a presented CSRF token is the session's (compared in constant time).
pub fn csrf_matches(secret: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    csrf_token(secret)
        .as_bytes()
        .ct_eq(presented.as_bytes())
        .into()
}

/// The value of the cookie named `name` in a `Cookie` header (RFC 6265 §5.4: `name=value`
/// pairs separated by `; `). The first one wins, as browsers send the most specific first.
pub fn cookie_value<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// How a user signed in. OIDC sessions keep what an OpenID Back-Channel Logout names them by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignInMethod {
    Oidc {
        connection_id: Uuid,
        issuer: String,
        subject: String,
        sid: Option<String>,
    },
    EmailLink,
    LoginLink,
    Invitation,
}

impl SignInMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            SignInMethod::Oidc { .. } => "oidc",
            SignInMethod::EmailLink => "email_link",
            SignInMethod::LoginLink => "login_link",
            SignInMethod::Invitation => "invitation",
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The user signed out.
    Logout,
    /// A new sign-in from the same browser replaced it.
    Rotated,
    /// The user ended it from their list.
    EndedByUser,
    /// An administrator ended it.
    EndedByAdmin,
    /// The identity provider ended it (OpenID Back-Channel Logout).
    ProviderLogout,
    /// SCIM deactivated the user.
    UserDeactivated,
    /// SCIM deleted the user.
    UserDeleted,
    /// An administrator removed the user's membership.
    MembershipRemoved,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::Rotated => "rotated",
            EndReason::EndedByUser => "ended_by_user",
            EndReason::EndedByAdmin => "ended_by_admin",
            EndReason::ProviderLogout => "provider_logout",
            EndReason::UserDeactivated => "user_deactivated",
            EndReason::UserDeleted => "user_deleted",
            EndReason::MembershipRemoved => "membership_removed",
        }
    }
}

/// A stored session (never its id's secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Session {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    /// `oidc`, `email_link`, `login_link` or `invitation`.
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_connection_id: Option<Uuid>,
    #[serde(skip)]
    pub oidc_issuer: Option<String>,
    #[serde(skip)]
    pub oidc_subject: Option<String>,
    #[serde(skip)]
    pub oidc_sid: Option<String>,
    pub user_agent: Option<String>,
    pub client_addr: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub idle_expires_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

/// Why a presented session does not let its bearer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRejection {
    Ended,
    IdleExpired,
    Expired,
}

impl SessionRejection {
    pub fn reason(self) -> &'static str {
        match self {
            SessionRejection::Ended => "session ended",
            SessionRejection::IdleExpired => "session expired (idle)",
            SessionRejection::Expired => "session expired",
        }
    }
}

impl Session {
    /// Whether the session lets its bearer in at `now`, its last use known at `idle_expires_at`
    /// (which the cache may know more recently than this row).
    pub fn check(
        &self,
        now: DateTime<Utc>,
        idle_expires_at: DateTime<Utc>,
    ) -> Result<(), SessionRejection> {
        if self.ended_at.is_some() {
            Err(SessionRejection::Ended)
        } else if now >= self.expires_at {
            Err(SessionRejection::Expired)
        } else if now >= idle_expires_at {
            Err(SessionRejection::IdleExpired)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_on_loopback_gets_the_plain_cookie() {
        let mode = |scheme, host| CookieMode::for_public_url(scheme, Some(host));
        assert_eq!(mode("http", "127.0.0.1"), CookieMode::PlainLoopback);
        assert_eq!(mode("http", "127.8.0.1"), CookieMode::PlainLoopback);
        assert_eq!(mode("http", "[::1]"), CookieMode::PlainLoopback);
        assert_eq!(mode("http", "localhost"), CookieMode::PlainLoopback);
        assert_eq!(mode("https", "127.0.0.1"), CookieMode::Host);
        assert_eq!(mode("http", "10.0.0.1"), CookieMode::Host);
        assert_eq!(mode("http", "rolegate.example"), CookieMode::Host);
        assert_eq!(mode("https", "rolegate.example"), CookieMode::Host);
        assert_eq!(CookieMode::for_public_url("http", None), CookieMode::Host);
    }

    #[test]
    fn cookies_carry_the_flags_design_names() {
        let host = CookieMode::Host.set_session("abc", Duration::hours(1));
        assert_eq!(
            host,
            "__Host-rolegate_session=abc; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure"
        );
        let plain = CookieMode::PlainLoopback.set_session("abc", Duration::hours(1));
        assert_eq!(
            plain,
            "rolegate_session=abc; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"
        );
        let csrf = CookieMode::Host.set_csrf("t", Duration::hours(1));
        assert!(!csrf.contains("HttpOnly"), "scripts must read it: {csrf}");
        assert!(csrf.contains("; Secure"));
        for cleared in CookieMode::Host.clear() {
            assert!(cleared.contains("Max-Age=0"), "{cleared}");
        }
    }

    #[test]
    fn the_cookie_header_is_read_by_exact_name() {
        let header = "a=1; rolegate_session=xyz; __Host-rolegate_session=abc";
        assert_eq!(cookie_value(header, HOST_COOKIE), Some("abc"));
        assert_eq!(cookie_value(header, PLAIN_COOKIE), Some("xyz"));
        assert_eq!(cookie_value(header, "b"), None);
        assert_eq!(cookie_value("rolegate_session", PLAIN_COOKIE), None);
    }

    #[test]
    fn secrets_are_stored_as_hashes_and_csrf_tokens_are_bound_to_them() {
        let one = mint([1; 32]);
        let two = mint([2; 32]);
        assert_ne!(one.secret, two.secret);
        assert_eq!(one.hash, hash_secret(&one.secret));
        assert!(csrf_matches(&one.secret, &csrf_token(&one.secret)));
        assert!(!csrf_matches(&one.secret, &csrf_token(&two.secret)));
        assert!(!csrf_matches(&one.secret, ""));
        assert!(!format!("{one:?}").contains(&one.secret));
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let policy = SessionPolicy {
            idle: Duration::hours(8),
            absolute: Duration::hours(10),
        };
        let start = DateTime::<Utc>::UNIX_EPOCH;
        let (idle, absolute) = policy.expiries(start);
        assert_eq!(idle, start + Duration::hours(8));
        assert_eq!(absolute, start + Duration::hours(10));
        assert_eq!(
            policy.idle_expiry(start + Duration::hours(5), absolute),
            absolute,
            "use never extends past the absolute expiry"
        );
        let session = Session {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            user_id: Uuid::nil(),
            method: "email_link".into(),
            oidc_connection_id: None,
            oidc_issuer: None,
            oidc_subject: None,
            oidc_sid: None,
            user_agent: None,
            client_addr: None,
            created_at: start,
            last_seen_at: start,
            idle_expires_at: idle,
            expires_at: absolute,
            ended_at: None,
            end_reason: None,
        };
        assert_eq!(session.check(start, idle), Ok(()));
        assert_eq!(
            session.check(idle, idle),
            Err(SessionRejection::IdleExpired)
        );
        assert_eq!(
            session.check(absolute, absolute + Duration::hours(1)),
            Err(SessionRejection::Expired)
        );
        let ended = Session {
            ended_at: Some(start),
            ..session
        };
        assert_eq!(ended.check(start, idle), Err(SessionRejection::Ended));
    }

    #[test]
    fn use_is_written_at_most_once_a_minute_and_within_a_tenth_of_a_short_idle() {
        let long = SessionPolicy::default();
        let t = DateTime::<Utc>::UNIX_EPOCH;
        assert!(!long.touch_due(t, t + Duration::seconds(59)));
        assert!(long.touch_due(t, t + Duration::seconds(60)));
        let short = SessionPolicy {
            idle: Duration::seconds(2),
            absolute: Duration::seconds(10),
        };
        assert!(short.touch_due(t, t + Duration::milliseconds(200)));
        assert!(!short.touch_due(t, t + Duration::milliseconds(100)));
    }
}
