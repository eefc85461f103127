//! The customer organisation a session belongs to, and how an id the caller names is qualified
//! with it (docs/tenancy.md): `u-1` of `acme` is `acme~u-1` everywhere inside chatgate and in
//! Twilio, so the tenant is part of every key and every name because it is part of every id.

use std::fmt;

use super::{AssetId, GroupId, IdError, Identity, IdentityError, Principal, PrincipalError, RoomName, RoomNameError};

/// What separates a tenant from the id it qualifies. A tenant never contains it, so the first one
/// ends the tenant; Twilio does not ask identities to avoid it (it does `:` and `/`).
pub const SEPARATOR: char = '~';

/// Longest tenant id, in bytes.
pub const MAX_TENANT_BYTES: usize = 64;
/// Longest user id in a tenant deployment, in characters, whatever the tenant: the longest tenant
/// and the separator take the rest of Twilio's 256.
pub const MAX_TENANT_USER_CHARS: usize = super::identity::MAX_IDENTITY_CHARS - MAX_TENANT_BYTES - 1;
/// Longest asset or group id in a tenant deployment, in bytes, whatever the tenant.
pub const MAX_TENANT_ID_BYTES: usize = super::asset::MAX_ID_BYTES - MAX_TENANT_BYTES - 1;

/// A tenant id from a session: 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tenant is 1 to {MAX_TENANT_BYTES} of A-Z, a-z, 0-9, `.`, `_` and `-`, starting with a letter or digit")]
pub struct TenantError;

impl TryFrom<&str> for TenantId {
    type Error = TenantError;

    fn try_from(value: &str) -> Result<Self, TenantError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        let ok = (1..=MAX_TENANT_BYTES).contains(&value.len())
            && value.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && value.bytes().all(allowed);
        if ok { Ok(Self(value.to_owned())) } else { Err(TenantError) }
    }
}

/// Length of a tenant's key handle, in characters.
pub const HANDLE_CHARS: usize = 16;

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant as the table's hot keys name it (docs/data-model.md): 16 URL-safe base64
    /// characters, the first 96 bits of the SHA-256 of the id, whatever the id's length. Every item
    /// an access check reads carries its partition key, so a fixed-size handle there keeps a long
    /// organisation id from adding read units. 96 bits: no two of a million tenants share one
    /// except with odds under 10⁻¹⁷, and nobody can make an id that matches a given tenant's; the
    /// table's tenant record refuses a second tenant at a handle all the same.
    pub fn handle(&self) -> String {
        use base64::Engine as _;
        let digest = ring::digest::digest(&ring::digest::SHA256, self.0.as_bytes());
        let handle = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
        debug_assert_eq!(handle.len(), HANDLE_CHARS);
        handle
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({:?})", self.0)
    }
}

/// Whose ids a request names: a tenant's (qualified with it), or, in a single-tenant deployment,
/// nobody's in particular (ids as given, exactly as before tenants existed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Tenant {
    #[default]
    Single,
    Of(TenantId),
}

impl Tenant {
    /// The id `raw` of this tenant as chatgate stores it: `<tenant>~<raw>`, or `raw` itself.
    pub fn qualify(&self, raw: &str) -> String {
        match self {
            Self::Single => raw.to_owned(),
            Self::Of(tenant) => format!("{tenant}{SEPARATOR}{raw}"),
        }
    }

