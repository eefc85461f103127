//! Twilio's list paging: `PageSize`, `Page` and `PageToken` in, a page and its `meta` out.

use serde_json::{Value, json};

use crate::error::Rejection;

const DEFAULT_PAGE_SIZE: usize = 50;
const PAGING_PARAMETERS: [&str; 3] = ["PageSize", "Page", "PageToken"];
/// Page tokens are `PT` + the offset of the page's first item: opaque to clients, as Twilio's are.
const TOKEN_PREFIX: &str = "PT";

/// Which slice of a list was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub size: usize,
    pub page: usize,
    pub offset: usize,
}

impl PageRequest {
    /// `PageSize` must be 1..=`max` (default 50, or `max` when that is lower); `PageToken`, when
    /// present, decides the offset, otherwise `Page` × `PageSize` does.
    pub fn parse(query: &[(String, String)], max: usize) -> Result<Self, Rejection> {
        let value = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let size = match value("PageSize") {
            None => DEFAULT_PAGE_SIZE.min(max),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => return Err(Rejection::invalid(format!("PageSize must be between 1 and {max}, not {raw:?}"))),
            },
        };
        let page = match value("Page") {
            None => 0,
            Some(raw) => {
                raw.parse::<usize>().map_err(|_| Rejection::invalid(format!("Page must be a number, not {raw:?}")))?
            }
        };
        let offset = match value("PageToken") {
            None => page.saturating_mul(size),
            Some(token) => token
                .strip_prefix(TOKEN_PREFIX)
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| Rejection::invalid(format!("Invalid PageToken {token:?}")))?,
        };
        Ok(Self { size, page, offset })
    }
}

/// The page of `items` that `request` asks for, under `key`, with Twilio's `meta`. `list_url` is
/// the absolute URL of the list without a query; `query` is the request's, whose other
/// parameters (such as `Order`) every page URL keeps.
pub(crate) fn page_body(
    key: &str,
    items: Vec<Value>,
    request: PageRequest,
    list_url: &str,
    query: &[(String, String)],
) -> Value {
    let total = items.len();
    let start = request.offset.min(total);
    let end = start.saturating_add(request.size).min(total);
    let kept: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| !PAGING_PARAMETERS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let url = |page: usize, offset: Option<usize>| {
        let mut pairs: Vec<(&str, String)> = kept.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        pairs.push(("PageSize", request.size.to_string()));
        pairs.push(("Page", page.to_string()));
        if let Some(offset) = offset {
            pairs.push(("PageToken", format!("{TOKEN_PREFIX}{offset}")));
        }
        format!("{list_url}?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
    };
    let this = if request.offset == 0 { url(request.page, None) } else { url(request.page, Some(request.offset)) };
    let next = (end < total).then(|| url(request.page + 1, Some(end)));
    let previous = (request.page > 0 && request.offset > 0)
        .then(|| url(request.page - 1, Some(request.offset.saturating_sub(request.size))));
    let page: Vec<Value> = items.into_iter().skip(start).take(end - start).collect();
    json!({
        key: page,
        "meta": {
            "page": request.page,
            "page_size": request.size,
            "first_page_url": url(0, None),
            "previous_page_url": previous,
            "next_page_url": next,
            "url": this,
            "key": key,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn page_size_defaults_to_fifty_and_is_bounded() {
        assert_eq!(PageRequest::parse(&[], 100).map(|r| r.size), Ok(50));
        assert_eq!(PageRequest::parse(&query(&[("PageSize", "100")]), 100).map(|r| r.size), Ok(100));
        for bad in ["0", "101", "-1", "ten"] {
            let err = PageRequest::parse(&query(&[("PageSize", bad)]), 100).expect_err(bad);
            assert_eq!((err.status, err.code), (400, 20001));
        }
    }

    #[test]
    fn the_last_page_has_no_next_url_and_other_parameters_survive() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let q = query(&[("Order", "desc"), ("PageSize", "2")]);
        let first = page_body("messages", items.clone(), PageRequest::parse(&q, 100).expect("parse"), "http://h/l", &q);
        assert_eq!(first["messages"], json!([0, 1]));
        let next = first["meta"]["next_page_url"].as_str().expect("next");
        assert_eq!(next, "http://h/l?Order=desc&PageSize=2&Page=1&PageToken=PT2");
        let q3 = query(&[("Order", "desc"), ("PageSize", "2"), ("Page", "2"), ("PageToken", "PT4")]);
        let last = page_body("messages", items, PageRequest::parse(&q3, 100).expect("parse"), "http://h/l", &q3);
        assert_eq!(last["messages"], json!([4]));
        assert_eq!(last["meta"]["next_page_url"], Value::Null);
        assert_eq!(last["meta"]["previous_page_url"], "http://h/l?Order=desc&PageSize=2&Page=1&PageToken=PT2");
    }
}
