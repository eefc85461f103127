//! A client of the SDK face, for tests that play a Conversations SDK user (an attacker included)
//! holding an access token chatgate minted.

use std::fmt;

use hyper::Method;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::outbound::{self, TransportError};
use crate::sdk::token;

/// Why an SDK call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// Twilio's error body: branch on `code` (20101, 50107, 50050, 50353, 50433, …).
    #[error("Twilio refused with code {code} (HTTP {status}): {message}")]
    Refused { status: u16, code: u32, message: String },
    /// An answer that is not Twilio's JSON; the body is kept for the test's failure message.
    #[error("HTTP {status} with a body that is not Twilio's JSON: {body}")]
    Unexpected { status: u16, body: String },
    #[error("the request did not reach the stand-in")]
    Transport(#[source] TransportError),
}

impl SdkError {
    /// The HTTP status, if the stand-in answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } | Self::Unexpected { status, .. } => Some(*status),
            Self::Transport(_) => None,
        }
    }

    /// Twilio's error code, if the answer carried one.
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// One SDK user: a base URL (the stand-in's, or `chatgate dev`'s Twilio stand-in) and a token.
/// Conversations are named by SID or unique name.
#[derive(Clone)]
pub struct SdkClient {
    /// `{base_url}/sdk/v1`.
    root: String,
    authorization: String,
    identity: Option<String>,
}

impl fmt::Debug for SdkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkClient").field("root", &self.root).field("identity", &self.identity).finish_non_exhaustive()
    }
}

impl SdkClient {
    /// `base_url` as [`crate::StandIn::base_url`] gives it (`http://127.0.0.1:PORT`).
    pub fn new(base_url: impl AsRef<str>, token: impl AsRef<str>) -> Self {
        let token = token.as_ref();
        Self {
            root: format!("{}/sdk/v1", base_url.as_ref().trim_end_matches('/')),
            authorization: format!("Bearer {token}"),
            identity: token::unverified_identity(token),
        }
    }

    /// The identity the token names, read from it without checking it.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// Connects: Twilio creates the user of a new identity. The user resource.
    pub async fn connect(&self) -> Result<Value, SdkError> {
        self.request(Method::POST, "/connect", &[]).await
    }

    /// Creates a conversation the actor then takes part in, with the creator role.
    pub async fn create_conversation(
        &self,
        unique_name: Option<&str>,
        attributes: Option<&str>,
    ) -> Result<Value, SdkError> {
        let form: Vec<(&str, &str)> = [("UniqueName", unique_name), ("Attributes", attributes)]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        self.request(Method::POST, "/Conversations", &form).await
    }

    pub async fn conversation(&self, conversation: &str) -> Result<Value, SdkError> {
        self.request(Method::GET, &conversation_path(conversation, ""), &[]).await
    }

    /// Sets `UniqueName`, `FriendlyName` and `Attributes`, as given.
    pub async fn update_conversation(&self, conversation: &str, form: &[(&str, &str)]) -> Result<Value, SdkError> {
        self.request(Method::POST, &conversation_path(conversation, ""), form).await
    }

    /// Joins the conversation as the token's identity.
    pub async fn join(&self, conversation: &str) -> Result<Value, SdkError> {
        self.request(Method::POST, &conversation_path(conversation, "/Participants"), &[]).await
    }

    pub async fn add_participant(&self, conversation: &str, identity: &str) -> Result<Value, SdkError> {
        self.request(Method::POST, &conversation_path(conversation, "/Participants"), &[("Identity", identity)]).await
    }

    /// The first page of participants (`{"participants": [...], "meta": ...}`).
    pub async fn participants(&self, conversation: &str) -> Result<Value, SdkError> {
        self.request(Method::GET, &conversation_path(conversation, "/Participants"), &[]).await
    }

    /// Leaves the conversation (the token's identity).
    pub async fn leave(&self, conversation: &str) -> Result<Value, SdkError> {
        self.remove_participant(conversation, self.identity().unwrap_or_default()).await
    }

    /// Removes participant `identity` (or SID).
    pub async fn remove_participant(&self, conversation: &str, identity: &str) -> Result<Value, SdkError> {
        let path = conversation_path(conversation, &format!("/Participants/{}", segment(identity)));
        self.request(Method::DELETE, &path, &[]).await
    }

    pub async fn send_message(
        &self,
        conversation: &str,
        body: &str,
        attributes: Option<&str>,
    ) -> Result<Value, SdkError> {
        let mut form = vec![("Body", body)];
        form.extend(attributes.map(|a| ("Attributes", a)));
        self.request(Method::POST, &conversation_path(conversation, "/Messages"), &form).await
    }

    /// Edits a message's `Body` and `Attributes`, as given.
    pub async fn update_message(
        &self,
        conversation: &str,
        message_sid: &str,
        form: &[(&str, &str)],
    ) -> Result<Value, SdkError> {
        let path = conversation_path(conversation, &format!("/Messages/{}", segment(message_sid)));
        self.request(Method::POST, &path, form).await
    }

    /// The first page of messages (`{"messages": [...], "meta": ...}`), oldest first.
    pub async fn messages(&self, conversation: &str) -> Result<Value, SdkError> {
        self.request(Method::GET, &conversation_path(conversation, "/Messages"), &[]).await
    }

    /// Any request to `path` under `/sdk/v1` (already percent-encoded); `form` goes in the body.
    pub async fn request(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Result<Value, SdkError> {
        let mut headers = Vec::with_capacity(2);
        if let Ok(value) = HeaderValue::from_str(&self.authorization) {
            headers.push((AUTHORIZATION, value));
        }
        let body = if form.is_empty() {
            Bytes::new()
        } else {
            headers.push((CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded")));
            Bytes::from(serde_urlencoded::to_string(form).unwrap_or_default())
        };
        let url = format!("{}{path}", self.root);
        let reply = outbound::send(method, &url, &headers, body).await.map_err(SdkError::Transport)?;
        let status = reply.status;
        let unexpected = || SdkError::Unexpected { status, body: String::from_utf8_lossy(&reply.body).into_owned() };
        let json = if reply.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice::<Value>(&reply.body).map_err(|_| unexpected())?
        };
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let code = json["code"].as_u64().and_then(|c| u32::try_from(c).ok()).ok_or_else(unexpected)?;
        let message = json["message"].as_str().unwrap_or_default().to_owned();
        Err(SdkError::Refused { status, code, message })
    }
}

fn segment(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

fn conversation_path(conversation: &str, rest: &str) -> String {
    format!("/Conversations/{}{rest}", segment(conversation))
}
