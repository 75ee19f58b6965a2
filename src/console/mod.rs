//! The admin web console under `/console/`: server-rendered HTML (maud), plain forms that work
//! without JavaScript, embedded assets with cache-busting names, a strict Content-Security-Policy.
//!
//! The console has no rules of its own. It acts as the signed-in user through the admin API's
//! caller (`admin::AdminAuth`), held to the requirement the matching `/api/v1` route has
//! (`admin::reach::USER_NEEDS`), and calls the functions the API handlers call. A page shows
//! what that caller may do and a POST is refused (403) exactly when the API call would be.
//!
//! # Writing a page
//! A page is one file, `src/console/<page>.rs`, with its handlers, and one `.route(…)` line in
//! [`router`]; its link is one line in `layout::NAV` (a tenant-wide section) or
//! `layout::ORG_SECTIONS` (a tab on every org's pages, under `/console/orgs/{org}/…`). Its
//! pieces:
//! - **Who**: take [`Console`] as an extractor. No (live) session: a GET is answered 303 to
//!   `/console/sign-in?return_to=<path>` before the handler runs.
//! - **Rights**: `console.acting_as(&state, Method::PUT, "/api/v1/orgs/{org_id}/members/{user_id}")`
//!   gives the `AdminAuth` the API route would have; then `admin.require::<Org>(&state, id,
//!   Need::Reach)` (or `admin.org(…)`) checks it on an org; `orgs::org_for` does both for a
//!   page under `/console/orgs/{org}`. [`Console::may`] (on an org) and [`Console::may_on`]
//!   (on a product, an invitation, …) ask the same question as a yes/no for showing or hiding
//!   a form.
//! - **Render**: `console.page(title, body_markup)` wraps the body in [`layout::layout`]
//!   (header, nav, signed-in user and sign-out, flash area, footer) and answers 200 with the
//!   console's headers. [`Console::page_with`] takes a status and flash messages (a refusal
//!   shown on the re-rendered page, e.g. the Owner rule's 409).
//! - **Forms**: every form that changes something is `method="post"` and carries the session's
//!   CSRF token: write `(console.csrf_field())` inside it (or use [`layout::post_form`]). The
//!   handler takes [`ConsoleForm<T>`], which authenticates, checks the Origin and the token
//!   (`session::check_csrf`, 403 page otherwise) and parses the body as `T`.
//! - **After a change**: [`redirect_with`] answers 303 with a [`Flash`] shown once on the next
//!   page (a short-lived cookie), so a reload does not post again.
//! - **Errors**: `PageError` (from `ApiError`) renders the API's status and message as a page.
//!
//! Every response of these routes carries the CSP and framing headers ([`console_headers`]);
//! pages are `no-store`; assets are immutable under their hashed names.

pub mod assets;
mod audit;
mod connections;
mod explain;
mod home;
mod invitations;
pub mod layout;
mod mappings;
mod members;
mod modules;
mod orgs;
mod permission_groups;
mod products;
mod sign_in;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::admin::AdminAuth;
use crate::admin::reach::{Need, Scoped};
use crate::authz::sessions::SessionRefusal;
use crate::domain::org::Org;
use crate::domain::session::{self, Session};
use crate::domain::user::User;
use crate::error::ApiError;
use crate::state::AppState;

