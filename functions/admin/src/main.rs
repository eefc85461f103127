//! Composition root of the admin Lambda: the routes are IAM-authorised by API Gateway.

use std::sync::Arc;

use admin::handler::{self, AdminAuth, AdminState};
use chatgate::acl::DynamoStore;
use chatgate::config::Settings;
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let store =
        DynamoStore::from_settings(&settings).await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    store.warm_up().await;
    let state = AdminState::new(AdminAuth::Iam, Arc::new(store));
    let state = &state;
    run(service_fn(move |req| async move { Ok::<_, Error>(handler::handle(state, req).await) })).await
}
