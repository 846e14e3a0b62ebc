//! The read endpoint's query string: `limit`, `page`, `order`, `after`.

use super::error::{AppError, FieldError};
use crate::domain::Order;
use crate::service::{Cursor, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, PageMode, PageRequest};
use utoipa::{IntoParams, ToSchema};

/// The page parameters, each checked on its own; [`PageQuery::into_request`] applies the rules
/// between them and the defaults.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Events per page (default 20)
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Page number (default 1); not with `after`
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page: Option<u64>,
    /// `asc` (default, transcript order by seq) or `desc`
    pub order: Option<SortOrder>,
    /// A `nextCursor` from a previous page read in the same order
    #[param(value_type = Option<String>)]
    pub after: Option<Cursor>,
}

/// The order of a page: by `seq`, ascending (transcript order) or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "snake_case", as = Order)]
pub enum SortOrder {
    Asc,
    Desc,
}

impl From<SortOrder> for Order {
    fn from(o: SortOrder) -> Self {
        match o {
            SortOrder::Asc => Order::Asc,
            SortOrder::Desc => Order::Desc,
        }
    }
}

/// Combines two validations so that a request with several problems reports all of them.
pub fn both<A, B>(a: Result<A, AppError>, b: Result<B, AppError>) -> Result<(A, B), AppError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(AppError::Validation(mut x)), Err(AppError::Validation(y))) => {
            x.extend(y);
            Err(AppError::Validation(x))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// For the reads that take no parameters: any parameter is unknown (a typo would otherwise go
/// unnoticed).
pub fn no_parameters(raw: Option<&str>) -> Result<(), AppError> {
    let errors: Vec<FieldError> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(key, _)| FieldError::new(key.as_ref(), "is not a known query parameter"))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Reads `limit`, `page`, `order` and `after`, reporting every problem at once: unknown or
/// repeated parameters, values out of range, and `page` together with `after`.
pub fn page_request(raw: Option<&str>) -> Result<PageRequest, AppError> {
    let mut errors = Vec::new();
    let (mut limit, mut page, mut order, mut after) = (None, None, None, None);
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let slot = match key.as_ref() {
            "limit" => &mut limit,
            "page" => &mut page,
            "order" => &mut order,
            "after" => &mut after,
            other => {
                errors.push(FieldError::new(other, "is not a known query parameter"));
                continue;
            }
        };
        if slot.is_some() {
            errors.push(FieldError::new(key.as_ref(), "is given more than once"));
        }
        *slot = Some(value.into_owned());
    }
    let mut check = |field: &str, valid: bool, message: &str| {
        if !valid {
            errors.push(FieldError::new(field, message));
        }
    };
    let query = PageQuery {
        limit: limit.as_deref().and_then(|raw| {
            let n = whole_number(raw).filter(|n| (1..=u64::from(MAX_PAGE_LIMIT)).contains(n));
            let message = format!("must be a whole number from 1 to {MAX_PAGE_LIMIT}");
            check("limit", n.is_some(), &message);
            n.and_then(|n| u32::try_from(n).ok())
        }),
        order: order.as_deref().and_then(|raw| {
            let o = match raw {
                "asc" => Some(SortOrder::Asc),
                "desc" => Some(SortOrder::Desc),
                _ => None,
            };
            check("order", o.is_some(), "must be \"asc\" or \"desc\"");
            o
        }),
        page: page.as_deref().and_then(|raw| {
            let n = whole_number(raw).filter(|n| (1..=i64::MAX as u64).contains(n));
            check("page", n.is_some(), "must be a whole number of at least 1");
            n
        }),
        after: after.as_deref().and_then(|raw| {
            let cursor = Cursor::decode(raw);
            check(
                "after",
                cursor.is_some(),
                "is not a cursor this service issued; pass a nextCursor value unchanged",
            );
            cursor
        }),
    };
    check(
        "page",
        page.is_none() || after.is_none(),
        "cannot be combined with after; page by number or by cursor",
    );
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    Ok(query.into_request())
}

/// Digits only (no sign, no spaces), as a `u64`.
fn whole_number(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

impl PageQuery {
    /// The request with defaults applied; `after` wins over `page` (validation refuses both).
    pub fn into_request(self) -> PageRequest {
        let mode = match self.after {
            Some(cursor) => PageMode::After(cursor),
            None => PageMode::Page(self.page.unwrap_or(1)),
        };
        PageRequest {
            limit: self.limit.unwrap_or(DEFAULT_PAGE_LIMIT),
            order: self.order.map(Order::from).unwrap_or_default(),
            mode,
        }
    }
}

/// For the whole-session reads (the NDJSON export, the live stream): the seq to start after,
/// from an ascending `after` cursor (`0`: from the first event). Every other parameter is refused,
/// naming `what` does not use it.
pub fn ascending_after(
    raw: Option<&str>,
    request: &PageRequest,
    what: &str,
) -> Result<u64, AppError> {
    let others: Vec<FieldError> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, _)| k.into_owned())
        .filter(|k| k != "after")
        .map(|k| FieldError::new(k, format!("is not used by {what}; only after is")))
        .collect();
    if !others.is_empty() {
        return Err(AppError::Validation(others));
    }
    match &request.mode {
        PageMode::After(cursor) if cursor.order != Order::Asc => {
            Err(crate::service::ServiceError::CursorOrderMismatch.into())
        }
        PageMode::After(cursor) => Ok(cursor.seq),
        PageMode::Page(_) => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let r = page_request(None).unwrap();
        assert_eq!(
            (r.limit, r.order, r.mode),
            (20, Order::Asc, PageMode::Page(1))
        );
    }

    #[test]
    fn every_bad_parameter_is_reported_at_once() {
        let Err(AppError::Validation(errors)) =
            page_request(Some("limit=0&order=up&page=0&bogus=1"))
        else {
            panic!("expected a validation error");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["bogus", "limit", "order", "page"]);
    }

    #[test]
    fn page_and_after_together_are_refused() {
        let cursor = Cursor {
            order: Order::Asc,
            seq: 3,
        }
        .encode();
        assert!(page_request(Some(&format!("page=2&after={cursor}"))).is_err());
        assert!(page_request(Some(&format!("after={cursor}"))).is_ok());
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        for q in ["limit=101", "limit=-1", "limit=abc", "limit=", "limit=+5"] {
            assert!(page_request(Some(q)).is_err(), "{q}");
        }
        assert_eq!(page_request(Some("limit=100")).unwrap().limit, 100);
    }
}
