//! Domain values, parsed once at the edge (inside chatgate an invalid one cannot exist), and the
//! pure access decision.

mod access;
mod asset;
mod change;
mod conversation;
mod identity;
mod reference;
mod sid;
mod tenant;
mod text;
mod ttl;

pub use access::{AccessAnswer, AccessDecision, AccessFacts, Via, decide};
pub use asset::{
    AssetId, AssetRecord, AssetType, Grant, GroupId, IdError, MAX_ID_BYTES, Principal, PrincipalError, Role,
};
pub use change::{AclChange, Scope};
pub use conversation::{
    AttributesError, ConversationAttributes, ConversationKey, ConversationKind, ConversationNames,
    DEVELOPMENT_NAME_KEY, MIN_NAME_KEY_BYTES, RoomName, RoomNameError, legacy_unique_name, roster_name,
};
pub use identity::{Identity, IdentityError};
pub use reference::{AssetReference, ReferenceError};
pub use sid::{AccountSid, ApiKeySid, PushCredentialSid, RoleSid, ServiceSid, Sid, SidError, SidKind};
pub use tenant::{
    Caller, HANDLE_CHARS as TENANT_HANDLE_CHARS, MAX_TENANT_BYTES, MAX_TENANT_ID_BYTES, MAX_TENANT_USER_CHARS,
    SEPARATOR as TENANT_SEPARATOR, Tenant, TenantError, TenantId,
};
pub use text::{IdTextProblem, id_text_problem};
pub use ttl::{Ttl, TtlError, TtlPolicy};
