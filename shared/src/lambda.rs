//! Running a Lambda function: its state built once at cold start (a configuration error stops the
//! start, logged with the setting's name), then every invocation through its handler.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_http::{Body, Error, Request, RequestExt as _, Response, run, service_fn};

use crate::clock::Deadline;
use crate::config::ConfigError;

/// Time kept back from an invocation's deadline to answer in.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// When work must be done by: the invocation's deadline (Unix milliseconds, as the runtime gives
/// it) less a margin to answer in, and never later than `cap` from now. Locally there is no
/// invocation deadline and `cap` is the budget.
pub fn deadline(invocation_deadline_ms: Option<u64>, cap: Duration) -> Deadline {
    let left = invocation_deadline_ms
        .and_then(|ms| (UNIX_EPOCH + Duration::from_millis(ms)).duration_since(SystemTime::now()).ok());
    Deadline::after(left.map_or(cap, |left| left.saturating_sub(ANSWER_MARGIN).min(cap)))
}

/// [`deadline`] for an HTTP request.
pub fn request_deadline(req: &Request, cap: Duration) -> Deadline {
    deadline(req.lambda_context_ref().map(|ctx| ctx.deadline), cap)
}

/// The table (`TABLE_NAME`) and Twilio's secrets ([`crate::config::SecretsSource`]), for
/// functions that need both: the SDK configuration loaded once, the secret read while the table's
/// connections warm.
#[cfg(all(feature = "dynamodb", feature = "secrets"))]
pub async fn table_and_secrets(
    settings: &crate::config::Settings,
) -> Result<(crate::acl::DynamoStore, crate::config::TwilioSecrets), ConfigError> {
    let (table, secrets) =
        (crate::config::table_name(settings)?, crate::config::SecretsSource::from_settings(settings));
    let aws = crate::aws::from_environment(settings)?;
    let store = crate::acl::DynamoStore::new(&aws, table, crate::acl::DynamoStore::layout(settings)?);
    let (secrets, ()) = tokio::join!(secrets.load(&aws), store.warm_up());
    Ok((store, secrets?))
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

/// The same for a function that is not behind HTTP (streams, schedules): events of type `E` in,
/// answers of type `A` out; an `Err` from `handle` is an invocation error, which the trigger retries.
pub async fn serve_events<S, E, A, H, Fut, Err>(
    start: impl Future<Output = Result<S, ConfigError>>,
    handle: H,
) -> Result<(), Error>
where
    S: Send + Sync + 'static,
    E: serde::de::DeserializeOwned + Send + 'static,
    A: serde::Serialize + Send + 'static,
    H: Fn(&'static S, lambda_http::lambda_runtime::LambdaEvent<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<A, Err>> + Send + 'static,
    Err: std::error::Error + Send + Sync + 'static,
{
    let state = start.await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let state: &'static S = Box::leak(Box::new(state));
    let handle = &handle;
    lambda_http::lambda_runtime::run(lambda_http::lambda_runtime::service_fn(move |event| {
        let answer = handle(state, event);
        async move {
            answer.await.map_err(|e| {
                tracing::error!(error = %crate::http::ErrorChain(&e), "invocation failed");
                Error::from(Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            })
        }
    }))
    .await
}