    /// A stored id as this tenant's caller names it: the tenant's prefix taken off. An id of
    /// another tenant is never shown to this one: it comes back `None`.
    pub fn local<'a>(&self, stored: &'a str) -> Option<&'a str> {
        match self {
            Self::Single => Some(stored),
            Self::Of(tenant) => stored.strip_prefix(tenant.as_str()).and_then(|rest| rest.strip_prefix(SEPARATOR)),
        }
    }

    /// The tenant a stored id belongs to, in a deployment with tenants (`multi`) or without: what
    /// the guard and the reconciler read from a Twilio identity or a table key. `None` for an id
    /// of no tenant in a tenant deployment (nothing chatgate wrote).
    pub fn of_stored(multi: bool, stored: &str) -> Option<Self> {
        if !multi {
            return Some(Self::Single);
        }
        let (tenant, _) = stored.split_once(SEPARATOR)?;
        TenantId::try_from(tenant).ok().map(Self::Of)
    }

    /// The tenant of a stored id, for an audit line, as the id's own prefix: `None` in a
    /// single-tenant deployment, or for an id of no tenant.
    pub fn id_of(multi: bool, stored: &str) -> Option<&str> {
        let (tenant, _) = stored.split_once(SEPARATOR).filter(|_| multi)?;
        TenantId::try_from(tenant).ok().map(|_| tenant)
    }

    /// The tenant's id, for audit lines; `None` when single-tenant.
    pub fn id(&self) -> Option<&TenantId> {
        match self {
            Self::Single => None,
            Self::Of(tenant) => Some(tenant),
        }
    }

    /// An id the caller names, as this tenant's: it must be an id on its own (not empty, no control
    /// character...), and its qualified form must fit the type's length.
    fn parse<T, E>(&self, raw: &str) -> Result<T, E>
    where
        T: for<'a> TryFrom<&'a str, Error = E> + TryFrom<String, Error = E>,
    {
        <T as TryFrom<&str>>::try_from(raw)?;
        <T as TryFrom<String>>::try_from(self.qualify(raw))
    }

    /// A user the caller names, as this tenant's user: in a tenant deployment at most
    /// [`MAX_TENANT_USER_CHARS`] characters, whichever the tenant.
    pub fn user(&self, raw: &str) -> Result<Identity, IdentityError> {
        self.bounded(raw, raw.chars().count() > MAX_TENANT_USER_CHARS, IdentityError::TooLongForTenant)
    }

    /// A room the caller names, as this tenant's room (`acme~support`).
    pub fn room(&self, raw: &str) -> Result<RoomName, RoomNameError> {
        RoomName::local(raw)?;
        RoomName::try_from(self.qualify(raw).as_str())
    }

    /// A stored id as this tenant's caller names it, for an answer: ids this tenant's requests
    /// read are all its own, so the stored id is shown whole only if it were not.
    pub fn shown(&self, stored: &str) -> String {
        self.local(stored).unwrap_or(stored).to_owned()
    }

    /// An asset the caller names, as this tenant's asset: in a tenant deployment at most
    /// [`MAX_TENANT_ID_BYTES`], whichever the tenant.
    pub fn asset(&self, raw: &str) -> Result<AssetId, IdError> {
        self.bounded(raw, raw.len() > MAX_TENANT_ID_BYTES, IdError::TooLongForTenant { what: "asset id" })
    }

    /// A group the caller names, as this tenant's group (bounded as an asset is).
    pub fn group(&self, raw: &str) -> Result<GroupId, IdError> {
        self.bounded(raw, raw.len() > MAX_TENANT_ID_BYTES, IdError::TooLongForTenant { what: "group id" })
    }

    /// [`Self::parse`], and in a tenant deployment `too_long` for an id over the tenant's limit
    /// (an id that is no id at all says so first).
    fn bounded<T, E>(&self, raw: &str, over_limit: bool, too_long: E) -> Result<T, E>
    where
        T: for<'a> TryFrom<&'a str, Error = E> + TryFrom<String, Error = E>,
    {
        if matches!(self, Self::Of(_)) && over_limit {
            <T as TryFrom<&str>>::try_from(raw)?;
            return Err(too_long);
        }
        self.parse(raw)
    }

    /// `user:<id>` or `group:<id>` as the caller writes it, as this tenant's principal.
    pub fn principal(&self, raw: &str) -> Result<Principal, PrincipalError> {
        Ok(match Principal::try_from(raw)? {
            Principal::User(user) => Principal::User(self.user(user.as_str())?),
            Principal::Group(group) => Principal::Group(self.group(group.as_str())?),
        })
    }

    /// A principal as this tenant's caller writes it (`user:u-1`); another tenant's never shows.
    pub fn local_principal(&self, principal: &Principal) -> Option<String> {
        Some(match principal {
            Principal::User(user) => format!("user:{}", self.local(user.as_str())?),
            Principal::Group(group) => format!("group:{}", self.local(group.as_str())?),
        })
    }
}

