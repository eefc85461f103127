//! Logging set-up for a Lambda function: structured JSON under Lambda's own log controls
//! (`AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL`), with a plain level filter (no regex
//! machinery in the binary). The runtime puts the request id on every line through its
//! invocation span.

use std::str::FromStr as _;

use tracing_subscriber::filter::LevelFilter;

/// For a Lambda function: the function's logging configuration (JSON in `template.yaml`).
pub fn init_lambda() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| level_filter(&level))
        .unwrap_or(LevelFilter::INFO);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let subscriber = tracing_subscriber::fmt().with_target(false).without_time().with_max_level(level);
    let _ = if json { subscriber.json().try_init() } else { subscriber.with_ansi(false).try_init() };
}

/// A plain level: Lambda's (`TRACE` ... `ERROR`, and `FATAL`, which tracing has not, as `ERROR`)
/// or tracing's own (`off` too). Anything else, directives such as `chatgate=debug` included, is
/// `None`, and the function logs at `INFO`.
fn level_filter(level: &str) -> Option<LevelFilter> {
    let level = level.trim();
    if level.eq_ignore_ascii_case("fatal") {
        return Some(LevelFilter::ERROR);
    }
    LevelFilter::from_str(level).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_levels_and_plain_levels_are_read() {
        assert_eq!(level_filter("FATAL"), Some(LevelFilter::ERROR));
        assert_eq!(level_filter(" debug "), Some(LevelFilter::DEBUG));
        assert_eq!(level_filter("WARN"), Some(LevelFilter::WARN));
        assert_eq!(level_filter("chatgate=debug"), None);
    }
}
