//! acl-bench: what chatgate's access check costs in DynamoDB requests, round trips, read capacity
//! and latency as grants per asset and groups per user grow, beside a single `GetItem` and a naive
//! sequential check, against DynamoDB Local. Prints a markdown table; it is a benchmark, so it exits
//! 0 whether or not the target is met, and non-zero only when a check answered wrongly (1) or the
//! benchmark could not run (2).

mod measure;
mod naive;
mod scenario;

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use chatgate::acl::{AclReader, DynamoStore, KeyLayout};
use chatgate::domain::{AccessDecision, AssetId, Role, Tenant, decide};
use chatgate_tests::dynamo::{FaultProxy, dynamo_local, sdk_config, unique_table_name};
use chatgate_tests::now;

use measure::{Depth, Latency};
use scenario::{Ids, Scenario};

pub type BenchError = Box<dyn StdError + Send + Sync>;

const DEFAULT_SIZES: [usize; 4] = [1, 10, 50, 500];
const DEFAULT_UUID_SIZES: [usize; 1] = [50];
const DEFAULT_TENANT_SIZES: [usize; 2] = [10, 50];
const DEFAULT_ITERATIONS: usize = 300;
const DEFAULT_WARMUP: usize = 30;
/// How long the proxy holds each request while round trips are measured: an order of magnitude
/// above DynamoDB Local's own time per request, so noise stays far below half a round trip.
const PROXY_DELAY: Duration = Duration::from_millis(20);
const DEPTH_RUNS: usize = 9;
const NAIVE_DEPTH_RUNS: usize = 3;
/// The naive check's round trips are timed only while a run stays short (N = 500 would take
/// 503 × 20 ms per run); beyond that its sequential counts stand alone.
const NAIVE_TIMED_DEPTH_MAX: u32 = 64;
/// The naive check at N = 500 takes most of a second: its samples stop at this budget...
const NAIVE_BUDGET: Duration = Duration::from_secs(30);
const NAIVE_WARMUP_BUDGET: Duration = Duration::from_secs(5);
/// ...but not before this many.
const NAIVE_MIN_SAMPLES: usize = 20;

/// The target, per check, up to N = 50 grants and groups.
const TARGET_UP_TO: usize = 50;
const TARGET_ROUND_TRIPS: u64 = 1;
const TARGET_REQUESTS: f64 = 2.0;
const TARGET_RCU: f64 = 2.0;

/// Overrides from the environment: `SIZES=1,10`, `UUID_SIZES=50` (sizes measured again with
/// 36-character ids; empty for none), `TENANT_SIZES=10,50` (the short and the 36-character ids
/// in a tenant deployment, qualified with `TENANT_ID`; empty for none), `ITERATIONS=300`,
/// `WARMUP=30`.
#[derive(Debug)]
struct Settings {
    sizes: Vec<usize>,
    uuid_sizes: Vec<usize>,
    tenant_sizes: Vec<usize>,
    iterations: usize,
    warmup: usize,
}

