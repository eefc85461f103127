//! Session verification through `POST /token`: only a verified session yields an identity, and
//! every forgery an attacker can try is a 401.

use chatgate::auth::{AuthConfig, Caller, SessionVerifier};
use chatgate::domain::{Tenant, TenantId};
use chatgate_tests::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lambda_http::http::header;
use serde_json::{Value, json};
use token::handler::{TokenState, handle};

async fn hs_state() -> TokenState {
    TokenState::from_settings(&jwt_settings(&[])).await.expect("config")
}

async fn jwks_state(jwks: &JwksServer, algorithm: &str) -> TokenState {
    let settings = with_jwks(&jwks.url, algorithm);
    TokenState::from_settings(&settings).await.expect("config")
}

/// A JWKS deployment: the HS256 secret of `jwt_settings` emptied (empty counts as unset).
fn with_jwks(url: &str, algorithm: &str) -> chatgate::config::Settings {
    jwt_settings(&[("JWT_JWKS_URL", url), ("JWT_ALGORITHM", algorithm), ("JWT_HS256_SECRET", "")])
}

async fn status_and_detail(state: &TokenState, token: Option<&str>) -> (u16, Value) {
    let response = handle(state, token_request(token, None)).await;
    let status = response.status().as_u16();
    if status != 200 {
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
    }
    (status, json_body(&response))
}

