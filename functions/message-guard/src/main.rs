//! Composition root of the message-guard Lambda: the auth token and API key read once, the
//! table and Twilio clients built and the table connection warmed at cold start, so even a cold
//! invocation answers well inside Twilio's 5 s.

use std::sync::Arc;

use chatgate::acl::DynamoStore;
use chatgate::config::{Settings, TwilioSecrets};
use lambda_http::{Error, run, service_fn};
use message_guard::handler::{self, GuardState};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let (store, secrets) = tokio::join!(DynamoStore::from_settings(&settings), TwilioSecrets::load(&settings));
        let store = store?;
        let state = GuardState::from_settings(&settings, &secrets?, Arc::new(store.clone()))?;
        store.warm_up().await;
        Ok::<_, chatgate::config::ConfigError>(state)
    };
    let state = start.await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let state = &state;
    run(service_fn(move |req| async move { Ok::<_, Error>(handler::handle(state, req).await) })).await
}
