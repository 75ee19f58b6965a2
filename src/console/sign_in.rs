//! `/console/sign-in`: sign in by an e-mailed link (the form posts to `POST /auth/email`) or
//! through the organization's identity provider, found by the e-mail's domain (home-realm
//! discovery, as `GET /auth/oidc/discover` finds it).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{html, layout};
use super::{Flash, redirect};
use crate::domain::oidc::safe_return_to;
use crate::state::AppState;

#[derive(Deserialize)]
pub(super) struct SignInParams {
    return_to: Option<String>,
    /// Set by `/auth/signed-out`, where a sign-out (here or at the provider) lands.
    #[serde(default)]
    signed_out: bool,
}

/// Where to go after signing in: a console path of this service, else the console's home.
fn return_to(raw: Option<&str>) -> String {
    safe_return_to(raw)
        .ok()
        .filter(|p| p.starts_with("/console"))
        .unwrap_or_else(|| "/console/".to_owned())
}

fn sign_in_page(status: StatusCode, return_to: &str, flashes: &[Flash]) -> Response {
    let body: Markup = html! {
        h1 { "Sign in to the rolegate console" }
        section class="card" aria-labelledby="sso-title" {
            h2 id="sso-title" { "Single sign-on" }
            p { "Your organization's identity provider (Okta, Entra ID, …) is found from your e-mail address." }
            form method="get" action="/console/sign-in/sso" class="stack" {
                input type="hidden" name="return_to" value=(return_to);
                div class="field" {
                    label for="sso-email" { "Work e-mail" }
                    input id="sso-email" type="email" name="email" required autocomplete="email";
                }
                div { button type="submit" { "Continue with single sign-on" } }
            }
        }
        section class="card" aria-labelledby="mail-title" {
            h2 id="mail-title" { "E-mail link" }
            p { "For organizations that do not require single sign-on: we send a link that signs you in once, within 10 minutes." }
            form method="post" action="/auth/email" class="stack" {
                div class="field" {
                    label for="mail-email" { "E-mail" }
                    input id="mail-email" type="email" name="email" required autocomplete="email";
                }
                div { button type="submit" class="secondary" { "E-mail me a sign-in link" } }
            }
        }
    };
    html(status, layout(None, "Sign in", flashes, body))
}

/// `GET /console/sign-in?return_to=`.
pub(super) async fn page(Query(params): Query<SignInParams>) -> Response {
    let flashes: Vec<Flash> = params
        .signed_out
        .then(|| Flash::done("You are signed out."))
        .into_iter()
        .collect();
    sign_in_page(
        StatusCode::OK,
        &return_to(params.return_to.as_deref()),
        &flashes,
    )
}

#[derive(Deserialize)]
pub(super) struct SsoParams {
    email: String,
    return_to: Option<String>,
}

/// `GET /console/sign-in/sso?email=&return_to=`: 303 to the login of the connection the
/// address's domain is routed to; none: the sign-in page again, saying so.
pub(super) async fn sso(
    State(state): State<AppState>,
    Query(params): Query<SsoParams>,
) -> Response {
    let back = return_to(params.return_to.as_deref());
    match crate::oidc::home_realm(&state, &params.email).await {
        Ok(Some(connection)) => redirect(&crate::oidc::login_path(
            connection.id,
            &back,
            Some(&params.email),
        )),
        Ok(None) => sign_in_page(
            StatusCode::NOT_FOUND,
            &back,
            &[Flash::refused(
                "No single sign-on is set up for this address's domain. Sign in with an e-mail link, or ask your administrator.",
            )],
        ),
        Err(error) => sign_in_page(error.status(), &back, &[Flash::from_error(&error)]),
    }
}
