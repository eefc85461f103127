//! Shared harness for chatgate's black-box tests: session tokens signed like an identity
//! provider's, a JWKS server that counts its hits, requests shaped like API Gateway's, and the
//! Twilio helper libraries as oracles.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use chatgate::config::Settings;
use http_body_util::Full;
use hyper::body::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lambda_http::http::header;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://idp.test/";
pub const AUDIENCE: &str = "chatgate-tests";
/// The HS256 session secret of the tests and of every `events/` fixture in jwt mode.
pub const SESSION_SECRET: &str = "chatgate-events-session-secret-0123456789";
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const API_KEY_SID: &str = "SK00000000000000000000000000000001";
pub const API_KEY_SECRET: &str = "chatgate-test-api-key-secret";
pub const SERVICE_SID: &str = "IS00000000000000000000000000000001";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

pub fn fixture(path: &str) -> String {
    let full = workspace_root().join("tests/fixtures").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Claims of a valid session for `sub`, one hour long.
pub fn claims(sub: &str) -> Value {
    let now = now();
    json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 3600})
}

pub fn hs256_session(claims: &Value) -> String {
    sign(Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(SESSION_SECRET.as_bytes()))
}

pub fn rs256_session(kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    let key = EncodingKey::from_rsa_pem(fixture("keys/rsa-private.pem").as_bytes()).expect("rsa key");
    sign(header, claims, &key)
}

pub fn es256_session(kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_owned);
    let key = EncodingKey::from_ec_pem(fixture("keys/ec-private.pem").as_bytes()).expect("ec key");
    sign(header, claims, &key)
}

pub fn sign(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("sign session")
}

/// A token with whatever header, claims and signature bytes a forger chooses.
pub fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}.{}", b64.encode(header.to_string()), b64.encode(claims.to_string()), b64.encode(signature))
}

/// Settings for the token route in jwt mode with the test session secret.
pub fn jwt_settings(extra: &[(&str, &str)]) -> Settings {
    let mut pairs = vec![
        ("AUTH_MODE", "jwt"),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
        ("JWT_HS256_SECRET", SESSION_SECRET),
    ];
    pairs.extend_from_slice(extra);
    with_twilio(pairs)
}

pub fn authorizer_settings(extra: &[(&str, &str)]) -> Settings {
    let mut pairs = vec![("AUTH_MODE", "authorizer")];
    pairs.extend_from_slice(extra);
    with_twilio(pairs)
}

fn with_twilio(mut pairs: Vec<(&str, &str)>) -> Settings {
    let names: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    for (k, v) in [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY_SID", API_KEY_SID),
        ("TWILIO_API_KEY_SECRET", API_KEY_SECRET),
        ("TWILIO_CONVERSATIONS_SERVICE_SID", SERVICE_SID),
    ] {
        if !names.contains(&k) {
            pairs.push((k, v));
        }
    }
    Settings::from_pairs(pairs)
}

/// `POST /token` with an optional bearer token and JSON body, as the local server builds it.
pub fn token_request(bearer: Option<&str>, body: Option<&str>) -> Request {
    let mut builder = lambda_http::http::Request::builder().method("POST").uri("http://localhost/token");
    if let Some(token) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    builder.body(body.map_or(Body::Empty, |b| Body::from(b.to_owned()))).expect("request")
}

/// An API Gateway HTTP API (v2) event for `POST /token`, parsed the way Lambda delivers it.
pub fn apigw_request(authorizer_claims: Option<Value>, body: Option<&str>) -> Request {
    let mut context = json!({
        "accountId": "123456789012", "apiId": "api", "domainName": "api.test", "domainPrefix": "api",
        "http": {"method": "POST", "path": "/token", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
        "requestId": "req-1", "routeKey": "POST /token", "stage": "$default", "time": "21/Nov/2026:19:00:00 +0000", "timeEpoch": 1_795_000_000_000u64
    });
    if let Some(claims) = authorizer_claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let event = json!({
        "version": "2.0", "routeKey": "POST /token", "rawPath": "/token", "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.test"},
        "requestContext": context, "body": body, "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("v2 event")
}

pub fn json_body(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap_or_else(|e| panic!("JSON body ({e}): {:?}", response.body()))
}

/// A JWKS endpoint on loopback that counts how often it is fetched.
#[derive(Debug, Clone)]
pub struct JwksServer {
    pub url: String,
    hits: Arc<AtomicUsize>,
    document: Arc<Mutex<Option<Value>>>,
}

impl JwksServer {
    pub async fn start(document: Value) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let document = Arc::new(Mutex::new(Some(document)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let (h, d) = (hits.clone(), document.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (h, d) = (h.clone(), d.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let doc = d.lock().expect("lock").clone();
                        async move {
                            let response = match doc {
                                Some(doc) => hyper::Response::new(Full::new(Bytes::from(doc.to_string()))),
                                None => {
                                    let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"down")));
                                    *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                                    r
                                }
                            };
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Self { url: format!("http://{addr}/.well-known/jwks.json"), hits, document }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Replaces the served key set; `None` makes the endpoint answer 503.
    pub fn serve(&self, document: Option<Value>) {
        *self.document.lock().expect("lock") = document;
    }
}

/// The project's Python (the venv `scripts/test` makes), where the `twilio` package is installed.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CHATGATE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(venv.exists(), "no {}: run scripts/test, which installs the twilio oracle", venv.display());
    venv
}

/// Runs a script under `tests/oracle/` with `input` on stdin; its stdout as JSON.
pub fn oracle(script: &str, input: &Value) -> Value {
    let path = workspace_root().join("tests/oracle").join(script);
    let (program, args): (PathBuf, Vec<PathBuf>) = if script.ends_with(".js") {
        (PathBuf::from("node"), vec![path])
    } else {
        (python(), vec![path])
    };
    let mut child = Command::new(&program)
        .args(&args)
        .current_dir(workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write oracle input");
    let out = child.wait_with_output().expect("oracle output");
    assert!(out.status.success(), "oracle {script} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("oracle {script} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}