impl Settings {
    fn from_env() -> Result<Self, BenchError> {
        let number = |name: &str, default: usize| -> Result<usize, BenchError> {
            match std::env::var(name) {
                Ok(v) => v.trim().parse().map_err(|e| format!("{name}={v:?}: {e}").into()),
                Err(_) => Ok(default),
            }
        };
        let sizes = |name: &str, default: &[usize]| -> Result<Vec<usize>, BenchError> {
            let Ok(v) = std::env::var(name) else { return Ok(default.to_vec()) };
            let sizes = v
                .split(',')
                .filter(|n| !n.trim().is_empty())
                .map(|n| n.trim().parse::<usize>().map_err(|e| format!("{name}={v:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            if sizes.contains(&0) {
                return Err(format!("{name}: every size must be at least 1 (the user needs a granted group)").into());
            }
            Ok(sizes)
        };
        let iterations = number("ITERATIONS", DEFAULT_ITERATIONS)?.max(1);
        Ok(Self {
            sizes: sizes("SIZES", &DEFAULT_SIZES)?,
            uuid_sizes: sizes("UUID_SIZES", &DEFAULT_UUID_SIZES)?,
            tenant_sizes: sizes("TENANT_SIZES", &DEFAULT_TENANT_SIZES)?,
            iterations,
            warmup: number("WARMUP", DEFAULT_WARMUP)?,
        })
    }
}

/// Stores and clients, built once: direct to DynamoDB Local for latency and capacity, and through
/// the proxy for counting requests and round trips.
#[derive(Debug)]
struct Bench {
    table: String,
    store: DynamoStore,
    client: Client,
    proxy: FaultProxy,
    proxied_store: DynamoStore,
    proxied_client: Client,
    /// The same two stores with a tenant deployment's key layout.
    tenant_store: DynamoStore,
    tenant_proxied_store: DynamoStore,
}

impl Bench {
    /// The store a scenario's deployment uses, straight to DynamoDB Local.
    fn direct(&self, s: &Scenario) -> &DynamoStore {
        if s.within() == Tenant::Single { &self.store } else { &self.tenant_store }
    }

    /// The same through the proxy.
    fn proxied(&self, s: &Scenario) -> &DynamoStore {
        if s.within() == Tenant::Single { &self.proxied_store } else { &self.tenant_proxied_store }
    }
}

/// Per check, averaged over the latency samples.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    requests: f64,
    round_trips: f64,
    capacity: f64,
}

#[derive(Debug)]
struct Row {
    scenario: Scenario,
    /// What one round trip through the delaying proxy measured (a single `GetItem`).
    wave: Duration,
    chatgate: Cost,
    chatgate_depth: Depth,
    chatgate_latency: Latency,
    naive: Cost,
    /// Requests and most in flight at once the proxy saw for one naive check.
    naive_proxied: (usize, usize),
    naive_depth: Option<Depth>,
    naive_latency: Latency,
    get_item_latency: Latency,
}

/// Every answer, checked against the scenario's expected one.
#[derive(Debug, Default)]
struct Tally {
    checks: u64,
    wrong: u64,
    examples: Vec<String>,
}

impl Tally {
    fn see(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.wrong += 1;
            if self.examples.len() < 5 {
                self.examples.push(what());
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("acl-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let load_before = load_average();
    let mut tally = Tally::default();
    let rows = match run(&settings, &mut tally).await {
        Ok(rows) => rows,
        Err(e) => {
            let mut message = e.to_string();
            let mut source = e.source();
            while let Some(cause) = source {
                let _ = write!(message, ": {cause}");
                source = cause.source();
            }
            eprintln!("acl-bench: {message}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report(&settings, &rows, &tally));
    println!("Load average (1, 5, 15 min) at start: {load_before}; at the end: {}.", load_average());
    if tally.wrong == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn run(settings: &Settings, tally: &mut Tally) -> Result<Vec<Row>, BenchError> {
    let local = dynamo_local();
    eprintln!("DynamoDB Local at {} (ready in {:.1} s)", local.endpoint, local.startup.as_secs_f64());
    let table = unique_table_name("acl-bench");
    let direct = sdk_config(&local.endpoint).await;
    let store = DynamoStore::new(&direct, &table, KeyLayout::Single);
    store.create_table().await?;
    let proxy = FaultProxy::start(&local.endpoint).await;
    let proxied = sdk_config(&proxy.endpoint).await;
    let bench = Bench {
        client: Client::new(&direct),
        proxied_store: DynamoStore::new(&proxied, &table, KeyLayout::Single),
        tenant_proxied_store: DynamoStore::new(&proxied, &table, KeyLayout::Tenants),
        proxied_client: Client::new(&proxied),
        tenant_store: DynamoStore::new(&direct, &table, KeyLayout::Tenants),
        table,
        store,
        proxy,
    };

    let mut scenarios = settings
        .sizes
        .iter()
        .map(|&n| Scenario::new(n, Ids::Short))
        .chain(settings.uuid_sizes.iter().map(|&n| Scenario::new(n, Ids::Uuid)))
        .chain(
            settings
                .tenant_sizes
                .iter()
                .flat_map(|&n| [Scenario::new(n, Ids::TenantShort), Scenario::new(n, Ids::Tenant)]),
        )
        .collect::<Result<Vec<_>, _>>()?;
    scenarios.sort_by_key(|s| (s.n, s.ids));
    let mut rows = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        let (label, n) = (scenario.label(), scenario.n);
        let began = Instant::now();
        scenario.seed(bench.direct(&scenario), now()).await?;
        eprintln!("N = {label}: seeded {n} grants and {n} memberships in {:.1} s", began.elapsed().as_secs_f64());
        let began = Instant::now();
        rows.push(measure_size(&bench, settings, scenario, tally).await?);
        eprintln!("N = {label}: measured in {:.1} s", began.elapsed().as_secs_f64());
    }
    Ok(rows)
}

/// chatgate's check as the access routes make it: the facts in one call, then the pure decision.
async fn chatgate_check(store: &DynamoStore, s: &Scenario) -> Result<AccessDecision, BenchError> {
    let facts = store.check_facts(&s.user, std::slice::from_ref(&s.asset)).await?;
    Ok(facts.assets.first().map_or(AccessDecision::NONE, |f| decide(&s.user, &facts.groups, f, now())))
}

async fn measure_size(
    b: &Bench,
    settings: &Settings,
    scenario: Scenario,
    tally: &mut Tally,
) -> Result<Row, BenchError> {
    let s = &scenario;
    let expected = s.expected();
    let n = s.label();

    // Requests and round trips, through the proxy. One GetItem is one round trip by definition:
    // its extra time is what a round trip costs through the proxy now (the hold plus timer
    // overshoot), the unit the other timings are read in.
    let calibration = AssetId::try_from("acl-bench-calibration")?;
    let one = measure::depth(&b.proxy, PROXY_DELAY, DEPTH_RUNS, async || {
        naive::get_asset_record(&b.proxied_client, &b.table, &calibration, &Tenant::Single).await.map(|_| ())
    })
    .await?;
    let wave = if one.counted == Some(1) && one.extra >= PROXY_DELAY && one.extra < 2 * PROXY_DELAY {
        one.extra
    } else {
        eprintln!(
            "N = {n}: calibration gave {:?} for one GetItem ({one:?}); reading timings in {PROXY_DELAY:?}",
            one.extra
        );
        PROXY_DELAY
    };
    let chatgate_depth = measure::depth(&b.proxy, PROXY_DELAY, DEPTH_RUNS, async || {
        let got = chatgate_check(b.proxied(s), s).await?;
        tally.see(got == expected, || format!("N = {n}: chatgate (proxied) answered {got:?}"));
        Ok(())
    })
    .await?;
    b.proxy.reset_counts();
    let once = naive::check(&b.proxied_client, &b.table, &s.user, &s.asset, &s.within(), now()).await?;
    tally.see(once.role == Role::Writer, || format!("N = {n}: naive (proxied) answered {:?}", once.role));
    let naive_proxied = (b.proxy.requests(None), b.proxy.max_in_flight());
    let naive_depth = if once.requests <= NAIVE_TIMED_DEPTH_MAX {
        Some(
            measure::depth(&b.proxy, PROXY_DELAY, NAIVE_DEPTH_RUNS, async || {
                let got = naive::check(&b.proxied_client, &b.table, &s.user, &s.asset, &s.within(), now()).await?;
                tally.see(got.role == Role::Writer, || format!("N = {n}: naive (proxied) answered {:?}", got.role));
                Ok(())
            })
            .await?,
        )
    } else {
        None
    };

    // Latency, capacity and request counts, directly against DynamoDB Local. The three run in
    // turn within each iteration, so drift on a shared machine hits them alike.
    let (mut chatgate_latency, mut naive_latency, mut get_item_latency) =
        (Latency::default(), Latency::default(), Latency::default());
    let mut naive = Cost::default();
    let mut naive_spent = Duration::ZERO;
    let mut stats_before = b.direct(s).stats().snapshot();
    for i in 0..settings.warmup + settings.iterations {
        let measuring = i >= settings.warmup;
        if i == settings.warmup {
            naive_spent = Duration::ZERO;
            // Only the chatgate check uses the direct store from here on.
            stats_before = b.direct(s).stats().snapshot();
        }
        let began = Instant::now();
        let got = chatgate_check(b.direct(s), s).await?;
        let elapsed = began.elapsed();
        tally.see(got == expected, || format!("N = {n}: chatgate answered {got:?}"));
        if measuring {
            chatgate_latency.push(elapsed);
        }

        let began = Instant::now();
        let found = naive::get_asset_record(&b.client, &b.table, &s.asset, &s.within()).await?;
        let elapsed = began.elapsed();
        tally.see(found, || format!("N = {n}: GetItem found no asset record"));
        if measuring {
            get_item_latency.push(elapsed);
        }

        let (budget, at_least) = if measuring { (NAIVE_BUDGET, NAIVE_MIN_SAMPLES) } else { (NAIVE_WARMUP_BUDGET, 0) };
        if measuring && naive_latency.len() >= settings.iterations {
            continue;
        }
        if naive_latency.len() < at_least || naive_spent < budget {
            let began = Instant::now();
            let got = naive::check(&b.client, &b.table, &s.user, &s.asset, &s.within(), now()).await?;
            let elapsed = began.elapsed();
            naive_spent += elapsed;
            tally.see(got.role == Role::Writer, || format!("N = {n}: naive answered {:?}", got.role));
            if measuring {
                naive_latency.push(elapsed);
                naive.requests += f64::from(got.requests);
                naive.round_trips += f64::from(got.round_trips);
                naive.capacity += got.capacity;
            }
        }
    }
    let stats_after = b.direct(s).stats().snapshot();
    let checks = chatgate_latency.len() as f64;
    let chatgate = Cost {
        requests: (stats_after.0 - stats_before.0) as f64 / checks,
        round_trips: chatgate_depth.round_trips(wave) as f64,
        capacity: (stats_after.1 - stats_before.1) / checks,
    };
    let naive_samples = naive_latency.len().max(1) as f64;
    let naive = Cost {
        requests: naive.requests / naive_samples,
        round_trips: naive.round_trips / naive_samples,
        capacity: naive.capacity / naive_samples,
    };
    Ok(Row {
        scenario,
        wave,
        chatgate,
        chatgate_depth,
        chatgate_latency,
        naive,
        naive_proxied,
        naive_depth,
        naive_latency,
        get_item_latency,
    })
}

/// The machine's load: on two cores, other builds skew latency far more than anything measured.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether a row meets the target.
fn meets_target(row: &Row) -> bool {
    row.chatgate_depth.round_trips(row.wave) == TARGET_ROUND_TRIPS
        && row.chatgate.requests <= TARGET_REQUESTS + 1e-9
        && row.chatgate.capacity <= TARGET_RCU + 1e-9
}

/// A count: whole when it is whole, else two decimals.
fn count(x: f64) -> String {
    if (x - x.round()).abs() < 0.005 { format!("{x:.0}") } else { format!("{x:.2}") }
}

fn report(settings: &Settings, rows: &[Row], tally: &Tally) -> String {
    let mut out = String::new();
    let ms = |l: &Latency, p: f64| format!("{:.2}", l.percentile_ms(p));
    out.push_str(
        "| N (grants = groups) | chatgate requests/check | chatgate round trips/check | chatgate RCU/check \
         | chatgate p50 ms | chatgate p95 ms | naive requests/check | naive round trips/check | naive RCU/check \
         | naive p50 ms | naive p95 ms | GetItem p50 ms | GetItem p95 ms |\n",
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario.label(),
            count(r.chatgate.requests),
            r.chatgate_depth.round_trips(r.wave),
            count(r.chatgate.capacity),
            ms(&r.chatgate_latency, 0.50),
            ms(&r.chatgate_latency, 0.95),
            count(r.naive.requests),
            count(r.naive.round_trips),
            count(r.naive.capacity),
            ms(&r.naive_latency, 0.50),
            ms(&r.naive_latency, 0.95),
            ms(&r.get_item_latency, 0.50),
            ms(&r.get_item_latency, 0.95),
        );
    }
    out.push('\n');

    // The target is stated for the benchmark's scenario: short ids, N up to 50.
    let in_scope = |r: &&Row| r.scenario.ids == Ids::Short && r.scenario.n <= TARGET_UP_TO;
    let summary = |r: &Row| {
        format!(
            "N = {}: {} round trip(s), {} requests, {} RCU per check",
            r.scenario.label(),
            r.chatgate_depth.round_trips(r.wave),
            count(r.chatgate.requests),
            count(r.chatgate.capacity)
        )
    };
    let target = format!(
        "{TARGET_ROUND_TRIPS} round trip, <= {TARGET_REQUESTS} requests and <= {TARGET_RCU} RCU per check \
         (strongly consistent) up to N = {TARGET_UP_TO}"
    );
    let measured: Vec<&Row> = rows.iter().filter(in_scope).collect();
    let missed: Vec<String> = measured.iter().filter(|r| !meets_target(r)).map(|r| summary(r)).collect();
    if measured.is_empty() {
        let _ = writeln!(out, "Target ({target}): not measured (no size <= {TARGET_UP_TO}).");
    } else if missed.is_empty() {
        let sizes: Vec<String> = measured.iter().map(|r| r.scenario.label()).collect();
        let _ = writeln!(out, "Target ({target}): MET at N = {}.", sizes.join(", "));
    } else {
        let _ = writeln!(out, "Target ({target}): NOT MET: {}.", missed.join("; "));
    }
    for r in rows.iter().filter(|r| !in_scope(r)) {
        let verdict = if meets_target(r) { "within" } else { "outside" };
        let _ = writeln!(out, "Not in the target's terms: {} ({verdict} its bounds).", summary(r));
    }
    if tally.wrong == 0 {
        let _ = writeln!(out, "Answers: all {} checks gave the expected decision.", tally.checks);
    } else {
        let _ = writeln!(
            out,
            "Answers: {} of {} checks gave a WRONG decision, e.g. {}",
            tally.wrong,
            tally.checks,
            tally.examples.join("; ")
        );
    }

    let _ = writeln!(
        out,
        "\nLatency: {} iterations after {} warm-up per N, the three in turn, directly against DynamoDB Local; \
         the naive check stops after {} s of samples (at least {}).",
        settings.iterations,
        settings.warmup,
        NAIVE_BUDGET.as_secs(),
        NAIVE_MIN_SAMPLES
    );
    let _ = writeln!(
        out,
        "Round trips: what the proxy's counts prove (all of a check's requests held at once = 1; never two at once \
         = one per request), else the timing: (fastest of {DEPTH_RUNS} runs with the proxy holding each request \
         {} ms - fastest without) / one GetItem's extra time, rounded.",
        PROXY_DELAY.as_millis(),
    );
    for r in rows {
        let timing = |d: &Depth| {
            let waves = d.waves(r.wave);
            let agrees = match d.counted {
                // A long chain of sleeps and wake-ups on a busy machine runs a little long.
                Some(c) if (waves - c as f64).abs() < 0.5 || (waves - c as f64).abs() <= 0.2 * c as f64 => {
                    format!("counts prove {c}, timing agrees")
                }
                Some(c) => format!("counts prove {c}, timing DISAGREES"),
                None => format!("counts inconclusive, at least {}", d.requests.div_ceil(d.max_in_flight.max(1))),
            };
            format!("{} requests, at most {} in flight, {waves:.2} waves ({agrees})", d.requests, d.max_in_flight)
        };
        let mut line = format!(
            "- N = {} (one round trip = {:.1} ms): chatgate {}; ",
            r.scenario.label(),
            r.wave.as_secs_f64() * 1000.0,
            timing(&r.chatgate_depth)
        );
        match &r.naive_depth {
            Some(d) => {
                let _ = write!(line, "naive {}", timing(d));
            }
            None => {
                let (requests, in_flight) = r.naive_proxied;
                let _ =
                    write!(line, "naive {requests} requests, at most {in_flight} in flight (chain too long to time)");
            }
        }
        let _ = writeln!(line, "; naive latency from {} samples.", r.naive_latency.len());
        out.push_str(&line);
    }
    out
}
