//! Composition root of the reconciler Lambda: the API key read while the table connection warms,
//! the table and Twilio clients built once; then the table's stream batches and the scheduled
//! expiry sweeps through one handler.

use std::sync::Arc;

use chatgate::config::Settings;
use lambda_runtime::Error;
use reconciler::handler::{self, ReconcilerConfig, ReconcilerState};

// Lambda hands an execution environment one event at a time: a single-threaded runtime starts no
// worker threads (and their allocator arenas) that would only lengthen the cold start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let config = ReconcilerConfig::from_settings(&settings)?;
        let (store, secrets) = chatgate::lambda::table_and_secrets(&settings).await?;
        ReconcilerState::new(config, &secrets, Arc::new(store))
    };
    chatgate::lambda::serve_events(start, handler::handle).await
}
