//! chatgate's shared library: the domain, session verification, Twilio access tokens,
//! problem+json errors and typed configuration that every Lambda function and the CLI compose.
//!
//! Each port to the outside is a feature (see `Cargo.toml`), so a function links only the ones it
//! uses: the token function, for one, links neither DynamoDB nor Twilio's REST client. What keeps
//! Twilio in step with the ACLs (creating and joining, the guard, reconciling) needs both.

pub mod acl;
pub mod admin_auth;
pub mod audit;
#[cfg(feature = "sessions")]
pub mod auth;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(all(feature = "twilio-rest", feature = "dynamodb"))]
pub mod catalog;
pub mod clock;
pub mod config;
#[cfg(all(feature = "twilio-rest", feature = "dynamodb"))]
pub mod conversations;
pub mod domain;
#[cfg(all(feature = "twilio-rest", feature = "dynamodb"))]
pub mod guard;
pub mod http;
pub mod lambda;
#[cfg(all(feature = "twilio-rest", feature = "dynamodb"))]
pub mod reconcile;
pub mod sharing;
pub mod telemetry;
pub mod tls;
pub mod twilio;
