//! Anti-entropy: the scheduled pass that re-decides every asset conversation chatgate made, so a
//! non-reader left in one by any race, fault or hand (a participant added behind chatgate's back)
//! is removed without anyone asking. It walks the registry of asset conversations in order, a
//! bounded run at a time, resuming from its cursor; a pass that completes starts again once its
//! interval has passed. Each conversation costs one Twilio read (its participants), one round
//! trip of table reads, and a Twilio call per removal.

use std::time::Duration;

use futures_util::StreamExt as _;

use super::{ReconcileError, Reconciler, Removal};
use crate::acl::{AclReader, PassCursor, PassProgress, RegisteredConversations, Rosters, StoreError};
use crate::clock::Deadline;
use crate::domain::Scope;
use crate::http::ErrorChain;

/// Conversations one run of the scheduled pass re-decides at most (its deadline bounds it too).
pub const PASS_LIMIT: usize = 2_000;

/// Conversations re-decided at once: their participant reads are not rate limited by Twilio, and
/// removals stay well inside its 30 writes a second.
const PASS_CONCURRENCY: usize = 8;
/// A run starts no new conversation with less than this left of its deadline.
const MARGIN: Duration = Duration::from_secs(5);

/// What one run of the pass did.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// Whether this run started a new pass.
    pub started: bool,
    /// Whether this run finished the pass.
    pub completed: bool,
    /// Conversations re-decided.
    pub checked: usize,
    pub removals: Vec<Removal>,
    /// A conversation that could not be re-decided: the pass resumes at it next run.
    pub failed: usize,
    /// Seconds since the last complete pass started (what its alarm watches); before the first
    /// completes, since the first started.
    pub age_seconds: u64,
}

impl PassReport {
    /// The run's log line; `pass_age_seconds` is a metric (template.yaml's PassAgeMetric) with an
    /// alarm, and `pass_checked` one on the dashboard.
    pub fn log(&self) {
        tracing::info!(
            started = self.started,
            completed = self.completed,
            pass_checked = self.checked,
            removed = self.removals.len(),
            failed = self.failed,
            pass_age_seconds = self.age_seconds,
            "scheduled pass"
        );
    }
}

impl<R: AclReader + RegisteredConversations + PassProgress + Rosters> Reconciler<R> {
    /// One run: when a pass is under way, or due (`every` after the last complete one started),
    /// re-decides at most `limit` conversations from the cursor on, while the deadline allows.
    pub async fn pass_run(
        &self,
        every: Duration,
        limit: usize,
        deadline: Deadline,
    ) -> Result<PassReport, ReconcileError> {
        let now = self.clock.now();
        let cursor = self.store.pass_cursor().await?;
        let mut report = PassReport {
            age_seconds: now.saturating_sub(cursor.last_completed.or(cursor.started_at).unwrap_or(now)),
            ..PassReport::default()
        };
        let started_at = match cursor.started_at {
            Some(at) => at,
            None if cursor.last_completed.is_none_or(|at| now >= at + every.as_secs()) => {
                report.started = true;
                now
            }
            None => return Ok(report),
        };
        let (assets, more) = self.store.registered_after(cursor.after.as_ref(), limit).await?;
        // Owned ids, and the deadline checked inside: conversations the deadline leaves are not
        // started, and the next run begins with them.
        let results: Vec<_> = futures_util::stream::iter(assets.iter().cloned())
            .map(|asset| async move {
                if deadline.remaining() <= MARGIN {
                    return (asset, None);
                }
                let result = self.apply(&Scope::Asset(asset.clone()), deadline).await;
                (asset, Some(result))
            })
            .buffered(PASS_CONCURRENCY)
            .collect()
            .await;
        // The cursor moves past what succeeded in order, and stops at the first failure.
        let mut after = cursor.after.clone();
        let mut reached = 0;
        for (asset, result) in results {
            match result {
                None => break,
                Some(Ok(removals)) => {
                    reached += 1;
                    report.checked += 1;
                    report.removals.extend(removals);
                    after = Some(asset);
                }
                // No retry cures it: counted, and the pass moves on rather than stall on it.
                Some(Err(e)) if !e.is_transient() => {
                    tracing::error!(asset_id = asset.as_str(), error = %ErrorChain(&e), pass_poison = 1, "conversation cannot be re-decided; the pass moves on");
                    reached += 1;
                    after = Some(asset);
                }
                Some(Err(e)) => {
                    tracing::warn!(asset_id = asset.as_str(), error = %ErrorChain(&e), "pass stopped; the next run resumes here");
                    report.failed += 1;
                    break;
                }
            }
        }
        report.completed = report.failed == 0 && reached == assets.len() && !more;
        let next = if report.completed {
            report.age_seconds = now.saturating_sub(started_at);
            PassCursor { after: None, started_at: None, last_completed: Some(started_at), version: cursor.version + 1 }
        } else {
            PassCursor {
                after,
                started_at: Some(started_at),
                last_completed: cursor.last_completed,
                version: cursor.version + 1,
            }
        };
        match self.store.save_pass_cursor(&cursor, &next).await {
            Ok(()) => {}
            // Another run moved it meanwhile: it covered the same conversations.
            Err(StoreError::Conflict) => tracing::info!("the pass cursor moved meanwhile"),
            Err(e) => return Err(e.into()),
        }
        Ok(report)
    }

    /// Runs the pass to its end now (`chatgate dev`'s timer, the benchmark), a run at a time;
    /// stops at the first run that fails to move.
    pub async fn pass_to_end(&self, limit: usize, deadline: Deadline) -> Result<PassReport, ReconcileError> {
        let mut total = PassReport::default();
        loop {
            let run = self.pass_run(Duration::ZERO, limit, deadline).await?;
            total.started |= run.started;
            total.checked += run.checked;
            total.removals.extend(run.removals);
            total.failed += run.failed;
            total.age_seconds = run.age_seconds;
            if run.completed || run.failed > 0 || run.checked == 0 && !run.started {
                total.completed = run.completed;
                return Ok(total);
            }
        }
    }
}
