//! Runs every `events/<function>/<status>-<mode>-<case>.json` through its function's handler and
//! checks the status its name promises, so no fixture rots; and every alarm of `template.yaml`
//! points at a section of the runbook that exists, so no alarm sends on-call nowhere.

use std::path::PathBuf;

use std::sync::Arc;

use access::handler::AccessState;
use admin::handler::{AdminAuth, AdminState};
use chatgate::acl::{CatalogWriter, ConversationRegistry, GrantWriter, MemoryStore};
use chatgate::clock::FixedClock;
use chatgate::config::TwilioSecrets;
use chatgate::domain::ConversationNames;
use chatgate::domain::{AssetType, Grant, Principal, Role};
use chatgate::reconcile::Reconciler;
use chatgate_tests::acl_contract::{NOW, asset, group, record, user};
use chatgate_tests::*;
use conversations::handler::ConversationsState;
use lambda_http::http::header;
use lambda_http::{Body, Request, Response};
use message_guard::handler::GuardState;
use reconciler::handler::ReconcilerState;
use serde_json::Value;
use sharing::handler::SharingState;
use token::handler::{TokenState, handle};
use twilio_standin::{StandIn, StandInConfig};

/// The scenario of events/README.md, in a fresh store.
async fn scenario() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    for id in ["a-1", "doc#1/v2"] {
        store.put_asset(&asset(id), &user("u-1"), AssetType::Document, "Plan", NOW).await.expect("asset");
    }
    store.add_member(&group("designers"), &user("u-2")).await.expect("member");
    let a1 = record(store.as_ref(), "a-1").await;
    for (principal, role) in
        [(Principal::Group(group("designers")), Role::Writer), (Principal::User(user("u-3")), Role::Reader)]
    {
        let grant = Grant { principal, role, expires_at: None, generation: a1.generation.clone() };
        store.put_grant(&a1, &grant, NOW).await.expect("grant");
    }
    store
}

