//! chatgate's shared library: the domain, session verification, Twilio access tokens,
//! problem+json errors and typed configuration that every Lambda function and the CLI compose.

pub mod acl;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod conversations;
pub mod domain;
pub mod guard;
pub mod http;
pub mod lambda;
pub mod reconcile;
pub mod telemetry;
pub mod tls;
pub mod twilio;
