//! `chatgate reconcile asset|user|failure`: applies the access rule now (after an outage, or to a
//! batch from the reconciler's failure queue) with the same reconciler as the functions, and says
//! whom it removed. `chatgate reconcile rename-legacy` moves conversations created before v1.2 to
//! their keyed names and registers every asset conversation for the scheduled pass.

use std::sync::Arc;
use std::time::Duration;

use chatgate::acl::DynamoStore;
use chatgate::acl::follow::StreamFollower;
use chatgate::clock::Deadline;
use chatgate::clock::SystemClock;
use chatgate::config::{SecretsSource, Settings};
use chatgate::domain::{Scope, Tenant};
use chatgate::reconcile::{LegacyName, Reconciler, Removal};
use chatgate::twilio::rest::ConversationsClient;
use clap::Subcommand;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Remove every participant of the asset's conversation who can no longer read the asset.
    Asset { asset_id: String },
    /// Remove the user from every asset conversation whose asset they can no longer read.
    User { user_id: String },
    /// Redrive one message of the reconciler's failure queue: read its batch back from the
    /// table's stream (kept 24 h) and apply the rule to every record in it.
    Failure {
        /// The message body (the on-failure record with `DDBStreamBatchInfo`); `-` for stdin.
        message: String,
    },
    /// Once, after upgrading to v1.2: rename the direct and asset conversations that still carry
    /// v1.1's public names to their keyed names, re-decide each asset conversation's
    /// participants, and register every asset conversation for the scheduled pass. Without
    /// --apply, only says what it would do. Safe to run again.
    RenameLegacy {
        #[arg(long)]
        apply: bool,
    },
}

/// What Lambda puts on the failure queue for a stream batch: where the batch is, not the records.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchInfo {
    shard_id: String,
    batch_size: usize,
    start_sequence_number: String,
    end_sequence_number: String,
    stream_arn: String,
}

#[derive(Debug, serde::Deserialize)]
struct FailureMessage {
    #[serde(rename = "DDBStreamBatchInfo")]
    batch: BatchInfo,
}

pub async fn reconcile(command: ReconcileCommand, tenant: &Tenant) -> Result<()> {
    let settings = Settings::from_env();
    let aws = chatgate::aws::default_chain().await;
    let table = chatgate::config::table_name(&settings)?;
    let store = DynamoStore::new(&aws, table, DynamoStore::layout(&settings)?);
    let secrets = SecretsSource::from_settings(&settings).load(&aws).await?;
    let twilio = ConversationsClient::from_settings(&settings, &secrets)?;
    let rule = Reconciler::new(Arc::new(store), twilio, secrets.conversation_names()?, Arc::new(SystemClock));
    let rule = rule.with_tenants(chatgate::config::tenants(&settings)?);
    let deadline = Deadline::after(Duration::from_secs(120));
    let scope = match command {
        ReconcileCommand::Asset { asset_id } => {
            Scope::Asset(tenant.asset(&asset_id).map_err(|e| format!("asset id: {e}"))?)
        }
        ReconcileCommand::User { user_id } => Scope::User(tenant.user(&user_id).map_err(|e| format!("user id: {e}"))?),
        ReconcileCommand::Failure { message } => return redrive(&rule, &aws, &message, deadline).await,
        ReconcileCommand::RenameLegacy { apply } => return rename_legacy(&rule, apply).await,
    };
    let removals = rule.apply(&scope, deadline).await.map_err(|e| format!("{}", chatgate::http::ErrorChain(&e)))?;
    if removals.is_empty() {
        println!("{scope}: nobody to remove");
    }
    print_removals(removals);
    Ok(())
}

async fn rename_legacy(rule: &Reconciler<DynamoStore>, apply: bool) -> Result<()> {
    let deadline = Deadline::after(Duration::from_secs(3600));
    let report =
        rule.rename_legacy(apply, deadline).await.map_err(|e| format!("{}", chatgate::http::ErrorChain(&e)))?;
    let verb = if apply { "renamed" } else { "would rename" };
    for outcome in &report.conversations {
        match outcome {
            LegacyName::Renamed { sid, from, to, removed } => {
                println!("{verb} {sid}: {from} -> {to}");
                print_removals(removed.clone());
            }
            LegacyName::Taken { sid, from } => {
                println!("left {sid} under {from}: a conversation made since the upgrade has its new name");
            }
        }
    }
    println!(
        "{} conversation(s) under v1.1 names; {} named group(s) or direct conversation(s) without two participants not checked",
        report.conversations.len(),
        report.unchecked
    );
    let registered = if apply { "registered" } else { "would register" };
    println!("{registered} {} asset conversation(s) for the scheduled pass", report.registered);
    Ok(())
}

fn print_removals(removals: Vec<Removal>) {
    for removal in removals {
        let about = removal.asset.map_or_else(String::new, |a| format!(" (asset {a})"));
        println!("removed {} from {}{about}", removal.identity, removal.conversation);
    }
}

async fn redrive(
    rule: &Reconciler<DynamoStore>,
    aws: &aws_config::SdkConfig,
    message: &str,
    deadline: Deadline,
) -> Result<()> {
    let body =
        if message == "-" { std::io::read_to_string(std::io::stdin())? } else { std::fs::read_to_string(message)? };
    let FailureMessage { batch } =
        serde_json::from_str(&body).map_err(|e| format!("not a failure-queue message with DDBStreamBatchInfo: {e}"))?;
    let records = StreamFollower::read_range(
        aws,
        &batch.stream_arn,
        &batch.shard_id,
        &batch.start_sequence_number,
        &batch.end_sequence_number,
    )
    .await
    .map_err(|e| {
        format!(
            "could not read the batch back from the stream (it keeps records 24 h; reconcile the assets and users concerned by hand): {}",
            chatgate::http::ErrorChain(&e)
        )
    })?;
    if records.len() < batch.batch_size {
        return Err(format!(
            "only {} of the batch's {} record(s) are still in the stream (it keeps records 24 h): reconcile the assets and users concerned by hand",
            records.len(),
            batch.batch_size
        )
        .into());
    }
    let items = rule.read_records(&records).await?;
    let count = items.len();
    let outcome = rule.apply_batch(items, deadline).await;
    println!("{count} record(s), {} scope(s) reconciled", outcome.scopes);
    print_removals(outcome.removals);
    if !outcome.failed.is_empty() {
        return Err(format!("{} record(s) failed again: {}", outcome.failed.len(), outcome.failed.join(", ")).into());
    }
    if !outcome.set_aside.is_empty() {
        return Err(format!(
            "{} record(s) cannot be read, so nobody can say whom they concern: {}; reconcile the assets concerned by hand",
            outcome.set_aside.len(),
            outcome.set_aside.join(", ")
        )
        .into());
    }
    Ok(())
}
