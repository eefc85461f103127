//! Twilio SIDs chatgate is configured with: a two-letter prefix and 32 hex digits.

use std::fmt;
use std::marker::PhantomData;

use super::identity::looks_like_sid;

/// The kind of resource a SID names, by its prefix.
pub trait SidKind {
    const PREFIX: &'static str;
    const WHAT: &'static str;
}

macro_rules! sid_kind {
    ($kind:ident, $alias:ident, $prefix:literal, $what:literal) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $kind {}
        impl SidKind for $kind {
            const PREFIX: &'static str = $prefix;
            const WHAT: &'static str = $what;
        }
        pub type $alias = Sid<$kind>;
    };
}

sid_kind!(Account, AccountSid, "AC", "an account SID");
sid_kind!(ApiKey, ApiKeySid, "SK", "an API key SID");
sid_kind!(Service, ServiceSid, "IS", "a Conversations service SID");
sid_kind!(PushCredential, PushCredentialSid, "CR", "a push credential SID");
sid_kind!(UserRole, RoleSid, "RL", "a role SID");

/// A SID of one kind; the prefix is checked when it is parsed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sid<K>(String, PhantomData<K>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {what} ({prefix} followed by 32 hex digits)")]
pub struct SidError {
    pub what: &'static str,
    pub prefix: &'static str,
}

impl<K: SidKind> Sid<K> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<K: SidKind> TryFrom<&str> for Sid<K> {
    type Error = SidError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        if looks_like_sid(value, K::PREFIX) {
            Ok(Self(value.to_owned(), PhantomData))
        } else {
            Err(SidError { what: K::WHAT, prefix: K::PREFIX })
        }
    }
}

impl<K> fmt::Display for Sid<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<K> fmt::Debug for Sid<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_by_prefix() {
        let sid = format!("AC{}", "ab".repeat(16));
        assert_eq!(AccountSid::try_from(sid.as_str()).map(|s| s.to_string()), Ok(sid.clone()));
        assert!(ServiceSid::try_from(sid.as_str()).is_err());
        assert!(AccountSid::try_from("AC123").is_err());
        assert!(AccountSid::try_from(format!("AC{}", "zz".repeat(16)).as_str()).is_err());
    }
}
