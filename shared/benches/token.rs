//! The token route's CPU work, piece by piece: minting a Twilio access token, and verifying a
//! session token (HS256 with a shared secret; RS256 and ES256 against a JWKS on loopback, warm cache).
//!
//! `cargo bench -p chatgate --bench token`

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use chatgate::auth::{AuthConfig, SessionVerifier};
use chatgate::config::Settings;
use chatgate::domain::{AccountSid, ApiKeySid, Identity, ServiceSid, TtlPolicy};
use chatgate::twilio::{AccessTokenMinter, TokenSigningKey};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lambda_http::http::header;
use lambda_http::{Body, Request};
use secrecy::SecretString;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::runtime::Runtime;

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID: &str = "SK0123456789abcdef0123456789abcdef";
const API_KEY_SECRET: &str = "bench-api-key-secret-0123456789abcdef";
const SERVICE_SID: &str = "IS0123456789abcdef0123456789abcdef";
const IDENTITY: &str = "alice@example.com";

const SESSION_SECRET: &str = "bench-session-secret-0123456789abcdef";
const ISSUER: &str = "https://idp.bench/";
const AUDIENCE: &str = "chatgate-bench";

// The test suite's fixture keys: generated for tests, never used anywhere else.
const RSA_PRIVATE_PEM: &str = include_str!("../../tests/fixtures/keys/rsa-private.pem");
const EC_PRIVATE_PEM: &str = include_str!("../../tests/fixtures/keys/ec-private.pem");
const JWKS: &str = include_str!("../../tests/fixtures/keys/jwks.json");

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn mint(c: &mut Criterion) {
    let minter = AccessTokenMinter::new(
        AccountSid::try_from(ACCOUNT_SID).expect("account SID"),
        ApiKeySid::try_from(API_KEY_SID).expect("API key SID"),
        TokenSigningKey::new(&SecretString::from(API_KEY_SECRET)),
        &ServiceSid::try_from(SERVICE_SID).expect("service SID"),
        None,
    );
    let identity = Identity::try_from(IDENTITY).expect("identity");
    let ttl = TtlPolicy::new(3600, 86_400).expect("ttl policy").default_ttl();
    let now = now();
    c.bench_function("mint", |b| b.iter(|| minter.mint(black_box(&identity), ttl, black_box(now))));
}

/// A session token for `IDENTITY`, valid for an hour.
fn session(header: Header, key: &EncodingKey) -> String {
    let now = now();
    let claims = json!({"sub": IDENTITY, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 3600});
    chatgate::auth::install_jwt_crypto();
    jsonwebtoken::encode(&header, &claims, key).expect("sign session")
}

fn token_request(bearer: &str) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.bench/token")
        .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
        .body(Body::Empty)
        .expect("request")
}

fn verifier(pairs: &[(&str, &str)]) -> SessionVerifier {
    let mut all = vec![("AUTH_MODE", "jwt"), ("JWT_ISSUER", ISSUER), ("JWT_AUDIENCE", AUDIENCE)];
    all.extend_from_slice(pairs);
    let config = AuthConfig::from_settings(&Settings::from_pairs(all)).expect("auth config");
    SessionVerifier::new(&config).expect("session verifier")
}

/// One verification per iteration on a current-thread runtime, as one warm Lambda runs it.
fn bench_verify(c: &mut Criterion, rt: &Runtime, name: &str, verifier: &SessionVerifier, req: &Request) {
    // The first call fetches the key set (JWKS modes); fail here rather than bench an error path.
    let identity = rt.block_on(verifier.identity(req)).expect("the bench session verifies");
    assert_eq!(identity.as_str(), IDENTITY);
    c.bench_function(name, |b| b.iter(|| rt.block_on(verifier.identity(black_box(req)))));
}

/// Serves the fixture JWKS on loopback with a bare HTTP/1.1 answer; its URL.
fn serve_jwks(rt: &Runtime) -> String {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("address");
    rt.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{JWKS}",
                JWKS.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    format!("http://{addr}/.well-known/jwks.json")
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");

    let hs256 = session(Header::new(Algorithm::HS256), &EncodingKey::from_secret(SESSION_SECRET.as_bytes()));
    bench_verify(c, &rt, "verify_hs256", &verifier(&[("JWT_HS256_SECRET", SESSION_SECRET)]), &token_request(&hs256));

    let jwks_url = serve_jwks(&rt);
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).expect("RSA fixture key");
    let rs256 = session(Header { kid: Some("rsa-1".into()), ..Header::new(Algorithm::RS256) }, &rsa);
    let rs_verifier = verifier(&[("JWT_JWKS_URL", &jwks_url), ("JWT_ALGORITHM", "RS256")]);
    bench_verify(c, &rt, "verify_rs256_jwks_warm", &rs_verifier, &token_request(&rs256));

    let ec = EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).expect("EC fixture key");
    let es256 = session(Header { kid: Some("ec-1".into()), ..Header::new(Algorithm::ES256) }, &ec);
    let es_verifier = verifier(&[("JWT_JWKS_URL", &jwks_url), ("JWT_ALGORITHM", "ES256")]);
    bench_verify(c, &rt, "verify_es256_jwks_warm", &es_verifier, &token_request(&es256));
}

criterion_group!(benches, mint, verify);
criterion_main!(benches);
