//! The parameters of a SCIM query (RFC 7644 §3.4.2), from a URL query string or a
//! `SearchRequest` body (§3.4.3): filter, sort, paging and attribute selection, each checked
//! and resolved against a resource type's schemas.

use serde_json::Value;

use super::ScimError;
use crate::scim_proto::filter::{self, ResolvedAttr, ResolvedFilter};
use crate::scim_proto::resource::Projection;
use crate::scim_proto::schema::{ResourceType, Schemas};

/// Most resources returned in one page (`filter.maxResults` in `/ServiceProviderConfig`), and
/// the page size when the client names none: a client that lists without paging finds what it
/// just created (scim2-tester does exactly that).
pub const MAX_RESULTS: u64 = 1000;

pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// The parameters as sent, before resolution against a resource type.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawQuery {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub start_index: Option<String>,
    pub count: Option<String>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

impl RawQuery {
    /// From a URL query string. Parameter names are matched case-insensitively.
    pub(crate) fn from_query_string(query: Option<&str>) -> RawQuery {
        let mut raw = RawQuery::default();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if let Some(slot) = raw.slot(&key) {
                *slot = Some(value.into_owned());
            }
        }
        raw
    }

    /// Where the parameter called `key` (any case) goes; `None` for one SCIM does not define.
    fn slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        Some(match key.to_ascii_lowercase().as_str() {
            "filter" => &mut self.filter,
            "sortby" => &mut self.sort_by,
            "sortorder" => &mut self.sort_order,
            "startindex" => &mut self.start_index,
            "count" => &mut self.count,
            "attributes" => &mut self.attributes,
            "excludedattributes" => &mut self.excluded_attributes,
            _ => return None,
        })
    }

    /// From a `POST …/.search` body.
    pub(crate) fn from_search_request(body: &Value) -> Result<RawQuery, ScimError> {
        let object = body.as_object().ok_or_else(|| {
            ScimError::bad_request("invalidSyntax", "a SearchRequest must be a JSON object")
        })?;
        if let Some(schemas) = object.get("schemas") {
            let ok = schemas.as_array().is_some_and(|s| {
                s.iter().any(|u| {
                    u.as_str()
                        .is_some_and(|u| u.eq_ignore_ascii_case(SEARCH_REQUEST_SCHEMA))
                })
            });
            if !ok {
                return Err(ScimError::bad_request(
                    "invalidSyntax",
                    format!("a SearchRequest's schemas must list {SEARCH_REQUEST_SCHEMA}"),
                ));
            }
        }
        let mut raw = RawQuery::default();
        for (key, value) in object {
            let Some(slot) = raw.slot(key) else {
                continue;
            };
            *slot = match value {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                // §3.4.3: attributes are "a multi-valued list of strings".
                Value::Array(items) => Some(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => {
                    return Err(ScimError::bad_request(
                        "invalidValue",
                        format!("\"{key}\" has the wrong type"),
                    ));
                }
            };
        }
        Ok(raw)
    }

    /// `startIndex - 1` and `count` (RFC 7644 §3.4.2.4: a startIndex below 1 is 1, a negative
    /// count is 0, a count above the maximum is the maximum).
    pub(crate) fn page(&self) -> Result<(u64, u64), ScimError> {
        let number = |name: &str, raw: &Option<String>| -> Result<Option<i64>, ScimError> {
            raw.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<i64>().map_err(|_| {
                        ScimError::bad_request(
                            "invalidValue",
                            format!("{name} must be an integer, not \"{s}\""),
                        )
                    })
                })
                .transpose()
        };
        let start = number("startIndex", &self.start_index)?.unwrap_or(1).max(1);
        let count = number("count", &self.count)?
            .map_or(MAX_RESULTS, |c| u64::try_from(c.max(0)).unwrap_or(0))
            .min(MAX_RESULTS);
        Ok((u64::try_from(start - 1).unwrap_or(0), count))
    }

    pub(crate) fn projection(
        &self,
        schemas: &Schemas,
        resource_type: ResourceType,
    ) -> Result<Projection, ScimError> {
        Ok(Projection::parse(
            schemas,
            resource_type,
            self.attributes.as_deref(),
            self.excluded_attributes.as_deref(),
        )?)
    }

    /// Resolves the filter and sort for one resource type.
    pub(crate) fn resolve(
        &self,
        schemas: &Schemas,
        resource_type: ResourceType,
    ) -> Result<Resolved, ScimError> {
        let filter = match self.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let parsed = filter::parse_filter(text)
                    .map_err(|e| ScimError::bad_request("invalidFilter", e.to_string()))?;
                Some(
                    filter::resolve(schemas, &parsed, resource_type)
                        .map_err(|e| ScimError::bad_request("invalidFilter", e.to_string()))?,
                )
            }
        };
        let sort = match self.sort_by.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let invalid = |e: filter::FilterError| {
                    ScimError::bad_request("invalidValue", format!("sortBy: {e}"))
                };
                let path = filter::parse_path(text).map_err(invalid)?;
                if path.filter.is_some() {
                    return Err(ScimError::bad_request(
                        "invalidValue",
                        "sortBy names an attribute, not a filter",
                    ));
                }
                Some(
                    filter::resolve_path(schemas, &path, resource_type)
                        .map_err(invalid)?
                        .attr,
                )
            }
        };
        let descending = match self.sort_order.as_deref().map(str::trim) {
            None | Some("") => false,
            Some(o) if o.eq_ignore_ascii_case("ascending") => false,
            Some(o) if o.eq_ignore_ascii_case("descending") => true,
            Some(o) => {
                return Err(ScimError::bad_request(
                    "invalidValue",
                    format!("sortOrder must be \"ascending\" or \"descending\", not \"{o}\""),
                ));
            }
        };
        Ok(Resolved {
            filter,
            sort,
            descending,
        })
    }
}

