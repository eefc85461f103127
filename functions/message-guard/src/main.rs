//! Composition root of the message-guard Lambda: the auth token and API key read while the table
//! connection warms, the table and Twilio clients built once, so even a cold invocation answers
//! well inside Twilio's 5 s.

use std::sync::Arc;

use chatgate::config::Settings;
use lambda_http::Error;
use message_guard::handler::{self, GuardState};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let (store, secrets) = chatgate::lambda::table_and_secrets(&settings).await?;
        GuardState::from_settings(&settings, &secrets, Arc::new(store))
    };
    chatgate::lambda::serve(start, handler::handle).await
}
