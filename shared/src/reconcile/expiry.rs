//! The expiry sweep: grants stop counting at their `expires_at`, but nothing writes to the table
//! then (DynamoDB's TTL deletes the item up to 48 h later), so no change record announces it. The
//! sweep reads the expiry index from its cursor to now, applies the rule once per grant whose
//! expiry passed, and records progress per entry: a handled entry leaves the index, one that
//! fails for a reason no retry cures is set aside after a few tries (and counted, for an alarm),
//! and one that fails because Twilio or the table is down waits for the next run. Work per run is
//! bounded, so a burst (a share "until 1 January" with a thousand people) is worked through over
//! several runs, each starting where the last stopped. The cursor moves past an expiry only once
//! every entry up to it is handled or set aside. In AWS it runs every minute; `chatgate dev` runs
//! it every second.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};

use super::{ReconcileError, Reconciler, Removal};
use crate::acl::{AclReader, Expiry, ExpiryIndex, Rosters, StoreError, minute_of};
use crate::clock::Deadline;
use crate::domain::Scope;
use crate::http::ErrorChain;

/// Scopes one sweep applies at most, in AWS (a run a minute) and locally (a run a second): a
/// burst is worked through over several runs, each starting where the last stopped.
pub const SWEEP_LIMIT: usize = 300;

/// With no cursor yet (a new deployment), the sweep starts this far back: entries are written
/// from the version that introduced the index on, so there is nothing older to find.
const FIRST_LOOKBACK_SECONDS: u64 = 3600;
/// Most minutes one sweep reads; a sweep that was down for longer catches up over several runs.
const MAX_MINUTES_PER_SWEEP: u64 = 24 * 60;
/// Index minutes read at once.
const READ_CONCURRENCY: usize = 16;
/// Scopes applied at once.
const APPLY_CONCURRENCY: usize = 4;
/// Runs an entry may fail for a reason no retry cures before it is set aside.
const SET_ASIDE_AFTER: u32 = 3;

/// What one sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// The expiries looked at: after `.0`, up to and including `.1` (Unix seconds).
    pub window: Option<(u64, u64)>,
    /// Expired grants found still to handle, and the distinct scopes this run applied.
    pub expired: usize,
    pub scopes: usize,
    pub removals: Vec<Removal>,
    /// Scopes that could not be applied; their entries wait for the next run.
    pub failed: usize,
    /// Entries this run set aside (they failed [`SET_ASIDE_AFTER`] runs for a reason no retry cures).
    pub set_aside: usize,
    /// Entries left for the next run by the per-run limit.
    pub deferred: usize,
    /// How far behind now the cursor is after this run, seconds: the sweep's lag.
    pub lag_seconds: u64,
}

impl SweepReport {
    /// The sweep's log line; `sweep_lag_seconds` and `expiry_poison_entries` are metrics
    /// (template.yaml's SweepLagMetric, ExpiryPoisonMetric) with alarms.
    pub fn log(&self) {
        tracing::info!(
            expired = self.expired,
            scopes = self.scopes,
            removed = self.removals.len(),
            failed = self.failed,
            deferred = self.deferred,
            expiry_poison_entries = self.set_aside,
            sweep_lag_seconds = self.lag_seconds,
            "expiry sweep"
        );
    }
}

/// A run's work: each scope once with its entries, earliest expiries first, at most `limit`
/// scopes; the expiries of the scopes past the limit wait for the next run.
#[derive(Debug, Default)]
struct Due {
    order: Vec<Scope>,
    entries: BTreeMap<Scope, Vec<Expiry>>,
    deferred: Vec<u64>,
}

impl Due {
    fn of(entries: &[Expiry], limit: usize) -> Self {
        let mut due = Self::default();
        for entry in entries {
            let scope = Scope::of_grant(&entry.asset, &entry.principal);
            if !due.entries.contains_key(&scope) {
                if due.order.len() == limit {
                    due.deferred.push(entry.expires_at);
                    continue;
                }
                due.order.push(scope.clone());
            }
            due.entries.entry(scope).or_default().push(entry.clone());
        }
        due
    }
}

