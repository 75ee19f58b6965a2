//! Sign-in and sign-out pages: e-mail sign-in (`POST /auth/email`), the one-time link's
//! confirm page and its POST (`/auth/link/{secret}`, also what `rolegate console login-link`
//! prints), and `POST /auth/logout`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{NewSession, SignInMethod, page, presented, same_origin};
use crate::domain::audit::Actor;
use crate::domain::oidc::SIGNED_OUT_PATH;
use crate::domain::outbox::MailStatus;
use crate::domain::session::{self, EndReason};
use crate::domain::user::validate_email;
use crate::mail::{Delivery, OutgoingMail};
use crate::state::AppState;
use crate::store::{Ctx, OutboxMail, SignInCandidate, SignInLink};

/// How long a sign-in link works.
pub const LINK_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/email", post(email_sign_in))
        .route("/auth/link/{secret}", get(confirm_page).post(use_link))
        .route("/auth/logout", post(logout))
        .route(SIGNED_OUT_PATH, get(signed_out))
}

#[derive(Deserialize)]
struct EmailForm {
    email: String,
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

/// `POST /auth/email` (`email` as a form field or JSON): sends a sign-in link to every account
/// with that address that may sign in by e-mail. The answer is the same whether or not there
/// is one, and comes before any mail is sent (its timing says nothing either).
async fn email_sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let json = is_json(&headers);
    let form: Option<EmailForm> = if json {
        serde_json::from_slice(&body).ok()
    } else {
        serde_urlencoded::from_bytes(&body).ok()
    };
    let Some(email) = form.and_then(|f| validate_email(&f.email).ok()) else {
        return answer(
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "email: expected an e-mail address",
        );
    };
    if !state.sign_in_mail.allow(&crate::domain::normalize(&email)) {
        let mut response = answer(
            json,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in links for this address; try again in ten minutes.",
        );
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("600"));
        return response;
    }
    let request_id = headers
        .get(crate::request::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    tokio::spawn(async move {
        match state.store.email_sign_in_candidates(&email).await {
            Ok(candidates) => {
                for candidate in candidates {
                    if let Err(error) = send_link(&state, &candidate, request_id.clone()).await {
                        tracing::warn!(%error, user_id = %candidate.user_id, "sign-in link not sent");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "sign-in candidates could not be read"),
        }
    });
    answer(
        json,
        StatusCode::ACCEPTED,
        "If this address may sign in by e-mail, a sign-in link is on its way. It works once, \
         for 10 minutes.",
    )
}

fn answer(json: bool, status: StatusCode, message: &str) -> Response {
    if json {
        let key = if status.is_success() {
            "status"
        } else {
            "error"
        };
        (status, axum::Json(serde_json::json!({ key: message }))).into_response()
    } else {
        page(status, "Sign in", message)
    }
}

/// A fresh one-time link for `user` (stored as its hash): the URL to follow.
pub async fn mint_link(
    store: &dyn crate::store::Store,
    public_url: &url::Url,
    ctx: &Ctx,
    tenant_id: uuid::Uuid,
    user_id: uuid::Uuid,
    org_id: uuid::Uuid,
    purpose: &str,
) -> Result<(url::Url, SignInLink), super::SessionError> {
    let mut random = [0u8; session::SECRET_BYTES];
    getrandom::fill(&mut random).map_err(|e| super::SessionError::Random(e.to_string()))?;
    let secret = session::mint(random);
    let at = crate::domain::now();
    let link = SignInLink {
        id: uuid::Uuid::now_v7(),
        tenant_id,
        user_id,
        org_id,
        purpose: purpose.to_owned(),
        created_at: at,
        expires_at: at + LINK_LIFETIME,
        used_at: None,
    };
    store.create_sign_in_link(ctx, &link, &secret.hash).await?;
    let url = public_url
        .join(&format!("auth/link/{}", secret.secret))
        .map_err(|e| super::SessionError::Store(crate::store::StoreError::Other(e.to_string())))?;
    Ok((url, link))
}

async fn send_link(
    state: &AppState,
    candidate: &SignInCandidate,
    request_id: Option<String>,
) -> Result<(), super::SessionError> {
    let ctx = Ctx::new(Actor::System).with_request_id(request_id);
    let (url, _) = mint_link(
        state.store.as_ref(),
        &state.config.public_url(),
        &ctx,
        candidate.tenant_id,
        candidate.user_id,
        candidate.org_id,
        "email",
    )
    .await?;
    let mail = OutgoingMail {
        to: candidate.email.clone(),
        subject: "Your rolegate sign-in link".into(),
        text_body: format!(
            "Sign in to rolegate by opening this link:\n\n{url}\n\nIt works once, for 10 \
             minutes. If you did not ask to sign in, ignore this e-mail.\n"
        ),
    };
    let (status, error) = match state.mailer.send(&mail).await {
        Ok(Delivery::Sent) => (MailStatus::Sent, None),
        Ok(Delivery::LoggedOnly) => (MailStatus::Logged, None),
        Err(e) => (MailStatus::Failed, Some(e.to_string())),
    };
    // The outbox keeps that it went, never a live sign-in link.
    let copy = OutboxMail {
        org_id: candidate.org_id,
        invitation_id: None,
        recipient: mail.to.clone(),
        subject: mail.subject.clone(),
        body: mail
            .text_body
            .replace(url.as_str(), "[sign-in link redacted]"),
        status,
        error,
        retry_of: None,
    };
    state
        .store
        .record_mail(&ctx, candidate.tenant_id, &copy)
        .await?;
    Ok(())
}

fn link_gone() -> Response {
    page(
        StatusCode::GONE,
        "Link expired",
        "This sign-in link was used already or has expired. Ask for a new one.",
    )
}

/// The link's page: a button that signs in. Following the link alone (as mail scanners do)
/// changes nothing.
async fn confirm_page(State(state): State<AppState>, Path(secret): Path<String>) -> Response {
    let hash = session::hash_secret(&secret);
    match state.store.sign_in_link(&hash).await {
        Ok(Some(link)) if link.used_at.is_none() && link.expires_at > crate::domain::now() => {
            crate::console::layout::visitor_page(
                StatusCode::OK,
                "Sign in",
                maud::html! {
                    h1 { "Sign in to rolegate" }
                    p { "This link signs you in once; it expires 10 minutes after it was made." }
                    form method="post" class="stack" {
                        div { button type="submit" { "Sign in" } }
                    }
                },
            )
        }
        Ok(_) => link_gone(),
        Err(error) => super::SessionError::Store(error).into_response(),
    }
}

/// The confirm page's POST: uses the link once and signs in (303 to the console).
async fn use_link(
    State(state): State<AppState>,
    parts: Parts,
    Path(secret): Path<String>,
) -> Response {
    if !same_origin(&parts.headers, &state.config.public_url()) {
        return page(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "This form must be sent from this service's own page.",
        );
    }
    let hash = session::hash_secret(&secret);
    let request_id = crate::request::request_id(&parts.extensions);
    let link = match state.store.use_sign_in_link(request_id, &hash).await {
        Ok(Some(link)) => link,
        Ok(None) => return link_gone(),
        Err(error) => return super::SessionError::Store(error).into_response(),
    };
    let method = if link.purpose == "login_link" {
        SignInMethod::LoginLink
    } else {
        // SSO may have become required since the mail went out.
        match state
            .store
            .sso_required_for(link.tenant_id, link.user_id)
            .await
        {
            Ok(false) => {}
            Ok(true) => {
                return page(
                    StatusCode::FORBIDDEN,
                    "Sign-in refused",
                    "Your organization requires single sign-on.",
                );
            }
            Err(error) => return super::SessionError::Store(error).into_response(),
        }
        SignInMethod::EmailLink
    };
    let client = crate::request::client_addr(&parts.extensions);
    match super::start_from(
        &state,
        &parts.headers,
        Some(client),
        NewSession {
            user_id: link.user_id,
            method,
            id_token: None,
        },
    )
    .await
    {
        Ok(started) => started.redirect_to("/console/"),
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
}

/// `POST /auth/logout`: ends the session (CSRF-protected), forgets the cookies, 303 to `/`.
async fn logout(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let mode = state.config.cookie_mode();
    let form_token = serde_urlencoded::from_bytes::<LogoutForm>(&body)
        .ok()
        .and_then(|f| f.csrf);
    let mut next = None;
    if let Some(secret) = presented(&parts.headers, mode) {
        if let Err(refusal) =
            super::check_csrf(&state, &parts.headers, secret, form_token.as_deref())
        {
            return refusal.into_response();
        }
        let hash = session::hash_secret(secret);
        if let Ok(found) = state.sessions.check(&hash).await {
            let actor = match super::actor_of(&state, &found).await {
                Ok(actor) => actor,
                Err(error) => return error.into_response(),
            };
            next = crate::oidc::end_session_redirect(&state, &found, &hash).await;
            let ctx = crate::request::audit_ctx(&parts.extensions, actor);
            if let Err(error) = state
                .store
                .end_session(&ctx, found.tenant_id, found.id, None, EndReason::Logout)
                .await
            {
                return super::SessionError::Store(error).into_response();
            }
            state.sessions.forget(&hash);
        }
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    let location = next.unwrap_or_else(|| SIGNED_OUT_PATH.to_owned());
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(LOCATION, value);
    }
    for cookie in mode.clear() {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(SET_COOKIE, value);
        }
    }
    response
}

/// `GET /auth/signed-out`: where a sign-out lands, here or back from the provider (the
/// post-logout redirect URI registered there, so a stable path): the console's sign-in page,
/// saying so.
async fn signed_out() -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(
        LOCATION,
        HeaderValue::from_static("/console/sign-in?signed_out=true"),
    );
    response
}
