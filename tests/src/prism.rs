//! A Prism mock of Twilio's Conversations API for black-box tests: one instance per test process,
//! serving `tests/fixtures/twilio/conversations_v1.yaml` and validating every request against it.
//!
//! How Prism 5 answers a request:
//! - valid: the spec's 2xx example (stateless: always the same body, whatever was sent);
//! - no matching path: 404 `NO_PATH_MATCHED_ERROR`; path without that method: 405 `NO_METHOD_MATCHED_ERROR`;
//! - missing or malformed basic auth: 401 `UNAUTHORIZED` with `WWW-Authenticate: Basic realm="*"`;
//! - a non-empty body in a media type the operation does not take: 415 `INVALID_CONTENT_TYPE`;
//! - any other request violation (required, type, enum, pattern, minimum/maximum in the path,
//!   query, headers or body): 422 `UNPROCESSABLE_ENTITY` whose body lists them under `validation`.
//!
//! All of these are `application/problem+json` with `type` `https://stoplight.io/prism/errors#...`
//! (the spec declares no 4xx responses, so Prism always writes its own). The `sl-violations` header
//! carries violations that did not turn into an error (warnings such as deprecated parameters, and
//! violations of the mocked response): [`verdict`] treats it as a failure too.
//!
//! Request validation needs no flag. `--errors` (passed) only turns *response* violations (a spec
//! example that breaks its own schema) into 500 `VIOLATIONS`; none of the 103 operations has one.
//! Basic auth is checked for shape only: any `user:password` with exactly one colon passes.
//!
//! Prism does not notice unknown parameter or field names, nor a misspelt optional one; it matches
//! query names case-insensitively; of a repeated form key it checks only the last value; and a
//! chunked body (no Content-Length) skips the media-type check.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::process::{self, Probe, Start, WatchedServer};

/// Set to a base URL to use a Prism that is already running (it must serve a spec derived as
/// [`DERIVE_SPEC`] does, or repeated form keys are refused).
pub const ENDPOINT_ENV: &str = "CHATGATE_TEST_PRISM";
/// The vendored spec, relative to the workspace root.
pub const SPEC: &str = "tests/fixtures/twilio/conversations_v1.yaml";
/// The problem `type` prefix of every answer Prism writes itself.
pub const PROBLEM_TYPE_PREFIX: &str = "https://stoplight.io/prism/errors#";

const READY_WITHIN: Duration = Duration::from_secs(30);

/// A Prism mock serving this test process.
#[derive(Debug)]
pub struct Prism {
    /// `http://127.0.0.1:PORT`, no trailing slash: use it where the client would use
    /// `https://conversations.twilio.com`.
    pub base_url: String,
    /// From spawning to the first answer (spec derivation included); zero with [`ENDPOINT_ENV`].
    pub startup: Duration,
}

/// The Prism of this test process, started on first use and stopped when the process ends (a
/// shell watchdog kills it once the test process is gone, since statics never drop).
pub fn prism() -> &'static Prism {
    static PRISM: OnceLock<Prism> = OnceLock::new();
    PRISM.get_or_init(|| match process::url_from_env(ENDPOINT_ENV) {
        Some(base_url) => Prism { base_url, startup: Duration::ZERO },
        None => start(),
    })
}

/// Node script: `node -e DERIVE_SPEC <yaml in> <json out> <workspace root>`.
///
/// Prism 5.14 keeps only the last value of a repeated form key, and it turns a value into an
/// array only where the spec names an `encoding` for the property; Twilio's spec names none
/// (OpenAPI's default for form bodies is `style: form, explode: true`, which is Twilio's
/// repeated keys), so `Permission=a&Permission=b` would be refused with "must be array"
/// (stoplightio/prism#2473). The derived copy spells that default out for every array property of
/// a form body and changes nothing else; `allowReserved` keeps Prism from refusing the `+` of an
/// encoded space. The vendored file stays as Twilio publishes it.
pub const DERIVE_SPEC: &str = r#"
const [src, out, root] = process.argv.slice(1);
const fs = require('fs');
const yaml = require(require.resolve('@stoplight/yaml', {paths: [root + '/node_modules/@stoplight/prism-http']}));
const doc = yaml.parse(fs.readFileSync(src, 'utf8'));
let added = 0;
for (const item of Object.values(doc.paths || {})) for (const op of Object.values(item || {})) {
  const media = op && op.requestBody && op.requestBody.content && op.requestBody.content['application/x-www-form-urlencoded'];
  const props = media && media.schema && media.schema.properties;
  if (!props) continue;
  for (const [name, schema] of Object.entries(props)) {
    if (!schema || schema.type !== 'array') continue;
    media.encoding = media.encoding || {};
    if (media.encoding[name]) continue;
    media.encoding[name] = {style: 'form', explode: true, allowReserved: true};
    added++;
  }
}
if (added === 0) throw new Error('no array property in any form body: has the spec changed?');
fs.writeFileSync(out, JSON.stringify(doc));
"#;

