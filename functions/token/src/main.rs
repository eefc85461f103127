//! Composition root of the token Lambda: telemetry, typed configuration and keys built once.

use chatgate::config::{Settings, TwilioSecrets};
use lambda_http::Error;
use token::handler::{self, TokenConfig, TokenState};

// Lambda hands an execution environment one event at a time: a single-threaded runtime starts no
// worker threads (and their allocator arenas) that would only lengthen the cold start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let config = TokenConfig::from_settings(&settings)?;
        TokenState::new(config, &TwilioSecrets::load(&settings).await?)
    };
    chatgate::lambda::serve(start, handler::handle).await
}
