//! Composition root of the conversations Lambda: telemetry, typed configuration, the secret read
//! once, the table and Twilio clients built once.

use std::sync::Arc;

use chatgate::acl::DynamoStore;
use chatgate::config::{Settings, TwilioSecrets};
use conversations::handler::{self, ConversationsState};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let store = DynamoStore::from_settings(&settings).await?;
        let secrets = TwilioSecrets::load(&settings).await?;
        let state = ConversationsState::from_settings(&settings, &secrets, Arc::new(store.clone()))?;
        store.warm_up().await;
        Ok::<_, chatgate::config::ConfigError>(state)
    };
    let state = start.await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let state = &state;
    run(service_fn(move |req| async move { Ok::<_, Error>(handler::handle(state, req).await) })).await
}