/// Who is calling: their tenant, and their identity qualified with it (what Twilio, the table and
/// every name inside chatgate use: docs/tenancy.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: Tenant,
    pub identity: Identity,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> Tenant {
        Tenant::Of(TenantId::try_from(s).expect("tenant"))
    }

    #[test]
    fn tenants_are_short_plain_names() {
        for good in ["acme", "A", "org_2abc", "globex.eu", "x-1", &"a".repeat(64)] {
            assert!(TenantId::try_from(good).is_ok(), "{good}");
        }
        for bad in ["", "-acme", ".acme", "ac~me", "ac me", "acme/1", "ac:me", "é", &"a".repeat(65)] {
            assert!(TenantId::try_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_are_qualified_and_read_back_only_by_their_tenant() {
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        assert_eq!(acme.qualify("u-1"), "acme~u-1");
        assert_ne!(acme.qualify("u-1"), globex.qualify("u-1"));
        assert_eq!(acme.local("acme~u-1"), Some("u-1"));
        assert_eq!(acme.local("acme~a~b"), Some("a~b"), "ids may contain the separator; the first one ends the tenant");
        assert_eq!(globex.local("acme~u-1"), None);
        assert_eq!(acme.local("acmeco~u-1"), None, "a tenant that starts like another is another");
        assert_eq!(Tenant::Single.qualify("u~1"), "u~1");
        assert_eq!(Tenant::Single.local("acme~u-1"), Some("acme~u-1"));
    }

    #[test]
    fn typed_ids_are_qualified_once_and_shown_back_relative() {
        let acme = tenant("acme");
        assert_eq!(acme.user("u-1").expect("user").as_str(), "acme~u-1");
        assert_eq!(acme.asset("a-1").expect("asset").as_str(), "acme~a-1");
        assert_eq!(acme.group("g-1").expect("group").as_str(), "acme~g-1");
        let member = acme.principal("user:u-2").expect("principal");
        assert_eq!(member, Principal::User(acme.user("u-2").expect("user")));
        assert_eq!(acme.local_principal(&member).as_deref(), Some("user:u-2"));
        let group = acme.principal("group:g-1").expect("principal");
        assert_eq!(acme.local_principal(&group).as_deref(), Some("group:g-1"));
        assert_eq!(tenant("globex").local_principal(&group), None);
        assert!(acme.principal("team:g-1").is_err());
        assert!(acme.user("").is_err() && acme.asset("").is_err() && acme.group("").is_err(), "not `acme~`");
        assert!(acme.user("a\u{1}b").is_err());
        assert_eq!(Tenant::Single.principal("user:u-2").expect("principal").to_string(), "user:u-2");
        // The qualified id must fit each type's limit: the tenant takes its share.
        assert!(acme.asset(&"a".repeat(MAX_TENANT_ID_BYTES)).is_ok());
        assert!(matches!(acme.asset(&"a".repeat(MAX_TENANT_ID_BYTES + 1)), Err(IdError::TooLongForTenant { .. })));
        assert!(matches!(acme.group(&"g".repeat(MAX_TENANT_ID_BYTES + 1)), Err(IdError::TooLongForTenant { .. })));
        assert!(Tenant::Single.asset(&"a".repeat(256)).is_ok());
        // A user id's limit is the same for every tenant, short or long.
        assert!(acme.user(&"u".repeat(MAX_TENANT_USER_CHARS)).is_ok());
        assert_eq!(acme.user(&"u".repeat(MAX_TENANT_USER_CHARS + 1)), Err(IdentityError::TooLongForTenant));
        assert!(Tenant::Single.user(&"u".repeat(256)).is_ok());
        assert_eq!(acme.user("\u{1}"), Err(IdentityError::ControlCharacter));
        // Rooms: named relative, stored qualified, and read back from their unique name.
        let room = acme.room("support").expect("room");
        assert_eq!(room.unique_name(), "room:acme~support");
        assert_eq!(RoomName::from_unique_name("room:acme~support"), Some(room));
        assert_ne!(acme.room("support"), tenant("globex").room("support"));
        assert!(acme.room("globex~support").is_err(), "a caller never names another tenant's room");
        assert_eq!(Tenant::Single.room("support").expect("room").unique_name(), "room:support");
    }

    #[test]
    fn a_tenants_handle_is_fixed_size_and_its_own() {
        let (acme, globex) = (TenantId::try_from("acme").expect("t"), TenantId::try_from("globex").expect("t"));
        let long = TenantId::try_from("a".repeat(64).as_str()).expect("t");
        for tenant in [&acme, &globex, &long] {
            let handle = tenant.handle();
            assert_eq!(handle.len(), HANDLE_CHARS);
            assert!(handle.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{handle}");
            assert_eq!(handle, tenant.handle(), "the same every time");
        }
        assert_ne!(acme.handle(), globex.handle());
        // The first 12 bytes of SHA-256("acme") (82 2b 33 ad ...) in base64url, as Python's
        // hashlib and base64 compute them.
        assert_eq!(acme.handle(), "giszrYfBSKCiClun");
    }

    #[test]
    fn a_stored_id_names_its_tenant() {
        assert_eq!(Tenant::of_stored(true, "acme~u-1"), Some(tenant("acme")));
        assert_eq!(Tenant::of_stored(true, "acme~a~b"), Some(tenant("acme")));
        assert_eq!(Tenant::of_stored(true, "u-1"), None);
        assert_eq!(Tenant::of_stored(true, "-x~u-1"), None);
        assert_eq!(Tenant::of_stored(false, "acme~u-1"), Some(Tenant::Single));
    }
}
