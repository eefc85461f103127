//! Shared harness for chatgate's black-box tests: session tokens signed like an identity
//! provider's, a JWKS server that counts its hits, requests shaped like API Gateway's, and the
//! Twilio helper libraries as oracles.

pub mod dynamo;
pub mod prism;
pub mod process;
pub mod stream_filter;

use std::io::Write as _;
pub mod acl_contract;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
use twilio_standin::harness::Server;

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

/// The session claim tenant deployments in the tests read the tenant from (`TENANT_CLAIM`).
pub const TENANT_CLAIM: &str = "org_id";

/// The claims of `sub`'s session in `tenant`'s organisation.
pub fn tenant_claims(tenant: &str, sub: &str) -> Value {
    let mut c = claims(sub);
    c[TENANT_CLAIM] = json!(tenant);
    c
}

/// A session verifier of the tests' `jwt` deployment that reads the tenant from
/// [`TENANT_CLAIM`]: what a route's state gets in tenant mode.
pub fn tenant_sessions() -> std::sync::Arc<chatgate::auth::SessionVerifier> {
    let config = chatgate::auth::AuthConfig::from_settings(&jwt_settings(&[("TENANT_CLAIM", TENANT_CLAIM)]))
        .expect("auth config");
    std::sync::Arc::new(chatgate::auth::SessionVerifier::new(&config).expect("verifier"))
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
    chatgate::auth::install_jwt_crypto();
    jsonwebtoken::encode(&header, claims, key).expect("sign session")
}

/// A token with whatever header, claims and signature bytes a forger chooses.
pub fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}.{}", b64.encode(header.to_string()), b64.encode(claims.to_string()), b64.encode(signature))
}

/// The Conversations REST client of the tests' service and API key, at `base_url` (a stand-in's).
pub fn twilio_client(base_url: &str) -> chatgate::twilio::rest::ConversationsClient {
    chatgate::twilio::rest::ConversationsClient::new(
        base_url,
        chatgate::domain::ServiceSid::try_from(SERVICE_SID).expect("service sid"),
        chatgate::domain::ApiKeySid::try_from(API_KEY_SID).expect("api key sid"),
        API_KEY_SECRET.to_owned().into(),
    )
    .expect("client")
}

/// Invokes the reconciler function's handler with `event` as Lambda would: the JSON deserialized
/// into its trigger, the answer serialized back.
pub async fn invoke_reconciler<R>(
    state: &reconciler::handler::ReconcilerState<R>,
    event: Value,
) -> Result<Value, String>
where
    R: chatgate::acl::ReconcilerStore,
{
    let trigger = serde_json::from_value(event).map_err(|e| format!("not a trigger: {e}"))?;
    let event = lambda_runtime::LambdaEvent::new(trigger, lambda_runtime::Context::default());
    let answer = reconciler::handler::handle(state, event).await.map_err(|e| e.to_string())?;
    Ok(serde_json::to_value(answer).expect("answer"))
}

/// A client for routes that never reach Twilio in a test: nothing listens at its address.
pub fn no_twilio() -> chatgate::twilio::rest::ConversationsClient {
    twilio_client("http://127.0.0.1:9")
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
        ("CONVERSATION_NAME_KEY", chatgate::domain::DEVELOPMENT_NAME_KEY),
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
    serde_json::from_slice(response.body().as_ref())
        .unwrap_or_else(|e| panic!("JSON body ({e}): {:?}", response.body()))
}

/// A JWKS endpoint on loopback that counts how often it is fetched; it stops accepting
/// connections when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct JwksServer {
    pub url: String,
    hits: Arc<AtomicUsize>,
    document: Arc<Mutex<Option<Value>>>,
    _server: Arc<Server>,
}

impl JwksServer {
    pub async fn start(document: Value) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let document = Arc::new(Mutex::new(Some(document)));
        let (h, d) = (hits.clone(), document.clone());
        let server = Server::loopback(move |_req| {
            h.fetch_add(1, Ordering::SeqCst);
            let response = match d.lock().expect("lock").clone() {
                Some(doc) => hyper::Response::new(Full::new(Bytes::from(doc.to_string()))),
                None => {
                    let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"down")));
                    *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                    r
                }
            };
            std::future::ready(response)
        })
        .await
        .expect("JWKS server listens");
        Self { url: format!("{}/.well-known/jwks.json", server.url()), hits, document, _server: Arc::new(server) }
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
    let (program, args): (PathBuf, Vec<PathBuf>) =
        if script.ends_with(".js") { (PathBuf::from("node"), vec![path]) } else { (python(), vec![path]) };
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
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("oracle {script} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// One request a [`StubServer`] received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

type Reply = (u16, Vec<(String, String)>, Vec<u8>);
type Script = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// An HTTP/1.1 server on loopback that answers from a script and records every request: the
/// stand-in for AWS endpoints (the Lambda Runtime API, Secrets Manager) in black-box tests. It
/// stops accepting connections when the last clone is dropped.
#[derive(Clone)]
pub struct StubServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    _server: Arc<Server>,
}

impl std::fmt::Debug for StubServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubServer").field("addr", &self.addr).finish()
    }
}

