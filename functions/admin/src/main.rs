//! Composition root of the admin Lambda (the routes are IAM-authorised by API Gateway): the
//! API key read while the table connection warms, for offboarding's Twilio calls.

use std::sync::Arc;

use admin::handler::{self, AdminAuth, AdminConfig, AdminState};
use chatgate::config::Settings;
use lambda_http::Error;

// Lambda hands an execution environment one event at a time: a single-threaded runtime starts no
// worker threads (and their allocator arenas) that would only lengthen the cold start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let config = AdminConfig::from_settings(&settings)?;
        let (store, secrets) = chatgate::lambda::table_and_secrets(&settings).await?;
        AdminState::from_config(AdminAuth::Iam, config, &secrets, Arc::new(store))
    };
    chatgate::lambda::serve(start, handler::handle).await
}
