//! Domain values, parsed once at the edge (inside chatgate an invalid one cannot exist), and the
//! pure access decision.

mod access;
mod asset;
mod identity;
mod sid;
mod ttl;

pub use access::{AccessAnswer, AccessDecision, AccessFacts, Via, decide};
pub use asset::{
    AssetId, AssetRecord, AssetType, Grant, GroupId, IdError, MAX_ID_BYTES, Principal, PrincipalError, Role,
};
pub use identity::{Identity, IdentityError};
pub use sid::{AccountSid, ApiKeySid, PushCredentialSid, ServiceSid, Sid, SidError, SidKind};
pub use ttl::{Ttl, TtlError, TtlPolicy};
