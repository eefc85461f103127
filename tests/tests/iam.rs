//! IAM conformance, proven from real calls: every function's binary runs under a Lambda Runtime
//! API stand-in, with DynamoDB Local behind a recording proxy, Secrets Manager and Twilio
//! stand-ins, and its `events/` fixtures as invocations (its cold start included). Every AWS
//! action it issues must be granted by its policy in template.yaml (SAM policy templates
//! expanded), and every action its policy grants must be one it issues: no AccessDenied waiting in
//! production, and no permission nobody uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use chatgate::acl::{CatalogWriter, GrantWriter};
use chatgate::domain::{AssetType, ConversationNames, Grant, Principal, Role};
use chatgate_tests::acl_contract::{NOW, asset, group, record, user};
use chatgate_tests::dynamo::{ACCESS_KEY, FaultProxy, REGION, SECRET_KEY, dynamo_local, test_store, unique_table_name};
use chatgate_tests::*;
use serde_json::{Value, json};
use serde_yaml::Value as Yaml;
use twilio_standin::{StandIn, StandInConfig};

/// The actions Lambda's event source mapping performs with the reconciler's role (reading the
/// stream, sending failed batches to the queue): granted for it, never issued by the code.
const EVENT_SOURCE_MAPPING: [&str; 5] = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
    "sqs:SendMessage",
];

/// A function of template.yaml: its logical id, and the AWS actions its policy grants.
struct Function {
    logical_id: String,
    actions: BTreeSet<String>,
}

/// Every function of template.yaml, by package (its binary's name).
fn granted() -> BTreeMap<String, Function> {
    let template: Yaml =
        serde_yaml::from_str(&std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template"))
            .expect("YAML");
    let mut functions = BTreeMap::new();
    for (logical_id, resource) in template["Resources"].as_mapping().expect("resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        // CodeUri is functions/<package>, and each package's binary is named after it (sam/functions.mk).
        let code_uri = resource["Properties"]["CodeUri"].as_str().expect("CodeUri");
        let binary = code_uri.strip_prefix("functions/").expect("CodeUri functions/<package>").to_owned();
        let mut actions = BTreeSet::new();
        for policy in resource["Properties"]["Policies"].as_sequence().into_iter().flatten() {
            let policy = policy.as_mapping().expect("policy");
            for (name, body) in policy {
                match name.as_str() {
                    Some("Statement") => {
                        for statement in body.as_sequence().expect("statements") {
                            match &statement["Action"] {
                                Yaml::String(action) => actions.insert(action.clone()),
                                Yaml::Sequence(list) => {
                                    actions.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned)));
                                    true
                                }
                                other => panic!("{binary}: unexpected Action {other:?}"),
                            };
                        }
                    }
                    // SAM's policy template: GetSecretValue on that one secret.
                    Some("AWSSecretsManagerGetSecretValuePolicy") => {
                        actions.insert("secretsmanager:GetSecretValue".to_owned());
                    }
                    other => panic!("{binary}: a policy this test cannot expand: {other:?}"),
                }
            }
        }
        let logical_id = logical_id.as_str().expect("logical id").to_owned();
        functions.insert(binary, Function { logical_id, actions });
    }
    functions
}

/// A function's binary as it ships: the seven built together, as `sam build` builds them. With
/// `CHATGATE_BOOTSTRAPS`, `sam build`'s own output (`<dir>/<logical id>/bootstrap`, CI passes
/// .aws-sam/build): the very files that ship (`scripts/sam-check --build` checks each is its
/// package's binary); otherwise `scripts/test`'s debug build of the same packages.
fn binary(name: &str, logical_id: &str) -> PathBuf {
    let path = match std::env::var_os("CHATGATE_BOOTSTRAPS") {
        Some(dir) => PathBuf::from(dir).join(logical_id).join("bootstrap"),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace_root().join("target"), PathBuf::from)
            .join("functions")
            .join("debug")
            .join(name),
    };
    assert!(path.is_file(), "{} is not built: scripts/test builds the functions", path.display());
    path
}