/// Every console route. A page added later is one line here.
pub fn router() -> Router<AppState> {
    Router::new()
        // The service's front door is the console (sign-out lands here too).
        .route("/", get(|| async { redirect("/console/") }))
        .route("/console", get(|| async { redirect("/console/") }))
        .route("/console/", get(home::home))
        .route("/console/sign-in", get(sign_in::page))
        .route("/console/sign-in/sso", get(sign_in::sso))
        .route("/console/assets/{name}", get(assets::serve))
        .route(
            "/console/invitations/accept",
            get(invitations::page).post(invitations::accept),
        )
        .route("/console/orgs/{org}", get(orgs::overview))
        .route("/console/orgs/{org}/rename", post(orgs::rename))
        .route("/console/orgs/{org}/sub-orgs", post(orgs::create_sub_org))
        .route("/console/orgs/{org}/delete", post(orgs::delete))
        .route("/console/orgs/{org}/members", get(members::page))
        .route("/console/orgs/{org}/members/invite", post(members::invite))
        .route(
            "/console/orgs/{org}/members/{user}/role",
            post(members::set_role),
        )
        .route(
            "/console/orgs/{org}/members/{user}/access",
            post(members::set_access),
        )
        .route(
            "/console/orgs/{org}/members/{user}/remove",
            post(members::remove),
        )
        .route(
            "/console/orgs/{org}/members/invitations/{invitation}/resend",
            post(members::resend),
        )
        .route(
            "/console/orgs/{org}/members/invitations/{invitation}/revoke",
            post(members::revoke),
        )
        .route(
            "/console/orgs/{org}/products",
            get(products::list).post(products::create),
        )
        .route("/console/products/{product}", get(products::page))
        .route("/console/products/{product}/rename", post(products::rename))
        .route("/console/products/{product}/delete", post(products::delete))
        .route(
            "/console/products/{product}/environments",
            post(products::create_environment),
        )
        .route(
            "/console/environments/{environment}",
            post(products::update_environment),
        )
        .route(
            "/console/environments/{environment}/delete",
            post(products::delete_environment),
        )
        .route(
            "/console/products/{product}/permission-groups",
            post(permission_groups::create),
        )
        .route(
            "/console/permission-groups/{group}",
            get(permission_groups::page).post(permission_groups::save),
        )
        .route(
            "/console/permission-groups/{group}/delete",
            post(permission_groups::delete),
        )
        .route(
            "/console/orgs/{org}/members/{user}/explain",
            get(explain::page),
        )
        .route(
            "/console/orgs/{org}/members/{user}/modules",
            get(modules::page).post(modules::save),
        )
        .route("/console/orgs/{org}/audit", get(audit::page))
        .route("/console/orgs/{org}/mappings", get(mappings::page))
        .route(
            "/console/orgs/{org}/mappings/preview",
            post(mappings::preview),
        )
        .route("/console/orgs/{org}/mappings/apply", post(mappings::apply))
        .route("/console/orgs/{org}/mappings/export", get(mappings::export))
        .route(
            "/console/orgs/{org}/tokens",
            get(tokens::page).post(tokens::create),
        )
        .route(
            "/console/tokens/{token}/revoke",
            get(tokens::confirm_revoke).post(tokens::revoke),
        )
        .route("/console/tokens/{token}/errors", get(tokens::errors))
        .route(
            "/console/orgs/{org}/connections",
            get(connections::page).post(connections::add),
        )
        .route(
            "/console/connections/{connection}/update",
            post(connections::update),
        )
        .route(
            "/console/connections/{connection}/delete",
            post(connections::remove),
        )
        .route("/console/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::map_response(console_headers))
}

/// The policy every console response carries: nothing inline, nothing from elsewhere, no
/// framing. Forms go to this service — but browsers apply `form-action` to the redirects after
/// a submission too, and three of ours end at an identity provider: single sign-on from the
/// sign-in page, the invitation page under `require_sso`, and sign-out (RP-initiated logout).
/// So a form may also lead to any https origin (where providers are), and to plain http on
/// loopback (where a provider under test is, as `oidc add` allows). Nothing else: HTML here is
/// escaped by construction (maud), so no injected form exists to abuse the wider rule.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; connect-src 'self'; \
                       form-action 'self' https: http://127.0.0.1:* http://localhost:*; \
                       frame-ancestors 'none'; base-uri 'none'";

/// The console's headers on every response of its routes: the CSP, no framing, no referrer
/// to other sites (links carry invitation tokens), and `no-store` unless the response set its
/// own caching (the assets do).
pub async fn console_headers(mut response: Response) -> Response {
    secure_headers(response.headers_mut());
    response
}

/// The console's headers, on its router's responses and on the pages of the sign-in flow
/// served outside it ([`layout::visitor_page`]).
fn secure_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it browsers send `Origin: null` with a form's POST, which the
    // same-origin checks refuse as cross-site; `same-origin` still keeps a sign-in link's
    // secret from every other site.
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

async fn not_found(console: Option<Console>) -> Response {
    layout::error_page(
        console.as_ref(),
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page in the console.",
    )
}

/// The name of the cookie that carries a [`Flash`] to the next page.
const FLASH_COOKIE: &str = "rolegate_flash";

/// A message shown once at the top of a page (`role="status"`): the result of what was just
/// done, or why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub kind: FlashKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Done,
    Refused,
}

