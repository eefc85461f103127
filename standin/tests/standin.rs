//! The stand-in over HTTP, as chatgate's REST client meets it: Twilio's paths, form bodies,
//! response shapes, error codes and paging.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;
use twilio_standin::{Fault, StandIn, StandInConfig, codes};

struct Twilio {
    standin: StandIn,
    http: reqwest::Client,
}

impl Twilio {
    async fn start() -> Self {
        Self::with(StandInConfig::default()).await
    }

    async fn with(config: StandInConfig) -> Self {
        let standin = StandIn::start(config).await;
        // The workspace's reqwest brings no crypto of its own: ring, as chatgate uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self { standin, http: reqwest::Client::new() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.standin.service_url())
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(&self.standin.api_key_sid, Some(&self.standin.api_key_secret))
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        read(self.authed(self.http.post(self.url(path))).form(form).send().await).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.get_url(&self.url(path)).await
    }

    async fn get_url(&self, url: &str) -> (u16, Value) {
        read(self.authed(self.http.get(url)).send().await).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        read(self.authed(self.http.delete(self.url(path))).send().await).await
    }
}

async fn read(response: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    let response = response.expect("the stand-in answers");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    let json = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).expect("JSON body") };
    (status, json)
}

fn assert_twilio_error(answer: &(u16, Value), status: u16, code: u32) {
    let (got_status, body) = answer;
    assert_eq!((*got_status, body["code"].as_u64()), (status, Some(u64::from(code))), "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body["more_info"], format!("https://www.twilio.com/docs/errors/{code}"));
}

fn is_sid(value: &Value, prefix: &str) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test]
async fn a_created_conversation_has_twilios_shape() {
    let twilio = Twilio::start().await;
    let (status, body) = twilio
        .post(
            "/Conversations",
            &[("UniqueName", "asset:1"), ("FriendlyName", "Asset 1"), ("Attributes", r#"{"asset":"1"}"#)],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(is_sid(&body["sid"], "CH"), "{body}");
    assert_eq!(body["account_sid"], twilio.standin.account_sid.as_str());
    assert_eq!(body["chat_service_sid"], twilio.standin.service_sid.as_str());
    assert_eq!(body["unique_name"], "asset:1");
    assert_eq!(body["friendly_name"], "Asset 1");
    assert_eq!(body["attributes"], r#"{"asset":"1"}"#, "attributes are a JSON string");
    assert_eq!(body["state"], "active");
    let created = body["date_created"].as_str().expect("date_created");
    assert!(created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T', "{created}");
    let url = body["url"].as_str().expect("url");
    assert_eq!(url, twilio.url(&format!("/Conversations/{}", body["sid"].as_str().expect("sid"))));
    assert_eq!(body["links"]["participants"], format!("{url}/Participants"));
    assert_eq!(body["links"]["messages"], format!("{url}/Messages"));

    let (_, bare) = twilio.post("/Conversations", &[]).await;
    assert_eq!((bare["attributes"].as_str(), bare["unique_name"].as_str()), (Some("{}"), None), "{bare}");
}

#[tokio::test]
async fn a_second_conversation_with_the_same_unique_name_is_refused_with_50353() {
    let twilio = Twilio::start().await;
    let (status, _) = twilio.post("/Conversations", &[("UniqueName", "asset:dup")]).await;
    assert_eq!(status, 201);
    let again = twilio.post("/Conversations", &[("UniqueName", "asset:dup"), ("FriendlyName", "other")]).await;
    assert_twilio_error(&again, 409, codes::CONVERSATION_EXISTS);
    assert_eq!(again.1["message"], "Conversation with provided unique name already exists");
    assert_eq!(twilio.standin.conversations().len(), 1);
}

#[tokio::test]
async fn a_unique_name_shaped_like_a_conversation_sid_is_refused() {
    let twilio = Twilio::start().await;
    let answer = twilio.post("/Conversations", &[("UniqueName", "CH0123456789abcdef0123456789abcdef")]).await;
    assert_twilio_error(&answer, 400, codes::INVALID_PARAMETER);
    assert!(twilio.standin.conversations().is_empty());
}

#[tokio::test]
async fn a_conversation_is_fetched_by_sid_or_unique_name_and_is_404_when_missing() {
    let twilio = Twilio::start().await;
    let (_, created) = twilio.post("/Conversations", &[("UniqueName", "asset:a b/c")]).await;
    let sid = created["sid"].as_str().expect("sid");
    let (status, by_sid) = twilio.get(&format!("/Conversations/{sid}")).await;
    assert_eq!((status, &by_sid["unique_name"]), (200, &Value::from("asset:a b/c")));
    // A unique name with a space and a slash, percent-encoded as one path segment.
    let (status, by_name) = twilio.get("/Conversations/asset%3Aa%20b%2Fc").await;
    assert_eq!((status, &by_name["sid"]), (200, &created["sid"]), "{by_name}");

    let missing = twilio.get("/Conversations/asset:nope").await;
    assert_twilio_error(&missing, 404, codes::NOT_FOUND);
    assert!(missing.1["message"].as_str().is_some_and(|m| m.contains("/Conversations/asset:nope")), "{}", missing.1);
}

#[tokio::test]
async fn a_deleted_conversation_is_gone_and_its_unique_name_free() {
    let twilio = Twilio::start().await;
    twilio.post("/Conversations", &[("UniqueName", "asset:gone")]).await;
    let (status, body) = twilio.delete("/Conversations/asset:gone").await;
    assert_eq!((status, body), (204, Value::Null));
    assert_twilio_error(&twilio.get("/Conversations/asset:gone").await, 404, codes::NOT_FOUND);
    assert_twilio_error(&twilio.delete("/Conversations/asset:gone").await, 404, codes::NOT_FOUND);
    assert_eq!(twilio.post("/Conversations", &[("UniqueName", "asset:gone")]).await.0, 201);
}

#[tokio::test]
async fn fifty_concurrent_creates_of_one_unique_name_make_exactly_one_conversation() {
    let twilio = Twilio::start().await;
    twilio.standin.set_delay(Duration::from_millis(20));
    let answers = join_all((0..50).map(|_| twilio.post("/Conversations", &[("UniqueName", "asset:race")]))).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    for answer in answers.iter().filter(|(status, _)| *status != 201) {
        assert_twilio_error(answer, 409, codes::CONVERSATION_EXISTS);
    }
    assert_eq!(twilio.standin.conversations().len(), 1);
    assert!(twilio.standin.max_in_flight() > 1, "the creates overlapped");
}

#[tokio::test]
async fn adding_a_participant_twice_is_refused_with_50433() {
    let twilio = Twilio::start().await;
    twilio.post("/Conversations", &[("UniqueName", "asset:p")]).await;
    let (status, participant) = twilio
        .post("/Conversations/asset:p/Participants", &[("Identity", "alice"), ("Attributes", r#"{"a":1}"#)])
        .await;
    assert_eq!(status, 201, "{participant}");
    assert!(is_sid(&participant["sid"], "MB"), "{participant}");
    assert_eq!(participant["identity"], "alice");
    assert_eq!(participant["attributes"], r#"{"a":1}"#);
    assert_eq!(participant["last_read_message_index"], Value::Null);
    let conversation = twilio.standin.conversation_by_unique_name("asset:p").expect("conversation");
    assert_eq!(participant["conversation_sid"], conversation.sid.as_str());
    let channel_user = twilio.standin.role_by_name("channel user").expect("default role");
    assert_eq!(participant["role_sid"], channel_user.sid.as_str(), "the default conversation role");

    let again =
        twilio.post(&format!("/Conversations/{}/Participants", conversation.sid), &[("Identity", "alice")]).await;
    assert_twilio_error(&again, 409, codes::PARTICIPANT_EXISTS);
    assert_eq!(again.1["message"], "Participant already exists");
    assert_eq!(twilio.standin.conversation("asset:p").expect("conversation").identities(), ["alice"]);
    assert!(twilio.standin.user("alice").is_some(), "joining creates the user, as Twilio does");

    let unknown = twilio.post("/Conversations/asset:none/Participants", &[("Identity", "alice")]).await;
    assert_twilio_error(&unknown, 404, codes::NOT_FOUND);
}

#[tokio::test]
async fn participants_are_listed_fetched_and_removed() {
    let twilio = Twilio::start().await;
    twilio.post("/Conversations", &[("UniqueName", "asset:roster")]).await;
    for identity in ["a", "b", "c"] {
        twilio.post("/Conversations/asset:roster/Participants", &[("Identity", identity)]).await;
    }
    let (status, page) = twilio.get("/Conversations/asset:roster/Participants?PageSize=2").await;
    assert_eq!(status, 200);
    assert_eq!(page["meta"]["key"], "participants");
    assert_eq!(page["participants"].as_array().map(Vec::len), Some(2));
    let (_, rest) = twilio.get_url(page["meta"]["next_page_url"].as_str().expect("next page")).await;
    assert_eq!(rest["participants"][0]["identity"], "c");

    let (status, b) = twilio.get("/Conversations/asset:roster/Participants/b").await;
    assert_eq!((status, &b["identity"]), (200, &Value::from("b")));
    let sid = b["sid"].as_str().expect("sid");
    assert_eq!(twilio.delete(&format!("/Conversations/asset:roster/Participants/{sid}")).await.0, 204);
    assert_eq!(twilio.standin.conversation("asset:roster").expect("conversation").identities(), ["a", "c"]);
}

#[tokio::test]
async fn creating_a_user_twice_is_refused_with_50201() {
    let twilio = Twilio::start().await;
    let role = twilio.standin.role_by_name("service user").expect("default role");
    let (status, user) = twilio
        .post("/Users", &[("Identity", "bob@example.com"), ("RoleSid", &role.sid), ("FriendlyName", "Bob")])
        .await;
    assert_eq!(status, 201, "{user}");
    assert!(is_sid(&user["sid"], "US"), "{user}");
    assert_eq!(
        (&user["identity"], &user["role_sid"]),
        (&Value::from("bob@example.com"), &Value::from(role.sid.as_str()))
    );
    assert_eq!(user["attributes"], "{}");

    let again = twilio.post("/Users", &[("Identity", "bob@example.com")]).await;
    assert_twilio_error(&again, 409, codes::USER_EXISTS);
    assert_eq!(again.1["message"], "User already exists");

    let (status, by_identity) = twilio.get("/Users/bob%40example.com").await;
    assert_eq!((status, &by_identity["sid"]), (200, &user["sid"]));
    let (status, by_sid) = twilio.get(&format!("/Users/{}", user["sid"].as_str().expect("sid"))).await;
    assert_eq!((status, &by_sid["identity"]), (200, &user["identity"]));
    assert_twilio_error(&twilio.get("/Users/nobody").await, 404, codes::NOT_FOUND);
    assert_twilio_error(
        &twilio.post("/Users", &[("Identity", "US0123456789abcdef0123456789abcdef")]).await,
        400,
        20001,
    );
}

#[tokio::test]
async fn one_hundred_twenty_conversations_page_through_next_page_url() {
    let twilio = Twilio::start().await;
    for i in 0..120 {
        twilio.standin.create_conversation(Some(&format!("asset:{i}")), None, None).expect("seed");
    }
    let (status, mut page) = twilio.get("/Conversations?PageSize=50").await;
    assert_eq!(status, 200);
    assert_eq!(page["meta"]["page_size"], 50);
    assert_eq!(page["meta"]["key"], "conversations");
    assert_eq!(page["meta"]["previous_page_url"], Value::Null);
    assert!(page["meta"]["first_page_url"].as_str().is_some_and(|u| u.starts_with(&twilio.standin.base_url)));
    let mut names = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let items = page["conversations"].as_array().expect("conversations");
        sizes.push(items.len());
        names.extend(items.iter().map(|c| c["unique_name"].as_str().expect("name").to_owned()));
        let Some(next) = page["meta"]["next_page_url"].as_str() else { break };
        assert!(next.starts_with(&twilio.standin.base_url), "{next}");
        let (status, next_page) = twilio.get_url(next).await;
        assert_eq!(status, 200, "{next_page}");
        assert!(next_page["meta"]["previous_page_url"].is_string());
        page = next_page;
    }
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(page["meta"]["page"], 2);
    let expected: Vec<String> = (0..120).map(|i| format!("asset:{i}")).collect();
    assert_eq!(names, expected);

    assert_twilio_error(&twilio.get("/Conversations?PageSize=101").await, 400, codes::INVALID_PARAMETER);
    assert_twilio_error(&twilio.get("/Conversations?PageSize=0").await, 400, codes::INVALID_PARAMETER);
    assert_eq!(twilio.get("/Conversations").await.1["conversations"].as_array().map(Vec::len), Some(50), "default 50");
}

#[tokio::test]
async fn requests_without_the_api_key_are_refused_with_20003() {
    let twilio = Twilio::start().await;
    let anonymous = read(twilio.http.get(twilio.url("/Conversations")).send().await).await;
    assert_twilio_error(&anonymous, 401, codes::AUTHENTICATE);
    assert_eq!(anonymous.1["message"], "Authenticate");
    let wrong = read(
        twilio
            .http
            .post(twilio.url("/Conversations"))
            .basic_auth(&twilio.standin.api_key_sid, Some("not-the-secret"))
            .form(&[("UniqueName", "asset:x")])
            .send()
            .await,
    )
    .await;
    assert_twilio_error(&wrong, 401, codes::AUTHENTICATE);
    assert!(twilio.standin.conversations().is_empty());
    let recorded = twilio.standin.requests();
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|r| r.status == 401));
}

#[tokio::test]
async fn an_unknown_service_or_path_is_404_and_a_json_body_is_415() {
    let twilio = Twilio::start().await;
    let other = format!("{}/v1/Services/IS00000000000000000000000000000000/Conversations", twilio.standin.base_url);
    assert_twilio_error(&twilio.get_url(&other).await, 404, codes::NOT_FOUND);
    assert_twilio_error(&twilio.get("/Channels").await, 404, codes::NOT_FOUND);
    assert_twilio_error(&twilio.delete("/Conversations").await, 405, codes::METHOD_NOT_ALLOWED);
    let json = read(
        twilio
            .authed(twilio.http.post(twilio.url("/Conversations")))
            .json(&serde_json::json!({"UniqueName": "x"}))
            .send()
            .await,
    )
    .await;
    assert_twilio_error(&json, 415, codes::UNSUPPORTED_MEDIA_TYPE);
    assert!(twilio.standin.conversations().is_empty());
}

#[tokio::test]
async fn an_injected_429_is_not_applied_and_the_retry_succeeds() {
    let twilio = Twilio::start().await;
    twilio.standin.fail_next(1, Fault::TOO_MANY_REQUESTS, Some("POST /Conversations"));
    let first = twilio.post("/Conversations", &[("UniqueName", "asset:retry")]).await;
    assert_twilio_error(&first, 429, codes::RATE_LIMITED);
    assert!(twilio.standin.conversations().is_empty(), "a faulted request is not applied");
    let (status, _) = twilio.post("/Conversations", &[("UniqueName", "asset:retry")]).await;
    assert_eq!(status, 201, "the retry is not a duplicate");
    assert_eq!(twilio.standin.faults_injected(), 1);
    assert_eq!(twilio.standin.count_requests("POST", "/Conversations"), 2);

    twilio.standin.fail_always(Fault::SERVICE_UNAVAILABLE, Some("/Users"));
    assert_twilio_error(&twilio.post("/Users", &[("Identity", "u")]).await, 503, 20503);
    assert_twilio_error(&twilio.get("/Users/u").await, 503, 20503);
    assert_eq!(twilio.get("/Conversations/asset:retry").await.0, 200, "other paths are untouched");
    twilio.standin.heal();
    assert_eq!(twilio.post("/Users", &[("Identity", "u")]).await.0, 201);
}

#[tokio::test]
async fn rate_limits_answer_429_past_the_limit_when_enabled() {
    let twilio = Twilio::with(StandInConfig::default().with_rate_limit(3)).await;
    twilio.post("/Conversations", &[("UniqueName", "asset:busy")]).await;
    for identity in ["a", "b"] {
        assert_eq!(twilio.post("/Conversations/asset:busy/Participants", &[("Identity", identity)]).await.0, 201);
    }
    let response = twilio
        .authed(twilio.http.post(twilio.url("/Conversations")))
        .form(&[("UniqueName", "asset:more")])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 201, "the service bucket has room");
    twilio.post("/Conversations/asset:busy/Messages", &[("Body", "hi")]).await;
    let limited = twilio.post("/Conversations/asset:busy/Participants", &[("Identity", "c")]).await;
    assert_twilio_error(&limited, 429, codes::RATE_LIMITED);
    assert!(twilio.standin.conversation("asset:busy").expect("conversation").participant("c").is_none());
    assert_eq!(
        twilio.post("/Conversations/asset:more/Participants", &[("Identity", "c")]).await.0,
        201,
        "per conversation"
    );
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(twilio.post("/Conversations/asset:busy/Participants", &[("Identity", "c")]).await.0, 201);
}

#[tokio::test]
async fn user_conversations_show_unread_counts_from_the_read_horizon() {
    let twilio = Twilio::start().await;
    twilio.post("/Conversations", &[("UniqueName", "asset:u1"), ("FriendlyName", "One")]).await;
    twilio.post("/Conversations", &[("UniqueName", "asset:u2")]).await;
    twilio.post("/Conversations", &[("UniqueName", "asset:other")]).await;
    let (_, p1) = twilio.post("/Conversations/asset:u1/Participants", &[("Identity", "carol")]).await;
    twilio.post("/Conversations/asset:u2/Participants", &[("Identity", "carol")]).await;
    for body in ["one", "two", "three"] {
        twilio.standin.add_message("asset:u1", "dave", body).expect("message");
    }
    twilio.standin.add_message("asset:u2", "dave", "hello").expect("message");
    let (status, read) = twilio
        .post(
            &format!("/Conversations/asset:u1/Participants/{}", p1["sid"].as_str().expect("sid")),
            &[("LastReadMessageIndex", "0")],
        )
        .await;
    assert_eq!((status, &read["last_read_message_index"]), (200, &Value::from(0)), "{read}");

    let (status, page) = twilio.get("/Users/carol/Conversations?PageSize=50").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["meta"]["key"], "conversations");
    let items = page["conversations"].as_array().expect("conversations");
    assert_eq!(items.len(), 2, "only the conversations carol is in");
    let u1 = &items[0];
    assert_eq!((&u1["unique_name"], &u1["friendly_name"]), (&Value::from("asset:u1"), &Value::from("One")));
    assert_eq!((&u1["unread_messages_count"], &u1["last_read_message_index"]), (&Value::from(2), &Value::from(0)));
    assert_eq!(u1["participant_sid"], p1["sid"]);
    assert_eq!(u1["user_sid"], twilio.standin.user("carol").expect("user").sid.as_str());
    assert_eq!((&u1["conversation_state"], &u1["attributes"]), (&Value::from("active"), &Value::from("{}")));
    assert!(u1["links"]["conversation"].is_string() && u1["links"]["participant"].is_string());
    let u2 = &items[1];
    assert_eq!((&u2["unread_messages_count"], &u2["last_read_message_index"]), (&Value::Null, &Value::Null));

    assert_twilio_error(&twilio.get("/Users/carol/Conversations?PageSize=51").await, 400, codes::INVALID_PARAMETER);
    assert_twilio_error(&twilio.get("/Users/nobody/Conversations").await, 404, codes::NOT_FOUND);
}

#[tokio::test]
async fn messages_are_indexed_from_zero_and_listed_newest_first_with_order_desc() {
    let twilio = Twilio::start().await;
    twilio.post("/Conversations", &[("UniqueName", "asset:m")]).await;
    twilio.post("/Conversations/asset:m/Participants", &[("Identity", "erin")]).await;
    let (status, first) = twilio
        .post("/Conversations/asset:m/Messages", &[("Author", "erin"), ("Body", "hi"), ("Attributes", r#"{"k":"v"}"#)])
        .await;
    assert_eq!(status, 201, "{first}");
    assert!(is_sid(&first["sid"], "IM"), "{first}");
    assert_eq!(
        (&first["index"], &first["author"], &first["body"]),
        (&Value::from(0), &Value::from("erin"), &Value::from("hi"))
    );
    assert_eq!(first["attributes"], r#"{"k":"v"}"#);
    assert!(is_sid(&first["participant_sid"], "MB"));
    for i in 1..5 {
        twilio.standin.add_message("asset:m", "system", &format!("m{i}")).expect("message");
    }
    let (status, page) = twilio.get("/Conversations/asset:m/Messages?Order=desc&PageSize=2").await;
    assert_eq!(status, 200, "{page}");
    let indexes: Vec<u64> =
        page["messages"].as_array().expect("messages").iter().filter_map(|m| m["index"].as_u64()).collect();
    assert_eq!(indexes, [4, 3]);
    let next = page["meta"]["next_page_url"].as_str().expect("next");
    assert!(next.contains("Order=desc"), "{next}");
    let (_, older) = twilio.get_url(next).await;
    assert_eq!(older["messages"][0]["index"], 2);
    assert_twilio_error(&twilio.get("/Conversations/asset:m/Messages?Order=sideways").await, 400, 20001);
    assert_twilio_error(&twilio.post("/Conversations/asset:m/Messages", &[("Author", "erin")]).await, 400, 20001);
}

#[tokio::test]
async fn a_role_keeps_every_repeated_permission() {
    let twilio = Twilio::with(StandInConfig::default().without_default_roles()).await;
    let form = [
        ("FriendlyName", "chatgate reader"),
        ("Type", "conversation"),
        ("Permission", "sendMessage"),
        ("Permission", "leaveConversation"),
        ("Permission", "editOwnMessage"),
    ];
    let (status, role) = twilio.post("/Roles", &form).await;
    assert_eq!(status, 201, "{role}");
    assert!(is_sid(&role["sid"], "RL"), "{role}");
    assert_eq!(
        (&role["friendly_name"], &role["type"]),
        (&Value::from("chatgate reader"), &Value::from("conversation"))
    );
    assert_eq!(role["permissions"], serde_json::json!(["sendMessage", "leaveConversation", "editOwnMessage"]));
    let (status, fetched) = twilio.get(&format!("/Roles/{}", role["sid"].as_str().expect("sid"))).await;
    assert_eq!((status, &fetched["permissions"]), (200, &role["permissions"]));
    let (_, list) = twilio.get("/Roles").await;
    assert_eq!((list["meta"]["key"].as_str(), list["roles"].as_array().map(Vec::len)), (Some("roles"), Some(1)));
    assert_eq!(twilio.standin.roles()[0].permissions, ["sendMessage", "leaveConversation", "editOwnMessage"]);

    let recorded = twilio.standin.requests();
    assert_eq!(recorded[0].form_values("Permission"), ["sendMessage", "leaveConversation", "editOwnMessage"]);
    assert_twilio_error(
        &twilio.post("/Roles", &[("FriendlyName", "x"), ("Type", "channel"), ("Permission", "sendMessage")]).await,
        400,
        20001,
    );
    assert_twilio_error(&twilio.post("/Roles", &[("FriendlyName", "x"), ("Type", "service")]).await, 400, 20001);
    assert_twilio_error(&twilio.get("/Roles?PageSize=51").await, 400, 20001);
}

#[tokio::test]
async fn the_webhook_configuration_keeps_every_repeated_filter() {
    let twilio = Twilio::start().await;
    let (status, empty) = twilio.get("/Configuration/Webhooks").await;
    assert_eq!(status, 200);
    assert_eq!((&empty["pre_webhook_url"], &empty["filters"]), (&Value::Null, &serde_json::json!([])));
    let form = [
        ("PreWebhookUrl", "https://chatgate.example/twilio/pre"),
        ("Method", "POST"),
        ("Filters", "onMessageAdd"),
        ("Filters", "onParticipantAdd"),
    ];
    let (status, body) = twilio.post("/Configuration/Webhooks", &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pre_webhook_url"], "https://chatgate.example/twilio/pre");
    assert_eq!(body["filters"], serde_json::json!(["onMessageAdd", "onParticipantAdd"]));
    assert_eq!(body["method"], "POST");
    assert_eq!(body["chat_service_sid"], twilio.standin.service_sid.as_str());
    assert_eq!(body["url"], twilio.url("/Configuration/Webhooks"));
    assert_eq!(twilio.get("/Configuration/Webhooks").await.1, body);
    let stored = twilio.standin.webhooks();
    assert_eq!(stored.filters, ["onMessageAdd", "onParticipantAdd"]);
    assert_eq!(stored.post_webhook_url, None);
    assert_twilio_error(&twilio.post("/Configuration/Webhooks", &[("Filters", "onEverything")]).await, 400, 20001);
    assert_twilio_error(&twilio.post("/Configuration/Webhooks", &[("Method", "PUT")]).await, 400, 20001);
}

#[tokio::test]
async fn requests_are_recorded_with_their_form_and_headers_but_not_the_secret() {
    let twilio = Twilio::start().await;
    let response = twilio
        .authed(twilio.http.post(twilio.url("/Conversations")))
        .header("X-Twilio-Webhook-Enabled", "true")
        .query(&[("Probe", "1")])
        .form(&[("UniqueName", "asset:rec"), ("Attributes", "{}")])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 201);
    let recorded = twilio.standin.requests();
    let [request] = recorded.as_slice() else { panic!("one request: {recorded:?}") };
    assert_eq!((request.method.as_str(), request.status), ("POST", 201));
    assert_eq!(request.path, format!("/v1/Services/{}/Conversations", twilio.standin.service_sid));
    assert_eq!(request.query_value("Probe"), Some("1"));
    assert_eq!(request.form_value("UniqueName"), Some("asset:rec"));
    assert_eq!(request.header("x-twilio-webhook-enabled"), Some("true"));
    assert_eq!(request.header("authorization"), Some("[redacted]"));
    twilio.standin.reset_requests();
    assert_eq!((twilio.standin.request_count(), twilio.standin.max_in_flight()), (0, 0));
}

#[tokio::test]
async fn the_delay_makes_concurrency_observable() {
    let twilio = Twilio::start().await;
    twilio.standin.set_delay(Duration::from_millis(50));
    for _ in 0..3 {
        twilio.get("/Roles").await;
    }
    assert_eq!(twilio.standin.max_in_flight(), 1, "sequential round trips");
    twilio.standin.reset_requests();
    join_all((0..5).map(|_| twilio.get("/Roles"))).await;
    assert_eq!(twilio.standin.max_in_flight(), 5);
}

#[tokio::test]
async fn a_fixed_configuration_is_served_on_a_given_address() {
    let config = StandInConfig::new(
        "AC00000000000000000000000000000001",
        "SK00000000000000000000000000000001",
        "secret",
        "IS00000000000000000000000000000001",
    )
    .with_bind("127.0.0.1:0".parse().expect("addr"));
    let twilio = Twilio::with(config).await;
    assert_eq!(
        twilio.standin.service_url(),
        format!("{}/v1/Services/IS00000000000000000000000000000001", twilio.standin.base_url)
    );
    let (status, role) = twilio.get("/Roles").await;
    assert_eq!(status, 200);
    assert_eq!(role["roles"][0]["account_sid"], "AC00000000000000000000000000000001");
    let bad = StandInConfig { api_key_sid: "nope".to_owned(), ..StandInConfig::default() };
    assert!(StandIn::try_start(bad).await.is_err());
}

// ---- Twilio's limits ----

#[tokio::test]
async fn a_full_conversation_is_refused_with_50417_and_a_busy_identity_with_50214() {
    let twilio = Twilio::with(StandInConfig::default().with_limits(2, 2)).await;
    for name in ["asset:1", "asset:2", "asset:3"] {
        twilio.post("/Conversations", &[("UniqueName", name)]).await;
    }
    for identity in ["ana", "bob"] {
        assert_eq!(twilio.post("/Conversations/asset:1/Participants", &[("Identity", identity)]).await.0, 201);
    }
    let full = twilio.post("/Conversations/asset:1/Participants", &[("Identity", "cy")]).await;
    assert_twilio_error(&full, 400, codes::PARTICIPANT_LIMIT);
    assert_eq!(full.1["message"], "Participants limit exceeded");
    assert!(twilio.standin.user("cy").is_none(), "a refused add creates no user");
    let again = twilio.post("/Conversations/asset:1/Participants", &[("Identity", "ana")]).await;
    assert_twilio_error(&again, 409, codes::PARTICIPANT_EXISTS);
    let seeded = twilio.standin.add_participant("asset:1", "cy").map_err(|r| (r.status, r.code));
    assert_eq!(seeded, Err((400, codes::PARTICIPANT_LIMIT)), "the seeding helper keeps the limit too");

    assert_eq!(twilio.post("/Conversations/asset:2/Participants", &[("Identity", "ana")]).await.0, 201);
    let busy = twilio.post("/Conversations/asset:3/Participants", &[("Identity", "ana")]).await;
    assert_twilio_error(&busy, 400, codes::USER_CONVERSATION_LIMIT);
    assert_eq!(busy.1["message"], "User conversation limit exceeded");
    assert!(twilio.standin.conversation("asset:3").expect("c").participants.is_empty());

    // Leaving one conversation makes room for another, and a free seat for someone else.
    assert_eq!(twilio.delete("/Conversations/asset:1/Participants/ana").await.0, 204);
    assert_eq!(twilio.post("/Conversations/asset:3/Participants", &[("Identity", "ana")]).await.0, 201);
    assert_eq!(twilio.post("/Conversations/asset:1/Participants", &[("Identity", "cy")]).await.0, 201);
    assert_eq!(twilio.standin.conversation("asset:1").expect("c").identities(), ["bob", "cy"]);
}

#[tokio::test]
async fn twilios_limits_are_a_thousand_by_default() {
    let config = StandInConfig::default();
    assert_eq!((config.participants_per_conversation, config.conversations_per_identity), (1000, 1000));
    let twilio = Twilio::with(config).await;
    twilio.standin.create_conversation(Some("asset:big"), None, None).expect("seed");
    for i in 0..1000 {
        twilio.standin.add_participant("asset:big", &format!("p{i}")).expect("room for a thousand");
    }
    let full = twilio.post("/Conversations/asset:big/Participants", &[("Identity", "one-more")]).await;
    assert_twilio_error(&full, 400, codes::PARTICIPANT_LIMIT);
}

// ---- messages ----

#[tokio::test]
async fn a_deleted_message_is_gone_and_its_index_is_not_given_again() {
    let twilio = Twilio::start().await;
    let conversation = twilio.standin.create_conversation(Some("asset:d"), None, None).expect("seed");
    let sids: Vec<String> =
        (0..3).map(|i| twilio.standin.add_message("asset:d", "ana", &format!("m{i}")).expect("message").sid).collect();

    let (status, body) = twilio.delete(&format!("/Conversations/asset:d/Messages/{}", sids[0])).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_twilio_error(&twilio.get(&format!("/Conversations/asset:d/Messages/{}", sids[0])).await, 404, 20404);
    assert_twilio_error(&twilio.delete(&format!("/Conversations/asset:d/Messages/{}", sids[0])).await, 404, 20404);
    let left: Vec<String> = twilio.standin.messages("asset:d").into_iter().map(|m| m.sid).collect();
    assert_eq!(left, sids[1..]);
    assert_eq!(twilio.standin.message(&conversation.sid, &sids[0]), None);

    // The last one, by the conversation's SID: the next message still gets a new index.
    let (status, _) = twilio.delete(&format!("/Conversations/{}/Messages/{}", conversation.sid, sids[2])).await;
    assert_eq!(status, 204);
    let (status, next) = twilio.post("/Conversations/asset:d/Messages", &[("Body", "after")]).await;
    assert_eq!((status, &next["index"]), (201, &Value::from(3)), "{next}");
    let indexes: Vec<u64> = twilio.standin.messages("asset:d").iter().map(|m| m.index).collect();
    assert_eq!(indexes, [1, 3]);

    let (status, fetched) = twilio.get(&format!("/Conversations/asset:d/Messages/{}", sids[1])).await;
    assert_eq!((status, &fetched["body"], &fetched["index"]), (200, &Value::from("m1"), &Value::from(1)));
    let unknown = "IM00000000000000000000000000000000";
    assert_twilio_error(&twilio.delete(&format!("/Conversations/asset:d/Messages/{unknown}")).await, 404, 20404);
    assert_twilio_error(&twilio.delete(&format!("/Conversations/asset:none/Messages/{}", sids[1])).await, 404, 20404);
    assert!(twilio.standin.messages("asset:none").is_empty());
}

#[tokio::test]
async fn a_message_is_edited_over_rest() {
    let twilio = Twilio::start().await;
    twilio.standin.create_conversation(Some("asset:e"), None, None).expect("seed");
    let sid = twilio.standin.add_message("asset:e", "ana", "typo").expect("message").sid;
    let (status, edited) = twilio
        .post(&format!("/Conversations/asset:e/Messages/{sid}"), &[("Body", "edited"), ("Attributes", "{}")])
        .await;
    assert_eq!((status, &edited["body"]), (200, &Value::from("edited")), "{edited}");
    assert_eq!(twilio.standin.message("asset:e", &sid).expect("message").body.as_deref(), Some("edited"));
}

#[tokio::test]
async fn paths_without_a_service_are_the_default_services() {
    let twilio = Twilio::start().await;
    let conversation = twilio.standin.create_conversation(Some("asset:default"), None, None).expect("seed");
    let message = twilio.standin.add_message("asset:default", "ana", "hello").expect("message");
    let kept = twilio.standin.add_message("asset:default", "ana", "stays").expect("message");
    let account = |path: &str| format!("{}/v1{path}", twilio.standin.base_url);

    let (status, fetched) =
        twilio.get_url(&account(&format!("/Conversations/asset:default/Messages/{}", kept.sid))).await;
    assert_eq!((status, &fetched["sid"]), (200, &Value::from(kept.sid.as_str())), "{fetched}");
    let deleted = read(
        twilio
            .authed(
                twilio.http.delete(account(&format!("/Conversations/{}/Messages/{}", conversation.sid, message.sid))),
            )
            .send()
            .await,
    )
    .await;
    assert_eq!(deleted, (204, Value::Null));
    assert_eq!(twilio.standin.messages("asset:default"), [kept]);
    assert_eq!(twilio.get_url(&account("/Roles")).await.0, 200);
    assert_twilio_error(&twilio.get_url(&account("/Configuration")).await, 404, codes::NOT_FOUND);
    assert_twilio_error(&twilio.get_url(&account("/Channels")).await, 404, codes::NOT_FOUND);
}
