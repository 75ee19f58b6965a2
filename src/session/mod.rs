//! Browser sessions, the HTTP edge: starting one at sign-in (the cookie, rotated), reading the
//! cookie back, ending sessions. The rules are `domain::session`'s, the rows the store's
//! (`SessionStore`), the cached check `authz::sessions`'.

pub mod routes;
pub mod token;

use axum::http::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::domain::audit::Actor;
pub use crate::domain::session::SignInMethod;
use crate::domain::session::{self, CookieMode, Session};
use crate::request::REQUEST_ID_HEADER;
use crate::state::AppState;
use crate::store::{Ctx, NewSessionRow, StartRefused, StoreError};

/// A session to start for a user who just proved who they are.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: Uuid,
    pub method: SignInMethod,
    /// The provider's ID token (OIDC sign-in), kept sealed for an RP-initiated logout.
    pub id_token: Option<String>,
}

/// Why a session could not start or end.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no such user")]
    NoUser,
    #[error("the user is deactivated")]
    Inactive,
    #[error("no randomness: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<StartRefused> for SessionError {
    fn from(e: StartRefused) -> Self {
        match e {
            StartRefused::NoUser => SessionError::NoUser,
            StartRefused::Inactive => SessionError::Inactive,
            StartRefused::Store(e) => SessionError::Store(e),
        }
    }
}

/// A sign-in page's answer when no session could start: a short page, never a database's
/// words.
impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let (status, text) = match &self {
            SessionError::NoUser | SessionError::Inactive => (
                StatusCode::FORBIDDEN,
                "This account cannot sign in (it is deactivated or no longer exists).",
            ),
            SessionError::Store(StoreError::Unavailable(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable; try again.",
            ),
            SessionError::Random(_) | SessionError::Store(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal error.")
            }
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "session could not start");
        }
        crate::session::page(status, "Sign-in failed", text)
    }
}

/// A session just started: what the response to the sign-in needs.
#[derive(Debug)]
pub struct Started {
    session: Session,
    secret: session::SessionSecret,
    mode: CookieMode,
    max_age: chrono::Duration,
}

impl Started {
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The `Set-Cookie` values: the session and its CSRF token.
    pub fn cookies(&self) -> [String; 2] {
        [
            self.mode.set_session(&self.secret.secret, self.max_age),
            self.mode
                .set_csrf(&session::csrf_token(&self.secret.secret), self.max_age),
        ]
    }

    /// 303 to `path` (a path of this service; anything else goes to `/`) with the session
    /// cookie set.
    pub fn redirect_to(self, path: &str) -> Response {
        let mut response = StatusCode::SEE_OTHER.into_response();
        let headers = response.headers_mut();
        headers.insert(LOCATION, local_location(path));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for cookie in self.cookies() {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(SET_COOKIE, value);
            }
        }
        response
    }
}

/// `path` when it is one of this service's own (`/…`, not `//host…` or `/\host…`, which
/// browsers read as another host), otherwise `/`.
fn local_location(path: &str) -> HeaderValue {
    let own = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(char::is_control);
    let path = if own { path } else { "/" };
    HeaderValue::from_str(path).unwrap_or(HeaderValue::from_static("/"))
}

/// The session id the request's cookies carry, under this service's cookie name.
pub fn presented(headers: &HeaderMap, mode: CookieMode) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie_value(h, mode.session_cookie()))
        .filter(|v| !v.is_empty())
}

/// Creates a session for the user (ending any session the request's cookie carried: rotation at
/// sign-in), records the audit event, and gives what the response needs.
pub async fn start(
    state: &AppState,
    request_headers: &HeaderMap,
    new: NewSession,
) -> Result<Started, SessionError> {
    start_from(state, request_headers, None, new).await
}

