//! Composition root of the access Lambda: telemetry, typed configuration, the table client built
//! and warmed once.

use std::sync::Arc;

use access::handler::{self, AccessState};
use chatgate::acl::DynamoStore;
use chatgate::config::Settings;
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatgate::telemetry::init_lambda();
    let settings = Settings::from_env();
    let start = async {
        let store = DynamoStore::from_settings(&settings).await?;
        let state = AccessState::from_settings(&settings, Arc::new(store.clone()))?;
        store.warm_up().await;
        Ok(state)
    };
    chatgate::lambda::serve(start, handler::handle).await
}
