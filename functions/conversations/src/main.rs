//! Composition root of the conversations Lambda: telemetry, typed configuration, the secret read
//! once while the table connection warms, the table and Twilio clients built once.

use std::sync::Arc;

use chatgate::config::Settings;
use conversations::handler::{self, ConversationsConfig, ConversationsState};
use lambda_http::Error;

// Lambda hands an execution environment one event at a time: a single-threaded runtime starts no
// worker threads (and their allocator arenas) that would only lengthen the cold start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let config = ConversationsConfig::from_settings(&settings)?;
        let (store, secrets) = chatgate::lambda::table_and_secrets(&settings).await?;
        ConversationsState::new(config, &secrets, Arc::new(store))
    };
    chatgate::lambda::serve(start, handler::handle).await
}
