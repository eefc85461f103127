//! The troubles a test schedules on the REST face: outages by time, slow paths and lost responses.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::Value;
use twilio_standin::harness::Server;
use twilio_standin::{Fault, StandIn, StandInConfig, codes};

struct Twilio {
    standin: StandIn,
    http: reqwest::Client,
}

impl Twilio {
    async fn start() -> Self {
        let standin = StandIn::start(StandInConfig::default()).await;
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self { standin, http: reqwest::Client::new() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.standin.service_url())
    }

    async fn send(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)], hooks: bool) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .basic_auth(&self.standin.api_key_sid, Some(&self.standin.api_key_secret));
        if !form.is_empty() {
            request = request.form(form);
        }
        if hooks {
            request = request.header("X-Twilio-Webhook-Enabled", "true");
        }
        let response = request.send().await.expect("the stand-in answers");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        (status, if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).expect("JSON body") })
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, form, false).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, &[], false).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, &[], false).await
    }
}

fn assert_twilio_error(answer: &(u16, Value), status: u16, code: u32) {
    let (got_status, body) = answer;
    assert_eq!((*got_status, body["code"].as_u64()), (status, Some(u64::from(code))), "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body["more_info"], format!("https://www.twilio.com/docs/errors/{code}"));
}

async fn sleep_until(at: Instant) {
    tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
}

// ---- outages ----

#[tokio::test]
async fn an_outage_faults_matching_requests_that_arrive_in_its_window_and_applies_none() {
    let twilio = Twilio::start().await;
    let registered = Instant::now();
    twilio.standin.outage(
        Duration::from_millis(300),
        Duration::from_millis(600),
        Fault::SERVICE_UNAVAILABLE,
        Some("POST /Conversations"),
    );
    assert_eq!(twilio.post("/Conversations", &[("UniqueName", "asset:before")]).await.0, 201, "not yet");

    sleep_until(registered + Duration::from_millis(400)).await;
    let down = twilio.post("/Conversations", &[("UniqueName", "asset:during")]).await;
    assert_twilio_error(&down, 503, codes::SERVICE_UNAVAILABLE);
    let join = twilio.post("/Conversations/asset:before/Participants", &[("Identity", "ana")]).await;
    assert_twilio_error(&join, 503, codes::SERVICE_UNAVAILABLE);
    assert_eq!(twilio.get("/Conversations/asset:before").await.0, 200, "a GET is not in the filter");
    assert!(twilio.standin.conversation("asset:during").is_none(), "a faulted request has no effect");
    assert!(twilio.standin.conversation("asset:before").expect("c").participants.is_empty());
    assert_eq!(twilio.standin.faults_injected(), 2);

    sleep_until(registered + Duration::from_millis(1000)).await;
    assert_eq!(twilio.post("/Conversations", &[("UniqueName", "asset:during")]).await.0, 201, "over");
    assert_eq!(twilio.standin.faults_injected(), 2);
    let statuses: Vec<u16> = twilio.standin.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [201, 503, 503, 200, 201]);
}

#[tokio::test]
async fn outages_add_up_are_judged_on_arrival_and_heal_ends_them() {
    let twilio = Twilio::start().await;
    twilio.standin.create_conversation(Some("asset:1"), None, None).expect("seed");
    let registered = Instant::now();
    twilio.standin.outage(Duration::from_millis(200), Duration::from_secs(60), Fault::INTERNAL_ERROR, Some("/Roles"));
    twilio.standin.outage(Duration::from_millis(200), Duration::from_secs(60), Fault::TOO_MANY_REQUESTS, None);
    // Arriving before the windows open, a slow request is served even though it is answered in them.
    twilio.standin.slow(Some("GET"), "/Conversations/asset:1", Duration::from_millis(500));
    let started = Instant::now();
    let (status, _) = twilio.get("/Conversations/asset:1").await;
    assert!(started.elapsed() >= Duration::from_millis(500), "{:?}", started.elapsed());
    assert_eq!(status, 200, "it arrived before the outage");

    sleep_until(registered + Duration::from_millis(300)).await;
    assert_twilio_error(&twilio.get("/Roles").await, 500, codes::INTERNAL_ERROR);
    assert_twilio_error(&twilio.get("/Users").await, 429, codes::RATE_LIMITED);
    assert_eq!(twilio.standin.faults_injected(), 2);

    twilio.standin.heal();
    assert_eq!(twilio.get("/Roles").await.0, 200);
    assert_eq!(twilio.get("/Users").await.0, 200);
    let started = Instant::now();
    twilio.get("/Conversations/asset:1").await;
    assert!(started.elapsed() < Duration::from_millis(450), "heal ends slow rules too: {:?}", started.elapsed());
}

