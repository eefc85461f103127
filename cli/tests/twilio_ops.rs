//! `chatgate rooms …` and `chatgate twilio setup` against the Conversations stand-in: each says
//! what it changed, is safe to repeat, and fails with one line when it cannot.

use std::process::{Command, Output};

use twilio_standin::{StandIn, StandInConfig};

const ACCOUNT: &str = "AC00000000000000000000000000000001";
const KEY: &str = "SK00000000000000000000000000000001";
const SECRET: &str = "ops-test-secret";
const SERVICE: &str = "IS00000000000000000000000000000001";

fn run(standin: &StandIn, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args(args)
        .env_clear()
        .env("TWILIO_API_BASE", &standin.base_url)
        .env("TWILIO_CONVERSATIONS_SERVICE_SID", SERVICE)
        .env("TWILIO_API_KEY_SID", KEY)
        .env("TWILIO_API_KEY_SECRET", SECRET)
        .output()
        .expect("run chatgate")
}

fn ok(standin: &StandIn, args: &[&str]) -> String {
    let out = run(standin, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn fails(standin: &StandIn, args: &[&str]) -> String {
    let out = run(standin, args);
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    stderr
}

async fn standin() -> StandIn {
    StandIn::start(StandInConfig::new(ACCOUNT, KEY, SECRET, SERVICE)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_created_listed_and_deleted() {
    let s = standin().await;
    let created = ok(&s, &["rooms", "create", "support", "--friendly-name", "Support"]);
    assert!(created.starts_with("created room support (CH"), "{created}");
    let room = s.conversation_by_unique_name("room:support").expect("room in Twilio");
    assert_eq!(room.friendly_name.as_deref(), Some("Support"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&room.attributes).expect("json"),
        serde_json::json!({"type": "room"})
    );
    s.create_conversation(Some("direct:abc"), Some("not a room"), None).expect("other conversation");
    assert_eq!(ok(&s, &["rooms", "list"]), format!("support\t{}\tSupport\n", room.sid));
    assert!(fails(&s, &["rooms", "create", "support"]).contains("exists already"));
    assert!(fails(&s, &["rooms", "create", "Bad Name"]).contains("room name"));
    assert_eq!(ok(&s, &["rooms", "delete", "support"]), format!("deleted room support ({})\n", room.sid));
    assert!(fails(&s, &["rooms", "delete", "support"]).contains("no room support"));
    chatgate_tests::assert_twilio_spec_accepts(&s.requests()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_creates_the_role_and_webhook_once() {
    let s = standin().await;
    let first = ok(&s, &["twilio", "setup", "--webhook-url", "https://api.example.com/twilio/events"]);
    let role = s.role_by_name("chatgate user").expect("role created");
    assert!(first.contains(&format!("created role `chatgate user`: {}", role.sid)), "{first}");
    assert!(first.contains(&format!("set TWILIO_USER_ROLE_SID={}", role.sid)), "{first}");
    assert!(first.contains("(was none, filters none)"), "{first}");
    assert!(
        !role.permissions.iter().any(|p| p == "createConversation" || p == "joinConversation"),
        "{:?}",
        role.permissions
    );
    let hooks = s.webhooks();
    assert_eq!(hooks.pre_webhook_url.as_deref(), Some("https://api.example.com/twilio/events"));
    let mut filters = hooks.filters.clone();
    filters.sort();
    assert_eq!(filters, ["onConversationUpdate", "onMessageAdd", "onMessageUpdate", "onParticipantAdd"]);

    let second = ok(&s, &["twilio", "setup", "--webhook-url", "https://api.example.com/twilio/events"]);
    assert!(second.contains("exists") && second.contains("(unchanged)"), "{second}");
    assert_eq!(s.roles().iter().filter(|r| r.friendly_name == "chatgate user").count(), 1);
    assert!(fails(&s, &["twilio", "setup", "--webhook-url", "ftp://x"]).contains("http(s)"));
    chatgate_tests::assert_twilio_spec_accepts(&s.requests()).await;
}

#[test]
fn missing_twilio_settings_are_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_chatgate")).args(["rooms", "list"]).env_clear().output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TWILIO_"), "{stderr}");
}
