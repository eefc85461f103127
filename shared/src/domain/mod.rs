//! Domain values, parsed once at the edge: inside chatgate an invalid one cannot exist.

mod identity;
mod sid;
mod ttl;

pub use identity::{Identity, IdentityError};
pub use sid::{AccountSid, ApiKeySid, PushCredentialSid, ServiceSid, Sid, SidError, SidKind};
pub use ttl::{Ttl, TtlError, TtlPolicy};