impl StubServer {
    pub async fn start(script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let script: Arc<Script> = Arc::new(script);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (script.clone(), requests.clone());
        let server = Server::loopback(move |req: hyper::Request<hyper::body::Incoming>| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                use http_body_util::BodyExt as _;
                let (parts, body) = req.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path_and_query().map_or(String::new(), |p| p.to_string()),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                    body,
                };
                let (status, headers, body) = s(&recorded);
                r.lock().expect("lock").push(recorded);
                let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                for (k, v) in headers {
                    response.headers_mut().insert(
                        hyper::header::HeaderName::try_from(k).expect("header name"),
                        v.parse().expect("header value"),
                    );
                }
                response
            }
        })
        .await
        .expect("stub server listens");
        Self { addr: server.addr(), requests, _server: Arc::new(server) }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

/// The secret's ARN in tests that read the Twilio secret from a Secrets Manager stand-in.
pub const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:chatgate-twilio-AbCdEf";
/// The conversation name key's secret, as the template generates it; it holds the development key.
pub const NAME_KEY_SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ConversationNameKey-GhIjKl";

/// A Secrets Manager stand-in holding `document` (the JSON string of the secret) under
/// [`SECRET_ARN`], and the development name key under [`NAME_KEY_SECRET_ARN`]; any other secret
/// is `ResourceNotFoundException`. Its requests show who read it.
pub async fn secrets_manager(document: Value) -> StubServer {
    StubServer::start(move |req| {
        let target = req.headers.iter().find(|(k, _)| k == "x-amz-target").map(|(_, v)| v.clone()).unwrap_or_default();
        let asked: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let json = || vec![("content-type".into(), "application/x-amz-json-1.1".into())];
        if target == "secretsmanager.GetSecretValue" && asked["SecretId"] == SECRET_ARN {
            let body = json!({"ARN": SECRET_ARN, "Name": "chatgate-twilio", "SecretString": document.to_string(), "VersionId": "v1"});
            (200, json(), body.to_string().into_bytes())
        } else if target == "secretsmanager.GetSecretValue" && asked["SecretId"] == NAME_KEY_SECRET_ARN {
            let key = chatgate::domain::DEVELOPMENT_NAME_KEY;
            let body = json!({"ARN": NAME_KEY_SECRET_ARN, "Name": "ConversationNameKey", "SecretString": key, "VersionId": "v1"});
            (200, json(), body.to_string().into_bytes())
        } else {
            let body = json!({"__type": "ResourceNotFoundException", "message": "Secrets Manager can't find the specified secret."});
            (400, json(), body.to_string().into_bytes())
        }
    })
    .await
}

/// The `x-amz-target` of a recorded request to an AWS JSON API (`secretsmanager.GetSecretValue`).
pub fn amz_target(request: &Recorded) -> Option<&str> {
    request.headers.iter().find(|(k, _)| k == "x-amz-target").map(|(_, v)| v.as_str())
}

/// A minimal Lambda Runtime API: hands out `events` one by one (then holds the next poll open,
/// as Lambda does between invocations) and records responses and errors.
pub async fn runtime_api(events: Vec<Value>) -> StubServer {
    let queue = Arc::new(Mutex::new(std::collections::VecDeque::from(events)));
    let served = Arc::new(AtomicUsize::new(0));
    StubServer::start(move |req| {
        if req.method == "GET" && req.path.ends_with("/runtime/invocation/next") {
            let Some(event) = queue.lock().expect("lock").pop_front() else {
                // Nothing more to invoke: an error makes the runtime exit instead of spinning.
                return (500, vec![], b"no more events".to_vec());
            };
            let id = format!("req-{}", served.fetch_add(1, Ordering::SeqCst) + 1);
            let deadline = (now() + 30) * 1000;
            let headers = vec![
                ("lambda-runtime-aws-request-id".into(), id),
                ("lambda-runtime-deadline-ms".into(), deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn".into(),
                    "arn:aws:lambda:us-east-1:123456789012:function:token".into(),
                ),
                ("lambda-runtime-trace-id".into(), "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into()),
                ("content-type".into(), "application/json".into()),
            ];
            (200, headers, event.to_string().into_bytes())
        } else {
            (202, vec![], b"{}".to_vec())
        }
    })
    .await
}

/// The environment Lambda gives every function, pointed at a local Runtime API.
pub fn lambda_env(runtime: &StubServer) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", "token".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "stream".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/token".into()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// An API Gateway v2 event for `POST /token` carrying `bearer`, as JSON.
pub fn token_event(bearer: &str) -> Value {
    json!({
        "version": "2.0", "routeKey": "POST /token", "rawPath": "/token", "rawQueryString": "",
        "headers": {"authorization": format!("Bearer {bearer}"), "host": "api.test"},
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.test", "domainPrefix": "api",
            "http": {"method": "POST", "path": "/token", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
            "requestId": "apigw-req", "routeKey": "POST /token", "stage": "$default", "time": "21/Nov/2026:19:00:00 +0000", "timeEpoch": 0u64},
        "body": null, "isBase64Encoded": false
    })
}

/// Replays every request chatgate sent to the Twilio stand-in against Twilio's own OpenAPI
/// description under Prism, failing on any validation error: the stand-in proves behaviour, this
/// proves the request shapes.
pub async fn assert_twilio_spec_accepts(requests: &[twilio_standin::Recorded]) {
    assert!(!requests.is_empty(), "no Twilio request was recorded");
    for recorded in requests {
        let method = reqwest::Method::from_bytes(recorded.method.as_bytes()).expect("method");
        let query: Vec<(&str, &str)> = recorded.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut call = prism::TwilioCall::new(method, &recorded.path).query(&query);
        if recorded.method == "POST" {
            let form: Vec<(&str, &str)> = recorded.form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            call = call.form(&form);
        }
        call.assert_accepted().await;
    }
}
