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

const URL: &str = "https://api.example.com/twilio/events";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_closes_the_service_once_and_says_what_it_changed() {
    let s = standin().await;
    assert!(fails(&s, &["twilio", "check", "--webhook-url", URL]).contains("drift"), "a new service is open");
    let first = ok(&s, &["twilio", "setup", "--webhook-url", URL]);
    let user = s.role_by_name("chatgate user").expect("service role created");
    let participant = s.role_by_name("chatgate participant").expect("conversation role created");
    assert!(first.contains(&format!("created service role `chatgate user`: {}", user.sid)), "{first}");
    assert!(first.contains(&format!("set TWILIO_USER_ROLE_SID={}", user.sid)), "{first}");
    assert!(first.contains("(was none, filters none)"), "{first}");
    assert_eq!(user.permissions, ["editOwnUserInfo"]);
    assert!(!participant.permissions.iter().any(|p| p == "addParticipant" || p == "editConversationAttributes"));
    let configuration = s.configuration();
    assert_eq!(configuration.default_chat_service_role_sid.as_deref(), Some(user.sid.as_str()));
    assert_eq!(configuration.default_conversation_role_sid.as_deref(), Some(participant.sid.as_str()));
    assert_eq!(configuration.default_conversation_creator_role_sid.as_deref(), Some(participant.sid.as_str()));
    let hooks = s.webhooks();
    assert_eq!(hooks.pre_webhook_url.as_deref(), Some(URL));
    assert_eq!(hooks.post_webhook_url.as_deref(), Some(URL));
    let mut filters = hooks.filters.clone();
    filters.sort();
    assert_eq!(
        filters,
        [
            "onConversationAdd",
            "onConversationUpdate",
            "onMessageAdd",
            "onMessageAdded",
            "onMessageUpdate",
            "onMessageUpdated",
            "onParticipantAdd"
        ]
    );

    let second = ok(&s, &["twilio", "setup", "--webhook-url", URL]);
    assert!(second.contains("(unchanged)"), "{second}");
    assert_eq!(s.roles().iter().filter(|r| r.friendly_name == "chatgate user").count(), 1);
    assert_eq!(ok(&s, &["twilio", "check", "--webhook-url", URL]), "the service is set up closed\n");
    assert!(fails(&s, &["twilio", "setup", "--webhook-url", "ftp://x"]).contains("http(s)"));
    chatgate_tests::assert_twilio_spec_accepts(&s.requests()).await;
}

/// `chatgate twilio check` after `setup`, then after one kind of drift made through the REST API.
async fn check_after(drift: &[(&str, &[(&str, &str)])]) -> (String, String) {
    let s = standin().await;
    ok(&s, &["twilio", "setup", "--webhook-url", URL]);
    let twilio_role = s.role_by_name("service user").expect("Twilio's default role").sid;
    let user_role = s.role_by_name("chatgate user").expect("role").sid;
    chatgate::tls::install();
    let http = reqwest::Client::new();
    for (path, form) in drift {
        let path = path.replace("{open}", &twilio_role).replace("{user}", &user_role);
        let form: Vec<(&str, String)> =
            form.iter().map(|(k, v)| (*k, v.replace("{open}", &twilio_role).replace("{user}", &user_role))).collect();
        let response = http
            .post(format!("{}/v1/Services/{SERVICE}/{path}", s.base_url))
            .basic_auth(KEY, Some(SECRET))
            .form(&form)
            .send()
            .await
            .expect("drift");
        assert!(response.status().is_success(), "{path}: {}", response.status());
    }
    let out = run(&s, &["twilio", "check", "--webhook-url", URL]);
    assert!(!out.status.success(), "check must fail after {drift:?}");
    (String::from_utf8(out.stdout).expect("utf-8"), String::from_utf8(out.stderr).expect("utf-8"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_kind_of_drift() {
    let (out, err) = check_after(&[("Configuration", &[("DefaultChatServiceRoleSid", "{open}")])]).await;
    assert!(out.contains("drift: DefaultChatServiceRoleSid is"), "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (out, _) =
        check_after(&[("Roles/{user}", &[("Permission", "editOwnUserInfo"), ("Permission", "createConversation")])])
            .await;
    assert!(out.contains("the role `chatgate user`") && out.contains("createConversation"), "{out}");
    let (out, _) = check_after(&[("Configuration/Webhooks", &[("Filters", "onMessageAdd")])]).await;
    assert!(out.contains("lack onConversationAdd"), "{out}");
    let (out, _) =
        check_after(&[("Configuration/Webhooks", &[("PreWebhookUrl", "https://elsewhere.example.com/")])]).await;
    assert!(out.contains("the pre-event webhook URL is https://elsewhere.example.com/"), "{out}");
    let (out, _) = check_after(&[("Configuration/Webhooks", &[("PostWebhookUrl", "")])]).await;
    assert!(out.contains("the post-event webhook URL is unset"), "{out}");
}

#[test]
fn missing_twilio_settings_are_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_chatgate")).args(["rooms", "list"]).env_clear().output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TWILIO_"), "{stderr}");
}
