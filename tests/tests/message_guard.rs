//! `POST /twilio/events` with payloads signed by twilio-python's own RequestValidator: the
//! signature is checked first, messages referencing assets need read access, asset conversations
//! take only readers, a store failure refuses, and a message published past the guard (Twilio's
//! fail-open edge) that it would have refused is deleted by the post-event backstop.

use std::sync::Arc;

use chatgate::acl::{AclReader, CatalogWriter, GrantWriter, MemoryStore};
use chatgate::config::TwilioSecrets;
use chatgate::domain::{AssetType, Grant, Principal, Role};
use chatgate_tests::acl_contract::{NOW, asset, record, user};
use chatgate_tests::dynamo::{Fault, FaultProxy, dynamo_local, test_store, unique_table_name};
use chatgate_tests::*;
use lambda_http::http::header;
use lambda_http::{Body, Request, Response};
use message_guard::handler::{GuardState, handle};
use serde_json::{Value, json};
use twilio_standin::{StandIn, StandInConfig};

const AUTH_TOKEN: &str = "guard-test-auth-token";
const URL: &str = "https://api.example.com/twilio/events";

type Params = Vec<(String, String)>;

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// twilio-python's signatures for each `(url, params)`.
fn python_signatures(cases: &[(&str, &Params)]) -> Vec<String> {
    let input: Vec<Value> =
        cases.iter().map(|(url, p)| json!({"token": AUTH_TOKEN, "url": url, "params": p})).collect();
    serde_json::from_value(oracle("twilio_signature.py", &Value::Array(input))).expect("signatures")
}

fn request(params: &Params, signature: Option<&str>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("http://localhost/twilio/events")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded; charset=UTF-8");
    if let Some(s) = signature {
        builder = builder.header("X-Twilio-Signature", s);
    }
    builder.body(Body::from(serde_urlencoded::to_string(params).expect("form"))).expect("request")
}

struct Guard<R: AclReader> {
    state: GuardState<R>,
    standin: StandIn,
}

async fn guard_over<R: AclReader>(store: Arc<R>) -> Guard<R> {
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    let settings = jwt_settings(&[
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TWILIO_WEBHOOK_URL", URL),
        ("TWILIO_API_BASE", &standin.base_url),
    ]);
    let secrets = TwilioSecrets::load(&settings).await.expect("secrets");
    Guard { state: GuardState::from_settings(&settings, &secrets, store).expect("state"), standin }
}

/// a-1 owned by ana, bob reads it, cy does not.
async fn scenario_store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    store.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "Plan", NOW).await.expect("asset");
    let doc = record(store.as_ref(), "a-1").await;
    let grant = Grant {
        principal: Principal::User(user("bob")),
        role: Role::Reader,
        expires_at: None,
        generation: doc.generation.clone(),
    };
    store.put_grant(&doc, &grant, NOW).await.expect("grant");
    store
}

async fn send<R: AclReader>(g: &Guard<R>, p: &Params) -> Response<Body> {
    let signature = python_signatures(&[(URL, p)]).remove(0);
    handle(&g.state, request(p, Some(&signature))).await
}

fn message(author: &str, client: Option<&str>, attributes: Option<&str>) -> Params {
    let mut p = params(&[
        ("EventType", "onMessageAdd"),
        ("ConversationSid", "CH00000000000000000000000000000001"),
        ("Author", author),
        ("Body", "look at this"),
        ("Source", "SDK"),
    ]);
    if let Some(c) = client {
        p.push(("ClientIdentity".into(), c.into()));
    }
    if let Some(a) = attributes {
        p.push(("Attributes".into(), a.into()));
    }
    p
}

