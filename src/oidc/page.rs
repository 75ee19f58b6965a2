//! The page a refused sign-in lands on: server-rendered, minimal, no script, every value
//! escaped, with the refusal's stable code for the person to pass on.

use axum::http::{HeaderValue, StatusCode, header};
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

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let title = if self.status.is_server_error() {
            "Sign-in failed"
        } else {
            "Sign-in refused"
        };
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>{title}</title></head>\n<body><h1>{title}</h1>\n<p>{}</p>\n\
             <p>Error code: <code id=\"error-code\">{}</code></p>\n\
             <p><a href=\"/console/\">Back</a></p></body></html>\n",
            escape(&self.message),
            self.code
        );
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(code) = HeaderValue::from_str(self.code) {
            headers.insert("x-rolegate-error", code);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_what_it_shows() {
        let response =
            Refusal::bad_request("provider_error", "<script>alert(1)</script>").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["x-rolegate-error"], "provider_error");
        assert!(escape("<a href='x'>&").contains("&lt;a href=&#39;x&#39;&gt;&amp;"));
    }
}
