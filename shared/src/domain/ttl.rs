//! Access-token lifetimes within the bounds Twilio and the operator allow.

use std::time::Duration;

/// Twilio refuses shorter tokens as useless and caps them at 24 hours.
pub const MIN_TTL_SECONDS: u32 = 180;
pub const MAX_TTL_SECONDS: u32 = 86_400;

/// A token lifetime already checked against the deployment's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ttl(u32);

impl Ttl {
    pub fn seconds(self) -> u32 {
        self.0
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ttl_seconds must be between {min} and {max}")]
pub struct TtlError {
    pub min: u32,
    pub max: u32,
}

/// The deployment's default and maximum lifetimes (`TOKEN_TTL_SECONDS`, `TOKEN_MAX_TTL_SECONDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    default: Ttl,
    max: u32,
}

impl TtlPolicy {
    /// Fails when `max` is outside 180..=86400 or `default` outside 180..=max.
    pub fn new(default: u32, max: u32) -> Result<Self, TtlError> {
        let outer = TtlError { min: MIN_TTL_SECONDS, max: MAX_TTL_SECONDS };
        if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&max) {
            return Err(outer);
        }
        if !(MIN_TTL_SECONDS..=max).contains(&default) {
            return Err(TtlError { min: MIN_TTL_SECONDS, max });
        }
        Ok(Self { default: Ttl(default), max })
    }

    pub fn default_ttl(&self) -> Ttl {
        self.default
    }

    pub fn max_seconds(&self) -> u32 {
        self.max
    }

    /// A requested lifetime, or the default when none was asked for.
    pub fn ttl(&self, requested: Option<i64>) -> Result<Ttl, TtlError> {
        match requested {
            None => Ok(self.default),
            Some(s) if s >= i64::from(MIN_TTL_SECONDS) && s <= i64::from(self.max) => Ok(Ttl(s as u32)),
            Some(_) => Err(TtlError { min: MIN_TTL_SECONDS, max: self.max }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_ttl_is_bounded_by_policy() {
        let policy = TtlPolicy::new(3600, 7200).expect("valid policy");
        assert_eq!(policy.ttl(None), Ok(Ttl(3600)));
        assert_eq!(policy.ttl(Some(180)), Ok(Ttl(180)));
        assert_eq!(policy.ttl(Some(7200)), Ok(Ttl(7200)));
        assert_eq!(policy.ttl(Some(179)), Err(TtlError { min: 180, max: 7200 }));
        assert_eq!(policy.ttl(Some(7201)), Err(TtlError { min: 180, max: 7200 }));
        assert!(policy.ttl(Some(-1)).is_err());
        assert!(policy.ttl(Some(i64::MAX)).is_err());
    }

    #[test]
    fn policy_itself_must_fit_twilio_bounds() {
        assert!(TtlPolicy::new(3600, 86_401).is_err());
        assert!(TtlPolicy::new(3600, 179).is_err());
        assert!(TtlPolicy::new(7200, 3600).is_err());
        assert!(TtlPolicy::new(179, 3600).is_err());
        assert!(TtlPolicy::new(86_400, 86_400).is_ok());
    }
}
