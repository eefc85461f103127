//! `chatgate reconcile asset|user` against DynamoDB Local and the Twilio stand-in: it applies the
//! rule now, says whom it removed, and removes nobody who can read.

use std::process::{Command, Output};

use chatgate::acl::{CatalogWriter, GrantWriter, RegisteredConversations};
use chatgate::domain::{AssetType, ConversationNames, Grant, Principal, Role};
use chatgate_tests::acl_contract::{asset, group, record, user};
use chatgate_tests::dynamo::{ACCESS_KEY, REGION, SECRET_KEY, dynamo_local, test_store, unique_table_name};
use chatgate_tests::{ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, SERVICE_SID};
use twilio_standin::{StandIn, StandInConfig};

fn run(table: &str, standin: &StandIn, args: &[&str]) -> Output {
    command(table, standin, args).output().expect("run chatgate")
}

fn command(table: &str, standin: &StandIn, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatgate"));
    command
        .args(args)
        .env_clear()
        .env("TABLE_NAME", table)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamo_local().endpoint)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("TWILIO_API_BASE", &standin.base_url)
        .env("TWILIO_CONVERSATIONS_SERVICE_SID", SERVICE_SID)
        .env("TWILIO_API_KEY_SID", API_KEY_SID)
        .env("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
        .env("CONVERSATION_NAME_KEY", chatgate::domain::DEVELOPMENT_NAME_KEY);
    command
}

