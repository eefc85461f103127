//! Composition root of the admin Lambda (the routes are IAM-authorised by API Gateway): the
//! API key read while the table connection warms, for offboarding's Twilio calls.

use std::sync::Arc;

use admin::handler::{self, AdminAuth, AdminState};
use chatgate::config::Settings;
use chatgate::twilio::rest::RestConfig;
use lambda_http::Error;

// Lambda hands an execution environment one event at a time: a single-threaded runtime starts no
// worker threads (and their allocator arenas) that would only lengthen the cold start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let (config, tenants) = (RestConfig::from_settings(&settings)?, chatgate::config::tenants(&settings)?);
        let (store, secrets) = chatgate::lambda::table_and_secrets(&settings).await?;
        let state = AdminState::from_config(AdminAuth::Iam, config, &secrets, Arc::new(store))?;
        Ok(if tenants { state.with_tenants() } else { state })
    };
    chatgate::lambda::serve(start, handler::handle).await
}
