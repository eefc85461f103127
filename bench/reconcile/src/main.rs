//! Change → removal: how long a revocation takes to take its reader out of the asset's
//! conversation, and how many Twilio calls it costs, with the reconciler driven as `chatgate dev`
//! drives it: by the in-memory store's change feed, and by DynamoDB Local's stream. For each feed,
//! 200 user-grant revocations (one reader leaves) and 200 group-grant revocations (two of three
//! participants leave), one at a time, each timed from the write's acknowledgement to the
//! stand-in no longer listing the participant(s).
//!
//! Then the scheduled pass's cost: `--pass 500` registered asset conversations (three
//! participants each, one of them no longer a reader) on DynamoDB Local, with 100 ms added to
//! every Twilio call; the Twilio calls, table requests and read units per conversation, the rate
//! at the pass's concurrency, and what a full pass at 10 000 and 1 000 000 asset conversations
//! costs from those.
//!
//!     cargo run --release -p reconcile-bench [-- --revocations 200 --pass 500]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate::acl::follow::StreamFollower;
use chatgate::acl::{CatalogWriter, ConversationRegistry, GrantWriter, MemoryStore};
use chatgate::clock::{Deadline, SystemClock};
use chatgate::domain::{AssetId, AssetType, ConversationNames, Grant, GroupId, Identity, Principal, Role};
use chatgate::reconcile::{Reconciler, local};
use chatgate_tests::dynamo::{dynamo_local, sdk_config, test_store, unique_table_name};
use chatgate_tests::{ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, SERVICE_SID, twilio_client};
use twilio_standin::{StandIn, StandInConfig};

/// A revocation's removal must show within this locally (README, "What happens when access is revoked").
const LATENCY_TARGET: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// `user:reader` revoked: the reader leaves; target 1 Twilio call.
    UserGrant,
    /// `group:team` revoked, the team being two of the three participants: both leave; target one
    /// listing plus one call per removal.
    GroupGrant,
}

impl Change {
    fn label(self) -> &'static str {
        match self {
            Self::UserGrant => "user grant deleted",
            Self::GroupGrant => "group grant deleted",
        }
    }

    fn leaving(self) -> usize {
        match self {
            Self::UserGrant => 1,
            Self::GroupGrant => 2,
        }
    }

    /// Target Twilio calls per revocation.
    fn target_calls(self) -> usize {
        match self {
            Self::UserGrant => 1,
            Self::GroupGrant => 1 + self.leaving(),
        }
    }
}

struct Row {
    feed: &'static str,
    change: Change,
    latencies: Vec<Duration>,
    calls: Vec<usize>,
}

fn id<T: TryFrom<String>>(s: String) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(s).expect("valid id")
}

/// Sets up `n` assets for `change`, each with its conversation in the stand-in.
async fn seed<S: GrantWriter + CatalogWriter>(store: &S, standin: &StandIn, change: Change, n: usize) {
    for i in 0..n {
        let asset: AssetId = id(format!("{}-{i}", tag(change)));
        let owner: Identity = id(format!("owner-{i}"));
        store.put_asset(&asset, &owner, AssetType::Document, "doc", 0).await.expect("asset");
        let record = store.asset_record(&asset).await.expect("read").expect("record");
        let (principal, members) = match change {
            Change::UserGrant => (Principal::User(id(format!("reader-{i}"))), vec![format!("reader-{i}")]),
            Change::GroupGrant => {
                let team: GroupId = id(format!("team-{i}"));
                let members = vec![format!("alice-{i}"), format!("bob-{i}")];
                for m in &members {
                    store.add_member(&team, &id(m.clone())).await.expect("member");
                }
                (Principal::Group(team), members)
            }
        };
        let grant = Grant { principal, role: Role::Reader, expires_at: None, generation: record.generation.clone() };
        store.put_grant(&record, &grant, 0).await.expect("grant");
        let name = ConversationNames::development().asset(&asset);
        let attributes = format!(r#"{{"type":"asset","asset_id":"{asset}"}}"#);
        standin.create_conversation(Some(&name), None, Some(&attributes)).expect("conversation");
        standin.add_participant(&name, owner.as_str()).expect("owner");
        for m in members {
            standin.add_participant(&name, &m).expect("member");
        }
    }
}

fn tag(change: Change) -> &'static str {
    match change {
        Change::UserGrant => "u",
        Change::GroupGrant => "g",
    }
}

