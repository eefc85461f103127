//! Composition root of the sharing Lambda: telemetry, typed configuration, the table client built
//! and warmed once.

use std::sync::Arc;

use chatgate::acl::DynamoStore;
use chatgate::config::Settings;
use lambda_http::Error;
use sharing::handler::{self, SharingConfig, SharingState};

// Lambda hands an execution environment one event at a time: a single-threaded runtime starts no
// worker threads (and their allocator arenas) that would only lengthen the cold start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let config = SharingConfig::from_settings(&settings)?;
        let store = DynamoStore::from_settings(&settings)?;
        let state = SharingState::new(config, Arc::new(store.clone()))?;
        store.warm_up().await;
        Ok(state)
    };
    chatgate::lambda::serve(start, handler::handle).await
}
