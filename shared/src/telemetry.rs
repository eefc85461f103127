//! Logging set-up: structured JSON under Lambda's own log controls (`AWS_LAMBDA_LOG_FORMAT`,
//! `AWS_LAMBDA_LOG_LEVEL`), readable text for the CLI.

use tracing_subscriber::EnvFilter;

/// For a Lambda function: follows the function's logging configuration (JSON in `template.yaml`);
/// the runtime puts the request id on every line through its invocation span.
pub fn init_lambda() {
    lambda_http::tracing::init_default_subscriber();
}

/// For the CLI and the local server: human-readable lines on stderr, `RUST_LOG` to tune.
pub fn init_cli() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}
