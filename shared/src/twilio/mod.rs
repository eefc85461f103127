//! Everything chatgate speaks with Twilio: access tokens, webhook signatures, and the
//! Conversations REST client.

mod access_token;
#[cfg(feature = "twilio-rest")]
pub mod rest;
#[cfg(feature = "twilio-rest")]
pub mod setup;
pub mod webhook;

pub use access_token::{AccessTokenMinter, MintedToken, TokenSigningKey};
