//! Composition root of the message-guard Lambda: the auth token and API key read while the table
//! connection warms, the table and Twilio clients built once, so even a cold invocation answers
//! well inside Twilio's 5 s.

use std::sync::Arc;

use chatgate::config::Settings;
use lambda_http::Error;
use message_guard::handler::{self, GuardConfig, GuardState};

// Lambda hands an execution environment one event at a time: a single-threaded runtime starts no
// worker threads (and their allocator arenas) that would only lengthen the cold start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let config = GuardConfig::from_settings(&settings)?;
        let (store, secrets) = chatgate::lambda::table_and_secrets(&settings).await?;
        GuardState::new(config, &secrets, Arc::new(store))
    };
    chatgate::lambda::serve(start, handler::handle).await
}
