//! Everything chatgate speaks with Twilio: access tokens now; webhook signatures and the
//! Conversations REST client as they are built.

mod access_token;
pub mod rest;
pub mod webhook;

pub use access_token::{AccessTokenMinter, MintedToken, TokenSigningKey};
