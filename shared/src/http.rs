//! HTTP plumbing shared by every route: the one error type callers see, its single mapping to
//! RFC 9457 problem+json, JSON bodies in and out, and CORS.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::config::CorsPolicy;

/// Largest JSON body any route reads; API Gateway would pass up to 10 MB.
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

type Source = Box<dyn StdError + Send + Sync>;

/// Every way a request can fail, as the caller sees it. The detail of a 4xx is written for the
/// caller; a 5xx keeps its cause for the log and shows the caller only an opaque title.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// The caller spent a budget; nothing was done.
    #[error("rate limited: {detail}")]
    RateLimited { detail: String, retry_after: u32 },
    /// An upstream (Twilio, DynamoDB, the identity provider) failed after retries.
    #[error("upstream unavailable: {what}")]
    Upstream {
        what: &'static str,
        status: StatusCode,
        retry_after: Option<u32>,
        #[source]
        source: Option<Source>,
    },
    #[error("internal error")]
    Internal(#[source] Source),
}

impl ApiError {
    pub fn internal(source: impl Into<Source>) -> Self {
        Self::Internal(source.into())
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "bad_request"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Upstream { status, .. } => (*status, "upstream_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// What the caller may read: a 4xx says what was wrong, a 5xx says nothing internal.
    fn detail(&self) -> Option<String> {
        match self {
            Self::BadRequest(d)
            | Self::Unauthorized(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::PayloadTooLarge(d)
            | Self::UnsupportedMediaType(d)
            | Self::RateLimited { detail: d, .. } => Some(d.clone()),
            Self::MethodNotAllowed { allow } => Some(format!("this route accepts {allow}")),
            Self::Upstream { what, .. } => Some(format!("{what} is unavailable; retry later")),
            Self::Internal(_) => None,
        }
    }

    /// The problem+json response: the one mapping from errors to HTTP.
    pub fn into_response(self) -> Response<Body> {
        let (status, code) = self.parts();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code, error = %ErrorChain(&self), "request failed");
        } else {
            tracing::info!(status = status.as_u16(), code, "request refused");
        }
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.detail(),
            code,
        };
        let mut response = json_response(status, &problem);
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="invalid_token""#));
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Upstream { retry_after: Some(s), .. } | Self::RateLimited { retry_after: s, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*s));
            }
            _ => {}
        }
        response
    }
}

// Every other boundary's error maps itself to what the caller sees, beside its own definition
// (`impl From<TwilioError> for ApiError` in `twilio::rest`, and so on): `http` names none of them.

/// RFC 9457 problem details, plus chatgate's stable `code`.
#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    code: &'static str,
}

/// An error and its causes on one line, for the log.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// A JSON response that no cache keeps (every body chatgate sends is per-user).
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // Serializing plain data structs into a Vec cannot fail.
    json_bytes_response(status, serde_json::to_vec(body).unwrap_or_default())
}

/// A JSON response whose body is already serialized (an answer kept for replays).
pub fn json_bytes_response(status: StatusCode, bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::Binary(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The request body as `T`; an empty body is `None`. Non-JSON content types are 415, oversized
/// bodies 413, and anything but a JSON object, malformed JSON or unknown fields 400 naming the
/// problem.
pub fn optional_json_body<T: DeserializeOwned>(req: &Request) -> Result<Option<T>, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if bytes.len() > MAX_JSON_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(format!("the body is larger than {MAX_JSON_BODY_BYTES} bytes")));
    }
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType("send the body as application/json".into()));
    }
    // Every body chatgate takes is an object; serde would also read a struct from an array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::BadRequest("the body must be a JSON object".into()));
    }
    serde_json::from_slice(bytes).map(Some).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Runs one route: answers CORS preflights, maps every [`ApiError`] to problem+json, and adds
/// the CORS headers. A route returns `Err` only for expected failures; this never fails.
pub async fn respond<F, Fut>(cors: Option<&CorsPolicy>, req: Request, route: F) -> Response<Body>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    if let Some(answer) = cors.and_then(|c| preflight(c, &req)) {
        return answer;
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut response = route(req).await.unwrap_or_else(ApiError::into_response);
    if let Some(cors) = cors {
        decorate(cors, origin.as_ref(), &mut response);
    }
    response
}

/// The path's segments, percent-decoded: `/assets/a%2F1/access` is `["assets", "a/1", "access"]`.
/// The same on API Gateway (whose `rawPath` keeps the client's encoding) and the local server.
pub fn path_segments(req: &Request) -> Result<Vec<String>, ApiError> {
    req.uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(|segment| {
            percent_decode(segment)
                .ok_or_else(|| ApiError::BadRequest("the path is not valid percent-encoded UTF-8".into()))
        })
        .collect()
}

