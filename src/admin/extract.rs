//! How the admin API reads a request: path ids, the query string and the JSON body.
//!
//! axum's own extractors reject in plain text, name `body` for every JSON type error and
//! say nothing of the form they wanted (`premature end of input` for a date). These parse
//! the same inputs, but every rejection is an [`ApiError`] in the one JSON shape, naming the
//! field as the client spelled it (`org_id`, `since`, `environments[1].name`) and the form
//! it expects.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// An example in every message about a timestamp: the one form the API accepts.
const RFC3339_EXAMPLE: &str = "2026-12-02T09:30:00Z";

/// Path parameters. Every path parameter of the admin API is an id; one that does not parse
/// is a 422 naming the parameter.
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                // A tuple's errors give the parameter's position, not its name.
                let names: Vec<String> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|raw| raw.iter().map(|(name, _)| name.to_owned()).collect())
                    .unwrap_or_default();
                Err(path_error(rejection, &names))
            }
        }
    }
}

fn path_error(rejection: PathRejection, names: &[String]) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(failed) = rejection else {
        // No path parameters where the handler expects them: the route is wired wrongly.
        return ApiError::Internal(rejection.body_text());
    };
    let got = |value: &str| format!("expected an id (UUID), got {value:?}");
    match failed.into_kind() {
        ErrorKind::ParseErrorAtKey { key, value, .. }
        | ErrorKind::DeserializeError { key, value, .. } => ApiError::invalid(&key, got(&value)),
        ErrorKind::ParseErrorAtIndex { index, value, .. } => {
            let name = names.get(index).map_or("path", String::as_str);
            ApiError::invalid(name, got(&value))
        }
        ErrorKind::ParseError { value, .. } => {
            let name = names.first().map_or("path", String::as_str);
            ApiError::invalid(name, got(&value))
        }
        ErrorKind::InvalidUtf8InPathParam { key } => {
            ApiError::invalid(&key, "expected an id (UUID); the value is not UTF-8")
        }
        other => ApiError::Internal(other.to_string()),
    }
}

/// The query string, deserialized as `T`. A missing parameter, one of the wrong form, or an
/// unknown one (where `T` denies them) is a 422 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = url::form_urlencoded::parse(query.as_bytes());
    let deserializer = serde_urlencoded::Deserializer::new(pairs);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let mut error = field_error(&path, &e.inner().to_string(), "query");
        // The client's own value makes "expected an id (UUID)" easy to act on.
        if let Some((_, value)) =
            url::form_urlencoded::parse(query.as_bytes()).find(|(name, _)| *name == error.field)
        {
            error.message = format!("{}, got {:?}", error.message, value.as_ref());
        }
        ApiError::Validation(vec![error])
    })
}

/// A JSON body, read as `T`. Not JSON (or not sent as JSON): 400. JSON of the wrong shape: 422
/// naming the field by its path in the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON body left as bytes, for a handler that reads them with a parser of its own (the
/// mapping document, whose errors are JSON Pointers, not `ApiJson`'s field paths). Rejected
/// as `ApiJson` rejects: not sent as JSON, or not JSON at all, 400; too large, 413.
#[derive(Debug, Clone)]
pub struct RawJson(pub Bytes);

impl<S> FromRequest<S> for RawJson
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        // Syntax only: what the value means is the handler's to judge, at its own paths.
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
        Ok(RawJson(bytes))
    }
}

/// The body of a request sent as JSON; 400 when it is not sent so, 413 when too large.
async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if !is_json(req.headers()) {
        return Err(ApiError::BadRequest(
            "expected a JSON body sent with `Content-Type: application/json`".into(),
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })
}

