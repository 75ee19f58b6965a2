//! Where a sign-in meets sessions (`crate::session`, issue 12's other half). Until that module
//! is merged the callback verifies everything and signs the person in, and then answers that
//! no session can be started yet.

use axum::http::HeaderMap;
use axum::response::Response;
use uuid::Uuid;

use super::page::Refusal;
use crate::domain::oidc::Verified;
use crate::state::AppState;

pub struct Started;

impl Started {
    pub fn redirect_to(self, _path: &str) -> Response {
        axum::response::IntoResponse::into_response(Refusal {
            status: axum::http::StatusCode::NOT_IMPLEMENTED,
            code: "sessions_unavailable",
            message: "signed in, but this build cannot start sessions yet".into(),
        })
    }
}

pub async fn start(
    _state: &AppState,
    _headers: &HeaderMap,
    _user_id: Uuid,
    _connection_id: Uuid,
    _verified: &Verified,
) -> Result<Started, Refusal> {
    Ok(Started)
}

pub async fn end_by_oidc(
    _state: &AppState,
    _issuer: &str,
    _subject: Option<&str>,
    _sid: Option<&str>,
) -> Result<u64, String> {
    Err("sessions are not available in this build".into())
}
