//! Every rule of `POST /token` (openapi.yaml) apart from session forgery (see `sessions.rs`).

use std::sync::Arc;

use chatgate::clock::FixedClock;
use chatgate_tests::*;
use lambda_http::http::header;
use serde_json::json;
use token::handler::{TokenState, handle};

async fn state(extra: &[(&str, &str)]) -> TokenState {
    TokenState::from_settings(&jwt_settings(extra)).await.expect("config")
}

fn session() -> String {
    hs256_session(&claims("u-123"))
}

#[tokio::test]
async fn default_ttl_is_an_hour_and_expiry_matches_the_token() {
    let mut state = state(&[]).await;
    state.clock = Arc::new(FixedClock(1_795_000_000));
    let response = handle(&state, token_request(Some(&session()), None)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body = json_body(&response);
    assert_eq!(body["identity"], "u-123");
    assert_eq!(body["ttl_seconds"], 3600);
    assert_eq!(body["expires_at"], "2026-11-18T12:06:40Z");
    assert_eq!(body.as_object().expect("object").len(), 4);
}

#[tokio::test]
async fn ttl_is_bounded_by_180_and_the_configured_maximum() {
    let state = state(&[("TOKEN_MAX_TTL_SECONDS", "7200")]).await;
    for (ttl, status) in [(180, 200), (7200, 200), (179, 400), (7201, 400), (0, 400), (-5, 400)] {
        let response =
            handle(&state, token_request(Some(&session()), Some(&json!({"ttl_seconds": ttl}).to_string()))).await;
        assert_eq!(response.status(), status, "ttl {ttl}");
        if status == 200 {
            assert_eq!(json_body(&response)["ttl_seconds"], ttl);
        } else {
            let body = json_body(&response);
            assert_eq!(body["code"], "bad_request");
            assert_eq!(body["detail"], "ttl_seconds must be between 180 and 7200");
        }
    }
}

#[tokio::test]
async fn an_integer_valued_number_is_an_integer() {
    let state = state(&[]).await;
    for (body, status) in
        [(r#"{"ttl_seconds": 1706.0}"#, 200), (r#"{"ttl_seconds": 1.706e3}"#, 200), (r#"{"ttl_seconds": 1706.5}"#, 400)]
    {
        let response = handle(&state, token_request(Some(&session()), Some(body))).await;
        assert_eq!(response.status(), status, "{body}");
        if status == 200 {
            assert_eq!(json_body(&response)["ttl_seconds"], 1706);
        }
    }
}

#[tokio::test]
async fn configured_default_ttl_applies_to_an_empty_body() {
    let state = state(&[("TOKEN_TTL_SECONDS", "900")]).await;
    for body in [None, Some("{}"), Some(r#"{"ttl_seconds": null}"#), Some("  ")] {
        let response = handle(&state, token_request(Some(&session()), body)).await;
        assert_eq!(response.status(), 200, "{body:?}");
        assert_eq!(json_body(&response)["ttl_seconds"], 900);
    }
}

#[tokio::test]
async fn malformed_bodies_are_problems_not_crashes() {
    let state = state(&[]).await;
    for body in [
        "{",
        "[]",
        r#"{"ttl_seconds": "3600"}"#,
        r#"{"ttl_seconds": 3600.5}"#,
        r#"{"ttl": 3600}"#,
        r#"{"identity": "someone-else"}"#,
    ] {
        let response = handle(&state, token_request(Some(&session()), Some(body))).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(json_body(&response)["code"], "bad_request");
    }
}

#[tokio::test]
async fn identity_never_comes_from_the_body() {
    let state = state(&[]).await;
    let response = handle(&state, token_request(Some(&session()), Some(r#"{"identity":"u-999"}"#))).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn non_json_and_oversized_bodies_are_refused() {
    let state = state(&[]).await;
    let mut req = token_request(Some(&session()), Some(r#"{"ttl_seconds": 600}"#));
    req.headers_mut().insert(header::CONTENT_TYPE, "text/plain".parse().expect("header"));
    let response = handle(&state, req).await;
    assert_eq!(response.status(), 415);
    assert_eq!(json_body(&response)["code"], "unsupported_media_type");

    let big = format!(r#"{{"ttl_seconds": 600, "pad": "{}"}}"#, "x".repeat(70_000));
    let response = handle(&state, token_request(Some(&session()), Some(&big))).await;
    assert_eq!(response.status(), 413);
    assert_eq!(json_body(&response)["code"], "payload_too_large");
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let state = state(&[]).await;
    let mut req = token_request(Some(&session()), None);
    *req.method_mut() = lambda_http::http::Method::GET;
    let response = handle(&state, req).await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()[header::ALLOW], "POST");
}

#[tokio::test]
async fn cors_answers_preflight_only_for_allowed_origins() {
    let state = state(&[("ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let preflight = |origin: &str| {
        lambda_http::http::Request::builder()
            .method("OPTIONS")
            .uri("http://localhost/token")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization, content-type")
            .body(lambda_http::Body::Empty)
            .expect("request")
    };
    let allowed = handle(&state, preflight("https://app.example.com")).await;
    assert_eq!(allowed.status(), 204);
    assert_eq!(allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
    assert!(allowed.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().expect("ascii").contains("authorization"));

    let refused = handle(&state, preflight("https://evil.example.com")).await;
    assert!(refused.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let mut req = token_request(Some(&session()), None);
    req.headers_mut().insert(header::ORIGIN, "https://app.example.com".parse().expect("header"));
    let response = handle(&state, req).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
}

#[tokio::test]
async fn errors_also_carry_cors_headers_so_the_spa_can_read_them() {
    let state = state(&[("ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let mut req = token_request(None, None);
    req.headers_mut().insert(header::ORIGIN, "https://app.example.com".parse().expect("header"));
    let response = handle(&state, req).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
}

#[tokio::test]
async fn configuration_errors_name_the_setting() {
    for (extra, name) in [
        (vec![("TWILIO_API_KEY_SECRET", "")], "TWILIO_API_KEY_SECRET"),
        (vec![("ALLOWED_ORIGINS", "*")], "ALLOWED_ORIGINS"),
        (vec![("TWILIO_CONVERSATIONS_SERVICE_SID", "IS1")], "TWILIO_CONVERSATIONS_SERVICE_SID"),
        (vec![("AUTH_MODE", "maybe")], "AUTH_MODE"),
    ] {
        let err = TokenState::from_settings(&jwt_settings(&extra)).await.expect_err("must not start");
        assert_eq!(err.name, name);
    }
}

#[tokio::test]
async fn no_secret_or_token_appears_in_debug_output() {
    let state = state(&[]).await;
    let printed = format!("{state:?}");
    for secret in [API_KEY_SECRET, SESSION_SECRET] {
        assert!(!printed.contains(secret), "{printed}");
    }
}