/// Filter and sort resolved for one resource type.
pub(crate) struct Resolved {
    pub filter: Option<ResolvedFilter>,
    pub sort: Option<ResolvedAttr>,
    pub descending: bool,
}

impl Resolved {
    pub(crate) fn sort(&self) -> Option<(&ResolvedAttr, bool)> {
        self.sort.as_ref().map(|s| (s, self.descending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim_proto::schema::Schemas;
    use serde_json::json;

    #[test]
    fn paging_follows_rfc7644_3_4_2_4() {
        let q = |start: &str, count: &str| RawQuery {
            start_index: Some(start.into()),
            count: Some(count.into()),
            ..RawQuery::default()
        };
        assert_eq!(q("1", "100").page().expect("page"), (0, 100));
        assert_eq!(q("0", "-5").page().expect("page"), (0, 0));
        assert_eq!(q("11", "100000").page().expect("page"), (10, MAX_RESULTS));
        assert_eq!(RawQuery::default().page().expect("page"), (0, MAX_RESULTS));
        assert!(q("x", "1").page().is_err());
    }

    #[test]
    fn query_string_names_are_case_insensitive_and_decoded() {
        let raw = RawQuery::from_query_string(Some(
            "FILTER=userName%20eq%20%22a%2Bb%40x.org%22&startindex=2&Count=3",
        ));
        assert_eq!(raw.filter.as_deref(), Some("userName eq \"a+b@x.org\""));
        assert_eq!(raw.page().expect("page"), (1, 3));
    }

    #[test]
    fn search_request_takes_lists_and_numbers() {
        let raw = RawQuery::from_search_request(&json!({
            "schemas": [SEARCH_REQUEST_SCHEMA],
            "attributes": ["userName", "externalId"],
            "startIndex": 1,
            "count": 10,
        }))
        .expect("valid");
        assert_eq!(raw.attributes.as_deref(), Some("userName,externalId"));
        assert_eq!(raw.page().expect("page"), (0, 10));
        assert!(RawQuery::from_search_request(&json!({ "schemas": ["urn:x"] })).is_err());
    }

    #[test]
    fn bad_filters_and_sorts_are_400_with_their_scim_type() {
        let raw = RawQuery {
            filter: Some("userName eq".into()),
            ..RawQuery::default()
        };
        let e = raw
            .resolve(&Schemas::default(), ResourceType::User)
            .err()
            .expect("invalid");
        assert_eq!(e.scim_type, Some("invalidFilter"));
        let raw = RawQuery {
            filter: Some("nope eq \"x\"".into()),
            ..RawQuery::default()
        };
        assert_eq!(
            raw.resolve(&Schemas::default(), ResourceType::User)
                .err()
                .expect("e")
                .scim_type,
            Some("invalidFilter")
        );
        let raw = RawQuery {
            sort_order: Some("sideways".into()),
            ..RawQuery::default()
        };
        assert_eq!(
            raw.resolve(&Schemas::default(), ResourceType::User)
                .err()
                .expect("e")
                .scim_type,
            Some("invalidValue")
        );
    }
}