/// Started under [`process`]'s watchdog, which runs `cleanup` as it ends: it removes the derived
/// spec, and the log once the test process (which reads it after a failed start) is gone.
/// $3 prism, $4 vendored spec, $5 derived spec, $6 workspace root, $7 [`DERIVE_SPEC`], $8 log.
const LAUNCH: &str = r#"
cleanup='rm -f "$5"; kill -0 "$1" 2>/dev/null || rm -f "$8"'
node -e "$7" "$4" "$5" "$6" || exit 3
"$3" mock -h 127.0.0.1 -p "$2" --errors "$5" &
"#;

fn start() -> Prism {
    let root = crate::workspace_root();
    let bin = root.join("node_modules/.bin/prism");
    assert!(
        bin.exists(),
        "Prism not found at {}: run scripts/bootstrap (npm ci installs @stoplight/prism-cli), or set {ENDPOINT_ENV}",
        bin.display()
    );
    let server = WatchedServer {
        name: "prism",
        title: "Prism",
        launch: LAUNCH,
        cwd: &root,
        ready_within: READY_WITHIN,
        output_label: "output",
    };
    let args = |log: &Path| -> Vec<OsString> {
        let derived = log.with_extension("json");
        vec![
            bin.clone().into(),
            root.join(SPEC).into(),
            derived.into(),
            root.clone().into(),
            DERIVE_SPEC.into(),
            log.into(),
        ]
    };
    let exited = |status: ExitStatus, last: &str| match status.code() {
        // The watchdog's exit code when `node -e DERIVE_SPEC` fails: it would fail again.
        Some(3) => Start::Failed(format!("deriving the spec failed ({status})")),
        _ => Start::Exited(format!("Prism exited ({status}); last probe: {last}")),
    };
    match server.start(args, probe, exited) {
        Ok(up) => Prism { base_url: format!("http://127.0.0.1:{}", up.port), startup: up.startup },
        Err(failures) => panic!("Prism did not come up ({} on {SPEC}):\n{}", bin.display(), failures.join("\n")),
    }
}

/// `GET /`: no such path in the spec, so Prism answers its own 404 problem.
fn probe(port: u16) -> Result<(), Probe> {
    let request = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let not_found = |answer: &str| answer.starts_with("HTTP/1.1 404") && answer.contains("NO_PATH_MATCHED_ERROR");
    process::http_probe(port, &request, not_found, "unexpected answer to GET /")
}

/// The `sl-violations` header: a JSON array of `{location, severity, code, message}` Prism adds
/// when it found violations but still answered from the spec (locations start with `request` or
/// `response`). Request *errors* never show up here: they make Prism refuse (see the module docs).
pub fn violations(headers: &HeaderMap) -> Option<String> {
    headers.get("sl-violations").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// `Ok` when Prism took the request as valid: a 2xx and no `sl-violations`. Otherwise why not,
/// with the problem's title, detail and every listed violation.
pub fn verdict(status: u16, headers: &HeaderMap, body: &str) -> Result<(), String> {
    let mut why = String::new();
    if !(200..300).contains(&status) {
        let _ = write!(why, "status {status}");
        match serde_json::from_str::<Value>(body) {
            Ok(problem) if problem.get("type").and_then(Value::as_str).is_some() => {
                let text = |k: &str| problem.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                let _ = write!(why, " {}: {} ({})", text("type"), text("title"), text("detail"));
                for v in problem.get("validation").and_then(Value::as_array).into_iter().flatten() {
                    let _ = write!(why, "\n  - {}", describe(v));
                }
            }
            _ => {
                let _ = write!(why, ": {body}");
            }
        }
    }
    if let Some(list) = violations(headers) {
        let _ = write!(why, "{}sl-violations:", if why.is_empty() { "" } else { "\n" });
        match serde_json::from_str::<Value>(&list) {
            Ok(Value::Array(items)) => items.iter().for_each(|v| {
                let _ = write!(why, "\n  - {}", describe(v));
            }),
            _ => {
                let _ = write!(why, " {list}");
            }
        }
    }
    if why.is_empty() { Ok(()) } else { Err(why) }
}

/// `query.pagesize [Error maximum]: Request query parameter pagesize must be <= 100`.
fn describe(violation: &Value) -> String {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let location: Vec<String> =
        violation.get("location").and_then(Value::as_array).into_iter().flatten().map(text).collect();
    let location = location.join(".");
    let field = |k: &str| violation.get(k).map_or(String::new(), text);
    format!("{location} [{} {}]: {}", field("severity"), field("code"), field("message"))
}

/// `application/x-www-form-urlencoded`, as browsers and `serde_urlencoded` write it: keys in
/// order, repeated keys kept, space as `+`, everything but `A-Za-z0-9*-._` percent-encoded.
pub fn form_urlencode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    fn push(out: &mut String, s: &str) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(b)),
                b' ' => out.push('+'),
                _ => {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push(&mut out, k.as_ref());
        out.push('=');
        push(&mut out, v.as_ref());
    }
    out
}

