//! The SDK face, as a (hostile) client holding an access token meets it: Twilio's token checks,
//! the roles of the service configuration, and the pre- and post-event webhooks around each action.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use ring::hmac;
use serde_json::{Value, json};
use twilio_standin::harness::Server;
use twilio_standin::sdk::{SdkClient, SdkError};
use twilio_standin::{Outcome, Phase, StandIn, StandInConfig, codes};

const AUTH_TOKEN: &str = "sdk-test-auth-token";

// ---- the Twilio side: the stand-in and its REST face ----

struct Twilio {
    standin: StandIn,
    http: reqwest::Client,
}

impl Twilio {
    async fn start() -> Self {
        Self::with(StandInConfig::default().with_auth_token(AUTH_TOKEN)).await
    }

    async fn with(config: StandInConfig) -> Self {
        let standin = StandIn::start(config).await;
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self { standin, http: reqwest::Client::new() }
    }

    async fn rest(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let request = self
            .http
            .request(method, format!("{}{path}", self.standin.service_url()))
            .basic_auth(&self.standin.api_key_sid, Some(&self.standin.api_key_secret));
        let request = if form.is_empty() { request } else { request.form(form) };
        let response = request.send().await.expect("the stand-in answers");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        (status, if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).expect("JSON") })
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.rest(reqwest::Method::POST, path, form).await
    }

    /// A token as chatgate mints one for `identity`, valid for an hour.
    fn token(&self, identity: &str) -> String {
        mint(&self.standin.api_key_secret, &header(), &self.claims(identity))
    }

    fn claims(&self, identity: &str) -> Value {
        let now = unix_now();
        json!({
            "jti": format!("{}-{now}", self.standin.api_key_sid),
            "iss": self.standin.api_key_sid,
            "sub": self.standin.account_sid,
            "nbf": now - 5,
            "exp": now + 3600,
            "grants": {"identity": identity, "chat": {"service_sid": self.standin.service_sid}},
        })
    }

    fn client(&self, identity: &str) -> SdkClient {
        SdkClient::new(&self.standin.base_url, self.token(identity))
    }

    /// Points the service's webhooks at `hook` for `filters`.
    async fn hook_up(&self, pre: Option<&Hook>, post: Option<&Hook>, filters: &[&str]) {
        let pre_url = pre.map(Hook::url).unwrap_or_default();
        let post_url = post.map(Hook::url).unwrap_or_default();
        let mut form = vec![("PreWebhookUrl", pre_url.as_str()), ("PostWebhookUrl", post_url.as_str())];
        form.extend(filters.iter().map(|f| ("Filters", *f)));
        let (status, body) = self.post("/Configuration/Webhooks", &form).await;
        assert_eq!(status, 200, "{body}");
    }

    fn role_sid(&self, name: &str) -> String {
        self.standin.role_by_name(name).expect("role").sid
    }
}

fn unix_now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_secs()).expect("seconds fit")
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn header() -> Value {
    json!({"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"})
}

/// An HS256 JWT, as Twilio's helper libraries (and chatgate) sign access tokens.
fn mint(secret: &str, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!("{input}.{}", b64url(hmac::sign(&key, input.as_bytes()).as_ref()))
}

