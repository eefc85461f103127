//! Composition root of the admin Lambda (the routes are IAM-authorised by API Gateway): the
//! API key read while the table connection warms, for offboarding's Twilio calls.

use std::sync::Arc;

use admin::handler::{self, AdminAuth, AdminState};
use chatgate::config::Settings;
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let (store, secrets) = chatgate::lambda::table_and_secrets(&settings).await?;
        AdminState::from_settings(AdminAuth::Iam, Arc::new(store), &settings, &secrets)
    };
    chatgate::lambda::serve(start, handler::handle).await
}