fn ok(table: &str, standin: &StandIn, args: &[&str]) -> String {
    let out = run(table, standin, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_apply_the_rule_now_and_hear_whom_it_removed() {
    let table = unique_table_name("reconcile");
    let store = test_store(&dynamo_local().endpoint, &table).await;
    store.create_table().await.expect("table");
    for id in ["a-1", "a-2"] {
        store.put_asset(&asset(id), &user("ana"), AssetType::Document, id, 0).await.expect("asset");
    }
    let a2 = record(&store, "a-2").await;
    let grant = Grant {
        principal: Principal::Group(group("designers")),
        role: Role::Reader,
        expires_at: None,
        generation: a2.generation.clone(),
    };
    store.put_grant(&a2, &grant, 0).await.expect("grant");
    store.add_member(&group("designers"), &user("bob")).await.expect("member");
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    for id in ["a-1", "a-2"] {
        let name = ConversationNames::development().asset(&asset(id));
        let attributes = format!(r#"{{"type":"asset","asset_id":"{id}"}}"#);
        let sid = standin.create_conversation(Some(&name), None, Some(&attributes)).expect("conversation").sid;
        for who in ["ana", "bob", "cy"] {
            standin.add_participant(&sid, who).expect("participant");
        }
    }
    let a1 = standin.conversation(&ConversationNames::development().asset(&asset("a-1"))).expect("a-1").sid;

    let out = ok(&table, &standin, &["reconcile", "user", "bob"]);
    assert_eq!(out, format!("removed bob from {a1} (asset a-1)\n"), "bob reads a-2 through designers");
    let out = ok(&table, &standin, &["reconcile", "asset", "a-2"]);
    assert!(
        out.starts_with("removed cy from CH") && out.ends_with("(asset a-2)\n") && out.lines().count() == 1,
        "{out}"
    );
    assert_eq!(ok(&table, &standin, &["reconcile", "asset", "a-2"]), "asset a-2: nobody to remove\n");
    let out = run(&table, &standin, &["reconcile", "asset", ""]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("asset id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_queue_message_is_redriven_from_the_stream() {
    use chatgate::acl::follow::StreamFollower;
    use std::io::Write as _;

    let table = unique_table_name("redrive");
    let endpoint = &dynamo_local().endpoint;
    let store = test_store(endpoint, &table).await;
    store.create_table().await.expect("table");
    let mut follower =
        StreamFollower::from_now(&chatgate_tests::dynamo::sdk_config(endpoint).await, &store).await.expect("stream");
    store.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "", 0).await.expect("asset");
    let a1 = record(&store, "a-1").await;
    let bob = Principal::User(user("bob"));
    let grant =
        Grant { principal: bob.clone(), role: Role::Reader, expires_at: None, generation: a1.generation.clone() };
    store.put_grant(&a1, &grant, 0).await.expect("grant");
    store.delete_grant(&a1, &bob).await.expect("revoke");
    let mut records = Vec::new();
    let started = std::time::Instant::now();
    // The asset, the grant and its mirror in the user's partition, both deleted again.
    while records.len() < 5 {
        records.extend(follower.next_batch().await.expect("stream"));
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "records: {records:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    let name = ConversationNames::development().asset(&asset("a-1"));
    standin.create_conversation(Some(&name), None, Some(r#"{"type":"asset","asset_id":"a-1"}"#)).expect("c");
    for who in ["ana", "bob"] {
        standin.add_participant(&name, who).expect("participant");
    }
    // The message Lambda sends after the batch (the five records) kept failing.
    let message = serde_json::json!({
        "requestContext": {"requestId": "r", "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "version": "1.0",
        "DDBStreamBatchInfo": {
            "shardId": follower.shard_ids()[0],
            "startSequenceNumber": records[0].dynamodb.sequence_number,
            "endSequenceNumber": records[4].dynamodb.sequence_number,
            "batchSize": 5,
            "streamArn": follower.stream_arn(),
        }
    });
    let mut child = command(&table, &standin, &["reconcile", "failure", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(message.to_string().as_bytes()).expect("write");
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(stdout, format!("5 record(s), 1 scope(s) reconciled\nremoved bob from {name} (asset a-1)\n"));
    let participants = standin.conversation(&name).expect("c").participants;
    assert_eq!(participants.iter().map(|p| p.identity.as_str()).collect::<Vec<_>>(), ["ana"]);

    let out = run(&table, &standin, &["reconcile", "failure", "/nonexistent"]);
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_under_v1_1_names_are_renamed_once_and_squatters_removed() {
    use chatgate::domain::{ConversationKey, legacy_unique_name};
    let local = dynamo_local();
    let table = unique_table_name("legacy");
    let store = test_store(&local.endpoint, &table).await;
    store.create_table().await.expect("table");
    store.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "Plan", 0).await.expect("asset");
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    let legacy_asset = legacy_unique_name(&ConversationKey::Asset(asset("a-1"))).expect("name");
    let legacy_direct = legacy_unique_name(&ConversationKey::Direct(user("ana"), user("bob"))).expect("name");
    let a = standin
        .create_conversation(Some(&legacy_asset), None, Some(r#"{"type":"asset","asset_id":"a-1"}"#))
        .expect("a");
    for who in ["ana", "mallory"] {
        standin.add_participant(&a.sid, who).expect("participant");
    }
    let d = standin.create_conversation(Some(&legacy_direct), None, Some(r#"{"type":"direct"}"#)).expect("d");
    for who in ["bob", "ana"] {
        standin.add_participant(&d.sid, who).expect("participant");
    }
    let names = ConversationNames::development();

    let dry = ok(&table, &standin, &["reconcile", "rename-legacy"]);
    assert!(
        dry.contains(&format!("would rename {}: {legacy_asset} -> {}", a.sid, names.asset(&asset("a-1")))),
        "{dry}"
    );
    assert!(dry.contains(&format!("would rename {}", d.sid)), "{dry}");
    assert_eq!(standin.conversation(&a.sid).expect("a").unique_name.as_deref(), Some(legacy_asset.as_str()));
    assert!(dry.ends_with("would register 1 asset conversation(s) for the scheduled pass\n"), "{dry}");
    assert_eq!(store.registered_after(None, 10).await.expect("registry"), (vec![], false), "a dry run writes nothing");

    let applied = ok(&table, &standin, &["reconcile", "rename-legacy", "--apply"]);
    assert!(applied.contains(&format!("removed mallory from {} (asset a-1)", a.sid)), "{applied}");
    let renamed = standin.conversation(&a.sid).expect("a");
    assert_eq!(renamed.unique_name, Some(names.asset(&asset("a-1"))));
    assert_eq!(renamed.identities(), ["ana"]);
    assert_eq!(standin.conversation(&d.sid).expect("d").unique_name, Some(names.direct(&user("ana"), &user("bob"))));
    // The asset conversation made before v1.2 is in the registry: the scheduled pass walks it.
    assert_eq!(store.registered_after(None, 10).await.expect("registry"), (vec![asset("a-1")], false));
    let again = ok(&table, &standin, &["reconcile", "rename-legacy", "--apply"]);
    assert!(again.starts_with("0 conversation(s) under v1.1 names"), "{again}");
    assert!(again.ends_with("registered 1 asset conversation(s) for the scheduled pass\n"), "{again}");
}
