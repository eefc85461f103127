//! Composition root of the conversations Lambda: telemetry, typed configuration, the secret read
//! once while the table connection warms, the table and Twilio clients built once.

use std::sync::Arc;

use chatgate::config::Settings;
use conversations::handler::{self, ConversationsState};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let (store, secrets) = chatgate::lambda::table_and_secrets(&settings).await?;
        ConversationsState::from_settings(&settings, &secrets, Arc::new(store))
    };
    chatgate::lambda::serve(start, handler::handle).await
}
