//! Running a Lambda function: its state built once at cold start (a configuration error stops the
//! start, logged with the setting's name), then every invocation through its handler.

use std::future::Future;

use lambda_http::{Body, Error, Request, Response, run, service_fn};

use crate::config::ConfigError;

/// The SDK's standard configuration, loaded once and shared by every client a function builds.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Builds the state with `start`, then serves invocations with `handle` until the runtime stops.
/// The state lives as long as the process, as a Lambda's cold-start state does.
pub async fn serve<S, H, Fut>(start: impl Future<Output = Result<S, ConfigError>>, handle: H) -> Result<(), Error>
where
    S: Send + Sync + 'static,
    H: Fn(&'static S, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let state = start.await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let state: &'static S = Box::leak(Box::new(state));
    let handle = &handle;
    run(service_fn(move |req| {
        let response = handle(state, req);
        async move { Ok::<_, Error>(response.await) }
    }))
    .await
}
