//! The page frame every console page shares, and the small pieces pages are built from.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::{Console, Flash, FlashKind, assets};

/// The top navigation: (path, label). A section that is not per-org is one line here.
pub const NAV: &[(&str, &str)] = &[("/console/", "Organizations")];

/// The sections of one org's pages, as tabs under its title: (path below
/// `/console/orgs/{org}`, label). A per-org page added later is one line here.
pub const ORG_SECTIONS: &[(&str, &str)] = &[
    ("", "Overview"),
    ("/members", "Members"),
    ("/products", "Products"),
    ("/mappings", "IdP mappings"),
    ("/tokens", "SCIM tokens"),
    ("/connections", "SSO connections"),
    ("/audit", "Audit log"),
];

/// The whole page: skip link, header with navigation and the signed-in user (with sign-out),
/// the flash area, `main`, footer. `console` is `None` on pages for signed-out visitors.
pub fn layout(console: Option<&Console>, title: &str, flashes: &[Flash], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · rolegate console" }
                link rel="stylesheet" href=(assets::url("console.css"));
                script src=(assets::url("console.js")) defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/console/" { "rolegate" }
                    @if let Some(console) = console {
                        nav aria-label="Console" {
                            ul {
                                @for (path, label) in NAV {
                                    li { a href=(path) { (label) } }
                                }
                            }
                        }
                        div class="who" {
                            span class="who-name" { (console.display_name()) }
                            form method="post" action="/auth/logout" {
                                (console.csrf_field())
                                button type="submit" class="link" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    div class="flashes" role="status" aria-live="polite" {
                        @for flash in flashes {
                            p class=(match flash.kind { FlashKind::Done => "flash done", FlashKind::Refused => "flash refused" }) {
                                (flash.text)
                            }
                        }
                    }
                    (body)
                }
                footer {
                    p { "rolegate " (env!("CARGO_PKG_VERSION")) " · " a href="/api/v1/openapi.json" { "API" } }
                }
            }
        }
    }
}

/// An HTML response; the console's headers (CSP, `no-store`, …) are added by its router.
pub fn html(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A page for a visitor who need not be signed in — the sign-in flow's confirmations and
/// refusals, served outside the console's router — in the console's frame, with its headers.
pub fn visitor_page(status: StatusCode, title: &str, body: Markup) -> Response {
    let mut response = html(status, layout(None, title, &[], body));
    super::secure_headers(response.headers_mut());
    response
}

/// A page that only says something went wrong (or was refused), in the frame.
pub fn error_page(
    console: Option<&Console>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let body = html! {
        h1 { (title) }
        p { (text) }
        p { a href="/console/" { "Back to the console" } }
    };
    html(status, layout(console, title, &[], body))
}

/// A POST form to `action` with the session's CSRF token, `inner` inside it.
pub fn post_form(console: &Console, action: &str, class: &str, inner: Markup) -> Markup {
    html! {
        form method="post" action=(action) class=(class) {
            (console.csrf_field())
            (inner)
        }
    }
}

/// The tabs of an org's pages, the current one marked.
pub fn org_tabs(org_id: uuid::Uuid, current: &str) -> Markup {
    html! {
        nav class="tabs" aria-label="Organization" {
            ul {
                @for (path, label) in ORG_SECTIONS {
                    li {
                        @if *path == current {
                            a href=(format!("/console/orgs/{org_id}{path}")) aria-current="page" { (label) }
                        } @else {
                            a href=(format!("/console/orgs/{org_id}{path}")) { (label) }
                        }
                    }
                }
            }
        }
    }
}