fn refused(result: Result<Value, SdkError>, status: u16, code: u32) {
    match result {
        Err(SdkError::Refused { status: s, code: c, message }) => {
            assert_eq!((s, c), (status, code), "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected {status} / {code}, got {other:?}"),
    }
}

fn sid(value: &Value) -> String {
    value["sid"].as_str().expect("sid").to_owned()
}

// ---- the customer's side: a webhook endpoint ----

#[derive(Debug, Clone)]
struct Received {
    /// Path and query, as requested.
    target: String,
    signature: Option<String>,
    params: Vec<(String, String)>,
}

impl Received {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A webhook endpoint that answers every delivery with `status` after `delay`.
struct Hook {
    server: Server,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Hook {
    async fn answering(status: u16, delay: Duration) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let server = Server::loopback(move |request: Request<Incoming>| {
            let log = log.clone();
            async move {
                let target = request.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
                let signature =
                    request.headers().get("x-twilio-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let params = serde_urlencoded::from_bytes(&body).unwrap_or_default();
                log.lock().expect("log").push(Received { target, signature, params });
                tokio::time::sleep(delay).await;
                let mut response = Response::new(Full::new(Bytes::from_static(b"refused: secret reason")));
                *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                response
            }
        })
        .await
        .expect("hook listens");
        Self { server, received }
    }

    fn url(&self) -> String {
        format!("{}/twilio/events", self.server.url())
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }

    fn events(&self) -> Vec<String> {
        self.received().iter().filter_map(|r| r.param("EventType").map(str::to_owned)).collect()
    }
}

/// Twilio's signature, computed here independently of the stand-in.
fn expected_signature(url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let data: String = std::iter::once(url.to_owned()).chain(sorted.iter().map(|(k, v)| format!("{k}{v}"))).collect();
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, AUTH_TOKEN.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, data.as_bytes()).as_ref())
}

/// Post-events go out in the background: wait for `n` of `event`.
async fn delivered(twilio: &Twilio, event: &str, n: usize) -> Vec<twilio_standin::Delivery> {
    for _ in 0..200 {
        let found: Vec<_> = twilio.standin.webhook_deliveries().into_iter().filter(|d| d.event_type == event).collect();
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {event} delivery: {:?}", twilio.standin.webhook_deliveries());
}

// ---- roles and the service configuration ----

#[tokio::test]
async fn a_fresh_sdk_user_can_create_and_join_with_a_new_services_default_roles() {
    let twilio = Twilio::start().await;
    let ana = twilio.client("ana");
    let user = ana.connect().await.expect("connect");
    assert_eq!(
        (user["identity"].as_str(), user["role_sid"].as_str()),
        (Some("ana"), Some(&*twilio.role_sid("service user")))
    );

    let created = ana.create_conversation(Some("asset:1"), Some(r#"{"asset":"1"}"#)).await.expect("create");
    assert_eq!(created["unique_name"], "asset:1");
    let conversation = twilio.standin.conversation("asset:1").expect("created");
    let creator = conversation.participant("ana").expect("the creator takes part");
    assert_eq!(creator.role_sid.as_deref(), Some(&*twilio.role_sid("channel admin")));

    let bob = twilio.client("bob");
    let joined = bob.join("asset:1").await.expect("join");
    assert_eq!(joined["role_sid"].as_str(), Some(&*twilio.role_sid("channel user")));
    assert!(twilio.standin.user("bob").is_some(), "Twilio created bob on his first request");
    let sent = bob.send_message("asset:1", "hello", None).await.expect("send");
    assert_eq!((sent["author"].as_str(), sent["index"].as_u64()), (Some("bob"), Some(0)));
    let messages = ana.messages(&sid(&created)).await.expect("read");
    assert_eq!(messages["messages"][0]["body"], "hello");

    refused(bob.join("asset:1").await, 409, codes::PARTICIPANT_EXISTS);
    refused(ana.create_conversation(Some("asset:1"), None).await, 409, codes::CONVERSATION_EXISTS);
    // A channel user adds no one; the creator (channel admin) may.
    refused(bob.add_participant("asset:1", "cy").await, 403, codes::NOT_AUTHORIZED);
    ana.add_participant("asset:1", "cy").await.expect("the admin adds");
    assert_eq!(twilio.standin.conversation("asset:1").expect("c").identities(), ["ana", "bob", "cy"]);
}

#[tokio::test]
async fn a_closed_configuration_refuses_creating_joining_and_adding_with_50107() {
    let twilio = Twilio::start().await;
    twilio.standin.create_conversation(Some("asset:victim"), None, None).expect("seed");
    let (_, locked) = twilio
        .post("/Roles", &[("FriendlyName", "locked"), ("Type", "service"), ("Permission", "editOwnUserInfo")])
        .await;
    let (_, member) = twilio
        .post(
            "/Roles",
            &[
                ("FriendlyName", "member"),
                ("Type", "conversation"),
                ("Permission", "sendMessage"),
                ("Permission", "leaveConversation"),
            ],
        )
        .await;
    let (status, body) = twilio
        .post(
            "/Configuration",
            &[
                ("DefaultChatServiceRoleSid", &sid(&locked)),
                ("DefaultConversationRoleSid", &sid(&member)),
                ("DefaultConversationCreatorRoleSid", &sid(&member)),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mallory = twilio.client("mallory");
    refused(mallory.create_conversation(Some("asset:squat"), None).await, 403, codes::NOT_AUTHORIZED);
    refused(mallory.join("asset:victim").await, 403, codes::NOT_AUTHORIZED);
    assert!(twilio.standin.conversation_by_unique_name("asset:squat").is_none());
    assert!(twilio.standin.conversation("asset:victim").expect("c").participants.is_empty());

    // Added by the server (REST), she sends but cannot bring anyone in or rename the room.
    twilio.standin.add_participant("asset:victim", "mallory").expect("added by the server");
    mallory.send_message("asset:victim", "hi", None).await.expect("members send");
    refused(mallory.add_participant("asset:victim", "eve").await, 403, codes::NOT_AUTHORIZED);
    refused(
        mallory.update_conversation("asset:victim", &[("Attributes", r#"{"owner":"mallory"}"#)]).await,
        403,
        codes::NOT_AUTHORIZED,
    );
    mallory.leave("asset:victim").await.expect("members leave");
}

#[tokio::test]
async fn permissions_are_those_of_the_roles_at_the_time_of_the_action() {
    let twilio = Twilio::start().await;
    let ana = twilio.client("ana");
    ana.create_conversation(Some("asset:1"), None).await.expect("create as service user");

    // The user's role changes (POST /Users/{identity} RoleSid)…
    let (_, locked) = twilio
        .post("/Roles", &[("FriendlyName", "locked"), ("Type", "service"), ("Permission", "editOwnUserInfo")])
        .await;
    let (status, user) = twilio.post("/Users/ana", &[("RoleSid", &sid(&locked))]).await;
    assert_eq!((status, user["role_sid"].as_str()), (200, Some(&*sid(&locked))));
    refused(ana.create_conversation(Some("asset:2"), None).await, 403, codes::NOT_AUTHORIZED);

    // …and so does a role's permission list (POST /Roles/{sid} replaces it).
    let channel_admin = twilio.role_sid("channel admin");
    let (status, role) = twilio.post(&format!("/Roles/{channel_admin}"), &[("Permission", "leaveConversation")]).await;
    assert_eq!((status, role["permissions"].clone()), (200, json!(["leaveConversation"])));
    refused(ana.send_message("asset:1", "now?", None).await, 403, codes::NOT_AUTHORIZED);
    let (_, editor) =
        twilio.post("/Roles", &[("FriendlyName", "editor"), ("Type", "service"), ("Permission", "sendMessage")]).await;
    twilio.post("/Users/ana", &[("RoleSid", &sid(&editor))]).await;
    ana.send_message("asset:1", "a service role's conversation permission applies everywhere", None)
        .await
        .expect("granted by the service role");
}

#[tokio::test]
async fn messages_are_edited_by_their_author_and_the_room_by_its_admin() {
    let twilio = Twilio::start().await;
    let (ana, bob) = (twilio.client("ana"), twilio.client("bob"));
    ana.create_conversation(Some("asset:1"), None).await.expect("create");
    bob.join("asset:1").await.expect("join");
    let mine = bob.send_message("asset:1", "typo", None).await.expect("send");
    let theirs = ana.send_message("asset:1", "original", None).await.expect("send");

    let edited = bob.update_message("asset:1", &sid(&mine), &[("Body", "fixed")]).await.expect("own message");
    assert_eq!(edited["body"], "fixed");
    refused(bob.update_message("asset:1", &sid(&theirs), &[("Body", "forged")]).await, 403, codes::NOT_AUTHORIZED);
    ana.update_message("asset:1", &sid(&mine), &[("Attributes", r#"{"flag":1}"#)]).await.expect("admins edit any");

    refused(bob.update_conversation("asset:1", &[("FriendlyName", "mine")]).await, 403, codes::NOT_AUTHORIZED);
    let renamed = ana.update_conversation("asset:1", &[("FriendlyName", "Plan")]).await.expect("admin renames");
    assert_eq!(renamed["friendly_name"], "Plan");
    refused(bob.remove_participant("asset:1", "ana").await, 403, codes::NOT_AUTHORIZED);
    ana.remove_participant("asset:1", "bob").await.expect("admins remove");
    assert_eq!(twilio.standin.conversation("asset:1").expect("c").identities(), ["ana"]);
}

#[tokio::test]
async fn only_participants_see_a_conversation() {
    let twilio = Twilio::start().await;
    let victim = twilio.client("victim");
    victim.create_conversation(Some("asset:private"), None).await.expect("create");
    victim.send_message("asset:private", "secret", None).await.expect("send");

    let squatter = twilio.client("squatter");
    refused(squatter.conversation("asset:private").await, 403, codes::NOT_AUTHORIZED);
    refused(squatter.messages("asset:private").await, 403, codes::NOT_AUTHORIZED);
    refused(squatter.participants("asset:private").await, 403, codes::NOT_AUTHORIZED);
    refused(squatter.messages("asset:nowhere").await, 404, codes::NOT_FOUND);

    // A squatter who got in first reads everything said after.
    squatter.create_conversation(Some("asset:squatted"), None).await.expect("squat");
    twilio.standin.add_participant("asset:squatted", "victim").expect("the server adds the owner");
    twilio.standin.add_message("asset:squatted", "victim", "my plans").expect("owner speaks");
    let read = squatter.messages("asset:squatted").await.expect("squatter reads");
    assert_eq!(read["messages"][0]["body"], "my plans");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_20101_and_create_no_user() {
    let twilio = Twilio::start().await;
    let now = unix_now();
    let secret = twilio.standin.api_key_secret.clone();
    let with = |pointer: &str, value: Value| {
        let mut claims = twilio.claims("mallory");
        *claims.pointer_mut(pointer).expect("claim") = value;
        mint(&secret, &header(), &claims)
    };
    let bad = [
        mint("not the secret", &header(), &twilio.claims("mallory")),
        with("/exp", json!(now - 1)),
        with("/nbf", json!(now + 600)),
        with("/grants/chat/service_sid", json!("IS00000000000000000000000000000000")),
        with("/iss", json!("SK00000000000000000000000000000000")),
        with("/sub", json!("AC00000000000000000000000000000000")),
        mint(&secret, &json!({"alg": "HS256", "typ": "JWT"}), &twilio.claims("mallory")),
        String::new(),
    ];
    for token in bad {
        let client = SdkClient::new(&twilio.standin.base_url, &token);
        refused(client.connect().await, 401, codes::INVALID_ACCESS_TOKEN);
        refused(client.create_conversation(Some("asset:x"), None).await, 401, codes::INVALID_ACCESS_TOKEN);
    }
    assert!(twilio.standin.user("mallory").is_none());
    assert!(twilio.standin.conversations().is_empty());
    assert_eq!(twilio.standin.request_count(), 0, "the SDK face is not recorded as REST traffic");
}

#[tokio::test]
async fn the_configuration_round_trips_and_refuses_unknown_or_mismatched_roles() {
    let twilio = Twilio::start().await;
    let (status, config) = twilio.rest(reqwest::Method::GET, "/Configuration", &[]).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["chat_service_sid"], twilio.standin.service_sid.as_str());
    assert_eq!(config["default_chat_service_role_sid"].as_str(), Some(&*twilio.role_sid("service user")));
    assert_eq!(config["default_conversation_role_sid"].as_str(), Some(&*twilio.role_sid("channel user")));
    assert_eq!(config["default_conversation_creator_role_sid"].as_str(), Some(&*twilio.role_sid("channel admin")));
    assert_eq!(config["reachability_enabled"], false);
    let url = format!("{}/Configuration", twilio.standin.service_url());
    assert_eq!(config["url"], url.as_str());
    assert_eq!(
        config["links"],
        json!({"notifications": format!("{url}/Notifications"), "webhooks": format!("{url}/Webhooks")})
    );

    let unknown = "RL00000000000000000000000000000000";
    for (name, value) in [
        ("DefaultChatServiceRoleSid", unknown.to_owned()),
        ("DefaultChatServiceRoleSid", twilio.role_sid("channel user")),
        ("DefaultConversationRoleSid", twilio.role_sid("service user")),
        ("DefaultConversationCreatorRoleSid", unknown.to_owned()),
        ("ReachabilityEnabled", "maybe".to_owned()),
    ] {
        let mut form = vec![(name, value.as_str())];
        if name != "ReachabilityEnabled" {
            form.push(("ReachabilityEnabled", "true"));
        }
        let (status, body) = twilio.post("/Configuration", &form).await;
        assert_eq!((status, body["code"].as_u64()), (400, Some(u64::from(codes::INVALID_PARAMETER))), "{name}: {body}");
    }
    assert!(!twilio.standin.configuration().reachability_enabled, "a refused update changes nothing");

    let admin = twilio.role_sid("service admin");
    let (status, body) =
        twilio.post("/Configuration", &[("DefaultChatServiceRoleSid", &admin), ("ReachabilityEnabled", "true")]).await;
    assert_eq!((status, body["default_chat_service_role_sid"].as_str()), (200, Some(admin.as_str())), "{body}");
    let stored = twilio.standin.configuration();
    assert_eq!(stored.default_chat_service_role_sid.as_deref(), Some(admin.as_str()));
    assert!(stored.reachability_enabled);
    assert_eq!(stored.default_conversation_role_sid.as_deref(), Some(&*twilio.role_sid("channel user")));
    let (status, _) = twilio.rest(reqwest::Method::DELETE, "/Configuration", &[]).await;
    assert_eq!(status, 405);
    let newcomer = twilio.client("newcomer").connect().await.expect("connect");
    assert_eq!(newcomer["role_sid"].as_str(), Some(admin.as_str()));
}

// ---- webhooks ----

#[tokio::test]
async fn a_pre_event_webhook_is_signed_and_a_refusal_stops_the_action() {
    let twilio = Twilio::start().await;
    let ana = twilio.client("ana");
    ana.create_conversation(Some("asset:1"), None).await.expect("create before the hook");
    let hook = Hook::answering(403, Duration::ZERO).await;
    twilio.hook_up(Some(&hook), None, &["onMessageAdd", "onConversationAdd", "onParticipantAdd"]).await;

    let refusal = ana.send_message("asset:1", "leak", Some(r#"{"asset":"2"}"#)).await;
    refused(refusal, 403, codes::REJECTED_BY_WEBHOOK);
    refused(ana.create_conversation(Some("asset:2"), None).await, 403, codes::REJECTED_BY_WEBHOOK);
    refused(twilio.client("bob").join("asset:1").await, 403, codes::REJECTED_BY_WEBHOOK);
    let conversation = twilio.standin.conversation("asset:1").expect("c");
    assert!(conversation.messages.is_empty() && conversation.identities() == ["ana"]);
    assert!(twilio.standin.conversation("asset:2").is_none());

    let received = hook.received();
    assert_eq!(hook.events(), ["onMessageAdd", "onConversationAdd", "onParticipantAdd"]);
    let message = &received[0];
    assert_eq!(message.target, "/twilio/events");
    let signature = message.signature.as_deref().expect("signed");
    assert_eq!(signature, expected_signature(&hook.url(), &message.params));
    for (name, value) in [
        ("Source", "SDK"),
        ("ClientIdentity", "ana"),
        ("Author", "ana"),
        ("Body", "leak"),
        ("Attributes", r#"{"asset":"2"}"#),
        ("ConversationSid", conversation.sid.as_str()),
        ("ParticipantSid", conversation.participants[0].sid.as_str()),
        ("AccountSid", twilio.standin.account_sid.as_str()),
        ("ChatServiceSid", twilio.standin.service_sid.as_str()),
        ("RetryCount", "0"),
    ] {
        assert_eq!(message.param(name), Some(value), "{name} in {:?}", message.params);
    }
    assert_eq!(received[1].param("UniqueName"), Some("asset:2"));
    assert_eq!(received[1].param("FriendlyName"), None, "only what the client gave");
    assert_eq!(received[2].param("Identity"), Some("bob"));
    assert_eq!(received[2].param("RoleSid"), Some(&*twilio.role_sid("channel user")));

    let deliveries = twilio.standin.webhook_deliveries();
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries.iter().all(|d| d.phase == Phase::Pre && d.outcome == Outcome::Answered(403)));
    assert_eq!(deliveries[0].signature.as_deref(), Some(signature));
}

#[tokio::test]
async fn a_2xx_answer_lets_the_action_through_and_rest_calls_fire_no_pre_event() {
    let twilio = Twilio::start().await;
    let hook = Hook::answering(200, Duration::ZERO).await;
    twilio.hook_up(Some(&hook), None, &["onMessageAdd", "onConversationAdd", "onConversationUpdate"]).await;
    let ana = twilio.client("ana");
    ana.create_conversation(Some("asset:1"), None).await.expect("allowed");
    ana.send_message("asset:1", "hello", None).await.expect("allowed");
    ana.update_conversation("asset:1", &[("Attributes", r#"{"a":1}"#)]).await.expect("allowed");
    assert_eq!(hook.events(), ["onConversationAdd", "onMessageAdd", "onConversationUpdate"]);
    assert_eq!(hook.received()[2].param("Attributes"), Some(r#"{"a":1}"#));
    assert_eq!(hook.received()[2].param("UniqueName"), None);

    let (status, _) = twilio.post("/Conversations/asset:1/Messages", &[("Author", "ana"), ("Body", "via REST")]).await;
    assert_eq!(status, 201);
    assert_eq!(hook.received().len(), 3, "REST calls never fire pre-events");
    assert_eq!(twilio.standin.conversation("asset:1").expect("c").messages.len(), 2);
}

#[tokio::test]
async fn a_webhook_that_does_not_answer_in_time_lets_the_action_through() {
    let config =
        StandInConfig::default().with_auth_token(AUTH_TOKEN).with_pre_event_timeout(Duration::from_millis(200));
    let twilio = Twilio::with(config).await;
    let ana = twilio.client("ana");
    ana.create_conversation(Some("asset:1"), None).await.expect("create");
    let silent = Hook::answering(403, Duration::from_secs(3)).await;
    twilio.hook_up(Some(&silent), None, &["onMessageAdd"]).await;

    let started = std::time::Instant::now();
    ana.send_message("asset:1", "through", None).await.expect("fail-open");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(twilio.standin.conversation("asset:1").expect("c").messages[0].body.as_deref(), Some("through"));
    let deliveries = twilio.standin.webhook_deliveries();
    assert_eq!((deliveries.len(), &deliveries[0].outcome), (1, &Outcome::TimedOut));

    // One that cannot be reached at all is as silent.
    let gone = Hook::answering(403, Duration::ZERO).await;
    let url = gone.url();
    drop(gone);
    let (status, _) = twilio.post("/Configuration/Webhooks", &[("PreWebhookUrl", &url)]).await;
    assert_eq!(status, 200);
    ana.send_message("asset:1", "again", None).await.expect("fail-open");
    assert!(matches!(twilio.standin.webhook_deliveries()[1].outcome, Outcome::Unreachable(_)));
}

#[tokio::test]
async fn post_events_describe_the_result_and_their_answer_is_ignored() {
    let twilio = Twilio::start().await;
    let hook = Hook::answering(500, Duration::ZERO).await;
    let filters =
        ["onConversationAdded", "onParticipantAdded", "onMessageAdded", "onMessageUpdated", "onConversationUpdated"];
    twilio.hook_up(None, Some(&hook), &filters).await;
    let ana = twilio.client("ana");
    let created = ana.create_conversation(Some("asset:1"), None).await.expect("create");
    twilio.client("bob").join("asset:1").await.expect("join");
    let message = ana.send_message("asset:1", "hello", None).await.expect("a 500 post-event refuses nothing");
    ana.update_message("asset:1", &sid(&message), &[("Body", "hello!")]).await.expect("edit");
    ana.update_conversation("asset:1", &[("FriendlyName", "Plan")]).await.expect("rename");

    let added = delivered(&twilio, "onMessageAdded", 1).await.remove(0);
    assert_eq!(added.phase, Phase::Post);
    assert_eq!(added.outcome, Outcome::Answered(500));
    for (name, value) in [
        ("MessageSid", message["sid"].as_str().expect("sid")),
        ("Index", "0"),
        ("ConversationSid", created["sid"].as_str().expect("sid")),
        ("Author", "ana"),
        ("ClientIdentity", "ana"),
        ("Body", "hello"),
        ("Attributes", "{}"),
        ("Source", "SDK"),
    ] {
        assert_eq!(added.param(name), Some(value), "{name} in {:?}", added.params);
    }
    assert!(added.param("ParticipantSid").is_some_and(|p| p.starts_with("MB")));
    assert_eq!(added.signature.as_deref(), Some(&*expected_signature(&hook.url(), &added.params)));
    assert_eq!(delivered(&twilio, "onMessageUpdated", 1).await[0].param("Body"), Some("hello!"));
    assert_eq!(delivered(&twilio, "onConversationUpdated", 1).await[0].param("FriendlyName"), Some("Plan"));
    assert_eq!(delivered(&twilio, "onConversationAdded", 1).await[0].param("UniqueName"), Some("asset:1"));
    let participants = delivered(&twilio, "onParticipantAdded", 2).await;
    let mut identities: Vec<_> = participants.iter().filter_map(|d| d.param("Identity")).collect();
    identities.sort_unstable();
    assert_eq!(identities, ["ana", "bob"]);
    assert_eq!(twilio.standin.conversation("asset:1").expect("c").friendly_name.as_deref(), Some("Plan"));
}

#[tokio::test]
async fn a_message_published_past_a_silent_pre_event_fires_its_signed_post_events() {
    let config =
        StandInConfig::default().with_auth_token(AUTH_TOKEN).with_pre_event_timeout(Duration::from_millis(200));
    let twilio = Twilio::with(config).await;
    let ana = twilio.client("ana");
    let created = ana.create_conversation(Some("asset:1"), None).await.expect("create");
    let silent = Hook::answering(403, Duration::from_secs(3)).await;
    let post = Hook::answering(200, Duration::ZERO).await;
    let filters = ["onMessageAdd", "onMessageAdded", "onMessageUpdate", "onMessageUpdated"];
    twilio.hook_up(Some(&silent), Some(&post), &filters).await;

    let message = ana.send_message("asset:1", "through", Some(r#"{"k":1}"#)).await.expect("fail-open");
    let stored = twilio.standin.messages("asset:1");
    assert_eq!(stored.len(), 1, "published");
    assert_eq!(stored[0].body.as_deref(), Some("through"));
    let added = delivered(&twilio, "onMessageAdded", 1).await.remove(0);
    let pre = twilio.standin.webhook_deliveries().into_iter().find(|d| d.event_type == "onMessageAdd").expect("pre");
    assert_eq!(pre.outcome, Outcome::TimedOut);
    assert_eq!((added.phase, &added.outcome), (Phase::Post, &Outcome::Answered(200)));
    assert_eq!(added.url, post.url());
    let date_created = date_param(&stored[0]);
    let participant = twilio.standin.conversation("asset:1").expect("c").participants[0].sid.clone();
    for (name, value) in [
        ("EventType", "onMessageAdded"),
        ("ConversationSid", created["sid"].as_str().expect("sid")),
        ("MessageSid", message["sid"].as_str().expect("sid")),
        ("Index", "0"),
        ("Author", "ana"),
        ("ClientIdentity", "ana"),
        ("Body", "through"),
        ("Attributes", r#"{"k":1}"#),
        ("DateCreated", date_created.as_str()),
        ("Source", "SDK"),
        ("ParticipantSid", participant.as_str()),
        ("ChatServiceSid", twilio.standin.service_sid.as_str()),
        ("AccountSid", twilio.standin.account_sid.as_str()),
        ("RetryCount", "0"),
    ] {
        assert_eq!(added.param(name), Some(value), "{name} in {:?}", added.params);
    }
    let received = post.received();
    let [arrived] = received.as_slice() else { panic!("one post-event: {received:?}") };
    assert_eq!(arrived.params, added.params, "what was delivered is what is recorded");
    assert_eq!(arrived.signature.as_deref(), Some(&*expected_signature(&post.url(), &arrived.params)));

    // An edit past the silent hook is published and announced the same way.
    ana.update_message("asset:1", &sid(&message), &[("Body", "edited")]).await.expect("fail-open");
    let updated = delivered(&twilio, "onMessageUpdated", 1).await.remove(0);
    assert_eq!(twilio.standin.messages("asset:1")[0].body.as_deref(), Some("edited"));
    assert_eq!((updated.param("Body"), updated.param("ClientIdentity")), (Some("edited"), Some("ana")));
    assert_eq!(updated.signature.as_deref(), Some(&*expected_signature(&post.url(), &updated.params)));
}

/// `2015-12-16T22:18:37Z`: a message's creation date as Twilio's parameters write it.
fn date_param(message: &twilio_standin::Message) -> String {
    let at = message.date_created;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[tokio::test]
async fn rest_calls_fire_post_events_only_with_x_twilio_webhook_enabled() {
    let twilio = Twilio::start().await;
    let post = Hook::answering(200, Duration::ZERO).await;
    let filters = ["onMessageAdded", "onMessageRemoved", "onParticipantAdded", "onConversationAdded"];
    twilio.hook_up(None, Some(&post), &filters).await;
    let rest = |method: reqwest::Method, path: String, form: &'static [(&'static str, &'static str)], on: bool| {
        let mut request = twilio
            .http
            .request(method, format!("{}{path}", twilio.standin.service_url()))
            .basic_auth(&twilio.standin.api_key_sid, Some(&twilio.standin.api_key_secret))
            .form(form);
        if on {
            request = request.header("X-Twilio-Webhook-Enabled", "true");
        }
        async move { request.send().await.expect("answer").status().as_u16() }
    };
    assert_eq!(
        rest(reqwest::Method::POST, "/Conversations".into(), &[("UniqueName", "asset:quiet")], false).await,
        201
    );
    let path = "/Conversations/asset:quiet/Messages".to_owned();
    assert_eq!(rest(reqwest::Method::POST, path, &[("Author", "chatgate"), ("Body", "quiet")], false).await, 201);

    let path = "/Conversations/asset:quiet/Participants".to_owned();
    assert_eq!(rest(reqwest::Method::POST, path, &[("Identity", "ana")], true).await, 201);
    let added = delivered(&twilio, "onParticipantAdded", 1).await.remove(0);
    assert_eq!((added.param("Identity"), added.param("Source")), (Some("ana"), Some("API")));
    let path = "/Conversations/asset:quiet/Messages".to_owned();
    assert_eq!(rest(reqwest::Method::POST, path, &[("Author", "ana"), ("Body", "loud")], true).await, 201);
    let message = delivered(&twilio, "onMessageAdded", 1).await.remove(0);
    assert_eq!((message.param("Body"), message.param("Author")), (Some("loud"), Some("ana")));
    assert_eq!((message.param("Source"), message.param("ClientIdentity")), (Some("API"), None));
    assert_eq!(message.signature.as_deref(), Some(&*expected_signature(&post.url(), &message.params)));

    let loud = twilio.standin.messages("asset:quiet").remove(1);
    let path = format!("/Conversations/asset:quiet/Messages/{}", loud.sid);
    assert_eq!(rest(reqwest::Method::DELETE, path, &[], true).await, 204);
    let removed = delivered(&twilio, "onMessageRemoved", 1).await.remove(0);
    assert_eq!(removed.param("MessageSid"), Some(loud.sid.as_str()));

    // Nothing came of the calls without the header, and a refused call fires nothing either.
    let path = "/Conversations/asset:quiet/Participants".to_owned();
    assert_eq!(rest(reqwest::Method::POST, path, &[("Identity", "ana")], true).await, 409);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(post.events(), ["onParticipantAdded", "onMessageAdded", "onMessageRemoved"]);
    let bodies: Vec<_> = post.received().iter().filter_map(|r| r.param("Body").map(str::to_owned)).collect();
    assert_eq!(bodies, ["loud", "loud"]);
}

// ---- Twilio's limits ----

#[tokio::test]
async fn joining_adding_and_creating_keep_twilios_limits() {
    let twilio = Twilio::with(StandInConfig::default().with_auth_token(AUTH_TOKEN).with_limits(2, 1)).await;
    let pre = Hook::answering(200, Duration::ZERO).await;
    twilio.hook_up(Some(&pre), None, &["onParticipantAdd", "onConversationAdd"]).await;
    let (ana, bob, cy) = (twilio.client("ana"), twilio.client("bob"), twilio.client("cy"));
    ana.create_conversation(Some("asset:1"), None).await.expect("create");
    bob.join("asset:1").await.expect("join");
    refused(cy.join("asset:1").await, 400, codes::PARTICIPANT_LIMIT);
    refused(ana.add_participant("asset:1", "cy").await, 400, codes::PARTICIPANT_LIMIT);
    assert_eq!(twilio.standin.conversation("asset:1").expect("c").identities(), ["ana", "bob"]);

    // ana is in one conversation, all one identity may be in here.
    refused(ana.create_conversation(Some("asset:2"), None).await, 400, codes::USER_CONVERSATION_LIMIT);
    assert!(twilio.standin.conversation("asset:2").is_none());
    cy.create_conversation(Some("asset:3"), None).await.expect("cy has room");
    refused(cy.add_participant("asset:3", "bob").await, 400, codes::USER_CONVERSATION_LIMIT);
    refused(bob.join("asset:3").await, 400, codes::USER_CONVERSATION_LIMIT);
    assert_eq!(twilio.standin.conversation("asset:3").expect("c").identities(), ["cy"]);
    let asked = pre.received().iter().filter(|r| r.param("Identity") == Some("bob")).count();
    assert_eq!(asked, 1, "the pre-event is not asked about an add over the limit (only bob's join of asset:1)");
}

#[tokio::test]
async fn a_conversation_its_creator_cannot_join_is_not_left_behind() {
    let twilio = Twilio::with(StandInConfig::default().with_auth_token(AUTH_TOKEN).with_limits(0, 10)).await;
    refused(twilio.client("ana").create_conversation(Some("asset:1"), None).await, 400, codes::PARTICIPANT_LIMIT);
    assert!(twilio.standin.conversations().is_empty());
}
