//! Paged lists of the admin API: the page size asked for, checked against the list's bounds,
//! and the cursor a page hands back for the next one.

use uuid::Uuid;

use crate::error::ApiError;

/// The page sizes a list accepts: 1 to `max`, and `default` when none is asked for.
#[derive(Debug, Clone, Copy)]
pub(super) struct PageSize {
    default: u32,
    max: u32,
}

impl PageSize {
    /// The audit log, an org's members and its outbox.
    pub(super) const LIST: PageSize = PageSize {
        default: 100,
        max: 1000,
    };
    /// A SCIM token's failed requests: only its last 100 are kept.
    pub(super) const TOKEN_ERRORS: PageSize = PageSize {
        default: 100,
        max: 100,
    };

    /// The `limit` asked for, or its default; out of bounds: 422 naming `limit`.
    pub(super) fn limit(self, asked: Option<u32>) -> Result<u32, ApiError> {
        let limit = asked.unwrap_or(self.default);
        if !(1..=self.max).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {}", self.max),
            ));
        }
        Ok(limit)
    }
}

/// One page of a keyset-paged list: at most `limit` items past `cursor`, the `next` of the
/// page before (`before` or `after`, as the list names it).
#[derive(Debug, Clone, Copy)]
pub(super) struct Page {
    pub cursor: Option<Uuid>,
    pub limit: u32,
}

impl Page {
    pub(super) fn new(
        size: PageSize,
        cursor: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Page, ApiError> {
        Ok(Page {
            cursor,
            limit: size.limit(limit)?,
        })
    }

    /// The cursor of the page after `items`, which this page returned: the last item's key
    /// when the page is full (more may follow), none when it is not (the list ends here).
    pub(super) fn next<T>(&self, items: &[T], key: impl Fn(&T) -> Uuid) -> Option<Uuid> {
        (items.len() == self.limit as usize)
            .then(|| items.last().map(key))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_defaults_and_out_of_bounds_names_the_field_and_the_bounds() {
        assert_eq!(PageSize::LIST.limit(None).ok(), Some(100));
        assert_eq!(PageSize::LIST.limit(Some(1000)).ok(), Some(1000));
        for (size, asked, message) in [
            (PageSize::LIST, 0, "must be between 1 and 1000"),
            (PageSize::LIST, 1001, "must be between 1 and 1000"),
            (PageSize::TOKEN_ERRORS, 101, "must be between 1 and 100"),
        ] {
            let Err(ApiError::Validation(fields)) = size.limit(Some(asked)) else {
                panic!("{asked} accepted");
            };
            assert_eq!(fields.len(), 1);
            assert_eq!(fields[0].field, "limit");
            assert_eq!(fields[0].message, message);
        }
    }

    #[test]
    fn only_a_full_page_has_a_next() {
        let ids: Vec<Uuid> = (1..=3).map(Uuid::from_u128).collect();
        let page = |limit| Page {
            cursor: None,
            limit,
        };
        assert_eq!(page(3).next(&ids, |id| *id), Some(ids[2]));
        assert_eq!(page(4).next(&ids, |id| *id), None);
        assert_eq!(page(1).next(&[] as &[Uuid], |id| *id), None);
    }
}
