//! Access over time, against DynamoDB Local's stream and the Twilio stand-in: each change that can
//! take read access away, read back from the table's stream as Lambda would deliver it, goes
//! through the reconciler function's handler, and exactly the participants who can no longer read
//! leave the asset's conversation. Records replayed, duplicated, reordered or late remove nobody
//! who can read; a Twilio 429 or a poison record fails only its own record.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate::acl::follow::StreamFollower;
use chatgate::acl::{AclReader, CatalogWriter, DynamoStore, ExpiryIndex, GrantWriter, KeyLayout};
use chatgate::clock::{Clock, Deadline, ManualClock};
use chatgate::domain::{AssetType, ConversationNames, Grant, Principal, Role};
use chatgate::reconcile::Reconciler;
use chatgate_tests::acl_contract::{asset, group, record, user};
use chatgate_tests::dynamo::{dynamo_local, sdk_config, test_store_in, unique_table_name};
use chatgate_tests::*;
use reconciler::handler::ReconcilerState;
use serde_json::{Value, json};
use twilio_standin::{Fault, StandIn, StandInConfig};

/// A table with its stream followed from now on, a stand-in, and the reconciler function's state
/// over both, with a clock the test moves.
struct World {
    store: Arc<DynamoStore>,
    follower: StreamFollower,
    standin: StandIn,
    clock: Arc<ManualClock>,
    state: ReconcilerState<DynamoStore>,
    /// The event source mapping's filter: what Lambda would hand the function.
    filter: Vec<Value>,
}

impl World {
    async fn new() -> Self {
        Self::deployed(false).await
    }

    /// The same in a tenant deployment (`true`): the table's tenant layout, the rule's audit lines.
    async fn deployed(tenants: bool) -> Self {
        let local = dynamo_local();
        let layout = KeyLayout::of_deployment(tenants);
        let store = Arc::new(test_store_in(&local.endpoint, &unique_table_name("rule"), layout).await);
        store.create_table().await.expect("table");
        let follower = StreamFollower::from_now(&sdk_config(&local.endpoint).await, &store).await.expect("stream");
        let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
        let clock = Arc::new(ManualClock::at(now()));
        let rule = Reconciler::new(
            store.clone(),
            twilio_client(&standin.base_url),
            ConversationNames::development(),
            clock.clone(),
        );
        let filter = chatgate_tests::stream_filter::patterns();
        let state = ReconcilerState { rule: rule.with_tenants(tenants), pass_every: Duration::from_secs(3600) };
        Self { store, follower, standin, clock, state, filter }
    }

    async fn asset(&self, id: &str, owner: &str) {
        self.store.put_asset(&asset(id), &user(owner), AssetType::Document, id, self.clock.now()).await.expect("asset");
    }

    async fn grant(&self, id: &str, principal: &str, expires_at: Option<u64>) {
        let record = record(self.store.as_ref(), id).await;
        let grant = Grant {
            principal: Principal::try_from(principal).expect("principal"),
            role: Role::Reader,
            expires_at,
            generation: record.generation.clone(),
        };
        self.store.put_grant(&record, &grant, self.clock.now()).await.expect("grant");
    }

    async fn revoke(&self, id: &str, principal: &str) {
        let record = record(self.store.as_ref(), id).await;
        self.store.delete_grant(&record, &Principal::try_from(principal).expect("principal")).await.expect("revoke");
    }

