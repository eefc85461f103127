//! The acting user's identity as Twilio will see it.

use std::fmt;

use super::text::{IdTextProblem, id_text_problem};

/// Twilio's own limit on an identity's length, in characters.
pub const MAX_IDENTITY_CHARS: usize = 256;

/// A user identity Twilio Conversations accepts: 1–256 characters, no control characters,
/// and not shaped like a user SID (`US` + 32 hex), which Twilio would read as a SID; and what it
/// looks like (NFC, nothing invisible), so `alice` and `alice` + U+200B are never two people.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("identity is empty")]
    Empty,
    #[error("identity is longer than {MAX_IDENTITY_CHARS} characters")]
    TooLong,
    #[error(
        "identity is longer than {} characters (a tenant deployment's limit)",
        super::tenant::MAX_TENANT_USER_CHARS
    )]
    TooLongForTenant,
    #[error("identity contains a control character")]
    ControlCharacter,
    #[error("identity {0}")]
    Text(IdTextProblem),
    #[error("identity looks like a Twilio user SID (US + 32 hex digits)")]
    LooksLikeUserSid,
}

impl Identity {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Identity {
    type Error = IdentityError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.is_empty() {
            return Err(IdentityError::Empty);
        }
        if value.chars().count() > MAX_IDENTITY_CHARS {
            return Err(IdentityError::TooLong);
        }
        match id_text_problem(&value) {
            None => {}
            Some(IdTextProblem::Control(_)) => return Err(IdentityError::ControlCharacter),
            Some(problem) => return Err(IdentityError::Text(problem)),
        }
        if looks_like_sid(&value, "US") {
            return Err(IdentityError::LooksLikeUserSid);
        }
        Ok(Self(value))
    }
}

impl TryFrom<&str> for Identity {
    type Error = IdentityError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::try_from(value.to_owned())
    }
}

/// `prefix` followed by exactly 32 hex digits: the shape of every Twilio SID.
pub(crate) fn looks_like_sid(value: &str, prefix: &str) -> bool {
    value.len() == prefix.len() + 32
        && value.starts_with(prefix)
        && value[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?})", self.0)
    }
}

impl serde::Serialize for Identity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_identities() {
        for ok in ["u-123", "alice@example.com", "Zoë", "a", &"x".repeat(256), &"é".repeat(256)] {
            assert_eq!(Identity::try_from(ok).map(|i| i.0), Ok(ok.to_owned()), "{ok}");
        }
    }

    #[test]
    fn refuses_what_twilio_cannot_take() {
        assert_eq!(Identity::try_from(""), Err(IdentityError::Empty));
        assert_eq!(Identity::try_from("x".repeat(257)), Err(IdentityError::TooLong));
        assert_eq!(Identity::try_from("é".repeat(257)), Err(IdentityError::TooLong));
        assert_eq!(Identity::try_from("a\nb"), Err(IdentityError::ControlCharacter));
        assert_eq!(Identity::try_from("a\u{7f}"), Err(IdentityError::ControlCharacter));
        assert_eq!(Identity::try_from("\u{0}"), Err(IdentityError::ControlCharacter));
        assert_eq!(Identity::try_from(format!("US{}", "0a".repeat(16))), Err(IdentityError::LooksLikeUserSid));
    }

    #[test]
    fn identities_are_what_they_look_like() {
        for ok in ["alice", "Zo\u{eb}", "日本", "u-123", "🙂"] {
            assert!(Identity::try_from(ok).is_ok(), "{ok}");
        }
        for (refused, problem) in [
            ("alice\u{200b}", IdTextProblem::Format('\u{200b}')),
            ("a\u{202e}b", IdTextProblem::Format('\u{202e}')),
            ("\u{feff}x", IdTextProblem::Format('\u{feff}')),
            ("a\u{2028}", IdTextProblem::Separator('\u{2028}')),
            ("\u{e000}", IdTextProblem::PrivateUse('\u{e000}')),
            ("e\u{301}", IdTextProblem::NotNfc),
        ] {
            assert_eq!(Identity::try_from(refused), Err(IdentityError::Text(problem)), "{refused:?}");
        }
        assert_eq!(
            Identity::try_from("alice\u{200b}").map_err(|e| e.to_string()),
            Err("identity contains an invisible formatting character (U+200B)".to_owned())
        );
        assert_eq!(
            Identity::try_from("e\u{301}").map_err(|e| e.to_string()),
            Err("identity is not in Unicode NFC (normalize it to NFC before sending it)".to_owned())
        );
    }

    #[test]
    fn near_misses_of_a_user_sid_are_identities() {
        for ok in [
            format!("US{}", "0".repeat(31)),
            format!("US{}", "0".repeat(33)),
            format!("us{}", "0".repeat(32)),
            format!("US{}g", "0".repeat(31)),
        ] {
            assert!(Identity::try_from(ok.as_str()).is_ok(), "{ok}");
        }
    }
}