/// Matches `segments` against a pattern such as `["assets", "{}", "grants", "{}"]`; the values of
/// the `{}` segments in order.
pub fn match_path<'a>(segments: &'a [String], pattern: &[&str]) -> Option<Vec<&'a str>> {
    if segments.len() != pattern.len() {
        return None;
    }
    let mut captured = Vec::new();
    for (segment, expected) in segments.iter().zip(pattern) {
        if *expected == "{}" {
            captured.push(segment.as_str());
        } else if segment != expected {
            return None;
        }
    }
    Some(captured)
}

fn percent_decode(segment: &str) -> Option<String> {
    // A `%` must start a two-hex-digit escape: anything else is malformed, not literal.
    let bytes = segment.as_bytes();
    let well_formed = bytes
        .iter()
        .enumerate()
        .all(|(i, b)| *b != b'%' || bytes.get(i + 1..i + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode(bytes).decode_utf8().ok().map(std::borrow::Cow::into_owned)
}

/// Deserializes an optional whole number the way JSON Schema counts one: `1706` and `1706.0` are
/// the same integer, `1706.5` is not one. `null` is absent.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    use serde::Deserialize as _;
    use serde::de::Error as _;
    match Option::<serde_json::Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("expected a whole number, got {n}"))),
    }
}

/// The request body as `T`, required.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    optional_json_body(req)?.ok_or_else(|| ApiError::BadRequest("a JSON body is required".into()))
}

/// An empty response with `status` (204 for deletions).
pub fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `Err(405)` unless the request uses `method`.
pub fn require_method(req: &Request, method: Method, allow: &'static str) -> Result<(), ApiError> {
    if req.method() == method { Ok(()) } else { Err(ApiError::MethodNotAllowed { allow }) }
}

const ALLOW_HEADERS: &str = "authorization, content-type, idempotency-key";
/// Response headers a browser script may read: how long to wait after a 429 or 503.
const EXPOSE_HEADERS: &str = "retry-after";
const ALLOW_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";

/// The answer to a CORS preflight, if `req` is one.
fn preflight(policy: &CorsPolicy, req: &Request) -> Option<Response<Body>> {
    if req.method() != Method::OPTIONS || !req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    if decorate(policy, req.headers().get(header::ORIGIN), &mut response) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    Some(response)
}

/// Adds the CORS headers to `response` when the request's origin is allowed; says whether it was.
fn decorate(policy: &CorsPolicy, origin: Option<&HeaderValue>, response: &mut Response<Body>) -> bool {
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    let Some(origin) = origin else { return false };
    if !origin.to_str().is_ok_and(|o| policy.allows(o)) {
        return false;
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).expect("json body")
    }

    #[test]
    fn server_errors_hide_their_cause() {
        let response = ApiError::internal(std::io::Error::other("dynamodb said: secret table name")).into_response();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = body_json(&response);
        assert_eq!(
            body,
            serde_json::json!({"type": "about:blank", "title": "Internal Server Error", "status": 500, "code": "internal"})
        );
    }

    #[test]
    fn client_errors_say_what_was_wrong() {
        let response = ApiError::BadRequest("ttl_seconds must be between 180 and 86400".into()).into_response();
        assert_eq!(response.status(), 400);
        let body = body_json(&response);
        assert_eq!(body["detail"], "ttl_seconds must be between 180 and 86400");
        assert_eq!(body["code"], "bad_request");
        assert_eq!(body["title"], "Bad Request");
    }

    #[test]
    fn retry_after_is_sent_when_known() {
        let response = ApiError::Upstream {
            what: "twilio",
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(2),
            source: None,
        }
        .into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(body_json(&response)["code"], "upstream_unavailable");
    }

    #[test]
    fn paths_are_matched_after_percent_decoding() {
        let req = |uri: &str| lambda_http::http::Request::builder().uri(uri).body(Body::Empty).expect("request");
        let segments = path_segments(&req("http://h/assets/a%2F1%23x%20%C3%A9/grants/user%3Au-1")).expect("valid");
        assert_eq!(match_path(&segments, &["assets", "{}", "grants", "{}"]), Some(vec!["a/1#x é", "user:u-1"]));
        assert_eq!(match_path(&segments, &["assets", "{}", "access"]), None);
        assert!(path_segments(&req("http://h/assets/%ZZ/access")).is_err());
        assert!(path_segments(&req("http://h/assets/%C3/access")).is_err());
    }
}