/// `application/json`, or a `+json` type of it, with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let inner = e.inner();
        if inner.is_data() {
            let message = without_position(inner);
            ApiError::Validation(vec![field_error(&e.path().to_string(), &message, "body")])
        } else {
            ApiError::BadRequest(format!("the body is not valid JSON: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// A part of a JSON body already read (one item of a batch), as `T`. Errors name the field by
/// its path in the whole body, `at` being the part's own path (`checks[3]`; empty: the body).
pub(crate) fn parse_json_value<T: DeserializeOwned>(
    value: serde_json::Value,
    at: &str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut error = field_error(&e.path().to_string(), &e.inner().to_string(), "");
        error.field = match (at, error.field.as_str()) {
            ("", "") => "body".to_owned(),
            (at, "") => at.to_owned(),
            ("", field) => field.to_owned(),
            (at, field) => format!("{at}.{field}"),
        };
        ApiError::Validation(vec![error])
    })
}

/// serde_json's message without its " at line L column C": a field's path says where.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// The invalid field and what is wrong with it, from a deserializer's message at `path`
/// (`"."` at the top level, where `whole` names the input).
fn field_error(path: &str, message: &str, whole: &str) -> FieldError {
    let at = |name: &str| match path {
        "." => name.to_owned(),
        parent => format!("{parent}.{name}"),
    };
    if let Some(name) = quoted_after(message, "missing field `") {
        return FieldError::new(at(name), "required");
    }
    if let Some(name) = quoted_after(message, "unknown field `") {
        let known = message
            .split_once(", ")
            .map(|(_, rest)| format!(": {rest}"))
            .unwrap_or_default();
        // The path already ends at the unknown key.
        let field = if path.ends_with(name) {
            path.to_owned()
        } else {
            at(name)
        };
        return FieldError::new(field, format!("unknown field{known}"));
    }
    let field = if path == "." { whole } else { path };
    FieldError::new(field, expected_form(message))
}

/// The name in `` prefix`name` …``, if `message` starts so.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// What a value should look like, for the messages whose wording says only what went wrong:
/// the uuid crate's and chrono's. Others (serde's "invalid type: …, expected …", "unknown
/// variant `x`, expected one of …") already say it.
fn expected_form(message: &str) -> String {
    // `ParseIntError`'s, which a query string's numbers give.
    const INTEGER: [&str; 4] = [
        "invalid digit found in string",
        "cannot parse integer from empty string",
        "number too large to fit in target type",
        "number too small to fit in target type",
    ];
    // chrono's `ParseError` messages, which it gives for any malformed timestamp.
    const CHRONO: [&str; 7] = [
        "input is out of range",
        "no possible date and time matching input",
        "input is not enough for unique date and time",
        "input contains invalid characters",
        "premature end of input",
        "trailing input",
        "bad or unsupported format string",
    ];
    if message.starts_with("UUID parsing failed") {
        "expected an id (UUID)".to_owned()
    } else if INTEGER.contains(&message) {
        format!("expected a whole number ({message})")
    } else if CHRONO.contains(&message) {
        format!("expected an RFC 3339 timestamp such as {RFC3339_EXAMPLE} ({message})")
    } else {
        message.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde::Deserialize;
    use uuid::Uuid;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        product: Uuid,
        since: Option<DateTime<Utc>>,
        limit: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        parent_id: Uuid,
        environments: Option<Vec<Env>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Env {
        name: String,
    }

    fn fields(err: ApiError) -> Vec<(String, String)> {
        match err {
            ApiError::Validation(fields) => {
                fields.into_iter().map(|f| (f.field, f.message)).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn query_error(query: &str) -> (String, String) {
        let err = parse_query::<Params>(query).expect_err(query);
        fields(err).remove(0)
    }

    fn body_error(body: &str) -> (String, String) {
        let err = parse_json::<Body>(body.as_bytes()).expect_err(body);
        fields(err).remove(0)
    }

    /// The messages below depend on the uuid and chrono crates' wording: an upgrade that
    /// changes it fails here, not in a client's face.
    #[test]
    fn query_rejections_name_the_parameter_and_the_form_it_expects() {
        let uuid = Uuid::nil();
        assert_eq!(
            query_error(""),
            ("product".into(), "required".into()),
            "a missing parameter"
        );
        assert_eq!(
            query_error("product=acme"),
            (
                "product".into(),
                "expected an id (UUID), got \"acme\"".into()
            )
        );
        let (field, message) = query_error(&format!("product={uuid}&since=2026-12-02"));
        assert_eq!(field, "since");
        assert!(
            message.starts_with("expected an RFC 3339 timestamp such as 2026-12-02T09:30:00Z"),
            "{message}"
        );
        assert!(message.ends_with("got \"2026-12-02\""), "{message}");
        assert_eq!(
            query_error(&format!("product={uuid}&limit=ten")),
            (
                "limit".into(),
                "expected a whole number (invalid digit found in string), got \"ten\"".into()
            )
        );
        let (field, message) = query_error(&format!("product={uuid}&colour=red"));
        assert_eq!(field, "colour");
        assert!(
            message.starts_with("unknown field: expected one of"),
            "{message}"
        );
    }

    #[test]
    fn body_rejections_name_the_field_by_its_path() {
        assert_eq!(
            body_error(r#"{"name": "x"}"#),
            ("parent_id".into(), "required".into())
        );
        assert_eq!(
            body_error(r#"{"name": "x", "parent_id": "acme"}"#),
            ("parent_id".into(), "expected an id (UUID)".into())
        );
        let (field, message) = body_error(r#"{"name": 7, "parent_id": null}"#);
        assert_eq!(field, "name");
        assert!(message.contains("expected a string"), "{message}");
        assert!(!message.contains("line"), "{message}");
        let nil = Uuid::nil();
        assert_eq!(
            body_error(&format!(
                r#"{{"name": "x", "parent_id": "{nil}", "environments": [{{"name": "a"}}, {{}}]}}"#
            )),
            ("environments[1].name".into(), "required".into())
        );
        let (field, _) = body_error(&format!(
            r#"{{"name": "x", "parent_id": "{nil}", "environments": [{{"name": "a", "colour": 1}}]}}"#
        ));
        assert_eq!(field, "environments[0].colour");
        let (field, _) = body_error("[]");
        assert_eq!(field, "body", "a wrong type at the top names the body");
    }

    #[test]
    fn a_part_of_a_body_names_its_fields_by_their_path_in_the_whole_body() {
        let part = |v: serde_json::Value, at: &str| {
            fields(parse_json_value::<Env>(v, at).expect_err("invalid")).remove(0)
        };
        assert_eq!(
            part(serde_json::json!({}), "checks[3]"),
            ("checks[3].name".into(), "required".into())
        );
        assert_eq!(part(serde_json::json!({}), "").0, "name");
        assert_eq!(part(serde_json::json!(7), "checks[0]").0, "checks[0]");
        assert_eq!(part(serde_json::json!(7), "").0, "body");
        let (field, message) = part(serde_json::json!({"name": "a", "colour": 1}), "checks[1]");
        assert_eq!(field, "checks[1].colour");
        assert!(message.starts_with("unknown field"), "{message}");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        let nil = Uuid::nil();
        let trailing = format!(r#"{{"name": "x", "parent_id": "{nil}"}} trailing"#);
        for body in ["{", "{not json", trailing.as_str(), ""] {
            assert!(
                matches!(
                    parse_json::<Body>(body.as_bytes()),
                    Err(ApiError::BadRequest(_))
                ),
                "{body:?}"
            );
        }
    }
}
