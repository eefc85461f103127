//! Composition root of the token Lambda: telemetry, typed configuration and keys built once.

use chatgate::config::Settings;
use lambda_http::{Error, run, service_fn};
use token::handler::{self, TokenState};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let state = TokenState::from_settings(&Settings::from_env())
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let state = &state;
    run(service_fn(move |req| async move { Ok::<_, Error>(handler::handle(state, req).await) })).await
}