    /// The asset's conversation, as chatgate creates it, with `members` in it.
    fn conversation(&self, id: &str, members: &[&str]) {
        let name = ConversationNames::development().asset(&asset(id));
        let attributes = format!(r#"{{"type":"asset","asset_id":"{id}"}}"#);
        self.standin.create_conversation(Some(&name), Some(id), Some(&attributes)).expect("conversation");
        for member in members {
            self.standin.add_participant(&name, member).expect("participant");
        }
    }

    fn members(&self, id: &str) -> BTreeSet<String> {
        let conversation =
            self.standin.conversation(&ConversationNames::development().asset(&asset(id))).expect("conversation");
        conversation.participants.iter().map(|p| p.identity.clone()).collect()
    }

    /// The records the changes made so far put on the stream, as Lambda delivers them: waits for
    /// the first, then until none has arrived for a moment.
    async fn records(&mut self) -> Vec<Value> {
        let started = Instant::now();
        let mut records = Vec::new();
        let mut seen = 0;
        let mut quiet_since = None::<Instant>;
        loop {
            let batch = self.follower.next_batch().await.expect("stream");
            seen += batch.len();
            if batch.is_empty() {
                match quiet_since {
                    Some(at) if seen > 0 && at.elapsed() > Duration::from_millis(600) => return records,
                    None => quiet_since = Some(Instant::now()),
                    _ => {}
                }
                assert!(started.elapsed() < Duration::from_secs(20), "no stream record arrived");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            quiet_since = None;
            // What Lambda would deliver: the records the template's filter lets through.
            records.extend(
                batch
                    .into_iter()
                    .map(|r| lambda_record(serde_json::to_value(r).expect("record")))
                    .filter(|r| chatgate_tests::stream_filter::passes(&self.filter, r)),
            );
        }
    }

    /// Runs one batch through the function's handler; its answer.
    async fn deliver(&self, records: Vec<Value>) -> Value {
        invoke_reconciler(&self.state, json!({"Records": records})).await.expect("handled")
    }

    /// The records so far, delivered: the failures the handler reported.
    async fn settle(&mut self) -> Vec<String> {
        let records = self.records().await;
        failures(&self.deliver(records).await)
    }
}

/// A record as Lambda delivers it: the stream's record plus the envelope Lambda adds.
fn lambda_record(mut record: Value) -> Value {
    let envelope = json!({"eventID": "1", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                          "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/1"});
    if let (Value::Object(record), Value::Object(envelope)) = (&mut record, envelope) {
        record.extend(envelope);
    }
    record
}

fn failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().expect("itemIdentifier").to_owned())
        .collect()
}

fn sequence_number(record: &Value) -> String {
    record["dynamodb"]["SequenceNumber"].as_str().expect("sequence number").to_owned()
}