const REF: &str = r#"{"assetRef": "a-1", "assetType": "document", "permissions": "inherited", "cardColour": "blue"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_signature_is_403_before_anything_else() {
    let g = guard_over(scenario_store().await).await;
    let p = message("bob", Some("bob"), Some(REF));
    let response = handle(&g.state, request(&p, None)).await;
    assert_eq!(response.status(), 403);
    assert_eq!(json_body(&response)["code"], "forbidden");
    let good = python_signatures(&[(URL, &p)]).remove(0);
    for bad in ["", "AAAA", "not base64 at all", &good[..good.len() - 2]] {
        assert_eq!(handle(&g.state, request(&p, Some(bad))).await.status(), 403, "{bad:?}");
    }
    // Signed for another URL, or a tampered body under a good signature.
    let other = python_signatures(&[("https://evil.example.com/twilio/events", &p)]).remove(0);
    assert_eq!(handle(&g.state, request(&p, Some(&other))).await.status(), 403);
    let mut tampered = p.clone();
    tampered[2].1 = "cy".into();
    assert_eq!(handle(&g.state, request(&tampered, Some(&good))).await.status(), 403);
    // Garbage bodies are refused the same way, never interpreted.
    let garbage = lambda_http::http::Request::builder()
        .method("POST")
        .uri("http://localhost/twilio/events")
        .header("X-Twilio-Signature", &good)
        .body(Body::from(vec![0xff, 0xfe]))
        .expect("request");
    assert_eq!(handle(&g.state, garbage).await.status(), 403);
    assert_eq!(g.standin.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_from_twilio_python_verify_with_ports_and_repeated_names() {
    let g = guard_over(scenario_store().await).await;
    let mut p = message("bob", Some("bob"), None);
    p.push(("Media".into(), "b".into()));
    p.push(("Media".into(), "a".into()));
    let with_port = python_signatures(&[("https://api.example.com:443/twilio/events", &p)]).remove(0);
    let response = handle(&g.state, request(&p, Some(&with_port))).await;
    assert_eq!(response.status(), 200);
    let ours = g.state.validator.sign(URL, &p);
    assert_eq!(ours, python_signatures(&[(URL, &p)]).remove(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_without_a_reference_pass_untouched() {
    let g = guard_over(scenario_store().await).await;
    for attrs in [None, Some("{}"), Some(r#"{"mood": "happy"}"#)] {
        let response = send(&g, &message("cy", Some("cy"), attrs)).await;
        assert_eq!(response.status(), 200, "{attrs:?}");
        assert_eq!(json_body(&response), json!({}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_needs_the_author_to_read_the_asset() {
    let g = guard_over(scenario_store().await).await;
    assert_eq!(send(&g, &message("bob", Some("bob"), Some(REF))).await.status(), 200);
    assert_eq!(send(&g, &message("ana", Some("ana"), Some(REF))).await.status(), 200);
    let refused = send(&g, &message("cy", Some("cy"), Some(REF))).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(json_body(&refused)["detail"], "cy cannot read asset a-1");
    // The token's identity counts, not the Author a client may set.
    assert_eq!(send(&g, &message("bob", Some("cy"), Some(REF))).await.status(), 403);
    // Without ClientIdentity (a REST-sent message) the Author counts.
    assert_eq!(send(&g, &message("bob", None, Some(REF))).await.status(), 200);
    let missing = r#"{"assetRef": "a-404", "assetType": "image"}"#;
    assert_eq!(send(&g, &message("ana", Some("ana"), Some(missing))).await.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_references_are_refused() {
    let g = guard_over(scenario_store().await).await;
    for attrs in [
        r#"{"assetRef": "", "assetType": "document"}"#,
        r#"{"assetRef": "a-1"}"#,
        r#"{"assetRef": "a-1", "assetType": "document", "permissions": "owner"}"#,
    ] {
        let response = send(&g, &message("ana", Some("ana"), Some(attrs))).await;
        assert_eq!(response.status(), 403, "{attrs}");
        assert!(json_body(&response)["detail"].as_str().is_some_and(|d| d.starts_with("malformed asset reference")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_conversations_take_only_readers() {
    let g = guard_over(scenario_store().await).await;
    let asset_conv = g
        .standin
        .create_conversation(Some("asset:x"), Some("Plan"), Some(r#"{"type":"asset","asset_id":"a-1"}"#))
        .expect("conversation")
        .sid;
    let direct = g
        .standin
        .create_conversation(Some("direct:y"), Some("d"), Some(r#"{"type":"direct"}"#))
        .expect("conversation")
        .sid;
    let join = |conversation: &str, who: &str| {
        params(&[
            ("EventType", "onParticipantAdd"),
            ("ConversationSid", conversation),
            ("Identity", who),
            ("Source", "API"),
        ])
    };
    assert_eq!(send(&g, &join(&asset_conv, "bob")).await.status(), 200);
    assert_eq!(send(&g, &join(&asset_conv, "cy")).await.status(), 403);
    // Only chatgate puts people into direct conversations (its REST adds reach no hook).
    assert_eq!(send(&g, &join(&direct, "cy")).await.status(), 403);
    assert_eq!(
        send(&g, &join("CH00000000000000000000000000000099", "cy")).await.status(),
        403,
        "unknown conversation: refused"
    );
    // The conversation's kind is looked up once per warm instance.
    g.standin.reset_requests();
    assert_eq!(send(&g, &join(&asset_conv, "bob")).await.status(), 200);
    assert_eq!(g.standin.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_is_guarded_like_a_new_message() {
    let g = guard_over(scenario_store().await).await;
    let edit = |author: &str, attributes: &str| {
        let mut p = message(author, Some(author), Some(attributes));
        p[0].1 = "onMessageUpdate".into();
        p.push(("MessageSid".into(), "IM00000000000000000000000000000009".into()));
        p
    };
    // A plain message edited to carry a reference its author cannot read: refused.
    assert_eq!(send(&g, &edit("cy", REF)).await.status(), 403);
    assert_eq!(send(&g, &edit("bob", REF)).await.status(), 200);
    assert_eq!(send(&g, &edit("cy", r#"{"mood": "happy"}"#)).await.status(), 200);
    assert_eq!(send(&g, &edit("ana", r#"{"assetRef": "a-1", "assetType": "spreadsheet"}"#)).await.status(), 403);
    // The editing client's identity decides, not the message's author.
    let mut by_cy = edit("bob", REF);
    by_cy.retain(|(k, _)| k != "ClientIdentity");
    by_cy.push(("ClientIdentity".into(), "cy".into()));
    assert_eq!(send(&g, &by_cy).await.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_retarget_a_chatgate_conversation() {
    let g = guard_over(scenario_store().await).await;
    let attributes = r#"{"type":"asset","asset_id":"a-1"}"#;
    let asset_conv = g.standin.create_conversation(Some("asset:x"), Some("Plan"), Some(attributes)).expect("c").sid;
    let direct =
        g.standin.create_conversation(Some("direct:y"), Some("d"), Some(r#"{"type":"direct"}"#)).expect("c").sid;
    let foreign = g.standin.create_conversation(None, Some("theirs"), Some(r#"{"topic":"x"}"#)).expect("c").sid;
    let update = |conversation: &str, pairs: &[(&str, &str)]| {
        let mut p = params(&[
            ("EventType", "onConversationUpdate"),
            ("ConversationSid", conversation),
            ("ClientIdentity", "bob"),
            ("Source", "SDK"),
        ]);
        p.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        p
    };
    let cases = [
        (&asset_conv, vec![("FriendlyName", "Plan v2"), ("Attributes", attributes), ("UniqueName", "asset:x")], 200),
        // The same attributes, written differently, are no change.
        (&asset_conv, vec![("Attributes", r#"{ "asset_id": "a-1", "type": "asset" }"#)], 200),
        (&asset_conv, vec![("Attributes", r#"{"type":"asset","asset_id":"a-2"}"#)], 403),
        (&asset_conv, vec![("Attributes", r#"{"type":"asset","asset_id":"a-1","extra":1}"#)], 403),
        (&asset_conv, vec![("Attributes", "{}")], 403),
        (&asset_conv, vec![("UniqueName", "asset:z")], 403),
        (&asset_conv, vec![("UniqueName", "")], 403),
        (&direct, vec![("Attributes", attributes)], 403),
        // Conversations chatgate did not create are not its business, unless made to look like its
        // own or given a name (a freed chatgate name among them).
        (&foreign, vec![("Attributes", r#"{"topic":"y"}"#), ("FriendlyName", "ours")], 200),
        (&foreign, vec![("UniqueName", "mine")], 403),
        (&foreign, vec![("Attributes", attributes)], 403),
    ];
    for (conversation, pairs, status) in cases {
        assert_eq!(send(&g, &update(conversation, &pairs)).await.status(), status, "{pairs:?}");
    }
    assert_eq!(send(&g, &update("CH00000000000000000000000000000099", &[])).await.status(), 403, "unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_events_pass() {
    let g = guard_over(scenario_store().await).await;
    for event in ["onMessageRemove", "onUserUpdate", ""] {
        assert_eq!(send(&g, &params(&[("EventType", event), ("Attributes", REF)])).await.status(), 200, "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_chatgate_creates_conversations() {
    let g = guard_over(scenario_store().await).await;
    let event = params(&[("EventType", "onConversationAdd"), ("ClientIdentity", "u-1"), ("UniqueName", "asset:x")]);
    assert_eq!(send(&g, &event).await.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offboarded_user_neither_speaks_nor_is_added() {
    let store = scenario_store().await;
    let g = guard_over(store.clone()).await;
    let room = g.standin.create_conversation(Some("room:r"), None, Some(r#"{"type":"room"}"#)).expect("room");
    let speak = params(&[("EventType", "onMessageAdd"), ("ClientIdentity", "u-2"), ("Body", "hi")]);
    let added = params(&[
        ("EventType", "onParticipantAdd"),
        ("ClientIdentity", "u-1"),
        ("Identity", "u-2"),
        ("ConversationSid", room.sid.as_str()),
    ]);
    assert_eq!(send(&g, &speak).await.status(), 200);
    assert_eq!(send(&g, &added).await.status(), 200);
    store.set_offboarded(&user("u-2"), true, NOW).await.expect("offboard");
    assert_eq!(send(&g, &speak).await.status(), 403);
    assert_eq!(send(&g, &added).await.status(), 403);
    store.set_offboarded(&user("u-2"), false, NOW).await.expect("lift");
    assert_eq!(send(&g, &speak).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_refuses() {
    let local = dynamo_local();
    let table = unique_table_name("guard");
    let direct = test_store(&local.endpoint, &table).await;
    direct.create_table().await.expect("table");
    direct.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "", NOW).await.expect("asset");
    let proxy = FaultProxy::start(&local.endpoint).await;
    let g = guard_over(Arc::new(test_store(&proxy.endpoint, &table).await)).await;
    assert_eq!(send(&g, &message("ana", Some("ana"), Some(REF))).await.status(), 200);
    proxy.fail_always(Fault::ServiceUnavailable, None);
    let response = send(&g, &message("ana", Some("ana"), Some(REF))).await;
    assert!(!response.status().is_success(), "fails closed: {}", response.status());
    assert_eq!(response.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_forgets_a_conversation_after_a_minute() {
    use chatgate::clock::ManualClock;
    use chatgate::guard::{CONVERSATION_CACHE_SECONDS, Event, MessageGuard};
    let store = scenario_store().await;
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    let clock = Arc::new(ManualClock::at(NOW));
    let guard = MessageGuard::new(store, twilio_client(&standin.base_url), clock.clone());
    let conversation = standin.create_conversation(Some("room:c"), None, Some(r#"{"type":"room"}"#)).expect("c");
    let join = Event(params(&[
        ("EventType", "onParticipantAdd"),
        ("ClientIdentity", "ana"),
        ("Identity", "eve"),
        ("ConversationSid", conversation.sid.as_str()),
    ]));
    assert!(guard.judge(&join).await.expect("decides").is_ok(), "anyone joins a room");
    // An operator makes it the conversation of asset a-1, which eve cannot read.
    chatgate::tls::install();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/Services/{SERVICE_SID}/Conversations/{}", standin.base_url, conversation.sid))
        .basic_auth(API_KEY_SID, Some(API_KEY_SECRET))
        .form(&[("Attributes", r#"{"type":"asset","asset_id":"a-1"}"#)])
        .send()
        .await
        .expect("update");
    assert!(response.status().is_success());
    clock.set(NOW + CONVERSATION_CACHE_SECONDS - 1);
    assert!(guard.judge(&join).await.expect("decides").is_ok(), "still what it read a minute ago");
    clock.set(NOW + CONVERSATION_CACHE_SECONDS);
    assert!(guard.judge(&join).await.expect("decides").is_err(), "read again after a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_adds_nobody_to_a_direct_or_group_conversation_whatever_its_role() {
    let g = guard_over(scenario_store().await).await;
    for attributes in [r#"{"type":"direct"}"#, r#"{"type":"group"}"#, r#"{"topic":"not chatgate's"}"#] {
        let c = g.standin.create_conversation(None, None, Some(attributes)).expect("conversation");
        let join = params(&[
            ("EventType", "onParticipantAdd"),
            ("ClientIdentity", "ana"),
            ("Identity", "ana"),
            ("ConversationSid", c.sid.as_str()),
        ]);
        assert_eq!(send(&g, &join).await.status(), 403, "{attributes}");
    }
}

/// A post-event for `message` of the stand-in, as Twilio sends it once a message is published.
fn published(kind: &str, message: &twilio_standin::Message, client: &str, attributes: &str) -> Params {
    let index = message.index.to_string();
    params(&[
        ("EventType", kind),
        ("ConversationSid", &message.conversation_sid),
        ("MessageSid", &message.sid),
        ("Index", &index),
        ("Author", &message.author),
        ("ClientIdentity", client),
        ("Body", "look at this"),
        ("Attributes", attributes),
        ("Source", "SDK"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_message_the_guard_would_refuse_is_deleted_and_audited() {
    let g = guard_over(scenario_store().await).await;
    let conversation =
        g.standin.create_conversation(None, Some("Plan"), Some(r#"{"type":"group"}"#)).expect("conversation");
    let by_cy = g.standin.add_message(&conversation.sid, "cy", "look at this").expect("cy's message");
    let by_bob = g.standin.add_message(&conversation.sid, "bob", "look at this").expect("bob's message");

    // Twilio published cy's message past a guard that did not answer in time: the post-event
    // finds it would have been refused, and deletes it. The answer is 200 whatever happens.
    // (Its audit line: tests/audit.rs.)
    assert_eq!(send(&g, &published("onMessageAdded", &by_cy, "cy", REF)).await.status(), 200);
    let left: Vec<String> =
        g.standin.conversation(&conversation.sid).expect("conversation").messages.into_iter().map(|m| m.sid).collect();
    assert_eq!(left, std::slice::from_ref(&by_bob.sid), "cy's message is gone, bob's stays");

    // A reader's message, an edit that keeps a reader's reference, and a message without a
    // reference stay; a replayed post-event of a deleted message is harmless.
    for event in [
        published("onMessageAdded", &by_bob, "bob", REF),
        published("onMessageUpdated", &by_bob, "bob", REF),
        published("onMessageAdded", &by_bob, "bob", "{}"),
        published("onMessageAdded", &by_cy, "cy", REF),
    ] {
        assert_eq!(send(&g, &event).await.status(), 200);
    }
    assert_eq!(g.standin.conversation(&conversation.sid).expect("conversation").messages.len(), 1);
    // An edit that adds a reference its editor cannot read is deleted too.
    assert_eq!(send(&g, &published("onMessageUpdated", &by_bob, "cy", REF)).await.status(), 200);
    assert!(g.standin.conversation(&conversation.sid).expect("conversation").messages.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_event_is_answered_200_even_when_the_backstop_fails_and_needs_a_signature() {
    let g = guard_over(scenario_store().await).await;
    let conversation =
        g.standin.create_conversation(None, Some("Plan"), Some(r#"{"type":"group"}"#)).expect("conversation");
    let by_cy = g.standin.add_message(&conversation.sid, "cy", "look at this").expect("cy's message");
    let event = published("onMessageAdded", &by_cy, "cy", REF);
    assert_eq!(handle(&g.state, request(&event, Some("forged"))).await.status(), 403, "signature first");
    g.standin.fail_always(twilio_standin::Fault::SERVICE_UNAVAILABLE, None);
    assert_eq!(send(&g, &event).await.status(), 200, "Twilio ignores a post-event's answer");
    g.standin.heal();
    assert_eq!(g.standin.conversation(&conversation.sid).expect("conversation").messages.len(), 1, "it stays");
}
