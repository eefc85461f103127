//! Twilio's error answers: the codes the stand-in uses and the body Twilio sends with them.

use serde_json::{Value, json};

/// The Twilio error codes the stand-in answers with.
pub mod codes {
    /// 400: a parameter is missing, malformed or out of range (also used for a `UniqueName`
    /// shaped like a conversation SID and an `Identity` shaped like a user SID).
    pub const INVALID_PARAMETER: u32 = 20001;
    /// 401: missing or wrong basic-auth credentials.
    pub const AUTHENTICATE: u32 = 20003;
    /// 401 on the SDK face: the access token is malformed, badly signed, expired, not yet valid,
    /// or for another account, API key or service.
    pub const INVALID_ACCESS_TOKEN: u32 = 20101;
    /// 405: the path exists but not with this method.
    pub const METHOD_NOT_ALLOWED: u32 = 20004;
    /// 404: no such resource (or service).
    pub const NOT_FOUND: u32 = 20404;
    /// 415: a POST body that is not `application/x-www-form-urlencoded`.
    pub const UNSUPPORTED_MEDIA_TYPE: u32 = 20415;
    /// 429: too many requests; the request was not processed.
    pub const RATE_LIMITED: u32 = 20429;
    /// 500: internal error (only ever injected).
    pub const INTERNAL_ERROR: u32 = 20500;
    /// 502: the answer was lost on the way back (only ever injected: [`crate::StandIn::lose_responses`]).
    /// The stand-in's choice, after Twilio's pattern of 20000 + status: Twilio documents no such code.
    pub const BAD_GATEWAY: u32 = 20502;
    /// 503: service unavailable (only ever injected).
    pub const SERVICE_UNAVAILABLE: u32 = 20503;
    /// 403 on the SDK face: the acting user's roles lack the permission the action needs, or the
    /// user is not a participant of the conversation it reads or writes.
    pub const NOT_AUTHORIZED: u32 = 50107;
    /// 403 on the SDK face: the pre-event webhook answered with a non-2xx status, so the action
    /// was not published. The stand-in's choice: Twilio documents no code for it.
    pub const REJECTED_BY_WEBHOOK: u32 = 50050;
    /// 409: the service already has a user with this identity.
    pub const USER_EXISTS: u32 = 50201;
    /// 400: the identity is already a participant of as many conversations as Twilio allows one
    /// identity (1,000; see [`crate::StandInConfig::with_limits`]).
    pub const USER_CONVERSATION_LIMIT: u32 = 50214;
    /// 409: the service already has a conversation with this unique name.
    pub const CONVERSATION_EXISTS: u32 = 50353;
    /// 400: the conversation already has as many participants as Twilio allows (1,000; see
    /// [`crate::StandInConfig::with_limits`]).
    pub const PARTICIPANT_LIMIT: u32 = 50417;
    /// 409: the identity is already a participant of the conversation.
    pub const PARTICIPANT_EXISTS: u32 = 50433;
}

/// What the stand-in answers instead of doing what was asked: Twilio's status, code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Twilio error {code} (HTTP {status}): {message}")]
pub struct Rejection {
    pub status: u16,
    pub code: u32,
    pub message: String,
    /// Seconds for a `Retry-After` header; only rate limiting sets it.
    pub(crate) retry_after: Option<u32>,
}

impl Rejection {
    pub(crate) fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, codes::INVALID_PARAMETER, message)
    }

    /// Twilio names the requested path in the message; the HTTP layer fills it in.
    pub(crate) fn not_found() -> Self {
        Self::new(404, codes::NOT_FOUND, "")
    }

    pub(crate) fn conflict(code: u32, message: &str) -> Self {
        Self::new(409, code, message)
    }

    pub(crate) fn participant_exists() -> Self {
        Self::conflict(codes::PARTICIPANT_EXISTS, "Participant already exists")
    }

    pub(crate) fn participant_limit() -> Self {
        Self::new(400, codes::PARTICIPANT_LIMIT, "Participants limit exceeded")
    }

    pub(crate) fn user_conversation_limit() -> Self {
        Self::new(400, codes::USER_CONVERSATION_LIMIT, "User conversation limit exceeded")
    }

    pub(crate) fn rate_limited() -> Self {
        Self { retry_after: Some(1), ..Self::new(429, codes::RATE_LIMITED, "Too Many Requests") }
    }

    pub(crate) fn unauthenticated() -> Self {
        Self::new(401, codes::AUTHENTICATE, "Authenticate")
    }

    pub(crate) fn invalid_access_token() -> Self {
        Self::new(401, codes::INVALID_ACCESS_TOKEN, "Invalid Access Token")
    }

    pub(crate) fn not_authorized() -> Self {
        Self::new(403, codes::NOT_AUTHORIZED, "User not authorized to perform the requested action")
    }

    /// What the webhook answered stays out of the message: the client learns only the refusal.
    pub(crate) fn rejected_by_webhook() -> Self {
        Self::new(403, codes::REJECTED_BY_WEBHOOK, "The action was rejected by the pre-event webhook")
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(405, codes::METHOD_NOT_ALLOWED, "Method not allowed")
    }

    pub(crate) fn unsupported_media_type() -> Self {
        Self::new(415, codes::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type: send application/x-www-form-urlencoded")
    }

    /// `{"code", "message", "more_info", "status"}`, as Twilio shapes its errors.
    pub fn body(&self) -> Value {
        json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status,
        })
    }
}