/// The `events/` scenario (events/README.md), in the table and in a fresh stand-in.
async fn scenario(table: &str) -> StandIn {
    let store = test_store(&dynamo_local().endpoint, table).await;
    store.create_table().await.expect("table");
    for id in ["a-1", "doc#1/v2"] {
        store.put_asset(&asset(id), &user("u-1"), AssetType::Document, "Plan", NOW).await.expect("asset");
    }
    store.add_member(&group("designers"), &user("u-2")).await.expect("member");
    let a1 = record(&store, "a-1").await;
    for (principal, role) in
        [(Principal::Group(group("designers")), Role::Writer), (Principal::User(user("u-3")), Role::Reader)]
    {
        let grant = Grant { principal, role, expires_at: Some(NOW * 2), generation: a1.generation.clone() };
        store.put_grant(&a1, &grant, NOW).await.expect("grant");
    }
    // A grant that ran out two minutes ago: the expiry sweep handles its entry (and removes it).
    let expired = Grant {
        principal: Principal::User(user("u-12")),
        role: Role::Reader,
        expires_at: Some(now() - 120),
        generation: a1.generation.clone(),
    };
    store.put_grant(&a1, &expired, NOW).await.expect("expired grant");
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    standin.create_conversation(Some("room:support"), Some("Support"), Some(r#"{"type":"room"}"#)).expect("room");
    let direct = ConversationNames::development().direct(&user("u-1"), &user("u-2"));
    standin.create_conversation(Some(&direct), None, Some(r#"{"type":"direct"}"#)).expect("direct");
    for who in ["u-1", "u-2"] {
        standin.add_participant(&direct, who).expect("participant");
    }
    standin
        .create_conversation(Some("conv-a-1"), Some("Plan"), Some(r#"{"type":"asset","asset_id":"a-1"}"#))
        .expect("asset conversation");
    standin.create_conversation(Some("conv-direct"), None, Some(r#"{"type":"direct"}"#)).expect("direct");
    let plan = ConversationNames::development().asset(&asset("a-1"));
    standin.create_conversation(Some(&plan), None, Some(r#"{"type":"asset","asset_id":"a-1"}"#)).expect("asset");
    for who in ["u-1", "u-2", "u-3", "u-4"] {
        standin.add_participant(&plan, who).expect("participant");
    }
    standin
}

/// Every fixture of `events/<function>/`, as invocations.
fn fixtures(function: &str) -> Vec<Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("events").join(function))
        .expect("events")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")).collect()
}

/// Runs `function`'s binary over its fixtures; the AWS actions it issued.
async fn issued(function: &str, logical_id: &str) -> BTreeSet<String> {
    let table = unique_table_name("iam");
    let standin = scenario(&table).await;
    let proxy = FaultProxy::start(&dynamo_local().endpoint).await;
    let secret = json!({"api_key_secret": API_KEY_SECRET, "auth_token": "chatgate-events-auth-token"});
    let secrets = secrets_manager(secret).await;
    let events = fixtures(function);
    let count = events.len();
    let runtime = runtime_api(events).await;
    let role = standin.role_by_name("service user").expect("role").sid;
    let mut command = tokio::process::Command::new(binary(function, logical_id));
    command
        .env_clear()
        .envs(lambda_env(&runtime))
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &proxy.endpoint)
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", format!("http://{}", secrets.addr))
        .env("TABLE_NAME", &table)
        .env("TWILIO_SECRET_ARN", SECRET_ARN)
        .env("AUTH_MODE", "authorizer")
        .env("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
        .env("TWILIO_API_KEY_SID", API_KEY_SID)
        .env("TWILIO_CONVERSATIONS_SERVICE_SID", SERVICE_SID)
        .env("TWILIO_USER_ROLE_SID", role)
        .env("TWILIO_API_BASE", &standin.base_url)
        .env("TWILIO_WEBHOOK_URL", "https://abc123.execute-api.us-east-1.amazonaws.com/twilio/events")
        .env("ALLOWED_ORIGINS", "https://app.example.com")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // As template.yaml gives it: to the functions that name conversations (or find them by name).
    if ["conversations", "admin", "reconciler"].contains(&function) {
        command.env("CONVERSATION_NAME_KEY_SECRET_ARN", NAME_KEY_SECRET_ARN);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("{function} did not finish its {count} events"))
        .expect("run");
    let answered = runtime.requests().iter().filter(|r| r.path.ends_with("/response")).count();
    assert_eq!(
        answered,
        count,
        "{function} answered {answered} of {count} events: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let mut actions = proxy.iam_actions();
    actions.extend(secrets.requests().iter().filter_map(amz_target).map(|t| t.replacen('.', ":", 1)));
    actions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_issues_exactly_the_actions_its_policy_grants() {
    let granted = granted();
    assert_eq!(
        granted.keys().map(String::as_str).collect::<Vec<_>>(),
        ["access", "admin", "conversations", "message-guard", "reconciler", "sharing", "token"]
    );
    let mut mismatches = Vec::new();
    for (function, Function { logical_id, actions: policy }) in &granted {
        let issued = issued(function, logical_id).await;
        let mapping: BTreeSet<String> = EVENT_SOURCE_MAPPING.iter().map(|a| (*a).to_owned()).collect();
        if function != "reconciler" {
            assert!(policy.is_disjoint(&mapping), "{function} grants the stream mapping's actions");
        }
        let needed: BTreeSet<&String> = policy.iter().filter(|a| !mapping.contains(*a)).collect();
        let missing: Vec<&String> = issued.iter().filter(|a| !policy.contains(*a)).collect();
        let unused: Vec<&&String> = needed.iter().filter(|a| !issued.contains(**a)).collect();
        if !missing.is_empty() || !unused.is_empty() {
            mismatches
                .push(format!("{function}: issued but not granted {missing:?}; granted but never issued {unused:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
