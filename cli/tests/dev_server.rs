//! `chatgate dev` as a new user meets it: started with no configuration, its printed curl line
//! works, and it serves the same routes and rules as the Lambda functions.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

struct DevServer {
    child: Child,
    lines: Vec<String>,
    base: String,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevServer {
    /// Starts the binary with only `env` set (no inherited chatgate settings) and reads its banner.
    fn start(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chatgate"));
        command.args(["dev", "--port", "0"]).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn chatgate dev");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).expect("banner") > 0, "chatgate dev exited early: {lines:?}");
            let done = line.trim_end() == "ready";
            lines.push(line.trim_end().to_owned());
            if done {
                break;
            }
        }
        let base = lines[0].strip_prefix("chatgate dev listening on ").expect("listening line").to_owned();
        Self { child, lines, base }
    }

    fn line(&self, prefix: &str) -> &str {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in {:?}", self.lines))
    }
}

fn sh(command: &str) -> String {
    let out = Command::new("sh").args(["-c", command]).output().expect("sh");
    assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn the_printed_curl_line_gets_a_token_on_embedded_defaults() {
    let server = DevServer::start(&[]);
    let output = sh(server.line("try: "));
    let body: serde_json::Value = serde_json::from_str(&output).expect("JSON from curl");
    assert_eq!(body["identity"], "dev-user");
    assert_eq!(body["ttl_seconds"], 3600);
    assert_eq!(body["token"].as_str().expect("token").split('.').count(), 3);
}

#[test]
fn the_printed_command_signs_sessions_for_other_users() {
    let server = DevServer::start(&[]);
    let command = server
        .line("another user: ")
        .replace("chatgate session", &format!("{} session", env!("CARGO_BIN_EXE_chatgate")));
    let session = sh(&command).trim().to_owned();
    let out = sh(&format!(
        "curl -sS -X POST {}/token -H 'Authorization: Bearer {session}' -H 'content-type: application/json' -d '{{\"ttl_seconds\": 600}}'",
        server.base
    ));
    let body: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(body["identity"], "u-2");
    assert_eq!(body["ttl_seconds"], 600);
}

fn curl(args: &str) -> (u16, String, String) {
    let out = sh(&format!("curl -sS -D - {args}"));
    let (head, body) = out.split_once("\r\n\r\n").expect("headers and body");
    let status = head.split_whitespace().nth(1).expect("status").parse().expect("numeric status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn a_configured_secret_is_used_and_never_printed() {
    let secret = "my-own-dev-secret-0123456789abcdefghij";
    let env = [("JWT_HS256_SECRET", secret), ("JWT_ISSUER", "https://idp.example/"), ("JWT_AUDIENCE", "spa")];
    let server = DevServer::start(&env);
    assert!(server.lines.iter().all(|l| !l.contains(secret)), "{:?}", server.lines);
    let exe = env!("CARGO_BIN_EXE_chatgate");
    let session = sh(&format!(
        "JWT_HS256_SECRET={secret} JWT_ISSUER=https://idp.example/ JWT_AUDIENCE=spa {exe} session --sub ana"
    ))
    .trim()
    .to_owned();
    let (status, _, body) = curl(&format!("-X POST {}/token -H 'Authorization: Bearer {session}'", server.base));
    assert_eq!(status, 200, "{body}");
    let wrong_audience = sh(&format!(
        "JWT_HS256_SECRET={secret} JWT_ISSUER=https://idp.example/ JWT_AUDIENCE=other {exe} session --sub ana"
    ))
    .trim()
    .to_owned();
    let (status, _, body) = curl(&format!("-X POST {}/token -H 'Authorization: Bearer {wrong_audience}'", server.base));
    assert_eq!(status, 401, "{body}");
}

#[test]
fn unknown_routes_are_404_problems_and_loopback_origins_pass_preflight() {
    let server = DevServer::start(&[]);
    let (status, head, body) = curl(&format!("{}/nope", server.base));
    assert_eq!(status, 404);
    assert!(head.contains("content-type: application/problem+json"), "{head}");
    assert!(body.contains(r#""code":"not_found""#), "{body}");

    let preflight = |origin: &str| {
        curl(&format!(
            "-X OPTIONS {}/token -H 'Origin: {origin}' -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: authorization'",
            server.base
        ))
    };
    let (status, head, _) = preflight("http://localhost:5173");
    assert_eq!(status, 204);
    assert!(head.contains("access-control-allow-origin: http://localhost:5173"), "{head}");
    let (_, head, _) = preflight("https://evil.example.com");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
}

#[test]
fn a_malformed_setting_stops_start_up_naming_it() {
    for (name, value) in
        [("TWILIO_API_KEY_SID", "SK123"), ("AUTH_MODE", "authorizer"), ("TOKEN_TTL_SECONDS", "forever")]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_chatgate"))
            .args(["dev", "--port", "0"])
            .env_clear()
            .env(name, value)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{name}={value} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

#[test]
fn documents_are_shared_and_checked_through_the_local_server() {
    let server = DevServer::start(&[]);
    let exe = env!("CARGO_BIN_EXE_chatgate");
    // The printed admin command creates a-1 owned by dev-user.
    let admin_curl = server.lines.iter().filter_map(|l| l.strip_prefix("try: ")).nth(1).expect("admin try line");
    let (status, _, body) = curl(admin_curl.trim_start_matches("curl -sS "));
    assert_eq!(status, 201, "{body}");
    let admin_key =
        server.line("admin key (generated; the /admin routes take `Authorization: Bearer <key>`): ").to_owned();
    let another = server.line("another user: ").replace("chatgate session", &format!("{exe} session"));
    let session = |sub: &str| sh(&another.replace("--sub u-2", &format!("--sub {sub}"))).trim().to_owned();
    let (owner, bob) = (session("dev-user"), session("bob"));
    let base = &server.base;

    let access = |token: &str| curl(&format!("{base}/assets/a-1/access -H 'Authorization: Bearer {token}'"));
    let (status, _, body) = access(&bob);
    assert_eq!(status, 200);
    assert!(body.contains(r#""role":"none""#), "{body}");

    let (status, _, body) =
        curl(&format!("-X PUT {base}/admin/groups/designers/members/bob -H 'Authorization: Bearer {admin_key}'"));
    assert_eq!(status, 204, "{body}");
    let (status, _, body) = curl(&format!(
        "-X PUT {base}/assets/a-1/grants/group:designers -H 'Authorization: Bearer {owner}' -H 'content-type: application/json' -d '{{\"role\":\"writer\"}}'"
    ));
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = access(&bob);
    assert!(body.contains(r#""role":"writer""#) && body.contains(r#""via":"group:designers""#), "{body}");

    let (status, _, _) =
        curl(&format!("-X DELETE {base}/assets/a-1/grants/group:designers -H 'Authorization: Bearer {bob}'"));
    assert_eq!(status, 403, "a writer cannot revoke");
    let (status, _, _) =
        curl(&format!("-X DELETE {base}/assets/a-1/grants/group:designers -H 'Authorization: Bearer {owner}'"));
    assert_eq!(status, 204);
    let (_, _, body) = access(&bob);
    assert!(body.contains(r#""role":"none""#), "revocation is seen at once: {body}");

    let (status, _, _) =
        curl(&format!("-X PUT {base}/admin/groups/designers/members/bob -H 'Authorization: Bearer {owner}'"));
    assert_eq!(status, 401, "a session token is no admin key");
}

/// The rule as a new user tries it on `chatgate dev`: the owner shares a-1 with u-2 directly, u-3
/// for a few seconds, and u-4 through a group, opens the document's conversation with them, then
/// takes each access away. Each leaves the conversation within 5 s of the change (of the expiry).
fn lost_access_leaves_the_conversation(server: &DevServer) {
    let exe = env!("CARGO_BIN_EXE_chatgate");
    let base = &server.base;
    let admin_key =
        server.line("admin key (generated; the /admin routes take `Authorization: Bearer <key>`): ").to_owned();
    let another = server.line("another user: ").replace("chatgate session", &format!("{exe} session"));
    let session = |sub: &str| sh(&another.replace("--sub u-2", &format!("--sub {sub}"))).trim().to_owned();
    let owner = session("dev-user");
    let admin = |method: &str, path: &str, body: &str| {
        curl(&format!(
            "-X {method} {base}{path} -H 'Authorization: Bearer {admin_key}' -H 'content-type: application/json' {body}"
        ))
    };
    let as_owner = |method: &str, path: &str, body: &str| {
        curl(&format!(
            "-X {method} {base}{path} -H 'Authorization: Bearer {owner}' -H 'content-type: application/json' -d '{body}'"
        ))
    };
    assert_eq!(
        admin("PUT", "/admin/assets/a-1", r#"-d '{"owner":"dev-user","type":"document","name":"Plan"}'"#).0,
        201
    );
    assert_eq!(admin("PUT", "/admin/groups/designers/members/u-4", "").0, 204);
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let soon_rfc = soon.format(&time::format_description::well_known::Rfc3339).expect("time");
    assert_eq!(as_owner("PUT", "/assets/a-1/grants/user:u-2", r#"{"role":"reader"}"#).0, 200);
    assert_eq!(
        as_owner("PUT", "/assets/a-1/grants/user:u-3", &format!(r#"{{"role":"reader","expires_at":"{soon_rfc}"}}"#)).0,
        200
    );
    assert_eq!(as_owner("PUT", "/assets/a-1/grants/group:designers", r#"{"role":"reader"}"#).0, 200);
    let (status, _, body) =
        as_owner("POST", "/conversations", r#"{"type":"asset","asset_id":"a-1","participants":["u-2","u-3","u-4"]}"#);
    assert_eq!(status, 201, "{body}");

    let in_conversation = |who: &str| {
        let (status, _, body) = curl(&format!("{base}/conversations -H 'Authorization: Bearer {}'", session(who)));
        assert_eq!(status, 200, "{body}");
        body.contains(r#""asset_id":"a-1""#)
    };
    let leaves_within_five_seconds = |who: &str, since: std::time::Instant| {
        while in_conversation(who) {
            assert!(since.elapsed() < std::time::Duration::from_secs(5), "{who} still in the conversation");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    assert!(["u-2", "u-3", "u-4"].iter().all(|who| in_conversation(who)));

    let revoked = std::time::Instant::now();
    assert_eq!(as_owner("DELETE", "/assets/a-1/grants/user:u-2", "").0, 204);
    leaves_within_five_seconds("u-2", revoked);
    let left_group = std::time::Instant::now();
    assert_eq!(admin("DELETE", "/admin/groups/designers/members/u-4", "").0, 204);
    leaves_within_five_seconds("u-4", left_group);

    assert!(in_conversation("u-3"), "u-3's grant has not expired yet");
    let until = soon - time::OffsetDateTime::now_utc();
    std::thread::sleep(std::time::Duration::try_from(until).unwrap_or_default());
    leaves_within_five_seconds("u-3", std::time::Instant::now());
    assert!(in_conversation("dev-user"), "the owner stays");
}

#[test]
fn lost_access_leaves_the_conversation_on_the_in_memory_store() {
    lost_access_leaves_the_conversation(&DevServer::start(&[]));
}

#[test]
fn lost_access_leaves_the_conversation_on_dynamodb_local() {
    use chatgate_tests::dynamo::{ACCESS_KEY, REGION, SECRET_KEY, dynamo_local, unique_table_name};
    let table = unique_table_name("dev");
    let endpoint = dynamo_local().endpoint.clone();
    let env = [
        ("TABLE_NAME", table.as_str()),
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let create = Command::new(env!("CARGO_BIN_EXE_chatgate")).args(["table", "create"]).env_clear().envs(env).output();
    assert!(create.expect("run").status.success());
    let server = DevServer::start(&env);
    assert!(server.line("access over time: ").contains("the table's stream"), "{:?}", server.lines);
    lost_access_leaves_the_conversation(&server);
}