/// [`start`], recording the client address (which headers alone do not give).
pub async fn start_from(
    state: &AppState,
    request_headers: &HeaderMap,
    client_addr: Option<std::net::IpAddr>,
    new: NewSession,
) -> Result<Started, SessionError> {
    let mode = state.config.cookie_mode();
    let policy = state.sessions.policy();
    let mut random = [0u8; session::SECRET_BYTES];
    getrandom::fill(&mut random).map_err(|e| SessionError::Random(e.to_string()))?;
    let secret = session::mint(random);
    let replaces = presented(request_headers, mode).map(session::hash_secret);
    let (idle_expires_at, expires_at) = policy.expiries(crate::domain::now());
    // Without a key the token is not kept (never stored in clear): logout then asks the
    // provider without `id_token_hint`, which some providers accept.
    let id_token_hint = new
        .id_token
        .as_deref()
        .filter(|_| !state.keyring.is_empty())
        .and_then(|token| {
            crate::secrets::seal_for(&state.keyring, &secret.hash, token.as_bytes())
                .inspect_err(|error| tracing::warn!(%error, "ID token not kept for logout"))
                .ok()
        });
    let header = |name| {
        request_headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(|v| v.chars().take(256).collect::<String>())
    };
    let (session, _user) = state
        .store
        .start_session(
            header(REQUEST_ID_HEADER),
            client_addr.map(|a| a.to_string()),
            NewSessionRow {
                user_id: new.user_id,
                method: new.method,
                secret_hash: secret.hash,
                user_agent: header(USER_AGENT.as_str()),
                idle_expires_at,
                expires_at,
                replaces,
                id_token_hint,
            },
        )
        .await?;
    if let Some(old) = replaces {
        state.sessions.forget(&old);
    }
    Ok(Started {
        session,
        secret,
        mode,
        max_age: policy.absolute,
    })
}

/// Ends every live session matching an OpenID Back-Channel Logout (iss + sub and/or sid) that
/// began through `connection_id` — the connection the logout token is addressed to, never
/// another (another tenant's, or another org's, on the same provider); returns how many
/// ended. Invalidation reaches every instance.
pub async fn end_by_oidc(
    state: &AppState,
    connection_id: Uuid,
    issuer: &str,
    subject: Option<&str>,
    sid: Option<&str>,
) -> Result<u64, SessionError> {
    let ctx = Ctx::new(Actor::System);
    Ok(state
        .store
        .end_oidc_sessions(&ctx, connection_id, issuer, subject, sid)
        .await?)
}

/// The signed-in user as the audit log names them.
pub async fn actor_of(state: &AppState, session: &Session) -> Result<Actor, SessionError> {
    let user = state
        .store
        .get_user(session.tenant_id, session.user_id)
        .await?
        .user;
    Ok(Actor::User {
        id: user.id,
        email: user.email.unwrap_or(user.user_name),
    })
}

/// Whether the request comes from a page of this service: its `Origin`, or failing that its
/// `Referer`, has the public URL's origin. Neither header: not shown to come from here.
pub fn same_origin(headers: &HeaderMap, public: &url::Url) -> bool {
    let ours = public.origin();
    let named = |name: axum::http::header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| url::Url::parse(v).ok())
            .map(|u| u.origin())
    };
    match named(axum::http::header::ORIGIN).or_else(|| named(axum::http::header::REFERER)) {
        Some(origin) => origin == ours,
        None => false,
    }
}

/// Why a cookie-authenticated write was refused as a possible cross-site request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfRefusal {
    /// Neither `Origin` nor `Referer` names this service.
    Origin,
    /// No `X-CSRF-Token` header (or `csrf` form field) matching the session's token.
    Token,
}

impl CsrfRefusal {
    pub fn message(self) -> &'static str {
        match self {
            CsrfRefusal::Origin => {
                "cross-site request refused: the Origin (or Referer) header must name this service"
            }
            CsrfRefusal::Token => {
                "cross-site request refused: send the rolegate_csrf cookie's value in the \
                 X-CSRF-Token header (or a csrf form field)"
            }
        }
    }
}

impl IntoResponse for CsrfRefusal {
    fn into_response(self) -> Response {
        page(StatusCode::FORBIDDEN, "Request refused", self.message())
    }
}

/// The CSRF check of a write authenticated by the session cookie: both the origin and the
/// double-submitted token (header, or `form_token` from a form body).
pub fn check_csrf(
    state: &AppState,
    headers: &HeaderMap,
    secret: &str,
    form_token: Option<&str>,
) -> Result<(), CsrfRefusal> {
    if !same_origin(headers, &state.config.public_url()) {
        return Err(CsrfRefusal::Origin);
    }
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .or(form_token);
    match token {
        Some(t) if session::csrf_matches(secret, t) => Ok(()),
        _ => Err(CsrfRefusal::Token),
    }
}

/// A page of the sign-in flow that only says something (a confirmation, a refusal), in the
/// console's frame with a way back.
pub(crate) fn page(status: StatusCode, title: &str, text: &str) -> Response {
    crate::console::layout::visitor_page(
        status,
        title,
        maud::html! {
            h1 { (title) }
            p { (text) }
            p { a href="/console/" { "Back to the console" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_this_service() {
        assert_eq!(local_location("/console/"), "/console/");
        assert_eq!(local_location("//evil.example/"), "/");
        assert_eq!(local_location("/\\evil.example/"), "/");
        assert_eq!(local_location("https://evil.example/"), "/");
        assert_eq!(local_location("/a\nb"), "/");
    }
}
