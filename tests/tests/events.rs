//! Runs every `events/<function>/<status>-<mode>-<case>.json` through its function's handler and
//! checks the status its name promises, so no fixture rots.

use std::path::PathBuf;

use std::sync::Arc;

use access::handler::AccessState;
use admin::handler::{AdminAuth, AdminState};
use chatgate::acl::{CatalogWriter, GrantWriter, MemoryStore};
use chatgate::config::TwilioSecrets;
use chatgate::domain::direct_unique_name;
use chatgate::domain::{AssetType, Grant, Principal, Role};
use chatgate_tests::acl_contract::{NOW, asset, group, record, user};
use chatgate_tests::*;
use conversations::handler::ConversationsState;
use lambda_http::http::header;
use lambda_http::{Body, Request, Response};
use message_guard::handler::GuardState;
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
    let direct = direct_unique_name(&user("u-1"), &user("u-2"));
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

/// Runs one asset-route event against a freshly seeded store, in the event's auth mode.
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
        _ => admin::handler::handle(&AdminState::new(AdminAuth::Iam, store), req).await,
    }
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