fn set(members: &[&str]) -> BTreeSet<String> {
    members.iter().map(|m| (*m).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_tenant_deployment_the_function_reads_each_record_in_its_own_tenant() {
    // The table's hot keys name the tenant by handle: the handler reads it back through the
    // tenant's record, and a revocation in acme removes acme's bob only.
    let mut w = World::deployed(true).await;
    for t in ["acme", "globex"] {
        let (doc, ana, bob) = (format!("{t}~a-1"), format!("{t}~ana"), format!("{t}~bob"));
        w.asset(&doc, &ana).await;
        w.grant(&doc, &format!("user:{bob}"), None).await;
        w.grant(&doc, &format!("group:{t}~ops"), None).await;
        w.conversation(&doc, &[&ana, &bob]);
    }
    w.store.add_member(&group("acme~ops"), &user("acme~cy")).await.expect("member");
    w.store.add_member(&group("globex~ops"), &user("globex~cy")).await.expect("member");
    w.standin.add_participant(&ConversationNames::development().asset(&asset("acme~a-1")), "acme~cy").expect("cy");
    w.standin.add_participant(&ConversationNames::development().asset(&asset("globex~a-1")), "globex~cy").expect("cy");
    assert!(w.settle().await.is_empty());

    w.revoke("acme~a-1", "user:acme~bob").await;
    w.store.remove_member(&group("acme~ops"), &user("acme~cy")).await.expect("leave");
    assert!(w.settle().await.is_empty(), "every record read");
    assert_eq!(w.members("acme~a-1"), set(&["acme~ana"]));
    assert_eq!(w.members("globex~a-1"), set(&["globex~ana", "globex~bob", "globex~cy"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_tenant_deployment_a_participant_of_no_tenant_is_removed_not_stuck_on() {
    // Someone an operator put in by hand, under an identity no tenant's session could mint: the
    // table has nothing for them, so they read as no access, and leave with the revoked.
    let mut w = World::deployed(true).await;
    w.asset("acme~a-1", "acme~ana").await;
    w.grant("acme~a-1", "group:acme~ops", None).await;
    w.store.add_member(&group("acme~ops"), &user("acme~bob")).await.expect("member");
    w.conversation("acme~a-1", &["acme~ana", "acme~bob", "mallory"]);
    w.records().await;

    w.revoke("acme~a-1", "group:acme~ops").await;
    assert!(w.settle().await.is_empty());
    assert_eq!(w.members("acme~a-1"), set(&["acme~ana"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_tenant_deployment_a_batch_whose_tenants_cannot_be_read_is_retried_whole() {
    let mut w = World::deployed(true).await;
    w.asset("acme~a-1", "acme~ana").await;
    w.grant("acme~a-1", "user:acme~bob", None).await;
    w.conversation("acme~a-1", &["acme~ana", "acme~bob"]);
    w.records().await;
    w.revoke("acme~a-1", "user:acme~bob").await;
    let records = w.records().await;
    assert!(!records.is_empty());

    // A new instance whose table does not answer (port 0 refuses every connection) cannot learn
    // whose the records are: every record is reported failed, to be retried, and nobody removed.
    let unreachable = test_store_in("http://127.0.0.1:0", "t", KeyLayout::Tenants).await;
    let rule = Reconciler::new(
        Arc::new(unreachable),
        twilio_client(&w.standin.base_url),
        ConversationNames::development(),
        w.clock.clone(),
    );
    let state = ReconcilerState { rule: rule.with_tenants(true), pass_every: Duration::from_secs(3600) };
    let answer = invoke_reconciler(&state, json!({"Records": records.clone()})).await.expect("handled, not crashed");
    let all: BTreeSet<String> = records.iter().map(sequence_number).collect();
    assert_eq!(failures(&answer).into_iter().collect::<BTreeSet<_>>(), all);
    // Failed because their tenants could not be read: nothing was decided, nothing set aside.
    let outcome = state.rule.apply_stream(records.clone(), Deadline::after(Duration::from_secs(30))).await;
    assert_eq!((outcome.scopes, outcome.set_aside.len()), (0, 0));
    assert_eq!(outcome.failed.into_iter().collect::<BTreeSet<_>>(), all);
    assert_eq!(w.members("acme~a-1"), set(&["acme~ana", "acme~bob"]));
    // The same records, once the table answers, are read in acme and applied.
    assert!(failures(&w.deliver(records).await).is_empty());
    assert_eq!(w.members("acme~a-1"), set(&["acme~ana"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_user_grant_removes_that_reader_with_one_twilio_call() {
    let mut w = World::new().await;
    w.asset("a-1", "ana").await;
    w.grant("a-1", "user:bob", None).await;
    w.grant("a-1", "user:cy", None).await;
    w.conversation("a-1", &["ana", "bob", "cy"]);
    w.records().await;
    w.standin.reset_requests();

    w.revoke("a-1", "user:bob").await;
    assert!(w.settle().await.is_empty());
    assert_eq!(w.members("a-1"), set(&["ana", "cy"]));
    assert_eq!(w.standin.request_count(), 1, "a user grant costs one Twilio call");
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_group_grant_removes_the_members_it_was_the_only_path_for() {
    let mut w = World::new().await;
    w.asset("a-1", "ana").await;
    w.grant("a-1", "group:designers", None).await;
    w.grant("a-1", "user:cy", None).await;
    for member in ["bob", "cy", "dee"] {
        w.store.add_member(&group("designers"), &user(member)).await.expect("member");
    }
    w.store.add_member(&group("readers"), &user("dee")).await.expect("member");
    w.grant("a-1", "group:readers", None).await;
    w.conversation("a-1", &["ana", "bob", "cy", "dee"]);
    w.records().await;
    w.standin.reset_requests();

    w.revoke("a-1", "group:designers").await;
    assert!(w.settle().await.is_empty());
    assert_eq!(w.members("a-1"), set(&["ana", "cy", "dee"]), "cy and dee read another way");
    assert_eq!(w.standin.count_requests("GET", "/Participants"), 1, "one listing");
    assert_eq!(w.standin.count_requests("DELETE", "/Conversations/"), 1, "one call per removal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_a_group_removes_the_user_where_the_group_was_their_only_path() {
    let mut w = World::new().await;
    for id in ["a-1", "a-2"] {
        w.asset(id, "ana").await;
        w.grant(id, "group:designers", None).await;
        w.conversation(id, &["ana", "bob"]);
    }
    w.grant("a-2", "user:bob", None).await;
    w.store.add_member(&group("designers"), &user("bob")).await.expect("member");
    // A conversation that is not about an asset is not the rule's business.
    let direct = w.standin.create_conversation(Some("direct:x"), None, Some(r#"{"type":"direct"}"#)).expect("c");
    w.standin.add_participant(&direct.sid, "bob").expect("participant");
    w.records().await;

    w.store.remove_member(&group("designers"), &user("bob")).await.expect("leave");
    assert!(w.settle().await.is_empty());
    assert_eq!(w.members("a-1"), set(&["ana"]));
    assert_eq!(w.members("a-2"), set(&["ana", "bob"]), "bob still reads a-2 directly");
    assert_eq!(w.standin.conversation(&direct.sid).expect("direct").participants.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_leaves_the_old_one_without_a_grant_outside() {
    let mut w = World::new().await;
    w.asset("a-1", "ana").await;
    w.grant("a-1", "user:cy", None).await;
    w.conversation("a-1", &["ana", "bob", "cy"]);
    w.records().await;

    w.asset("a-1", "bob").await;
    assert!(w.settle().await.is_empty());
    assert_eq!(w.members("a-1"), set(&["bob", "cy"]));
    // Renaming with the same owner takes nothing away, and looks at nobody.
    w.standin.reset_requests();
    w.store.put_asset(&asset("a-1"), &user("bob"), AssetType::Image, "Plan v2", w.clock.now()).await.expect("rename");
    assert!(w.settle().await.is_empty());
    assert_eq!(w.standin.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_asset_empties_its_conversation() {
    let mut w = World::new().await;
    w.asset("a-1", "ana").await;
    w.grant("a-1", "user:bob", None).await;
    w.conversation("a-1", &["ana", "bob"]);
    w.records().await;

    w.store.delete_asset(&asset("a-1")).await.expect("delete");
    assert!(w.settle().await.is_empty());
    assert!(w.members("a-1").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_replayed_duplicated_or_reordered_records_remove_nobody_who_reads() {
    let mut w = World::new().await;
    w.asset("a-1", "ana").await;
    w.grant("a-1", "user:bob", None).await;
    w.grant("a-1", "group:designers", None).await;
    w.store.add_member(&group("designers"), &user("cy")).await.expect("member");
    w.conversation("a-1", &["ana", "bob", "cy"]);
    w.records().await;

    // Bob loses access and gets it back before the revocation's record is handled.
    w.revoke("a-1", "user:bob").await;
    let late = w.records().await;
    w.grant("a-1", "user:bob", None).await;
    w.records().await;
    assert!(failures(&w.deliver(late.clone()).await).is_empty());
    assert_eq!(w.members("a-1"), set(&["ana", "bob", "cy"]), "access came back: nobody removed");

    // Two revocations, delivered in reverse order, each twice, then the whole lot replayed.
    w.revoke("a-1", "user:bob").await;
    w.store.remove_member(&group("designers"), &user("cy")).await.expect("leave");
    let mut records = w.records().await;
    records.reverse();
    let doubled: Vec<Value> = records.iter().chain(&records).cloned().collect();
    assert!(failures(&w.deliver(doubled).await).is_empty());
    assert_eq!(w.members("a-1"), set(&["ana"]));
    w.standin.reset_requests();
    let replay: Vec<Value> = late.into_iter().chain(records).collect();
    assert!(failures(&w.deliver(replay).await).is_empty());
    assert_eq!(w.members("a-1"), set(&["ana"]));
    assert_eq!(w.standin.count_requests("POST", "/Participants"), 0, "the rule never adds anyone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_429_fails_only_its_own_record_and_the_retry_finishes_it() {
    let mut w = World::new().await;
    for (id, reader) in [("a-1", "bob"), ("a-2", "cy")] {
        w.asset(id, "ana").await;
        w.grant(id, &format!("user:{reader}"), None).await;
        w.conversation(id, &["ana", reader]);
    }
    w.records().await;
    w.revoke("a-1", "user:bob").await;
    w.revoke("a-2", "user:cy").await;
    let records = w.records().await;
    assert_eq!(records.len(), 2);

    w.standin.fail_always(Fault::TOO_MANY_REQUESTS, Some("DELETE /Users/cy/"));
    let failed = failures(&w.deliver(records.clone()).await);
    assert_eq!(failed, [sequence_number(&records[1])], "only cy's record is retried");
    assert_eq!(w.members("a-1"), set(&["ana"]), "the rest of the batch succeeded");
    assert_eq!(w.members("a-2"), set(&["ana", "cy"]));
    assert!(w.standin.faults_injected() >= 2, "the 429 was retried before giving up");

    // Lambda retries from the failed record on.
    w.standin.heal();
    let retry: Vec<Value> = records.into_iter().filter(|r| failed.contains(&sequence_number(r))).collect();
    assert!(failures(&w.deliver(retry).await).is_empty());
    assert_eq!(w.members("a-2"), set(&["ana"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_set_aside_alone_and_never_blocks_its_shard() {
    let mut w = World::new().await;
    for (id, reader) in [("a-1", "bob"), ("a-2", "cy")] {
        w.asset(id, "ana").await;
        w.grant(id, &format!("user:{reader}"), None).await;
        w.conversation(id, &["ana", reader]);
    }
    w.records().await;
    w.revoke("a-1", "user:bob").await;
    w.revoke("a-2", "user:cy").await;
    let good = w.records().await;
    // A grant removal whose key is hashed but whose image lost the principal: nobody can say whom
    // it concerned, and no retry will tell. It is set aside (logged, counted for the alarm), not
    // retried: retries go on for a day, and it would block its shard all that time.
    let mut poison = good[0].clone();
    poison["dynamodb"]["Keys"]["sk"] = json!({"S": format!("G#user#{}", "ab".repeat(32))});
    poison["dynamodb"]["OldImage"] = json!({"pk": {"S": "A#a-1"}, "sk": {"S": format!("G#user#{}", "ab".repeat(32))}});
    poison["dynamodb"]["SequenceNumber"] = json!("99999999999999999999");
    let batch = vec![good[0].clone(), poison.clone(), good[1].clone()];
    assert!(failures(&w.deliver(batch).await).is_empty());
    assert_eq!((w.members("a-1"), w.members("a-2")), (set(&["ana"]), set(&["ana"])));
    assert!(failures(&w.deliver(vec![poison]).await).is_empty());

    // A record that cannot even be named is set aside too, and the rest of its batch applied.
    w.conversation("a-3", &["ana", "dee"]);
    w.asset("a-3", "ana").await;
    let mut nameless = good[0].clone();
    nameless["dynamodb"].as_object_mut().expect("dynamodb").remove("SequenceNumber");
    let mut third = good[0].clone();
    third["dynamodb"]["Keys"]["pk"] = json!({"S": "A#a-3"});
    third["dynamodb"]["OldImage"]["pk"] = json!({"S": "A#a-3"});
    third["dynamodb"]["Keys"]["sk"] = json!({"S": "G#user:dee"});
    third["dynamodb"]["OldImage"]["sk"] = json!({"S": "G#user:dee"});
    third["dynamodb"]["SequenceNumber"] = json!("99999999999999999998");
    let answer = invoke_reconciler(&w.state, json!({"Records": [nameless, third]})).await.expect("handled");
    assert!(failures(&answer).is_empty());
    assert_eq!(w.members("a-3"), set(&["ana"]), "dee never read a-3: the record next to the nameless one applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_grants_leave_once_when_the_sweep_passes_and_extended_ones_stay() {
    let w = World::new().await;
    let start = w.clock.now();
    w.asset("a-1", "ana").await;
    w.grant("a-1", "user:bob", Some(start + 30)).await;
    w.grant("a-1", "user:cy", Some(start + 40)).await;
    w.conversation("a-1", &["ana", "bob", "cy"]);
    // cy's grant is extended (no expiry any more) before it runs out; its old index entry stays.
    w.grant("a-1", "user:cy", None).await;
    let sweep = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let run = || async { invoke_reconciler(&w.state, sweep.clone()).await.expect("sweep") };

    // The function leaves expiries younger than 10 s to the next sweep (a slow write's margin).
    w.clock.set(start + 35);
    assert_eq!(run().await["removed"], 0, "not settled yet");
    assert_eq!(w.members("a-1"), set(&["ana", "bob", "cy"]));
    w.standin.reset_requests();
    w.clock.set(start + 45);
    assert_eq!(run().await["removed"], 1);
    assert_eq!(w.members("a-1"), set(&["ana", "cy"]));
    assert_eq!(w.standin.request_count(), 1, "one Twilio call for a user grant's expiry");
    // Each expiry is handled once: later sweeps make no call for it.
    assert_eq!(run().await["expired"], 0);
    w.clock.set(start + 600);
    let later = run().await;
    assert_eq!((later["expired"].as_u64(), later["removed"].as_u64()), (Some(1), Some(0)), "cy's grant was extended");
    assert_eq!(w.members("a-1"), set(&["ana", "cy"]));
    assert_eq!(w.standin.request_count(), 1);
    assert_eq!(w.store.sweep_cursor().await.expect("cursor"), Some(start + 590));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_group_grant_is_retried_by_the_next_sweep_until_twilio_answers() {
    let w = World::new().await;
    let start = w.clock.now();
    w.asset("a-2", "ana").await;
    for member in ["bob", "cy"] {
        w.store.add_member(&group("designers"), &user(member)).await.expect("member");
    }
    w.grant("a-2", "group:designers", Some(start + 30)).await;
    w.grant("a-2", "user:cy", None).await;
    w.conversation("a-2", &["ana", "bob", "cy"]);
    let sweep = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let run = || async { invoke_reconciler(&w.state, sweep.clone()).await.expect("sweep") };

    w.standin.fail_always(Fault::TOO_MANY_REQUESTS, Some("GET /Participants"));
    w.clock.set(start + 45);
    let failed = run().await;
    assert_eq!((failed["failed"].as_u64(), failed["removed"].as_u64()), (Some(1), Some(0)));
    assert_eq!(w.members("a-2"), set(&["ana", "bob", "cy"]));
    assert!(w.store.sweep_cursor().await.expect("cursor").is_some_and(|c| c < start + 30), "the cursor waits");

    w.standin.heal();
    w.clock.set(start + 105);
    assert_eq!(run().await["removed"], 1);
    assert_eq!(w.members("a-2"), set(&["ana", "cy"]), "cy reads directly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboarding_takes_the_user_out_of_every_group_and_every_chatgate_conversation() {
    let w = World::new().await;
    w.asset("a-1", "ana").await;
    w.grant("a-1", "user:bob", None).await;
    for g in ["designers", "ops"] {
        w.store.add_member(&group(g), &user("bob")).await.expect("member");
    }
    w.conversation("a-1", &["ana", "bob"]);
    let mut chatgate = Vec::new();
    for (name, attributes) in
        [("direct:1", r#"{"type":"direct"}"#), ("g:1", r#"{"type":"group"}"#), ("room:x", r#"{"type":"room"}"#)]
    {
        let c = w.standin.create_conversation(Some(name), None, Some(attributes)).expect("c");
        w.standin.add_participant(&c.sid, "bob").expect("participant");
        chatgate.push(c.sid);
    }
    let theirs = w.standin.create_conversation(None, None, Some(r#"{"topic":"x"}"#)).expect("c").sid;
    w.standin.add_participant(&theirs, "bob").expect("participant");

    let admin = admin::handler::AdminState::new(
        admin::handler::AdminAuth::DevKey("k".into()),
        w.store.clone(),
        twilio_client(&w.standin.base_url),
        ConversationNames::development(),
    );
    let offboard = || async {
        let req = lambda_http::http::Request::builder()
            .method("DELETE")
            .uri("http://localhost/admin/users/bob")
            .header("authorization", "Bearer k")
            .body(lambda_http::Body::Empty)
            .expect("request");
        admin::handler::handle(&admin, req).await.status()
    };
    assert_eq!(offboard().await, 204);
    assert!(w.store.check_facts(&user("bob"), &[]).await.expect("groups").groups.is_empty());
    assert_eq!(w.members("a-1"), set(&["ana"]));
    for sid in &chatgate {
        assert!(w.standin.conversation(sid).expect("c").participants.is_empty(), "{sid}");
    }
    assert_eq!(w.standin.conversation(&theirs).expect("c").participants.len(), 1, "not chatgate's");
    assert_eq!(offboard().await, 204, "idempotent");
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboarding_that_fails_halfway_is_finished_by_a_retry() {
    let w = World::new().await;
    w.store.add_member(&group("designers"), &user("bob")).await.expect("member");
    let mut sids = Vec::new();
    for (name, attributes) in [("direct:1", r#"{"type":"direct"}"#), ("g:1", r#"{"type":"group"}"#)] {
        let c = w.standin.create_conversation(Some(name), None, Some(attributes)).expect("c");
        w.standin.add_participant(&c.sid, "bob").expect("participant");
        sids.push(c.sid);
    }
    let deadline = || chatgate::clock::Deadline::after(Duration::from_secs(20));
    w.standin.fail_always(Fault::INTERNAL_ERROR, Some(&format!("DELETE /Users/bob/Conversations/{}", sids[1])));
    assert!(w.state.rule.offboard(&user("bob"), "test", deadline()).await.is_err());
    assert!(w.store.check_facts(&user("bob"), &[]).await.expect("groups").groups.is_empty(), "groups first");
    assert_eq!(w.standin.conversation(&sids[1]).expect("c").participants.len(), 1);

    w.standin.heal();
    let done = w.state.rule.offboard(&user("bob"), "test", deadline()).await.expect("retry");
    assert_eq!(done.groups_left, 0);
    for sid in &sids {
        assert!(w.standin.conversation(sid).expect("c").participants.is_empty(), "{sid}");
    }
}