async fn refused(state: &TokenState, token: &str, detail: &str) {
    let (status, body) = status_and_detail(state, Some(token)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(body["detail"], detail);
}

fn jwks() -> Value {
    serde_json::from_str(&fixture("keys/jwks.json")).expect("jwks fixture")
}

#[tokio::test]
async fn a_valid_hs256_session_yields_its_subject() {
    let (status, body) = status_and_detail(&hs_state().await, Some(&hs256_session(&claims("u-1")))).await;
    assert_eq!(status, 200);
    assert_eq!(body["identity"], "u-1");
}

#[tokio::test]
async fn missing_or_non_bearer_authorization_is_401_with_challenge() {
    let state = hs_state().await;
    let response = handle(&state, token_request(None, None)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], r#"Bearer error="invalid_token""#);
    assert_eq!(json_body(&response)["detail"], "missing bearer token");

    let mut req = token_request(None, None);
    req.headers_mut().insert(header::AUTHORIZATION, "Basic dTpw".parse().expect("header"));
    assert_eq!(handle(&state, req).await.status(), 401);
    refused(&state, "not-a-jwt", "malformed session token").await;
}

#[tokio::test]
async fn expired_and_premature_sessions_are_refused() {
    let state = hs_state().await;
    let mut expired = claims("u-1");
    expired["exp"] = json!(now() - 60);
    refused(&state, &hs256_session(&expired), "session expired").await;
    let mut premature = claims("u-1");
    premature["nbf"] = json!(now() + 600);
    refused(&state, &hs256_session(&premature), "session not yet valid").await;
}

#[tokio::test]
async fn wrong_issuer_audience_or_missing_claims_are_refused() {
    let state = hs_state().await;
    let mut c = claims("u-1");
    c["iss"] = json!("https://evil.test/");
    refused(&state, &hs256_session(&c), "session issued by another issuer").await;
    let mut c = claims("u-1");
    c["aud"] = json!("another-app");
    refused(&state, &hs256_session(&c), "session issued for another audience").await;
    for claim in ["exp", "aud", "iss"] {
        let mut c = claims("u-1");
        c.as_object_mut().expect("object").remove(claim);
        let (status, _) = status_and_detail(&state, Some(&hs256_session(&c))).await;
        assert_eq!(status, 401, "without {claim}");
    }
    let mut c = claims("u-1");
    c.as_object_mut().expect("object").remove("sub");
    refused(&state, &hs256_session(&c), "the session has no `sub` claim").await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let state = hs_state().await;
    for alg in ["none", "None", "NONE"] {
        let token = forged(&json!({"alg": alg, "typ": "JWT"}), &claims("u-1"), b"");
        let (status, _) = status_and_detail(&state, Some(&token)).await;
        assert_eq!(status, 401, "alg {alg}");
        let unsigned = token.trim_end_matches('.').to_owned() + ".";
        assert_eq!(status_and_detail(&state, Some(&unsigned)).await.0, 401);
    }
}

#[tokio::test]
async fn tampered_or_foreign_signatures_are_refused() {
    let state = hs_state().await;
    let good = hs256_session(&claims("u-1"));
    let parts: Vec<&str> = good.split('.').collect();
    let forged_claims = forged(&json!({"alg": "HS256", "typ": "JWT"}), &claims("admin"), b"");
    let tampered = format!("{}.{}.{}", parts[0], forged_claims.split('.').nth(1).expect("claims"), parts[2]);
    refused(&state, &tampered, "session signature does not verify").await;

    let other = sign(
        Header::new(Algorithm::HS256),
        &claims("u-1"),
        &EncodingKey::from_secret(b"another-secret-0123456789abcdef-xyz"),
    );
    refused(&state, &other, "session signature does not verify").await;
}

#[tokio::test]
async fn an_rs256_token_is_refused_by_an_hs256_deployment() {
    let token = rs256_session(Some("rsa-1"), &claims("u-1"));
    refused(&hs_state().await, &token, "session token signed with an algorithm this deployment does not accept").await;
}

#[tokio::test]
async fn rs256_sessions_verify_from_the_jwks_which_is_cached() {
    let server = JwksServer::start(jwks()).await;
    let state = jwks_state(&server, "RS256").await;
    assert_eq!(server.hits(), 0, "nothing is fetched at cold start");
    for sub in ["u-1", "u-2", "u-3"] {
        let (status, body) = status_and_detail(&state, Some(&rs256_session(Some("rsa-1"), &claims(sub)))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["identity"], sub);
    }
    assert_eq!(server.hits(), 1, "the key set is fetched once and kept");
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let server = JwksServer::start(jwks()).await;
    let state = jwks_state(&server, "RS256").await;
    let public_pem = fixture("keys/rsa-public.pem");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let confused = sign(header, &claims("u-1"), &EncodingKey::from_secret(public_pem.as_bytes()));
    refused(&state, &confused, "session token signed with an algorithm this deployment does not accept").await;
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_then_is_refused() {
    let server = JwksServer::start(jwks()).await;
    let state = jwks_state(&server, "RS256").await;
    assert_eq!(status_and_detail(&state, Some(&rs256_session(Some("rsa-1"), &claims("u-1")))).await.0, 200);
    let unknown = rs256_session(Some("rotated-away"), &claims("u-1"));
    refused(&state, &unknown, "session signed with an unknown key").await;
    assert_eq!(server.hits(), 2, "an unknown kid refetches the key set");
    refused(&state, &unknown, "session signed with an unknown key").await;
    assert_eq!(server.hits(), 2, "forged kids cannot make chatgate hammer the identity provider");
}

#[tokio::test]
async fn a_key_rotated_in_while_warm_is_picked_up() {
    let mut only_ec = jwks();
    only_ec["keys"].as_array_mut().expect("keys").retain(|k| k["kty"] == "EC");
    let server = JwksServer::start(only_ec).await;
    let state = jwks_state(&server, "RS256").await;
    // The first load finds no RSA key.
    refused(&state, &rs256_session(Some("rsa-1"), &claims("u-1")), "session signed with an unknown key").await;
    assert_eq!(server.hits(), 1);
    // The identity provider rotates the key in; the warm function refetches on the unknown kid.
    server.serve(Some(jwks()));
    assert_eq!(status_and_detail(&state, Some(&rs256_session(Some("rsa-1"), &claims("u-1")))).await.0, 200);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn es256_deployments_take_es256_and_nothing_else() {
    let server = JwksServer::start(jwks()).await;
    let state = jwks_state(&server, "ES256").await;
    assert_eq!(status_and_detail(&state, Some(&es256_session(Some("ec-1"), &claims("u-1")))).await.0, 200);
    refused(
        &state,
        &rs256_session(Some("rsa-1"), &claims("u-1")),
        "session token signed with an algorithm this deployment does not accept",
    )
    .await;
    // An ES256 header pointing at the RSA key's kid finds no EC key under it.
    refused(&state, &es256_session(Some("rsa-1"), &claims("u-1")), "session signed with an unknown key").await;
}

#[tokio::test]
async fn an_unreachable_key_set_is_503_not_401() {
    let server = JwksServer::start(jwks()).await;
    server.serve(None);
    let state = jwks_state(&server, "RS256").await;
    let (status, body) = status_and_detail(&state, Some(&rs256_session(Some("rsa-1"), &claims("u-1")))).await;
    assert_eq!(status, 503);
    assert_eq!(body["code"], "upstream_unavailable");
    assert!(!body.to_string().contains("127.0.0.1"), "no internal address leaks: {body}");
}

#[tokio::test]
async fn identities_twilio_cannot_take_are_400() {
    let state = hs_state().await;
    for sub in [String::new(), "x".repeat(257), "a\u{1}b".into(), format!("US{}", "ab".repeat(16))] {
        let (status, body) = status_and_detail(&state, Some(&hs256_session(&claims(&sub)))).await;
        assert_eq!(status, 400, "{sub:?}: {body}");
        assert_eq!(body["code"], "bad_request");
    }
    let (status, body) = status_and_detail(&state, Some(&hs256_session(&claims(&"x".repeat(256))))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_identity_claim_is_configurable() {
    let state = TokenState::from_settings(&jwt_settings(&[("IDENTITY_CLAIM", "email")])).await.expect("config");
    let mut c = claims("u-1");
    c["email"] = json!("ana@example.com");
    let (status, body) = status_and_detail(&state, Some(&hs256_session(&c))).await;
    assert_eq!((status, body["identity"].clone()), (200, json!("ana@example.com")));
    refused(&state, &hs256_session(&claims("u-1")), "the session has no `email` claim").await;
    let mut c = claims("u-1");
    c["email"] = json!(["a", "b"]);
    refused(&state, &hs256_session(&c), "the session's `email` claim is not a string").await;
}

#[tokio::test]
async fn authorizer_mode_reads_the_verified_claims_only() {
    let state = TokenState::from_settings(&authorizer_settings(&[])).await.expect("config");
    let response = handle(&state, apigw_request(Some(json!({"sub": "u-7", "iss": ISSUER})), None)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_body(&response)["identity"], "u-7");

    // A bearer token the authorizer did not vouch for is never read in this mode.
    let mut req = apigw_request(None, None);
    req.headers_mut()
        .insert(header::AUTHORIZATION, format!("Bearer {}", hs256_session(&claims("u-1"))).parse().expect("header"));
    assert_eq!(handle(&state, req).await.status(), 401);
    // Nor does a request that did not come through API Gateway carry any identity.
    assert_eq!(handle(&state, token_request(Some(&hs256_session(&claims("u-1"))), None)).await.status(), 401);
}

/// A tenant deployment's verifier (`TENANT_CLAIM=org_id`), and the caller it reads from a request.
async fn caller(verifier: &SessionVerifier, req: lambda_http::Request) -> Result<Caller, (u16, String)> {
    verifier.caller(&req).await.map_err(|e| {
        let response = e.into_response();
        (response.status().as_u16(), json_body(&response)["detail"].as_str().unwrap_or_default().to_owned())
    })
}

#[tokio::test]
async fn a_tenant_deployment_reads_the_tenant_from_the_verified_session_only() {
    let config = AuthConfig::from_settings(&jwt_settings(&[("TENANT_CLAIM", "org_id")])).expect("config");
    let verifier = SessionVerifier::new(&config).expect("verifier");
    let session = |sub: &str, org: Option<Value>| {
        let mut c = claims(sub);
        if let Some(org) = org {
            c["org_id"] = org;
        }
        token_request(Some(&hs256_session(&c)), None)
    };
    let acme = caller(&verifier, session("u-1", Some(json!("acme")))).await.expect("acme's u-1");
    assert_eq!(acme.identity.as_str(), "acme~u-1");
    assert_eq!(acme.tenant.id().map(TenantId::as_str), Some("acme"));
    let globex = caller(&verifier, session("u-1", Some(json!("globex")))).await.expect("globex's u-1");
    assert_ne!(acme.identity, globex.identity, "the same user id in two tenants is two people");

    assert_eq!(
        caller(&verifier, session("u-1", None)).await.expect_err("no tenant"),
        (401, "the session has no `org_id` claim".to_owned())
    );
    for bad in [json!(""), json!("ac~me"), json!("-acme"), json!("a".repeat(65)), json!("org/1")] {
        let (status, detail) = caller(&verifier, session("u-1", Some(bad.clone()))).await.expect_err("bad tenant");
        assert_eq!(status, 401, "{bad}: {detail}");
        assert!(detail.starts_with("the session's `org_id` claim is not a tenant id"), "{detail}");
    }
    let (status, _) = caller(&verifier, session("u-1", Some(json!(["acme"])))).await.expect_err("not a string");
    assert_eq!(status, 401);
    // The qualified identity must fit Twilio's 256 characters whatever the tenant: a user id of
    // at most 256 - 65, even for a short tenant.
    assert!(caller(&verifier, session(&"x".repeat(191), Some(json!("acme")))).await.is_ok());
    assert_eq!(caller(&verifier, session(&"x".repeat(192), Some(json!("acme")))).await.expect_err("long").0, 400);
    // A tenant in the body or a header counts for nothing: only the signed session names it.
    let mut req = session("u-1", Some(json!("acme")));
    req.headers_mut().insert("x-tenant", "globex".parse().expect("header"));
    assert_eq!(caller(&verifier, req).await.expect("caller").identity.as_str(), "acme~u-1");

    // Without TENANT_CLAIM, a deployment is single-tenant: the same session is `u-1`, as before.
    let single =
        SessionVerifier::new(&AuthConfig::from_settings(&jwt_settings(&[])).expect("config")).expect("verifier");
    let plain = caller(&single, session("u-1", Some(json!("acme")))).await.expect("u-1");
    assert_eq!((plain.identity.as_str(), plain.tenant), ("u-1", Tenant::Single));
}

#[tokio::test]
async fn authorizer_mode_reads_the_tenant_from_the_authorizers_claims() {
    let config = AuthConfig::from_settings(&authorizer_settings(&[("TENANT_CLAIM", "org_id")])).expect("config");
    let verifier = SessionVerifier::new(&config).expect("verifier");
    let vouched = apigw_request(Some(json!({"sub": "u-7", "org_id": "acme", "iss": ISSUER})), None);
    assert_eq!(caller(&verifier, vouched).await.expect("caller").identity.as_str(), "acme~u-7");
    let without = apigw_request(Some(json!({"sub": "u-7", "iss": ISSUER})), None);
    assert_eq!(caller(&verifier, without).await.expect_err("no tenant").0, 401);
}

#[tokio::test]
async fn tenant_claim_makes_every_route_read_the_tenant_from_the_session() {
    let settings = jwt_settings(&[("TENANT_CLAIM", "org_id")]);
    let verifier = SessionVerifier::new(&AuthConfig::from_settings(&settings).expect("auth")).expect("verifier");
    let session = |claims: Value| {
        let mut req = lambda_http::Request::default();
        let bearer = format!("Bearer {}", hs256_session(&claims));
        req.headers_mut().insert(header::AUTHORIZATION, bearer.parse().expect("header"));
        req
    };
    let acme = verifier.caller(&session(tenant_claims("acme", "u-1"))).await.expect("acme's u-1");
    assert_eq!(acme.identity.as_str(), "acme~u-1");
    assert!(matches!(verifier.caller(&session(claims("u-1"))).await, Err(chatgate::http::ApiError::Unauthorized(_))));
    // Unset, or empty, nothing changes; a claim name must be a name.
    let plain = SessionVerifier::new(&AuthConfig::from_settings(&jwt_settings(&[])).expect("auth")).expect("verifier");
    assert_eq!(plain.caller(&session(tenant_claims("acme", "u-1"))).await.expect("u-1").identity.as_str(), "u-1");
    let empty = jwt_settings(&[("TENANT_CLAIM", "")]);
    assert!(matches!(AuthConfig::from_settings(&empty), Ok(AuthConfig::Jwt { tenant_claim: None, .. })));
    let bad = jwt_settings(&[("TENANT_CLAIM", "org id")]);
    assert_eq!(AuthConfig::from_settings(&bad).expect_err("a space").name, "TENANT_CLAIM");
}
