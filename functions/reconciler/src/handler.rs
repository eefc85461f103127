//! The reconciler function: the table's stream (a batch of change records), the scheduled
//! expiry sweep and the scheduled pass over every asset conversation, all turned into the rule's
//! scopes and applied by [`chatgate::reconcile`]. A stream batch answers the way its trigger
//! expects: the records to retry, by sequence number, in `batchItemFailures`; the others are done.

use std::sync::Arc;
use std::time::Duration;

use chatgate::acl::ReconcilerStore;
use chatgate::clock::SystemClock;
use chatgate::config::{self, ConfigError, Settings, TwilioSecrets};
use chatgate::reconcile::{PASS_LIMIT, ReconcileError, Reconciler, SWEEP_LIMIT};
use chatgate::twilio::rest::{ConversationsClient, RestConfig};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most time one invocation's Twilio calls may take (the function's timeout is 60 s).
const BUDGET: Duration = Duration::from_secs(50);
/// How long a grant write can take to commit after reading the clock: the timeout of the
/// functions that write grants (10 s). The sweep leaves younger expiries to its next run.
const SETTLE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct ReconcilerState<R> {
    pub rule: Reconciler<R>,
    /// `FULL_RECONCILE_SECONDS`: how often a full pass over every asset conversation starts.
    pub pass_every: Duration,
}

/// What the function reads from the environment, parsed once at cold start (the table and Twilio's
/// secrets are [`chatgate::lambda::table_and_secrets`]'s).
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// `TWILIO_API_BASE`, `TWILIO_CONVERSATIONS_SERVICE_SID`, `TWILIO_API_KEY_SID`.
    pub twilio: RestConfig,
    /// `FULL_RECONCILE_SECONDS`, default 6 hours.
    pub pass_every: Duration,
    /// `TENANT_CLAIM` set: the rule's audit lines name the tenant.
    pub tenants: bool,
}

impl ReconcilerConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let seconds = settings.count("FULL_RECONCILE_SECONDS", DEFAULT_PASS_SECONDS)?;
        Ok(Self {
            twilio: RestConfig::from_settings(settings)?,
            pass_every: Duration::from_secs(u64::from(seconds)),
            tenants: config::tenants(settings)?,
        })
    }
}

/// A full pass every 6 hours.
pub const DEFAULT_PASS_SECONDS: u32 = 6 * 3600;

impl<R> ReconcilerState<R> {
    pub fn new(config: ReconcilerConfig, secrets: &TwilioSecrets, store: Arc<R>) -> Result<Self, ConfigError> {
        let twilio = ConversationsClient::from_config(&config.twilio, secrets)?;
        let rule = Reconciler::new(store, twilio, secrets.conversation_names()?, Arc::new(SystemClock));
        Ok(Self { rule: rule.with_tenants(config.tenants), pass_every: config.pass_every })
    }
}

/// What invokes the function.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Trigger {
    /// A batch of the table's stream. Records stay raw until each is read on its own, so one bad
    /// record fails alone.
    Stream {
        #[serde(rename = "Records")]
        records: Vec<Value>,
    },
    /// A scheduled task of chatgate's own (template.yaml's schedule with an `Input`):
    /// `full-reconcile`, a run of the scheduled pass.
    Task { task: String },
    /// EventBridge's schedule (`"source": "aws.events"`): the expiry sweep.
    Schedule { source: String },
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Answer {
    /// Lambda's partial batch response: the records to retry.
    Batch {
        #[serde(rename = "batchItemFailures")]
        failures: Vec<ItemFailure>,
    },
    Sweep {
        expired: usize,
        removed: usize,
        failed: usize,
    },
    Pass {
        checked: usize,
        removed: usize,
        failed: usize,
        completed: bool,
    },
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("a scheduled event from `{0}`, not EventBridge")]
    UnknownSource(String),
    #[error("an unknown task `{0}`")]
    UnknownTask(String),
    #[error(transparent)]
    Scheduled(#[from] ReconcileError),
}

pub async fn handle<R: ReconcilerStore>(
    state: &ReconcilerState<R>,
    event: LambdaEvent<Trigger>,
) -> Result<Answer, InvocationError> {
    let deadline = chatgate::lambda::deadline(Some(event.context.deadline), BUDGET);
    match event.payload {
        Trigger::Stream { records } => {
            let outcome = state.rule.apply_stream(records, deadline).await;
            let failures = outcome.failed.into_iter().map(|item_identifier| ItemFailure { item_identifier }).collect();
            Ok(Answer::Batch { failures })
        }
        Trigger::Schedule { source } if source == "aws.events" => {
            // A scope that fails is logged and retried by the next sweep (its entry stays); the
            // invocation itself succeeded.
            let report = state.rule.sweep_expiries(SETTLE, SWEEP_LIMIT, deadline).await?;
            report.log();
            Ok(Answer::Sweep { expired: report.expired, removed: report.removals.len(), failed: report.failed })
        }
        Trigger::Task { task } if task == "full-reconcile" => {
            let report = state.rule.pass_run(state.pass_every, PASS_LIMIT, deadline).await?;
            report.log();
            Ok(Answer::Pass {
                checked: report.checked,
                removed: report.removals.len(),
                failed: report.failed,
                completed: report.completed,
            })
        }
        Trigger::Task { task } => Err(InvocationError::UnknownTask(task)),
        Trigger::Schedule { source } => Err(InvocationError::UnknownSource(source)),
    }
}
