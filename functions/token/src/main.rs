//! Composition root of the token Lambda: telemetry, typed configuration and keys built once.

use chatgate::config::Settings;
use lambda_http::Error;
use token::handler::{self, TokenState};

// Lambda hands an execution environment one event at a time: a single-threaded runtime starts no
// worker threads (and their allocator arenas) that would only lengthen the cold start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    chatgate::lambda::serve(TokenState::from_settings(&settings), handler::handle).await
}
