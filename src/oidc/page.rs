//! The page a refused sign-in lands on: server-rendered in the console's frame, every value
//! escaped, with the refusal's stable code for the person to pass on.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::store::SignInRefusal;

/// A refused sign-in: the status, a stable code and a sentence for the person.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::FORBIDDEN,
            code,
            message: message.into(),
        }
    }

    pub fn unknown_connection() -> Self {
        Refusal {
            status: StatusCode::NOT_FOUND,
            code: "unknown_connection",
            message: "there is no such sign-in connection".into(),
        }
    }

    /// Logged with the request's span; the page says only that something failed here.
    pub fn internal(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        tracing::error!(%detail, "sign-in failed");
        Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "the sign-in failed on our side; try again later".into(),
        }
    }
}

pub fn sign_in_refusal(refusal: SignInRefusal) -> &'static str {
    match refusal {
        SignInRefusal::NotProvisioned => {
            "your organization provisions accounts through its identity provider (SCIM), and \
             yours has not been provisioned here yet; ask your administrator"
        }
        SignInRefusal::Inactive => "your account here is deactivated",
        SignInRefusal::EmailNotVerified => {
            "an account with your e-mail address exists, and your identity provider does not \
             say the address is verified, so it cannot be linked to you"
        }
        SignInRefusal::NotLinkable => {
            "an account with your e-mail address exists and belongs to another part of the \
             organization; this sign-in connection may not use it"
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let title = if self.status.is_server_error() {
            "Sign-in failed"
        } else {
            "Sign-in refused"
        };
        let mut response = crate::console::layout::visitor_page(
            self.status,
            title,
            maud::html! {
                h1 { (title) }
                p { (self.message) }
                p { "Error code: " code id="error-code" { (self.code) } }
                p { a href="/console/" { "Back to the console" } }
            },
        );
        if let Ok(code) = HeaderValue::from_str(self.code) {
            response.headers_mut().insert("x-rolegate-error", code);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_page_escapes_what_it_shows() {
        let response =
            Refusal::bad_request("provider_error", "<script>alert(1)</script>").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["x-rolegate-error"], "provider_error");
        assert!(
            response.headers()["content-security-policy"]
                .to_str()
                .is_ok_and(|csp| csp.contains("default-src 'none'"))
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{body}"
        );
        assert!(!body.contains("<script>alert"), "{body}");
        assert!(
            body.contains("<code id=\"error-code\">provider_error</code>"),
            "{body}"
        );
    }
}
