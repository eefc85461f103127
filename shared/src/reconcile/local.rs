//! The reconciler in a long-running process (`chatgate dev`, the tests, the benchmark): the same
//! code as the reconciler function, driven by the in-memory store's change feed or by DynamoDB
//! Local's stream (what Lambda's event source mapping does in AWS), the expiry sweep every
//! second (what EventBridge does every minute), and the scheduled pass every
//! `FULL_RECONCILE_SECONDS`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use super::{BatchItem, PASS_LIMIT, Reconciler, SWEEP_LIMIT};
use crate::acl::follow::StreamFollower;
use crate::acl::{AclReader, ExpiryIndex, PassProgress, RegisteredConversations, Rosters, StreamKeys, StreamRecord};
use crate::clock::Deadline;
use crate::domain::AclChange;
use crate::http::ErrorChain;

/// Budget of one reconciliation.
const BUDGET: Duration = Duration::from_secs(30);
/// Reconciliations in flight at once.
const CONCURRENCY: usize = 8;
/// How long a change whose reconciliation keeps failing (Twilio or the table unavailable) is
/// retried: as long as the table's stream keeps a record (24 h). An outage delays removals; it
/// does not drop them.
const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The wait before attempt `attempt + 1`: doubling from 250 ms, at most [`MAX_BACKOFF`].
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250).saturating_mul(1 << attempt.min(5)).min(MAX_BACKOFF)
}

/// Applies the rule to every change of the in-memory store, as it happens; a change that fails
/// is retried until it succeeds (for up to a day, as the stream would).
pub async fn follow_memory<S: AclReader + Rosters + 'static>(
    rule: Arc<Reconciler<S>>,
    mut changes: mpsc::UnboundedReceiver<AclChange>,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    while let Some(change) = changes.recv().await {
        let Some(scope) = change.shrinks() else { continue };
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let rule = rule.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            for attempt in 1.. {
                match rule.apply(&scope, Deadline::after(BUDGET)).await {
                    Ok(_) => break,
                    Err(e) if started.elapsed() >= RETRY_FOR => {
                        tracing::error!(scope = %scope, error = %ErrorChain(&e), "gave up reconciling after a day; the pass covers it");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(scope = %scope, attempt, error = %ErrorChain(&e), "could not reconcile; retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Applies the rule to every batch of the table's stream, retrying the items that failed until
/// they succeed (for up to a day, the stream's retention), as the event source mapping does.
pub async fn follow_table<S: AclReader + Rosters + StreamKeys + 'static>(
    rule: Arc<Reconciler<S>>,
    mut follower: StreamFollower,
) {
    let mut retry: Vec<(BatchItem, tokio::time::Instant)> = Vec::new();
    let mut attempt = 0;
    loop {
        let records = match follower.next_batch().await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "could not read the table's stream");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let read = read_records(&rule, &records).await;
        let mut items = std::mem::take(&mut retry);
        let now = tokio::time::Instant::now();
        items.extend(read.into_iter().map(|item| (item, now)));
        if items.is_empty() {
            tokio::time::sleep(StreamFollower::POLL_INTERVAL).await;
            continue;
        }
        let outcome =
            rule.apply_batch(items.iter().map(|(item, _)| item.clone()).collect(), Deadline::after(BUDGET)).await;
        for (item, first_seen) in items {
            if !outcome.failed.contains(&item.id) {
                continue;
            }
            if first_seen.elapsed() < RETRY_FOR {
                retry.push((item, first_seen));
            } else {
                tracing::error!(item = item.id, "gave up on a stream record after a day; the pass covers it");
            }
        }
        if retry.is_empty() {
            attempt = 0;
        } else {
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

/// `records` as batch items, read until the table answers (the records wait meanwhile, as a
/// shard does for a failed batch).
async fn read_records<S: AclReader + Rosters + StreamKeys>(
    rule: &Reconciler<S>,
    records: &[StreamRecord],
) -> Vec<BatchItem> {
    let mut attempt = 0;
    loop {
        match rule.read_records(records).await {
            Ok(items) => return items,
            Err(e) => {
                attempt += 1;
                tracing::warn!(attempt, error = %ErrorChain(&e), "could not read the stream records' tenants; retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    }
}

/// How long a local grant write can take to commit after reading the clock: the sweep leaves
/// younger expiries to its next run (see [`Reconciler::sweep_expiries`]).
const SETTLE: Duration = Duration::from_secs(2);

/// The expiry sweep, every second: a holder leaves within about 3 s of `expires_at`.
pub async fn sweep_expiries<S: AclReader + ExpiryIndex + Rosters + 'static>(rule: Arc<Reconciler<S>>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match rule.sweep_expiries(SETTLE, SWEEP_LIMIT, Deadline::after(BUDGET)).await {
            Ok(report) if report.expired > 0 => report.log(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %ErrorChain(&e), "expiry sweep failed; the next one retries"),
        }
    }
}

/// The time one local pass run may take.
const PASS_BUDGET: Duration = Duration::from_secs(60);

/// The scheduled pass (`FULL_RECONCILE_SECONDS`), the way EventBridge's schedule drives it in
/// AWS: every `every`, every asset conversation in the registry re-decided, to its end.
pub async fn full_passes<S: AclReader + RegisteredConversations + PassProgress + Rosters + 'static>(
    rule: Arc<Reconciler<S>>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match rule.pass_to_end(PASS_LIMIT, Deadline::after(PASS_BUDGET)).await {
            Ok(report) if report.checked > 0 || !report.removals.is_empty() => report.log(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %ErrorChain(&e), "scheduled pass failed; the next one retries"),
        }
    }
}