/// Revokes one at a time; for each, the time until the stand-in shows the removal, and the
/// Twilio calls made meanwhile.
async fn revoke_all<S: GrantWriter>(store: &S, standin: &StandIn, change: Change, n: usize, feed: &'static str) -> Row {
    let mut row = Row { feed, change, latencies: Vec::new(), calls: Vec::new() };
    for i in 0..n {
        let asset: AssetId = id(format!("{}-{i}", tag(change)));
        let name = ConversationNames::development().asset(&asset);
        let principal = match change {
            Change::UserGrant => Principal::User(id(format!("reader-{i}"))),
            Change::GroupGrant => Principal::Group(id(format!("team-{i}"))),
        };
        let record = store.asset_record(&asset).await.expect("read").expect("record");
        standin.reset_requests();
        store.delete_grant(&record, &principal).await.expect("revoke");
        let acknowledged = Instant::now();
        let members = |s: &StandIn| -> BTreeSet<String> {
            s.conversation(&name).map(|c| c.participants.into_iter().map(|p| p.identity).collect()).unwrap_or_default()
        };
        while members(standin).len() != 1 {
            assert!(acknowledged.elapsed() < Duration::from_secs(30), "{feed}: no removal from {name}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        row.latencies.push(acknowledged.elapsed());
        // Let any straggling call land before counting.
        tokio::time::sleep(Duration::from_millis(20)).await;
        row.calls.push(standin.request_count());
    }
    row
}

async fn standin() -> StandIn {
    StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await
}

fn reconciler<S>(store: Arc<S>, standin: &StandIn) -> Arc<Reconciler<S>> {
    Arc::new(Reconciler::new(
        store,
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        Arc::new(SystemClock),
    ))
}

async fn memory(change: Change, n: usize) -> Row {
    let standin = standin().await;
    let store = Arc::new(MemoryStore::new());
    seed(store.as_ref(), &standin, change, n).await;
    let feed = tokio::spawn(local::follow_memory(reconciler(store.clone(), &standin), store.changes()));
    let row = revoke_all(store.as_ref(), &standin, change, n, "in-memory feed").await;
    feed.abort();
    row
}

async fn dynamodb(change: Change, n: usize) -> Row {
    let standin = standin().await;
    let endpoint = &dynamo_local().endpoint;
    let store = Arc::new(test_store(endpoint, &unique_table_name("bench")).await);
    store.create_table().await.expect("table");
    seed(store.as_ref(), &standin, change, n).await;
    let follower = StreamFollower::from_now(&sdk_config(endpoint).await, &store).await.expect("stream");
    let feed = tokio::spawn(local::follow_table(reconciler(store.clone(), &standin), follower));
    let row = revoke_all(store.as_ref(), &standin, change, n, "DynamoDB Local stream").await;
    feed.abort();
    row
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn print(rows: &[Row]) {
    println!(
        "| feed | change | revocations | p50 ms | p99 ms | latency target | Twilio calls per revocation (min–max) | calls target | met |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut all_met = true;
    for row in rows {
        let mut sorted = row.latencies.clone();
        sorted.sort();
        let (min, max) = (row.calls.iter().min().copied().unwrap_or(0), row.calls.iter().max().copied().unwrap_or(0));
        let p99 = percentile(&sorted, 0.99);
        let met = p99 < LATENCY_TARGET.as_secs_f64() * 1e3 && min == row.change.target_calls() && max == min;
        all_met &= met;
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | < {} s | {min}–{max} | {} | {} |",
            row.feed,
            row.change.label(),
            row.latencies.len(),
            percentile(&sorted, 0.5),
            p99,
            LATENCY_TARGET.as_secs(),
            row.change.target_calls(),
            if met { "met" } else { "missed" }
        );
    }
    println!("\n{}", if all_met { "all targets met" } else { "some targets missed" });
}

/// Twilio latency the pass is measured with (a call across the internet).
const PASS_TWILIO_LATENCY: Duration = Duration::from_millis(100);

/// The scheduled pass over `n` registered asset conversations on DynamoDB Local.
async fn pass(n: usize) {
    let standin = standin().await;
    let endpoint = &dynamo_local().endpoint;
    let store = Arc::new(test_store(endpoint, &unique_table_name("pass")).await);
    store.create_table().await.expect("table");
    for i in 0..n {
        let asset: AssetId = id(format!("pass-{i:06}"));
        store.put_asset(&asset, &id(format!("owner-{i}")), AssetType::Document, "doc", 0).await.expect("asset");
        let record = store.asset_record(&asset).await.expect("read").expect("record");
        let grant = Grant {
            principal: Principal::User(id(format!("reader-{i}"))),
            role: Role::Reader,
            expires_at: None,
            generation: record.generation.clone(),
        };
        store.put_grant(&record, &grant, 0).await.expect("grant");
        store.register_conversation(&asset, 0).await.expect("registered");
        let name = ConversationNames::development().asset(&asset);
        let attributes = format!(r#"{{"type":"asset","asset_id":"{asset}"}}"#);
        standin.create_conversation(Some(&name), Some("doc"), Some(&attributes)).expect("conversation");
        for who in [format!("owner-{i}"), format!("reader-{i}"), format!("former-{i}")] {
            standin.add_participant(&name, &who).expect("participant");
        }
    }
    standin.reset_requests();
    standin.set_delay(PASS_TWILIO_LATENCY);
    let (requests_before, units_before) = store.stats().snapshot();
    let rule = reconciler(store.clone(), &standin);
    let started = Instant::now();
    let report = rule.pass_to_end(2_000, Deadline::after(Duration::from_secs(3600))).await.expect("pass");
    let elapsed = started.elapsed();
    let (requests_after, units_after) = store.stats().snapshot();
    assert!(report.completed && report.checked == n && report.removals.len() == n, "{report:?}");
    let per = |x: f64| x / n as f64;
    let calls = per(standin.request_count() as f64);
    let reads = per(standin.count_requests("GET", "") as f64);
    let requests = per((requests_after - requests_before) as f64);
    let units = per(units_after - units_before);
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "\n## The scheduled pass: {n} asset conversations, 3 participants each (1 no longer a reader), {} ms per Twilio call\n",
        PASS_TWILIO_LATENCY.as_millis()
    );
    println!(
        "| per conversation | Twilio calls | of which reads | table requests | read/write units | conversations/s |"
    );
    println!("|---|---|---|---|---|---|");
    println!("| measured | {calls:.2} | {reads:.2} | {requests:.2} | {units:.2} | {rate:.1} |");
    println!(
        "\n| asset conversations | Twilio reads | Twilio removals (1 in 3 participants leaving, as here) | table requests | units | hours per full pass at this rate |"
    );
    println!("|---|---|---|---|---|---|");
    for total in [10_000f64, 1_000_000f64] {
        println!(
            "| {total:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} |",
            total * reads,
            total * (calls - reads),
            total * requests,
            total * units,
            total / rate / 3600.0
        );
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut n = 200;
    let mut pass_n = 500;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--revocations" => n = args.next().and_then(|v| v.parse().ok()).expect("--revocations N"),
            "--pass" => pass_n = args.next().and_then(|v| v.parse().ok()).expect("--pass N"),
            other => panic!("unknown argument {other}"),
        }
    }
    let mut rows = Vec::new();
    for change in [Change::UserGrant, Change::GroupGrant] {
        rows.push(memory(change, n).await);
        rows.push(dynamodb(change, n).await);
    }
    print(&rows);
    if pass_n > 0 {
        pass(pass_n).await;
    }
}