impl Flash {
    pub fn done(text: impl Into<String>) -> Self {
        Flash {
            kind: FlashKind::Done,
            text: text.into(),
        }
    }

    pub fn refused(text: impl Into<String>) -> Self {
        Flash {
            kind: FlashKind::Refused,
            text: text.into(),
        }
    }

    /// The API's refusal, as its message.
    pub fn from_error(error: &ApiError) -> Self {
        Flash::refused(error.message_for_people())
    }

    fn cookie_value(&self) -> String {
        let kind = match self.kind {
            FlashKind::Done => "done",
            FlashKind::Refused => "refused",
        };
        // Bounded: a cookie is no place for a long text.
        let text: String = self.text.chars().take(600).collect();
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair(kind, &text)
            .finish()
    }

    fn from_cookie(value: &str) -> Option<Flash> {
        let (kind, text) = url::form_urlencoded::parse(value.as_bytes()).next()?;
        match kind.as_ref() {
            "done" => Some(Flash::done(text)),
            "refused" => Some(Flash::refused(text)),
            _ => None,
        }
    }
}

/// A bare 303 to a path of this service.
pub fn redirect(path: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(path) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// 303 to `path` (a console page) with `flash` to show there once.
pub fn redirect_with(state: &AppState, path: &str, flash: Flash) -> Response {
    let mut response = redirect(path);
    let cookie = format!(
        "{FLASH_COOKIE}={}; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict{}",
        flash.cookie_value(),
        secure_attr(state)
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

fn secure_attr(state: &AppState) -> &'static str {
    if state.config.public_url().scheme() == "https" {
        "; Secure"
    } else {
        ""
    }
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie_value(h, name))
}

/// The signed-in user of a console page: a live session (a cache read), who they are, and
/// what a page needs to render forms for them.
pub struct Console {
    pub session: Arc<Session>,
    pub user: User,
    /// The session's CSRF token (derived from its secret), for every form.
    csrf: String,
    /// The session cookie's secret, to check a POST's token against.
    secret: String,
    /// The request's id and client address, for the audit records of what the page does.
    extensions: Extensions,
    /// The message the previous response left to show here once.
    pub flash: Option<Flash>,
}

impl Console {
    /// How the page calls the user: their display name, else their e-mail or user name.
    pub fn display_name(&self) -> &str {
        self.user
            .display_name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .or(self.user.email.as_deref())
            .unwrap_or(&self.user.user_name)
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The hidden field every POST form carries.
    pub fn csrf_field(&self) -> Markup {
        maud::html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    /// The admin caller this user is for the API's `method` on `route` (a path as the API
    /// router names it): what they may do there is exactly what that API call may.
    pub async fn acting_as(
        &self,
        state: &AppState,
        method: Method,
        route: &str,
    ) -> Result<AdminAuth, ApiError> {
        crate::admin::user_caller(
            state,
            &self.extensions,
            self.session.clone(),
            &method,
            route,
        )
        .await
    }

    /// Whether this user may call the API's `method` on `route` for the org `org_id`: whether
    /// a page shows the form for it.
    pub async fn may(&self, state: &AppState, method: Method, route: &str, org_id: Uuid) -> bool {
        self.may_on::<Org>(state, method, route, org_id).await
    }

    /// [`Console::may`] for what `route` names by id — a product, an invitation, … (`T`, as
    /// the API's `InReach<T>` loads it).
    pub async fn may_on<T: Scoped>(
        &self,
        state: &AppState,
        method: Method,
        route: &str,
        id: Uuid,
    ) -> bool {
        match self.acting_as(state, method, route).await {
            Ok(admin) => admin.require::<T>(state, id, Need::Reach).await.is_ok(),
            Err(_) => false,
        }
    }

    /// A page: `body` in the layout, 200.
    pub fn page(&self, title: &str, body: Markup) -> Response {
        self.page_with(StatusCode::OK, title, Vec::new(), body)
    }

    /// A page with a status and messages (with the one the previous response left, if any).
    pub fn page_with(
        &self,
        status: StatusCode,
        title: &str,
        mut flashes: Vec<Flash>,
        body: Markup,
    ) -> Response {
        if let Some(left) = &self.flash {
            flashes.insert(0, left.clone());
        }
        let html = layout::layout(Some(self), title, &flashes, body);
        let mut response = layout::html(status, html);
        if self.flash.is_some() {
            // Shown once: the cookie goes with this page.
            if let Ok(value) = HeaderValue::from_str(&format!(
                "{FLASH_COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict"
            )) {
                response.headers_mut().append(SET_COOKIE, value);
            }
        }
        response
    }
}

/// Where a signed-out visitor is sent: sign in, then back here.
fn to_sign_in(parts: &Parts) -> Response {
    let here = parts
        .uri
        .path_and_query()
        .map_or("/console/", |p| p.as_str());
    let here = if parts.method == Method::GET {
        here
    } else {
        parts.uri.path()
    };
    let target: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", here)
        .finish();
    redirect(&format!("/console/sign-in?{target}"))
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let mode = state.config.cookie_mode();
        let Some(secret) = crate::session::presented(&parts.headers, mode) else {
            return Err(to_sign_in(parts));
        };
        let secret = secret.to_owned();
        let session = match state.sessions.check(&session::hash_secret(&secret)).await {
            Ok(session) => session,
            Err(SessionRefusal::Store(error)) => {
                return Err(PageError(ApiError::from(error)).into_response());
            }
            Err(_) => return Err(to_sign_in(parts)),
        };
        let user = state
            .store
            .get_user(session.tenant_id, session.user_id)
            .await
            .map_err(|e| PageError(ApiError::from(e)).into_response())?
            .user;
        let flash = cookie(&parts.headers, FLASH_COOKIE).and_then(Flash::from_cookie);
        Ok(Console {
            csrf: session::csrf_token(&secret),
            secret,
            session,
            user,
            extensions: parts.extensions.clone(),
            flash,
        })
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Console {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Console as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// A console form's POST: the signed-in user, the request shown to come from a console page
/// (its Origin and the session's CSRF token, `session::check_csrf`), and the fields as `T`.
/// Refused before the handler runs: no session (303 to sign-in), a cross-site or token-less
/// POST (403 page), fields that do not parse (400 page).
pub struct ConsoleForm<T> {
    pub console: Console,
    pub form: T,
}

#[derive(serde::Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for ConsoleForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let console =
            <Console as FromRequestParts<AppState>>::from_request_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let token = serde_urlencoded::from_bytes::<CsrfField>(&bytes)
            .ok()
            .and_then(|f| f.csrf);
        if let Err(refusal) =
            crate::session::check_csrf(state, &headers, &console.secret, token.as_deref())
        {
            return Err(layout::error_page(
                Some(&console),
                StatusCode::FORBIDDEN,
                "Request refused",
                refusal.message(),
            ));
        }
        let form = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
            layout::error_page(
                Some(&console),
                StatusCode::BAD_REQUEST,
                "Bad request",
                &format!("The form could not be read: {e}"),
            )
        })?;
        Ok(ConsoleForm { console, form })
    }
}

/// An admin API error as a console page: the API's status and message.
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        PageError(error)
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(error: crate::store::StoreError) -> Self {
        PageError(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::CONFLICT => "Refused",
            StatusCode::GONE => "No longer valid",
            s if s.is_server_error() => "Something went wrong",
            _ => "Request refused",
        };
        layout::error_page(None, status, title, &self.0.message_for_people())
    }
}