/// One request to the Twilio Conversations API, sent to [`prism()`]. Basic auth defaults to the
/// test API key (`API_KEY_SID`/`API_KEY_SECRET`), as the project authenticates to Twilio.
#[derive(Debug, Clone)]
pub struct TwilioCall {
    method: reqwest::Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<(String, String)>,
    headers: Vec<(String, String)>,
    auth: Option<(String, String)>,
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

impl TwilioCall {
    /// `path` as Twilio documents it, starting at `/v1/`.
    pub fn new(method: reqwest::Method, path: &str) -> Self {
        assert!(path.starts_with('/'), "path {path:?} must start with /");
        Self {
            method,
            path: path.to_owned(),
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
            auth: Some((crate::API_KEY_SID.to_owned(), crate::API_KEY_SECRET.to_owned())),
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new(reqwest::Method::GET, path)
    }

    pub fn post(path: &str) -> Self {
        Self::new(reqwest::Method::POST, path)
    }

    pub fn delete(path: &str) -> Self {
        Self::new(reqwest::Method::DELETE, path)
    }

    /// Adds query pairs (repeated keys allowed).
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        self.query.extend(owned(pairs));
        self
    }

    /// A form body, as Twilio takes every write (repeated keys allowed).
    pub fn form(self, pairs: &[(&str, &str)]) -> Self {
        self.body("application/x-www-form-urlencoded", &form_urlencode(&owned(pairs)))
    }

    /// Any body with its content type, e.g. to show that JSON is refused.
    pub fn body(mut self, content_type: &str, body: &str) -> Self {
        self.body = Some((content_type.to_owned(), body.to_owned()));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    pub fn no_auth(mut self) -> Self {
        self.auth = None;
        self
    }

    /// `POST /v1/...?a=b` plus the body, for messages.
    pub fn describe(&self) -> String {
        let mut text = format!("{} {}", self.method, self.path);
        if !self.query.is_empty() {
            let _ = write!(text, "?{}", form_urlencode(&self.query));
        }
        if let Some((content_type, body)) = &self.body {
            let _ = write!(text, " ({content_type}) {body}");
        }
        if self.auth.is_none() {
            text.push_str(" [no auth]");
        }
        text
    }

    pub async fn send(&self) -> Answer {
        let mut url = format!("{}{}", prism().base_url, self.path);
        if !self.query.is_empty() {
            let _ = write!(url, "?{}", form_urlencode(&self.query));
        }
        // One client per call: a pooled connection must not outlive the runtime of one #[tokio::test].
        chatgate::tls::install();
        let client = reqwest::Client::builder().no_proxy().build().expect("reqwest client");
        let mut request = client.request(self.method.clone(), &url).timeout(Duration::from_secs(30));
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        if let Some((content_type, body)) = &self.body {
            // A sized body: Prism skips its media-type check for chunked ones.
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(body.clone());
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{} to Prism: {e}", self.describe()));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_else(|e| panic!("{}: read Prism's answer: {e}", self.describe()));
        Answer { request: self.describe(), status, headers, body }
    }

    /// Sends the request and panics with Prism's reasons unless it was valid; the mocked JSON body.
    pub async fn assert_accepted(&self) -> Value {
        self.send().await.assert_accepted()
    }
}

/// `method`, `path`, `query`, an optional form body and basic auth (`None`: no Authorization) to
/// Prism. [`TwilioCall`] does the same with headers and other bodies.
pub async fn send(
    method: reqwest::Method,
    path: &str,
    query: &[(&str, &str)],
    form: Option<&[(&str, &str)]>,
    auth: Option<(&str, &str)>,
) -> Answer {
    let mut call = TwilioCall::new(method, path).query(query);
    if let Some(pairs) = form {
        call = call.form(pairs);
    }
    call = match auth {
        Some((user, password)) => call.basic_auth(user, password),
        None => call.no_auth(),
    };
    call.send().await
}

/// Prism's answer to a [`TwilioCall`].
#[derive(Debug, Clone)]
pub struct Answer {
    /// The request, described for messages.
    pub request: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn verdict(&self) -> Result<(), String> {
        verdict(self.status, &self.headers, &self.body)
    }

    pub fn violations(&self) -> Option<String> {
        violations(&self.headers)
    }

    /// The body as JSON (the spec's example, or Prism's problem).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{}: answer {} is not JSON ({e}): {}", self.request, self.status, self.body))
    }

    /// Panics with Prism's reasons unless the request was valid; the mocked body (`Null` if empty).
    pub fn assert_accepted(&self) -> Value {
        if let Err(why) = self.verdict() {
            panic!("Prism refused {}\n{why}", self.request);
        }
        if self.body.trim().is_empty() { Value::Null } else { self.json() }
    }

    /// Panics unless Prism refused the request with `status` and a problem of its own; the problem
    /// (`validation` lists the violations of a 422).
    pub fn assert_refused(&self, status: u16) -> Value {
        let problem: Option<Value> = serde_json::from_str(&self.body).ok();
        let from_prism = problem
            .as_ref()
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with(PROBLEM_TYPE_PREFIX));
        assert!(
            self.status == status && from_prism,
            "expected Prism to refuse {} with {status}; got {} {:?} {}",
            self.request,
            self.status,
            violations(&self.headers),
            self.body
        );
        problem.unwrap_or(Value::Null)
    }
}
