//! The Prism harness itself: Twilio's spec accepts the request shapes the project sends, and Prism
//! refuses (so the harness fails) on wrong media type, out-of-range paging, missing basic auth and
//! unknown paths.

use std::panic::{AssertUnwindSafe, catch_unwind};

use chatgate_tests::SERVICE_SID;
use chatgate_tests::prism::{self, TwilioCall};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

fn conversations() -> String {
    format!("/v1/Services/{SERVICE_SID}/Conversations")
}

fn locations(problem: &Value) -> Vec<String> {
    problem["validation"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v["location"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join("."))
        .collect()
}

#[tokio::test]
async fn a_valid_form_create_is_accepted() {
    let answer = TwilioCall::post(&conversations())
        .form(&[
            ("FriendlyName", "Room 1: tea & cake = 100% fun"),
            ("UniqueName", "room-1"),
            ("Attributes", r#"{"owner":"alice","tags":["a b","c+d"]}"#),
        ])
        .send()
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(answer.violations(), None);
    let body = answer.assert_accepted();
    assert!(body["sid"].as_str().is_some_and(|s| s.starts_with("CH")), "{body}");
}

#[tokio::test]
async fn a_json_body_is_refused_with_415() {
    let answer = TwilioCall::post(&conversations())
        .body("application/json", r#"{"FriendlyName":"x","UniqueName":"y"}"#)
        .send()
        .await;
    let problem = answer.assert_refused(415);
    assert_eq!(problem["type"], "https://stoplight.io/prism/errors#INVALID_CONTENT_TYPE");
    let why = answer.verdict().expect_err("a refusal is no pass");
    assert!(why.contains("415") && why.contains("application/x-www-form-urlencoded"), "{why}");
}

#[tokio::test]
async fn page_size_over_the_maximum_is_refused() {
    let answer = TwilioCall::get(&conversations()).query(&[("PageSize", "1000")]).send().await;
    let problem = answer.assert_refused(422);
    assert_eq!(problem["type"], "https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY");
    // Prism reports query names in lower case.
    assert_eq!(locations(&problem), ["query.pagesize"]);
    assert_eq!(problem["validation"][0]["code"], "maximum");
    let why = answer.verdict().expect_err("refused");
    assert!(why.contains("query.pagesize [Error maximum]"), "{why}");

    TwilioCall::get(&conversations()).query(&[("PageSize", "100")]).assert_accepted().await;
}

#[tokio::test]
async fn basic_auth_is_required_and_any_credentials_pass() {
    let path = conversations();
    let answer = TwilioCall::post(&path).form(&[("FriendlyName", "x")]).no_auth().send().await;
    let problem = answer.assert_refused(401);
    assert_eq!(problem["type"], "https://stoplight.io/prism/errors#UNAUTHORIZED");
    assert_eq!(answer.headers.get("www-authenticate").map(HeaderValue::as_bytes), Some(&b"Basic realm=\"*\""[..]));

    // A bearer token is no basic auth.
    TwilioCall::post(&path)
        .form(&[("FriendlyName", "x")])
        .no_auth()
        .header("authorization", "Bearer abc")
        .send()
        .await
        .assert_refused(401);

    // Prism checks the shape only: any user and password are fine.
    for (user, password) in [("AC00000000000000000000000000000009", "token"), ("someone", "anything")] {
        TwilioCall::post(&path).form(&[("FriendlyName", "x")]).basic_auth(user, password).assert_accepted().await;
    }
}

#[tokio::test]
async fn an_unknown_path_is_refused_with_404() {
    let answer = TwilioCall::get(&format!("/v1/Services/{SERVICE_SID}/Chats")).send().await;
    let problem = answer.assert_refused(404);
    assert_eq!(problem["type"], "https://stoplight.io/prism/errors#NO_PATH_MATCHED_ERROR");
    // A known path with an unknown method is 405.
    TwilioCall::delete(&conversations()).send().await.assert_refused(405);
}

#[tokio::test]
async fn a_malformed_service_sid_is_refused() {
    let problem = TwilioCall::get("/v1/Services/IS123/Conversations").send().await.assert_refused(422);
    assert!(locations(&problem).iter().all(|l| l == "path.chatservicesid"), "{problem}");
}

#[tokio::test]
async fn user_conversations_page_at_most_50() {
    let path = format!("/v1/Services/{SERVICE_SID}/Users/alice%40example.com/Conversations");
    let body = prism::send(Method::GET, &path, &[("PageSize", "50")], None, Some(("user", "password")))
        .await
        .assert_accepted();
    assert!(body["meta"].is_object(), "{body}");
    let problem = TwilioCall::get(&path).query(&[("PageSize", "51")]).send().await.assert_refused(422);
    assert_eq!(locations(&problem), ["query.pagesize"]);
}

#[tokio::test]
async fn repeated_form_keys_are_accepted() {
    let path = format!("/v1/Services/{SERVICE_SID}/Roles");
    let permissions = [("Permission", "addParticipant"), ("Permission", "sendMessage")];
    let form = [[("FriendlyName", "chatgate member"), ("Type", "conversation")].as_slice(), &permissions].concat();
    let body = prism::send(Method::POST, &path, &[], Some(&form), Some(("user", "password"))).await.assert_accepted();
    assert!(body["sid"].as_str().is_some_and(|s| s.starts_with("RL")), "{body}");

    // The derived spec still checks the body: Permission is required, Type an enum.
    let problem = TwilioCall::post(&path)
        .form(&[("FriendlyName", "chatgate member"), ("Type", "conversation")])
        .send()
        .await
        .assert_refused(422);
    assert_eq!(problem["validation"][0]["message"], "Request body must have required property 'Permission'");
    let bad_type = [[("FriendlyName", "x"), ("Type", "room")].as_slice(), &permissions].concat();
    let problem = TwilioCall::post(&path).form(&bad_type).send().await.assert_refused(422);
    assert_eq!(locations(&problem), ["body.Type"]);
}

#[tokio::test]
async fn header_parameters_are_checked() {
    let call = TwilioCall::post(&conversations()).form(&[("FriendlyName", "x")]);
    call.clone().header("X-Twilio-Webhook-Enabled", "true").assert_accepted().await;
    let problem = call.header("X-Twilio-Webhook-Enabled", "yes").send().await.assert_refused(422);
    assert_eq!(locations(&problem), ["header.x-twilio-webhook-enabled"]);
}

#[tokio::test]
async fn the_helpers_fail_on_any_violation() {
    // A refusal makes assert_accepted panic with Prism's reasons.
    let refused = TwilioCall::get(&conversations()).query(&[("PageSize", "0")]).send().await;
    let panic = catch_unwind(AssertUnwindSafe(|| refused.assert_accepted())).expect_err("must panic");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("Prism refused GET") && message.contains("query.pagesize [Error minimum]"), "{message}");

    // And an acceptance makes assert_refused panic.
    let accepted = TwilioCall::get(&conversations()).send().await;
    assert!(catch_unwind(AssertUnwindSafe(|| accepted.assert_refused(422))).is_err());

    // A 2xx that carries sl-violations (warnings, response violations) is no pass either.
    let mut headers = HeaderMap::new();
    assert_eq!(prism::violations(&headers), None);
    assert_eq!(prism::verdict(200, &headers, "{}"), Ok(()));
    let list = r#"[{"location":["request","query","Old"],"severity":"Warning","code":"deprecated","message":"Query parameter Old is deprecated"}]"#;
    headers.insert("sl-violations", HeaderValue::from_static(list));
    assert_eq!(prism::violations(&headers).as_deref(), Some(list));
    let why = prism::verdict(200, &headers, "{}").expect_err("violations");
    assert!(why.contains("request.query.Old [Warning deprecated]: Query parameter Old is deprecated"), "{why}");
}

#[test]
fn one_prism_per_process_and_form_encoding() {
    let first = prism::prism();
    assert!(std::ptr::eq(first, prism::prism()));
    assert!(first.base_url.starts_with("http://127.0.0.1:"), "{first:?}");
    eprintln!("Prism at {} (started in {:?})", first.base_url, first.startup);

    assert_eq!(
        prism::form_urlencode(&[("A b", "x y+z&=/%é"), ("A b", "2"), ("k", "*-._~")]),
        "A+b=x+y%2Bz%26%3D%2F%25%C3%A9&A+b=2&k=*-._%7E"
    );
}
