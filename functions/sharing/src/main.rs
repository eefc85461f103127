//! Composition root of the sharing Lambda: telemetry, typed configuration, the table client built
//! and warmed once.

use std::sync::Arc;

use chatgate::acl::DynamoStore;
use chatgate::config::Settings;
use lambda_http::{Error, run, service_fn};
use sharing::handler::{self, SharingState};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let store =
        DynamoStore::from_settings(&settings).await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let state = SharingState::from_settings(&settings, Arc::new(store.clone()))
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    store.warm_up().await;
    let state = &state;
    run(service_fn(move |req| async move { Ok::<_, Error>(handler::handle(state, req).await) })).await
}
