//! Pagination and body parsing shared by the API handlers.

use super::*;

/// A page request.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PageQuery {
    /// Items per page (≤ 100).
    pub per_page: Option<String>,
    /// 1-based page number.
    pub page: Option<String>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Cuts one page out of `items`. Cursors are `o<offset>`: opaque to clients, URL-safe.
pub fn paginate<T>(items: Vec<T>, q: &PageQuery) -> Result<(Vec<T>, flankbox_protocol::Pagination)> {
    let bad = |field: &str, msg: &str| Error::Invalid(ValidationError::new(field, msg));
    let per_page = match &q.per_page {
        None => 50,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| bad("per_page", "must be a number from 1 to 100"))?,
    };
    let offset = match (&q.cursor, &q.page) {
        (Some(c), _) => c
            .strip_prefix('o')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| bad("cursor", "is not a cursor this host issued"))?,
        (None, Some(p)) => p
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            // A page past any list is an empty one (found by fuzzing: it overflowed).
            .map(|p| (p - 1).saturating_mul(per_page))
            .ok_or_else(|| bad("page", "must be a number from 1"))?,
        (None, None) => 0,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(per_page).collect();
    let next = offset + page.len();
    let has_next = next < total;
    let pagination = flankbox_protocol::Pagination {
        has_next_page: has_next,
        cursor: has_next.then(|| format!("o{next}")),
        count: page.len(),
    };
    Ok((page, pagination))
}

/// Parses a JSON body into `T`, naming the field that does not fit.
pub fn parse_body<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." {
            Error::Body(inner)
        } else {
            Error::Body(format!("{path}: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_omit_the_cursor_at_the_end() {
        let q = PageQuery {
            per_page: Some("2".into()),
            ..Default::default()
        };
        let (page, p) = paginate(vec![1, 2, 3], &q).unwrap();
        assert_eq!(page, vec![1, 2]);
        assert_eq!((p.has_next_page, p.count), (true, 2));
        let q = PageQuery {
            per_page: Some("2".into()),
            cursor: p.cursor,
            page: None,
        };
        let (page, p) = paginate(vec![1, 2, 3], &q).unwrap();
        assert_eq!(page, vec![3]);
        assert_eq!((p.has_next_page, p.cursor), (false, None));
        let q = PageQuery {
            per_page: Some("2".into()),
            page: Some("2".into()),
            cursor: None,
        };
        assert_eq!(paginate(vec![1, 2, 3], &q).unwrap().0, vec![3]);
    }

    #[test]
    fn bad_page_queries_are_400s() {
        for q in [
            PageQuery {
                per_page: Some("0".into()),
                ..Default::default()
            },
            PageQuery {
                per_page: Some("101".into()),
                ..Default::default()
            },
            PageQuery {
                cursor: Some("zz".into()),
                ..Default::default()
            },
            PageQuery {
                page: Some("0".into()),
                ..Default::default()
            },
        ] {
            assert!(matches!(paginate(vec![1], &q), Err(Error::Invalid(_))), "{q:?}");
        }
    }
}