#[tokio::test]
async fn an_outage_leaves_the_sdk_face_alone() {
    let twilio = Twilio::start().await;
    twilio.standin.outage(Duration::ZERO, Duration::from_secs(60), Fault::SERVICE_UNAVAILABLE, None);
    let client = twilio.standin.sdk_client("not a token");
    match client.connect().await {
        Err(twilio_standin::sdk::SdkError::Refused { status, code, .. }) => {
            assert_eq!((status, code), (401, codes::INVALID_ACCESS_TOKEN), "the SDK face answered itself");
        }
        other => panic!("expected a token refusal, got {other:?}"),
    }
    assert_eq!(twilio.standin.faults_injected(), 0);
}

// ---- slow paths ----

#[tokio::test]
async fn a_slow_rule_delays_only_matching_requests_on_top_of_the_global_delay() {
    let twilio = Twilio::start().await;
    twilio.standin.create_conversation(Some("asset:slow"), None, None).expect("seed");
    twilio.standin.slow(Some("post"), "/Participants", Duration::from_millis(600));
    let timed = |method: reqwest::Method, path: &'static str, form: &'static [(&'static str, &'static str)]| {
        let twilio = &twilio;
        async move {
            let started = Instant::now();
            let (status, body) = twilio.send(method, path, form, false).await;
            assert!(status < 300, "{status}: {body}");
            started.elapsed()
        }
    };
    let slow = timed(reqwest::Method::POST, "/Conversations/asset:slow/Participants", &[("Identity", "a")]).await;
    assert!(slow >= Duration::from_millis(600), "{slow:?}");
    let other_method = timed(reqwest::Method::GET, "/Conversations/asset:slow/Participants", &[]).await;
    assert!(other_method < Duration::from_millis(500), "{other_method:?}");
    let other_path = timed(reqwest::Method::POST, "/Conversations/asset:slow/Messages", &[("Body", "hi")]).await;
    assert!(other_path < Duration::from_millis(500), "{other_path:?}");

    twilio.standin.set_delay(Duration::from_millis(200));
    let both = timed(reqwest::Method::POST, "/Conversations/asset:slow/Participants", &[("Identity", "b")]).await;
    assert!(both >= Duration::from_millis(800), "the global delay and the rule add up: {both:?}");

    twilio.standin.heal();
    let healed = timed(reqwest::Method::POST, "/Conversations/asset:slow/Participants", &[("Identity", "c")]).await;
    assert!(healed >= Duration::from_millis(200), "heal keeps the global delay: {healed:?}");
    assert!(healed < Duration::from_millis(700), "but drops the rule: {healed:?}");
}

#[tokio::test]
async fn slow_requests_overlap_with_fast_ones() {
    let twilio = Twilio::start().await;
    twilio.standin.slow(None, "/Users", Duration::from_millis(400));
    let started = Instant::now();
    let slow = async {
        twilio.get("/Users").await;
        started.elapsed()
    };
    let fast = async {
        join_all((0..3).map(|_| twilio.get("/Roles"))).await;
        started.elapsed()
    };
    let (slow, fast) = tokio::join!(slow, fast);
    assert!(slow >= Duration::from_millis(400) && fast < Duration::from_millis(350), "{slow:?} {fast:?}");
    assert!(twilio.standin.max_in_flight() >= 2, "the slow one was still in flight");
}

// ---- lost responses ----

#[tokio::test]
async fn a_lost_create_is_carried_out_so_its_retry_conflicts_instead_of_duplicating() {
    let twilio = Twilio::start().await;
    twilio.standin.lose_responses(1, Some("POST"), Some("/Conversations"));
    let lost = twilio.post("/Conversations", &[("UniqueName", "asset:once")]).await;
    assert_twilio_error(&lost, 502, codes::BAD_GATEWAY);
    assert!(twilio.standin.conversation("asset:once").is_some(), "carried out all the same");

    let retried = twilio.post("/Conversations", &[("UniqueName", "asset:once")]).await;
    assert_twilio_error(&retried, 409, codes::CONVERSATION_EXISTS);
    assert_eq!(twilio.standin.conversations().len(), 1);
    assert_eq!(twilio.standin.faults_injected(), 1);
    let statuses: Vec<u16> = twilio.standin.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 409], "the recording keeps what the client got");
}

