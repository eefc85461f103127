//! Composition root of the admin Lambda: the routes are IAM-authorised by API Gateway.

use std::sync::Arc;

use admin::handler::{self, AdminAuth, AdminState};
use chatgate::acl::DynamoStore;
use chatgate::config::Settings;
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let store = DynamoStore::from_settings(&settings).await?;
        store.warm_up().await;
        Ok(AdminState::new(AdminAuth::Iam, Arc::new(store)))
    };
    chatgate::lambda::serve(start, handler::handle).await
}
