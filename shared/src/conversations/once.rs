//! Retries that make nothing twice: `POST /conversations` with an `Idempotency-Key` (the header
//! payment APIs made familiar). The first request with a key takes it, runs, and keeps its answer
//! for 24 hours; a retry with the same key and the same body gets that answer and creates
//! nothing; the same key with another body is refused. A request that fails lets its key go, so
//! its retry runs afresh; one that stops without a word (a timed-out function) holds the key only
//! for its lease. Either way the retry makes nothing twice: the key keeps the random name its
//! first attempt gave an unnamed group, so a retry joins the group that attempt made; a key used
//! again after its window names a new group, never the old one.

use ring::digest;

use super::{Conversations, CreateCommand, Plan};
use crate::acl::{Begun, ConversationsStore, Remembered};
use crate::clock::Deadline;
use crate::domain::{ConversationKey, ConversationNames};
use crate::http::{ApiError, ErrorChain};

/// How long a request holds its key before a retry may take it over: longer than any request
/// runs (the function's timeout is 10 s).
const LEASE_SECONDS: u64 = 30;
/// Longest `Idempotency-Key`.
const MAX_KEY_LEN: usize = 128;

/// An `Idempotency-Key`: 1 to 128 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The header's value, checked.
    pub fn parse(raw: &[u8]) -> Result<Self, ApiError> {
        let visible = (1..=MAX_KEY_LEN).contains(&raw.len()) && raw.iter().all(|b| b.is_ascii_graphic());
        match std::str::from_utf8(raw) {
            Ok(key) if visible => Ok(Self(key.to_owned())),
            _ => Err(ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request asked, as a short digest: the command as chatgate read it (defaults filled in),
/// so two bodies that differ only in spacing or key order ask the same thing.
fn fingerprint(command: &CreateCommand) -> String {
    // Serializing a plain data enum into a Vec cannot fail.
    let canonical = serde_json::to_vec(command).unwrap_or_default();
    digest::digest(&digest::SHA256, &canonical).as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl<R: ConversationsStore> Conversations<R> {
    /// Create-or-join as `POST /conversations` answers it: the status and the JSON body, the
    /// remembered one when `key` was used before by the same user for the same command.
    pub async fn create_or_join_once(
        &self,
        mut plan: Plan,
        command: &CreateCommand,
        key: Option<&IdempotencyKey>,
        deadline: Deadline,
    ) -> Result<Remembered, ApiError> {
        let Some(key) = key else { return self.answer(plan, deadline).await };
        let caller = plan.wanted[0].clone();
        let fingerprint = fingerprint(command);
        let proposed = match &plan.key {
            ConversationKey::Fresh(name) => name.clone(),
            _ => ConversationNames::fresh_group(),
        };
        match self.store.begin(&caller, key.as_str(), &fingerprint, &proposed, LEASE_SECONDS, self.clock.now()).await? {
            // An unnamed group takes the name the key keeps: a retry of an attempt that failed
            // after Twilio made the group finds that group and joins it.
            Begun::Fresh { group_name, attempted } => {
                if let ConversationKey::Fresh(_) = plan.key {
                    plan.key = match attempted {
                        true => ConversationKey::Attempted(group_name),
                        false => ConversationKey::Fresh(group_name),
                    };
                }
            }
            Begun::Replay(answer) => {
                tracing::info!(status = answer.status, "idempotent replay");
                return Ok(answer);
            }
            Begun::InProgress => {
                return Err(ApiError::Conflict(
                    "a request with this Idempotency-Key is still in progress; retry in a few seconds".into(),
                ));
            }
            Begun::Mismatch => {
                return Err(ApiError::Conflict("this Idempotency-Key was used with a different request body".into()));
            }
        }
        match self.answer(plan, deadline).await {
            Ok(answer) => {
                // The conversation is made either way; a key not kept means a retry joins it
                // (every conversation asked for with a key is named): logged, never hidden.
                if let Err(e) = self.store.finish(&caller, key.as_str(), &fingerprint, &answer).await {
                    tracing::warn!(error = %ErrorChain(&e), "idempotent answer not kept");
                }
                Ok(answer)
            }
            Err(refused) => {
                if let Err(e) = self.store.abandon(&caller, key.as_str(), &fingerprint).await {
                    tracing::warn!(error = %ErrorChain(&e), "idempotency key not let go; it frees when its lease ends");
                }
                Err(refused)
            }
        }
    }

    async fn answer(&self, plan: Plan, deadline: Deadline) -> Result<Remembered, ApiError> {
        let joined = self.create_or_join(plan, deadline).await?;
        let status = if joined.created { 201 } else { 200 };
        // Serializing a plain data struct into a String cannot fail.
        Ok(Remembered { status, body: serde_json::to_string(&joined).unwrap_or_default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert_eq!(IdempotencyKey::parse(b"9f1c-2b").expect("key").as_str(), "9f1c-2b");
        assert!(IdempotencyKey::parse(&[b'k'; MAX_KEY_LEN]).is_ok());
        for bad in [&b""[..], &[b'k'; MAX_KEY_LEN + 1], b"with space", b"tab\t", "é".as_bytes(), b"\x7f"] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_read_the_command_not_the_bytes() {
        let read = |body: &str| fingerprint(&serde_json::from_str::<CreateCommand>(body).expect("command"));
        let spaced = read(r#"{ "participants": [], "type": "group",  "friendly_name": "x" }"#);
        assert_eq!(read(r#"{"type":"group","friendly_name":"x"}"#), spaced);
        assert_ne!(read(r#"{"type":"group","friendly_name":"y"}"#), spaced);
        assert_ne!(read(r#"{"type":"group","friendly_name":"x","participants":["u-2"]}"#), spaced);
    }
}