/// Runs one conversations event against the scenario and a fresh Twilio stand-in holding the
/// room `support` and the direct conversation of u-1 and u-2.
async fn conversations_route(mode: &str, req: Request) -> Response<Body> {
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    standin.create_conversation(Some("room:support"), Some("Support"), Some(r#"{"type":"room"}"#)).expect("room");
    let direct = ConversationNames::development().direct(&user("u-1"), &user("u-2"));
    let sid = standin
        .create_conversation(Some(&direct), Some("u-1 & u-2"), Some(r#"{"type":"direct"}"#))
        .expect("direct")
        .sid;
    for who in ["u-1", "u-2"] {
        standin.add_participant(&sid, who).expect("participant");
    }
    standin.add_message(&sid, "u-2", "see the doc").expect("message");
    let role = standin.role_by_name("service user").expect("role").sid;
    let extra = [("TWILIO_API_BASE", standin.base_url.as_str()), ("TWILIO_USER_ROLE_SID", role.as_str())];
    let settings = if mode == "jwt" { jwt_settings(&extra) } else { authorizer_settings(&extra) };
    let secrets = TwilioSecrets::load(&settings).await.expect("secrets");
    let state = ConversationsState::from_settings(&settings, &secrets, scenario().await).expect("conversations");
    conversations::handler::handle(&state, req).await
}

/// Runs one Twilio webhook event against the scenario and a stand-in holding the conversations
/// `conv-a-1` (about a-1) and `conv-direct`, with local.env's auth token and webhook URL.
async fn guard_route(req: Request) -> Response<Body> {
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    standin
        .create_conversation(Some("conv-a-1"), Some("Plan"), Some(r#"{"type":"asset","asset_id":"a-1"}"#))
        .expect("asset conversation");
    standin.create_conversation(Some("conv-direct"), Some("u-1 & u-2"), Some(r#"{"type":"direct"}"#)).expect("direct");
    let settings = authorizer_settings(&[
        ("TWILIO_API_BASE", standin.base_url.as_str()),
        ("TWILIO_AUTH_TOKEN", "chatgate-events-auth-token"),
        ("TWILIO_WEBHOOK_URL", "https://abc123.execute-api.us-east-1.amazonaws.com/twilio/events"),
    ]);
    let secrets = TwilioSecrets::load(&settings).await.expect("secrets");
    let state = GuardState::from_settings(&settings, &secrets, scenario().await).expect("guard");
    message_guard::handler::handle(&state, req).await
}

/// Runs one asset-route event against a freshly seeded store, in the event's auth mode; the admin
/// routes get a stand-in holding the direct conversation of u-1 and u-2, for offboarding.
async fn asset_route(function: &str, mode: &str, req: Request) -> Response<Body> {
    let store = scenario().await;
    let settings = match mode {
        "jwt" => jwt_settings(&[]),
        _ => authorizer_settings(&[]),
    };
    match function {
        "access" => access::handler::handle(&AccessState::from_settings(&settings, store).expect("access"), req).await,
        "sharing" => {
            sharing::handler::handle(&SharingState::from_settings(&settings, store).expect("sharing"), req).await
        }
        _ => {
            let standin = standin().await;
            let direct = ConversationNames::development().direct(&user("u-1"), &user("u-2"));
            standin.create_conversation(Some(&direct), None, Some(r#"{"type":"direct"}"#)).expect("direct");
            for who in ["u-1", "u-2"] {
                standin.add_participant(&direct, who).expect("participant");
            }
            let state = AdminState::new(
                AdminAuth::Iam,
                store,
                twilio_client(&standin.base_url),
                ConversationNames::development(),
            );
            admin::handler::handle(&state, req).await
        }
    }
}

async fn standin() -> StandIn {
    StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await
}

/// The reconciler's scenario (events/README.md): the ACL after the changes its records report,
/// and the asset conversations as they were before: a-1's with u-1, u-2, u-3, u-5 and u-7, a-2's
/// with u-1 and u-6. Returns how many participants the event removed, and the handler's answer.
async fn reconciler_route(event: Value) -> (usize, Result<Value, String>) {
    let store = Arc::new(MemoryStore::new());
    for id in ["a-1", "a-2"] {
        store.put_asset(&asset(id), &user("u-1"), AssetType::Document, "Plan", NOW).await.expect("asset");
    }
    store.add_member(&group("designers"), &user("u-5")).await.expect("member");
    let (a1, a2) = (record(store.as_ref(), "a-1").await, record(store.as_ref(), "a-2").await);
    let grants = [
        (&a1, Principal::Group(group("designers")), Role::Writer, None),
        (&a1, Principal::User(user("u-7")), Role::Reader, Some(NOW + 30)),
        (&a2, Principal::User(user("u-6")), Role::Reader, None),
    ];
    for (record, principal, role, expires_at) in grants {
        let grant = Grant { principal, role, expires_at, generation: record.generation.clone() };
        store.put_grant(record, &grant, NOW).await.expect("grant");
    }
    let standin = standin().await;
    let members = [("a-1", &["u-1", "u-2", "u-3", "u-5", "u-7"][..]), ("a-2", &["u-1", "u-6"][..])];
    for (id, who) in members {
        let name = ConversationNames::development().asset(&asset(id));
        let attributes = format!(r#"{{"type":"asset","asset_id":"{id}"}}"#);
        standin.create_conversation(Some(&name), Some("Plan"), Some(&attributes)).expect("conversation");
        for w in who {
            standin.add_participant(&name, w).expect("participant");
        }
    }
    for id in ["a-1", "a-2"] {
        store.register_conversation(&asset(id), NOW).await.expect("registered");
    }
    let count = |s: &StandIn| s.conversations().iter().map(|c| c.participants.len()).sum::<usize>();
    let before = count(&standin);
    // u-7's grant expired a minute and a half ago.
    let clock = Arc::new(FixedClock(NOW + 120));
    let state = ReconcilerState {
        rule: Reconciler::new(store, twilio_client(&standin.base_url), ConversationNames::development(), clock),
        pass_every: std::time::Duration::from_secs(u64::from(reconciler::handler::DEFAULT_PASS_SECONDS)),
    };
    let answer = invoke_reconciler(&state, event).await;
    (before - count(&standin), answer)
}

fn fixtures() -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(workspace_root().join("events")).expect("events/") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let function = dir.file_name().expect("name").to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).expect("function dir") {
            let file = file.expect("entry").path();
            if file.extension().is_some_and(|e| e == "json") {
                found.push((function.clone(), file));
            }
        }
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_fixture_answers_the_status_in_its_name() {
    let jwt = TokenState::from_settings(&jwt_settings(&[])).await.expect("jwt config");
    let authorizer = TokenState::from_settings(&authorizer_settings(&[])).await.expect("authorizer config");
    let fixtures = fixtures();
    assert!(fixtures.len() >= 60, "expected the generated fixtures, found {}", fixtures.len());
    for (function, path) in fixtures {
        let name = path.file_stem().expect("stem").to_string_lossy().into_owned();
        if function == "reconciler" {
            check_reconciler_fixture(&name, &path).await;
            continue;
        }
        let mut parts = name.splitn(3, '-');
        let (status, mode) = (parts.next().expect("status"), parts.next().expect("mode"));
        let status: u16 = status.parse().unwrap_or_else(|_| panic!("{name}: name must start with the expected status"));
        let req = lambda_http::request::from_str(&std::fs::read_to_string(&path).expect("read"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let response = match (function.as_str(), mode) {
            ("token", "jwt") => handle(&jwt, req).await,
            ("token", "authorizer") => handle(&authorizer, req).await,
            ("access" | "sharing", "jwt" | "authorizer") | ("admin", "iam" | "none" | "authorizer") => {
                asset_route(&function, mode, req).await
            }
            ("conversations", "jwt" | "authorizer") => conversations_route(mode, req).await,
            ("message-guard", "none") => guard_route(req).await,
            _ => panic!("no runner for events/{function}/{name}.json"),
        };
        assert_eq!(response.status().as_u16(), status, "events/{function}/{name}.json: {:?}", response.body());
        if status == 204 {
            assert!(response.body().is_empty(), "{name}");
            continue;
        }
        let body = json_body(&response);
        if function == "token" && status == 200 {
            assert!(body["token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{name}: {body}");
        } else if status < 300 {
            assert!(body.is_object(), "{name}: {body}");
        } else {
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json", "{name}");
            assert_eq!(body["status"], status, "{name}");
        }
    }
}

/// `events/reconciler/<removed>-<trigger>-<case>.json` removes that many participants and reports
/// no failure.
async fn check_reconciler_fixture(name: &str, path: &std::path::Path) {
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
    let (removed, answer) = reconciler_route(event.clone()).await;
    let answer = answer.unwrap_or_else(|e| panic!("events/reconciler/{name}.json: {e}"));
    let failures: Vec<&str> = answer["batchItemFailures"]
        .as_array()
        .map(|f| f.iter().filter_map(|i| i["itemIdentifier"].as_str()).collect())
        .unwrap_or_default();
    match name.split('-').next() {
        Some(count) => {
            let count: usize = count.parse().unwrap_or_else(|_| panic!("{name}: starts with the number removed"));
            assert_eq!(removed, count, "events/reconciler/{name}.json: {answer}");
            assert!(failures.is_empty(), "{name}: {answer}");
            assert_eq!(answer["failed"].as_u64().unwrap_or(0), 0, "{name}: {answer}");
        }
        None => unreachable!(),
    }
}

/// GitHub's anchor for a Markdown heading: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alarm_points_at_a_runbook_section_that_exists() {
    let root = workspace_root();
    let runbook = std::fs::read_to_string(root.join("docs/operations.md")).expect("runbook");
    let sections: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.trim_start_matches('#').strip_prefix(' ').filter(|_| l.starts_with('#')))
        .map(anchor)
        .collect();
    let template = std::fs::read_to_string(root.join("template.yaml")).expect("template");
    let mut alarms = 0;
    for line in template.lines().filter(|l| l.trim_start().starts_with("AlarmDescription:")) {
        alarms += 1;
        let link = line.split("docs/operations.md#").nth(1).unwrap_or_else(|| panic!("no runbook link: {line}"));
        let section: String = link.chars().take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_').collect();
        assert!(sections.contains(&section), "{section} is not a heading of docs/operations.md ({line})");
    }
    let resources = template.lines().filter(|l| l.trim() == "Type: AWS::CloudWatch::Alarm").count();
    assert_eq!(alarms, resources, "every alarm has a description that links the runbook");
    assert!(alarms > 0);
}

#[test]
fn the_template_routes_exactly_the_routes_openapi_describes() {
    let root = workspace_root();
    let template = std::fs::read_to_string(root.join("template.yaml")).expect("template");
    // Each HttpApi event's Method and Path (CloudFormation's tags keep serde_yaml from reading
    // the template: its events are read line by line).
    let mut routed = std::collections::BTreeSet::new();
    let lines: Vec<&str> = template.lines().map(str::trim).collect();
    for (i, line) in lines.iter().enumerate() {
        if *line != "Type: HttpApi" {
            continue;
        }
        let field =
            |name: &str| lines[i..].iter().take(8).find_map(|l| l.strip_prefix(name)).map(str::trim).map(str::to_owned);
        let (method, path) = (field("Method:").expect("Method"), field("Path:").expect("Path"));
        routed.insert(format!("{method} {path}"));
    }
    let spec: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("openapi.yaml")).expect("spec")).expect("yaml");
    let mut described = std::collections::BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                described.insert(format!("{} {}", method.to_uppercase(), path.as_str().expect("path")));
            }
        }
    }
    assert_eq!(routed, described, "template.yaml's HttpApi events and openapi.yaml's operations");
}