impl<R: AclReader + ExpiryIndex + Rosters> Reconciler<R> {
    /// One sweep: every grant whose expiry passed since the cursor (and at least `settle` ago),
    /// reconciled once, at most `limit` scopes a run. `settle` is how long a grant write can take
    /// to commit after it read the clock (a grant must expire after that): an expiry younger than
    /// that is left to the next sweep, so a slow write can never slip in behind the cursor.
    pub async fn sweep_expiries(
        &self,
        settle: Duration,
        limit: usize,
        deadline: Deadline,
    ) -> Result<SweepReport, ReconcileError> {
        let now = self.clock.now();
        let until = now.saturating_sub(settle.as_secs());
        let cursor = self.store.sweep_cursor().await?;
        let after = cursor.unwrap_or_else(|| until.saturating_sub(FIRST_LOOKBACK_SECONDS));
        if until <= after {
            return Ok(SweepReport { lag_seconds: now.saturating_sub(after), ..SweepReport::default() });
        }
        let (entries, until) = self.expired_between(after, until).await?;
        let mut due = Due::of(&entries, limit);
        let mut report = SweepReport {
            window: Some((after, until)),
            expired: entries.len(),
            scopes: due.order.len(),
            deferred: due.deferred.len(),
            ..SweepReport::default()
        };
        let results: Vec<_> = futures_util::stream::iter(std::mem::take(&mut due.order))
            .map(|scope| async move { (self.reconcile_expired(&scope, deadline).await, scope) })
            .buffer_unordered(APPLY_CONCURRENCY)
            .collect()
            .await;
        // Entries still waiting after this run; the cursor stops before the earliest.
        let mut waiting = std::mem::take(&mut due.deferred);
        for (result, scope) in results {
            let entries = due.entries.remove(&scope).unwrap_or_default();
            waiting.extend(self.record_progress(result, &scope, &entries, &mut report).await);
        }
        let handled_until = waiting.iter().min().map_or(until, |earliest| earliest - 1).min(until);
        if handled_until > after {
            match self.store.advance_sweep_cursor(cursor, handled_until).await {
                Ok(()) => {}
                // Another sweep moved it meanwhile: it handled the same window.
                Err(StoreError::Conflict) => tracing::info!("the sweep cursor moved meanwhile"),
                Err(e) => return Err(e.into()),
            }
        }
        report.lag_seconds = now.saturating_sub(handled_until.max(after));
        Ok(report)
    }

    /// The index's entries expiring in (`after`, `until`], earliest first, at most a day of
    /// minutes of them; and the end of the window read.
    async fn expired_between(&self, after: u64, until: u64) -> Result<(Vec<Expiry>, u64), ReconcileError> {
        let first = minute_of(after + 1);
        let last = minute_of(until).min(first + MAX_MINUTES_PER_SWEEP - 1);
        let until = until.min((last + 1) * 60 - 1);
        let mut entries: Vec<Expiry> = futures_util::stream::iter(first..=last)
            .map(|minute| self.store.expiring_in(minute))
            .buffered(READ_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .filter(|entry| after < entry.expires_at && entry.expires_at <= until)
            .collect();
        entries.sort_by_key(|entry| entry.expires_at);
        Ok((entries, until))
    }

    /// The rule on one expired scope. A holder the conversation's roster does not list never
    /// joined: nothing to ask Twilio.
    async fn reconcile_expired(&self, scope: &Scope, deadline: Deadline) -> Result<Vec<Removal>, ReconcileError> {
        if let Scope::Reader { asset, user } = scope
            && self.off_roster(asset, user).await?
        {
            return Ok(Vec::new());
        }
        self.apply(scope, deadline).await
    }

    /// Records what became of a scope's entries: handled ones leave the index, ones that failed
    /// for a reason no retry cures count an attempt (set aside after [`SET_ASIDE_AFTER`]). Returns
    /// the expiries that still wait.
    async fn record_progress(
        &self,
        result: Result<Vec<Removal>, ReconcileError>,
        scope: &Scope,
        entries: &[Expiry],
        report: &mut SweepReport,
    ) -> Vec<u64> {
        let mut waiting = Vec::new();
        match result {
            Ok(removals) => {
                report.removals.extend(removals);
                for entry in entries {
                    if let Err(e) = self.store.expiry_done(entry).await {
                        // Handled, but the index still lists it: the next run applies the rule
                        // again, which removes nobody who can read.
                        tracing::warn!(scope = %scope, error = %ErrorChain(&e), "expiry handled but not marked");
                        waiting.push(entry.expires_at);
                    }
                }
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(scope = %scope, error = %ErrorChain(&e), "expiry not reconciled; the next sweep retries");
                report.failed += 1;
                waiting.extend(entries.iter().map(|entry| entry.expires_at));
            }
            Err(e) => {
                tracing::error!(scope = %scope, error = %ErrorChain(&e), "expiry cannot be reconciled");
                report.failed += 1;
                for entry in entries {
                    match self.store.expiry_failed(entry, SET_ASIDE_AFTER).await {
                        Ok(true) => {
                            tracing::error!(scope = %scope, expires_at = entry.expires_at, "expiry entry set aside; the pass covers its conversation");
                            report.set_aside += 1;
                        }
                        Ok(false) => waiting.push(entry.expires_at),
                        Err(e) => {
                            tracing::warn!(scope = %scope, error = %ErrorChain(&e), "expiry attempt not counted");
                            waiting.push(entry.expires_at);
                        }
                    }
                }
            }
        }
        waiting
    }
}
