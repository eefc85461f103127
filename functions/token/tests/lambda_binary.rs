//! The real `token` binary under a Lambda Runtime API stand-in: secrets read once from Secrets
//! Manager at cold start, a bad configuration stopping the start by name, and JSON logs that
//! carry the request id and identity but never a token or secret.

use std::process::Stdio;
use std::time::Duration;

use chatgate_tests::*;
use serde_json::{Value, json};
use tokio::process::Command;

const STORED_API_KEY_SECRET: &str = "api-key-secret-from-secrets-manager";

struct Run {
    success: bool,
    logs: String,
    responses: Vec<Value>,
    init_errors: usize,
}

async fn run(events: Vec<Value>, secrets: &StubServer, extra: &[(&str, &str)]) -> Run {
    let runtime = runtime_api(events).await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_token"));
    command
        .env_clear()
        .envs(lambda_env(&runtime))
        .envs(jwt_settings(&[]).iter_pairs())
        .env_remove("TWILIO_API_KEY_SECRET");
    command.env("TWILIO_API_KEY_SECRET", "").env("TWILIO_SECRET_ARN", SECRET_ARN);
    command.env("AWS_ENDPOINT_URL_SECRETS_MANAGER", format!("http://{}", secrets.addr));
    for (k, v) in extra {
        command.env(k, v);
    }
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().expect("spawn token");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("token exits")
        .expect("output");
    let requests = runtime.requests();
    let responses = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/response"))
        .map(|r| serde_json::from_slice(&r.body).expect("response JSON"))
        .collect();
    let init_errors = requests.iter().filter(|r| r.path.ends_with("/init/error")).count();
    let logs = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Run { success: out.status.success(), logs, responses, init_errors }
}

#[tokio::test]
async fn the_api_key_secret_comes_from_secrets_manager_at_cold_start() {
    let secrets = secrets_manager(json!({"api_key_secret": STORED_API_KEY_SECRET, "auth_token": "tok"})).await;
    let session = hs256_session(&claims("u-42"));
    let run = run(vec![token_event(&session), token_event(&session)], &secrets, &[]).await;
    assert_eq!(run.responses.len(), 2, "both invocations answered; logs: {}", run.logs);
    assert_eq!(secrets.requests().len(), 1, "the secret is read once, at cold start");

    let response = &run.responses[0];
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().expect("body")).expect("body JSON");
    let verified = oracle(
        "twilio_token.py",
        &json!({"verify": [{"jwt": body["token"], "secret": STORED_API_KEY_SECRET}, {"jwt": body["token"], "secret": API_KEY_SECRET}]}),
    );
    assert_eq!(verified["verified"][0]["ok"], true, "signed with the stored secret");
    assert_eq!(verified["verified"][1]["ok"], false, "not with the environment's");

    // JSON log lines with the request id and identity; never the session, the token or a secret.
    assert!(
        run.logs.lines().any(|l| l.contains("token issued") && l.contains("u-42") && l.contains("req-1")),
        "{}",
        run.logs
    );
    for leaked in [session.as_str(), body["token"].as_str().expect("token"), STORED_API_KEY_SECRET, SESSION_SECRET] {
        assert!(!run.logs.contains(leaked), "a secret or token reached the log: {}", run.logs);
    }
}

#[tokio::test]
async fn a_secret_without_the_api_key_stops_the_start_naming_it() {
    let secrets = secrets_manager(json!({"auth_token": "tok"})).await;
    let run = run(vec![token_event("x")], &secrets, &[]).await;
    assert!(!run.success);
    assert!(run.responses.is_empty());
    assert!(run.logs.contains("TWILIO_SECRET_ARN") && run.logs.contains("api_key_secret"), "{}", run.logs);
    assert!(run.init_errors <= 1);
}

#[tokio::test]
async fn an_unreadable_secret_stops_the_start_naming_it() {
    let secrets = secrets_manager(json!({})).await;
    let run = run(
        vec![token_event("x")],
        &secrets,
        &[("TWILIO_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:other")],
    )
    .await;
    assert!(!run.success);
    assert!(run.responses.is_empty());
    assert!(run.logs.contains("TWILIO_SECRET_ARN"), "{}", run.logs);
}