#[tokio::test]
async fn a_lost_participant_add_is_answered_50433_on_retry() {
    let twilio = Twilio::start().await;
    twilio.standin.create_conversation(Some("asset:p"), None, None).expect("seed");
    twilio.standin.lose_responses(2, None, Some("/Participants"));
    let lost = twilio.post("/Conversations/asset:p/Participants", &[("Identity", "ana")]).await;
    assert_twilio_error(&lost, 502, codes::BAD_GATEWAY);
    let lost_again = twilio.post("/Conversations/asset:p/Participants", &[("Identity", "ana")]).await;
    assert_twilio_error(&lost_again, 502, codes::BAD_GATEWAY);
    let retried = twilio.post("/Conversations/asset:p/Participants", &[("Identity", "ana")]).await;
    assert_twilio_error(&retried, 409, codes::PARTICIPANT_EXISTS);
    assert_eq!(twilio.standin.conversation("asset:p").expect("c").identities(), ["ana"]);
    assert_eq!(twilio.standin.faults_injected(), 2);
}

#[tokio::test]
async fn only_matching_requests_that_are_carried_out_lose_their_answer() {
    let twilio = Twilio::start().await;
    twilio.standin.create_conversation(Some("asset:gone"), None, None).expect("seed");
    twilio.standin.lose_responses(1, Some("DELETE"), None);
    assert_eq!(twilio.get("/Conversations/asset:gone").await.0, 200, "another method");
    assert_eq!(twilio.post("/Conversations", &[("UniqueName", "asset:kept")]).await.0, 201);

    // A faulted request is not carried out, so it uses up no lost answer.
    twilio.standin.fail_next(1, Fault::TOO_MANY_REQUESTS, Some("DELETE /Conversations"));
    assert_twilio_error(&twilio.delete("/Conversations/asset:gone").await, 429, codes::RATE_LIMITED);
    assert!(twilio.standin.conversation("asset:gone").is_some());
    assert_twilio_error(&twilio.delete("/Conversations/asset:gone").await, 502, codes::BAD_GATEWAY);
    assert!(twilio.standin.conversation("asset:gone").is_none(), "the delete happened");
    assert_twilio_error(&twilio.delete("/Conversations/asset:gone").await, 404, codes::NOT_FOUND);
    assert_eq!(twilio.standin.faults_injected(), 2);

    twilio.standin.lose_responses(5, None, None);
    twilio.standin.heal();
    assert_eq!(twilio.delete("/Conversations/asset:kept").await.0, 204, "heal drops lost-answer rules");
}

#[tokio::test]
async fn a_lost_message_post_still_fires_its_post_event() {
    let twilio = Twilio::start().await;
    let hook =
        Server::loopback(|_: Request<Incoming>| async { Response::new(Full::new(Bytes::new())) }).await.expect("hook");
    let hook_url = format!("{}/events", hook.url());
    let (status, body) = twilio
        .post("/Configuration/Webhooks", &[("PostWebhookUrl", hook_url.as_str()), ("Filters", "onMessageAdded")])
        .await;
    assert_eq!(status, 200, "{body}");
    twilio.standin.create_conversation(Some("asset:m"), None, None).expect("seed");
    twilio.standin.lose_responses(1, Some("POST"), Some("/Messages"));

    let lost = twilio
        .send(reqwest::Method::POST, "/Conversations/asset:m/Messages", &[("Author", "ana"), ("Body", "hi")], true)
        .await;
    assert_twilio_error(&lost, 502, codes::BAD_GATEWAY);
    let messages = twilio.standin.messages("asset:m");
    assert_eq!(messages.len(), 1);
    let mut deliveries = Vec::new();
    for _ in 0..200 {
        deliveries = twilio.standin.webhook_deliveries();
        if !deliveries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let [added] = deliveries.as_slice() else { panic!("one post-event: {deliveries:?}") };
    assert_eq!(added.event_type, "onMessageAdded");
    assert_eq!(added.param("MessageSid"), Some(messages[0].sid.as_str()));
    assert_eq!(added.param("Source"), Some("API"));
}
