//! The read endpoint's query string: `limit`, `page`, `order`, `after`.

use super::error::{AppError, FieldError};
use crate::domain::Order;
use crate::service::{Cursor, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, PageMode, PageRequest};

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
    let limit = match limit.as_deref() {
        None => DEFAULT_PAGE_LIMIT,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) && !raw.starts_with('+') => n,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE_LIMIT}"),
                ));
                DEFAULT_PAGE_LIMIT
            }
        },
    };
    let order = match order.as_deref() {
        None | Some("asc") => Order::Asc,
        Some("desc") => Order::Desc,
        Some(_) => {
            errors.push(FieldError::new("order", "must be \"asc\" or \"desc\""));
            Order::Asc
        }
    };
    let page_number = match page.as_deref() {
        None => None,
        Some(raw) => match raw.parse::<u64>() {
            Ok(n) if (1..=i64::MAX as u64).contains(&n) && !raw.starts_with('+') => Some(n),
            _ => {
                errors.push(FieldError::new(
                    "page",
                    "must be a whole number of at least 1",
                ));
                None
            }
        },
    };
    let cursor = match after.as_deref() {
        None => None,
        Some(raw) => {
            let cursor = Cursor::decode(raw);
            if cursor.is_none() {
                errors.push(FieldError::new(
                    "after",
                    "is not a cursor this service issued; pass a nextCursor value unchanged",
                ));
            }
            cursor
        }
    };
    if page.is_some() && after.is_some() {
        errors.push(FieldError::new(
            "page",
            "cannot be combined with after; page by number or by cursor",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let mode = match cursor {
        Some(cursor) => PageMode::After(cursor),
        None => PageMode::Page(page_number.unwrap_or(1)),
    };
    Ok(PageRequest { limit, order, mode })
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
