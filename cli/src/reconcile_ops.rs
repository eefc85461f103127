//! `chatgate reconcile asset|user`: applies the access rule now (after an outage, or after
//! redriving the failure queue) with the same reconciler as the functions, and says whom it removed.

use std::sync::Arc;
use std::time::Duration;

use chatgate::acl::DynamoStore;
use chatgate::clock::SystemClock;
use chatgate::config::{Settings, TwilioSecrets};
use chatgate::domain::{AssetId, Identity, Scope};
use chatgate::reconcile::Reconciler;
use chatgate::twilio::rest::{ConversationsClient, Deadline};
use clap::Subcommand;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Remove every participant of the asset's conversation who can no longer read the asset.
    Asset { asset_id: String },
    /// Remove the user from every asset conversation whose asset they can no longer read.
    User { user_id: String },
}

pub async fn reconcile(command: ReconcileCommand) -> Result<()> {
    let scope = match command {
        ReconcileCommand::Asset { asset_id } => {
            Scope::Asset(AssetId::try_from(asset_id).map_err(|e| format!("asset id: {e}"))?)
        }
        ReconcileCommand::User { user_id } => {
            Scope::User(Identity::try_from(user_id).map_err(|e| format!("user id: {e}"))?)
        }
    };
    let settings = Settings::from_env();
    let aws = chatgate::lambda::aws_config().await;
    let store = DynamoStore::from_sdk(&aws, &settings)?;
    let secrets = TwilioSecrets::load_with(&settings, &aws).await?;
    let twilio = ConversationsClient::from_settings(&settings, &secrets)?;
    let rule = Reconciler::new(Arc::new(store), twilio, Arc::new(SystemClock));
    let removals = rule.apply(&scope, Deadline::after(Duration::from_secs(120))).await.map_err(|e| {
        let e: Box<dyn std::error::Error> = format!("{}", chatgate::http::ErrorChain(&e)).into();
        e
    })?;
    if removals.is_empty() {
        println!("{scope}: nobody to remove");
    }
    for removal in removals {
        let about = removal.asset.map_or_else(String::new, |a| format!(" (asset {a})"));
        println!("removed {} from {}{about}", removal.identity, removal.conversation);
    }
    Ok(())
}
