//! Composition root of the reconciler Lambda: the API key read while the table connection warms,
//! the table and Twilio clients built once; then the table's stream batches and the scheduled
//! expiry sweeps through one handler.

use std::sync::Arc;

use chatgate::config::Settings;
use lambda_runtime::Error;
use reconciler::handler::{self, ReconcilerState};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let (store, secrets) = chatgate::lambda::table_and_secrets(&settings).await?;
        ReconcilerState::from_settings(&settings, &secrets, Arc::new(store))
    };
    chatgate::lambda::serve_events(start, handler::handle).await
}
