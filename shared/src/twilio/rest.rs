//! A small typed client for exactly the Twilio Conversations REST calls chatgate makes:
//! API-key basic auth, form-encoded bodies, Twilio's error body parsed (callers branch on its
//! `code`, never on the HTTP status), percent-encoded path segments, paging through
//! `meta.next_page_url`, and retries of 429 (code 20429, never processed) and 5xx with
//! exponential backoff and full jitter, bounded by the request's deadline.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::clock::Deadline;
use crate::config::{ConfigError, Settings, TwilioSecrets};
use crate::domain::{ApiKeySid, ServiceSid};
use crate::http::ApiError;

pub const DEFAULT_API_BASE: &str = "https://conversations.twilio.com";

/// Twilio error codes chatgate branches on.
pub mod codes {
    /// A conversation with this unique name exists.
    pub const CONVERSATION_EXISTS: u32 = 50353;
    /// The identity is already a participant.
    pub const PARTICIPANT_EXISTS: u32 = 50433;
    /// The user exists.
    pub const USER_EXISTS: u32 = 50201;
    /// The resource does not exist.
    pub const NOT_FOUND: u32 = 20404;
    /// Too many requests: never processed, safe to retry.
    pub const RATE_LIMITED: u32 = 20429;
    /// The user is in as many conversations as Twilio allows one identity (1,000).
    pub const USER_CONVERSATION_LIMIT: u32 = 50214;
    /// The conversation has as many participants as Twilio allows (1,000).
    pub const PARTICIPANT_LIMIT: u32 = 50417;
    /// The same limit, as Twilio names it for a group conversation.
    pub const GROUP_PARTICIPANT_LIMIT: u32 = 50436;
}

/// One of Twilio's limits, when it refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// An identity is in 1,000 conversations.
    UserConversations,
    /// A conversation has 1,000 participants.
    Participants,
}

const MAX_ATTEMPTS: u32 = 4;
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    /// Twilio answered with its error body; branch on `code`. `retried`: an earlier attempt of
    /// the same call got no answer or a 5xx, so it may have been carried out (a retried add
    /// answered 50433 may be this call's own).
    #[error("Twilio error {code} (HTTP {status}): {message}")]
    Api { status: u16, code: u32, message: String, retried: bool },
    /// 429 or 5xx that outlasted the retries, or no answer at all.
    #[error("Twilio is unavailable{}", status.map_or_else(|| " (no answer)".to_owned(), |s| format!(" (HTTP {s})")))]
    Unavailable {
        status: Option<u16>,
        retry_after: Option<u32>,
        #[source]
        source: Option<reqwest::Error>,
    },
    #[error("Twilio's answer could not be read")]
    Decode(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Another request created the conversation this one tried to create (50353), but it could
    /// not be read back: the race was lost and the winner is not visible yet.
    #[error("a conversation created concurrently cannot be read yet")]
    RaceLost,
}

impl TwilioError {
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether an earlier attempt of this call may have been carried out.
    pub fn retried(&self) -> bool {
        matches!(self, Self::Api { retried: true, .. })
    }

    /// The limit of Twilio's that refused the call, if that is what this is.
    pub fn limit(&self) -> Option<Limit> {
        match self.code()? {
            codes::USER_CONVERSATION_LIMIT => Some(Limit::UserConversations),
            codes::PARTICIPANT_LIMIT | codes::GROUP_PARTICIPANT_LIMIT => Some(Limit::Participants),
            _ => None,
        }
    }
}

// What the caller sees when Twilio fails: mapped here, beside the error.
#[cfg(feature = "twilio-rest")]
impl From<TwilioError> for ApiError {
    fn from(e: TwilioError) -> Self {
        use lambda_http::http::StatusCode;
        match e.limit() {
            Some(Limit::UserConversations) => {
                return ApiError::Conflict(
                    "a participant is in as many conversations as Twilio allows one user".into(),
                );
            }
            Some(Limit::Participants) => {
                return ApiError::Conflict("the conversation has as many participants as Twilio allows".into());
            }
            None => {}
        }
        let (status, retry_after) = match &e {
            TwilioError::Unavailable { status: Some(429), retry_after, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, retry_after.or(Some(1)))
            }
            TwilioError::Unavailable { status: Some(s), retry_after, .. } if *s >= 500 => {
                (StatusCode::BAD_GATEWAY, *retry_after)
            }
            TwilioError::Unavailable { retry_after, .. } => (StatusCode::SERVICE_UNAVAILABLE, *retry_after),
            TwilioError::RaceLost => (StatusCode::SERVICE_UNAVAILABLE, Some(1)),
            TwilioError::Api { .. } | TwilioError::Decode(_) => (StatusCode::BAD_GATEWAY, None),
        };
        ApiError::Upstream { what: "Twilio", status, retry_after, source: Some(Box::new(e)) }
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Conversation {
    pub sid: String,
    pub unique_name: Option<String>,
    pub friendly_name: Option<String>,
    /// A JSON document in a string, as Twilio stores it.
    #[serde(default)]
    pub attributes: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Participant {
    pub sid: String,
    pub conversation_sid: String,
    pub identity: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserConversation {
    pub conversation_sid: String,
    pub unique_name: Option<String>,
    pub friendly_name: Option<String>,
    #[serde(default)]
    pub attributes: Option<String>,
    pub unread_messages_count: Option<u64>,
    pub last_read_message_index: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub index: u64,
    pub author: Option<String>,
    pub body: Option<String>,
    #[serde(default)]
    pub attributes: Option<String>,
    pub date_created: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Role {
    pub sid: String,
    pub friendly_name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub sid: String,
    pub identity: String,
    pub role_sid: Option<String>,
}

/// The service's defaults: the roles Twilio gives the users it creates on an SDK's first
/// connect, participants, and the creators of conversations.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ServiceConfiguration {
    pub default_chat_service_role_sid: Option<String>,
    pub default_conversation_role_sid: Option<String>,
    pub default_conversation_creator_role_sid: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Webhooks {
    pub pre_webhook_url: Option<String>,
    #[serde(default)]
    pub post_webhook_url: Option<String>,
    #[serde(default)]
    pub filters: Vec<String>,
    pub method: Option<String>,
}

/// One page of a list, and the URL of the next.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Meta {
    next_page_url: Option<String>,
}

/// The Conversations REST API of one service, with one API key; built once at cold start.
/// Clones share the connection pool.
#[derive(Clone)]
pub struct ConversationsClient {
    http: reqwest::Client,
    base: String,
    service: ServiceSid,
    key_sid: ApiKeySid,
    key_secret: SecretString,
    /// Attempts of a call Twilio answers 429 (its rate, shared by every caller of the account).
    rate_limited_attempts: u32,
}

/// User traffic yields Twilio's rate when Twilio says it is spent: two quick retries (a burst's
/// 429s pass in milliseconds), then a `503` with `Retry-After` to the caller, whose client retries
/// later. The reconciler's removals are
/// [`ConversationsClient::persistent`]: they keep retrying within their deadline, so under a 429
/// storm they get the rate user traffic gives up.
const YIELDING_RATE_LIMITED_ATTEMPTS: u32 = 3;
const PERSISTENT_RATE_LIMITED_ATTEMPTS: u32 = 12;

impl fmt::Debug for ConversationsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConversationsClient")
            .field("base", &self.base)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// What a request sends: the path's segments (encoded here), query and form pairs.
struct Call<'a> {
    method: reqwest::Method,
    url: String,
    query: Vec<(&'a str, String)>,
    form: Vec<(&'a str, String)>,
}

/// Where Twilio's REST API is, and the service and API key chatgate calls it as.
#[derive(Debug, Clone)]
pub struct RestConfig {
    pub base: String,
    pub service_sid: ServiceSid,
    pub api_key_sid: ApiKeySid,
}

impl RestConfig {
    /// `TWILIO_API_BASE` (default Twilio's), `TWILIO_CONVERSATIONS_SERVICE_SID`, `TWILIO_API_KEY_SID`.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let base = settings.get("TWILIO_API_BASE").unwrap_or(DEFAULT_API_BASE);
        crate::config::check_https_url("TWILIO_API_BASE", base)?;
        Ok(Self {
            base: base.to_owned(),
            service_sid: settings.sid("TWILIO_CONVERSATIONS_SERVICE_SID")?,
            api_key_sid: settings.sid("TWILIO_API_KEY_SID")?,
        })
    }
}

impl ConversationsClient {
    pub fn new(
        base: &str,
        service: ServiceSid,
        key_sid: ApiKeySid,
        key_secret: SecretString,
    ) -> Result<Self, reqwest::Error> {
        crate::tls::install();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(50))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            service,
            key_sid,
            key_secret,
            rate_limited_attempts: YIELDING_RATE_LIMITED_ATTEMPTS,
        })
    }

    /// The same client for work that must get through under Twilio's rate limit (the rule's
    /// removals): a 429 is retried with backoff for as long as the deadline allows.
    pub fn persistent(mut self) -> Self {
        self.rate_limited_attempts = PERSISTENT_RATE_LIMITED_ATTEMPTS;
        self
    }

    /// The client for `config` with the API key's secret: built once at cold start.
    pub fn from_config(config: &RestConfig, secrets: &TwilioSecrets) -> Result<Self, ConfigError> {
        Self::new(
            &config.base,
            config.service_sid.clone(),
            config.api_key_sid.clone(),
            secrets.api_key_secret()?.clone(),
        )
        .map_err(|e| ConfigError::new("TWILIO_API_BASE", format!("no HTTP client: {e}")))
    }

    /// [`Self::from_config`] on [`RestConfig::from_settings`] (tools and tests).
    pub fn from_settings(settings: &Settings, secrets: &TwilioSecrets) -> Result<Self, ConfigError> {
        Self::from_config(&RestConfig::from_settings(settings)?, secrets)
    }

    /// `/v1/Services/{service}/<segments…>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> String {
        let mut url = format!("{}/v1/Services/{}", self.base, self.service);
        for segment in segments {
            url.push('/');
            url.push_str(&encode_segment(segment));
        }
        url
    }

    fn call<'a>(&self, method: reqwest::Method, segments: &[&str]) -> Call<'a> {
        Call { method, url: self.url(segments), query: Vec::new(), form: Vec::new() }
    }

    /// Sends `call`, retrying 429 and 5xx with full-jitter backoff while the deadline allows.
    async fn send<T: DeserializeOwned>(&self, call: Call<'_>, deadline: Deadline) -> Result<T, TwilioError> {
        let mut attempt = 0;
        // Whether an attempt got no answer or a 5xx: Twilio may have carried it out.
        let mut maybe_done = false;
        loop {
            attempt += 1;
            let timeout = ATTEMPT_TIMEOUT.min(deadline.remaining());
            let mut request = self
                .http
                .request(call.method.clone(), &call.url)
                .basic_auth(self.key_sid.as_str(), Some(self.key_secret.expose_secret()))
                .timeout(timeout);
            if !call.query.is_empty() {
                request = request.query(&call.query);
            }
            if call.method == reqwest::Method::POST {
                let body = serde_urlencoded::to_string(&call.form).map_err(|e| TwilioError::Decode(Box::new(e)))?;
                request = request.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
            }
            let outcome = request.send().await;
            let (status, retry_after, source) = match outcome {
                Ok(response) if response.status().is_success() => {
                    if response.status() == reqwest::StatusCode::NO_CONTENT {
                        return serde_json::from_str("null").map_err(|e| TwilioError::Decode(Box::new(e)));
                    }
                    let bytes = response.bytes().await.map_err(|e| TwilioError::Unavailable {
                        status: None,
                        retry_after: None,
                        source: Some(e),
                    })?;
                    return serde_json::from_slice(&bytes).map_err(|e| TwilioError::Decode(Box::new(e)));
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u32>().ok());
                    let body: Option<ErrorBody> = response.json().await.ok();
                    let code = body.as_ref().and_then(|b| b.code);
                    let retryable = status == 429 || code == Some(codes::RATE_LIMITED) || status >= 500;
                    if !retryable {
                        let message = body.and_then(|b| b.message).unwrap_or_default();
                        return Err(TwilioError::Api { status, code: code.unwrap_or(0), message, retried: maybe_done });
                    }
                    maybe_done |= status >= 500;
                    (Some(status), retry_after, None)
                }
                Err(e) => {
                    maybe_done = true;
                    (None, None, Some(e))
                }
            };
            let backoff = full_jitter(attempt).max(Duration::from_secs(u64::from(retry_after.unwrap_or(0))));
            let attempts = if status == Some(429) { self.rate_limited_attempts } else { MAX_ATTEMPTS };
            if attempt >= attempts || backoff + Duration::from_millis(200) >= deadline.remaining() {
                return Err(TwilioError::Unavailable { status, retry_after, source });
            }
            tracing::warn!(status, attempt, backoff_ms = backoff.as_millis() as u64, "Twilio call retried");
            tokio::time::sleep(backoff).await;
        }
    }

    /// Every page of a list, following `meta.next_page_url`.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        first: Call<'_>,
        key: &str,
        deadline: Deadline,
    ) -> Result<Vec<T>, TwilioError> {
        let mut page = self.page(first, key, deadline).await?;
        let mut items = std::mem::take(&mut page.items);
        while let Some(next) = page.next_page_url.take() {
            page = self
                .page(
                    Call { method: reqwest::Method::GET, url: next, query: Vec::new(), form: Vec::new() },
                    key,
                    deadline,
                )
                .await?;
            items.append(&mut page.items);
        }
        Ok(items)
    }

    async fn page<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        key: &str,
        deadline: Deadline,
    ) -> Result<Page<T>, TwilioError> {
        let mut body: serde_json::Map<String, serde_json::Value> = self.send(call, deadline).await?;
        let items =
            body.remove(key).map(serde_json::from_value).transpose().map_err(|e| TwilioError::Decode(Box::new(e)))?;
        let meta: Option<Meta> = body
            .remove("meta")
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| TwilioError::Decode(Box::new(e)))?;
        Ok(Page { items: items.unwrap_or_default(), next_page_url: meta.and_then(|m| m.next_page_url) })
    }

    pub async fn create_conversation(
        &self,
        unique_name: Option<&str>,
        friendly_name: &str,
        attributes: &serde_json::Value,
        deadline: Deadline,
    ) -> Result<Conversation, TwilioError> {
        let mut call = self.call(reqwest::Method::POST, &["Conversations"]);
        call.form.push(("FriendlyName", friendly_name.to_owned()));
        call.form.push(("Attributes", attributes.to_string()));
        if let Some(name) = unique_name {
            call.form.push(("UniqueName", name.to_owned()));
        }
        self.send(call, deadline).await
    }

    /// Posts a message as `author` (the back end speaking for a user; pre-event webhooks do not
    /// fire for REST calls). For seeding demonstrations and tests.
    pub async fn post_message(
        &self,
        conversation: &str,
        author: &str,
        body: &str,
        attributes: &serde_json::Value,
        deadline: Deadline,
    ) -> Result<Message, TwilioError> {
        let mut call = self.call(reqwest::Method::POST, &["Conversations", conversation, "Messages"]);
        call.form.push(("Author", author.to_owned()));
        call.form.push(("Body", body.to_owned()));
        call.form.push(("Attributes", attributes.to_string()));
        self.send(call, deadline).await
    }

    /// Deletes one message (the post-event backstop); `false` when it was gone already.
    pub async fn delete_message(
        &self,
        conversation: &str,
        message_sid: &str,
        deadline: Deadline,
    ) -> Result<bool, TwilioError> {
        let call = self.call(reqwest::Method::DELETE, &["Conversations", conversation, "Messages", message_sid]);
        let deleted: Option<Option<serde_json::Value>> = not_found_is_none(self.send(call, deadline).await)?;
        Ok(deleted.is_some())
    }

    /// By SID or unique name; `None` when there is none.
    pub async fn fetch_conversation(
        &self,
        sid_or_unique_name: &str,
        deadline: Deadline,
    ) -> Result<Option<Conversation>, TwilioError> {
        not_found_is_none(
            self.send(self.call(reqwest::Method::GET, &["Conversations", sid_or_unique_name]), deadline).await,
        )
    }

    /// Gives the conversation `sid` the unique name `unique_name` (50353 when another has it).
    pub async fn rename_conversation(
        &self,
        sid: &str,
        unique_name: &str,
        deadline: Deadline,
    ) -> Result<Conversation, TwilioError> {
        let mut call = self.call(reqwest::Method::POST, &["Conversations", sid]);
        call.form.push(("UniqueName", unique_name.to_owned()));
        self.send(call, deadline).await
    }

    pub async fn list_conversations(&self, deadline: Deadline) -> Result<Vec<Conversation>, TwilioError> {
        let mut call = self.call(reqwest::Method::GET, &["Conversations"]);
        call.query.push(("PageSize", "100".into()));
        self.all_pages(call, "conversations", deadline).await
    }

    pub async fn delete_conversation(&self, sid_or_unique_name: &str, deadline: Deadline) -> Result<(), TwilioError> {
        let _: Option<serde_json::Value> =
            self.send(self.call(reqwest::Method::DELETE, &["Conversations", sid_or_unique_name]), deadline).await?;
        Ok(())
    }

    /// The conversation's participants (by SID or unique name); `None` when there is no conversation.
    pub async fn participants(
        &self,
        conversation: &str,
        deadline: Deadline,
    ) -> Result<Option<Vec<Participant>>, TwilioError> {
        let mut call = self.call(reqwest::Method::GET, &["Conversations", conversation, "Participants"]);
        call.query.push(("PageSize", "100".into()));
        not_found_is_none(self.all_pages(call, "participants", deadline).await)
    }

    /// Adds `identity`; fails with code 50433 when it is already a participant.
    pub async fn add_participant(
        &self,
        conversation: &str,
        identity: &str,
        deadline: Deadline,
    ) -> Result<Participant, TwilioError> {
        let mut call = self.call(reqwest::Method::POST, &["Conversations", conversation, "Participants"]);
        call.form.push(("Identity", identity.to_owned()));
        self.send(call, deadline).await
    }

    /// Sets the participant's read horizon: the index of the last message it has read.
    pub async fn set_last_read(
        &self,
        conversation: &str,
        participant_sid: &str,
        index: u64,
        deadline: Deadline,
    ) -> Result<Participant, TwilioError> {
        let mut call =
            self.call(reqwest::Method::POST, &["Conversations", conversation, "Participants", participant_sid]);
        call.form.push(("LastReadMessageIndex", index.to_string()));
        self.send(call, deadline).await
    }

    /// Creates the user with `role_sid`; fails with code 50201 when it exists.
    pub async fn create_user(&self, identity: &str, role_sid: &str, deadline: Deadline) -> Result<(), TwilioError> {
        let mut call = self.call(reqwest::Method::POST, &["Users"]);
        call.form.push(("Identity", identity.to_owned()));
        call.form.push(("RoleSid", role_sid.to_owned()));
        let _: serde_json::Value = self.send(call, deadline).await?;
        Ok(())
    }

    /// One page (at most 50) of the user's conversations, the first or the one Twilio's `Page` and
    /// `PageToken` name; `None` when Twilio has no such user. The URL is always built here.
    pub async fn user_conversations(
        &self,
        identity: &str,
        page: Option<(&str, &str)>,
        deadline: Deadline,
    ) -> Result<Option<Page<UserConversation>>, TwilioError> {
        let mut call = self.call(reqwest::Method::GET, &["Users", identity, "Conversations"]);
        call.query.push(("PageSize", "50".into()));
        if let Some((page, token)) = page {
            call.query.push(("Page", page.to_owned()));
            call.query.push(("PageToken", token.to_owned()));
        }
        not_found_is_none(self.page(call, "conversations", deadline).await)
    }

    /// Every conversation the user is in (all pages); `None` when Twilio has no such user.
    pub async fn all_user_conversations(
        &self,
        identity: &str,
        deadline: Deadline,
    ) -> Result<Option<Vec<UserConversation>>, TwilioError> {
        let mut call = self.call(reqwest::Method::GET, &["Users", identity, "Conversations"]);
        call.query.push(("PageSize", "50".into()));
        not_found_is_none(self.all_pages(call, "conversations", deadline).await)
    }

    /// Removes the user `identity` from the conversation (SID or unique name): Twilio deletes the
    /// participant, who gets no new messages; their earlier messages stay. `false` when there was
    /// nothing to remove (no such user, conversation or participant).
    pub async fn remove_user_from_conversation(
        &self,
        identity: &str,
        conversation: &str,
        deadline: Deadline,
    ) -> Result<bool, TwilioError> {
        let call = self.call(reqwest::Method::DELETE, &["Users", identity, "Conversations", conversation]);
        let removed: Option<Option<serde_json::Value>> = not_found_is_none(self.send(call, deadline).await)?;
        Ok(removed.is_some())
    }

    /// The `count` latest messages, oldest first.
    pub async fn last_messages(
        &self,
        conversation: &str,
        count: u8,
        deadline: Deadline,
    ) -> Result<Vec<Message>, TwilioError> {
        let mut call = self.call(reqwest::Method::GET, &["Conversations", conversation, "Messages"]);
        call.query.push(("Order", "desc".into()));
        call.query.push(("PageSize", count.to_string()));
        let mut page: Page<Message> = self.page(call, "messages", deadline).await?;
        page.items.reverse();
        Ok(page.items)
    }

    pub async fn roles(&self, deadline: Deadline) -> Result<Vec<Role>, TwilioError> {
        let mut call = self.call(reqwest::Method::GET, &["Roles"]);
        call.query.push(("PageSize", "50".into()));
        self.all_pages(call, "roles", deadline).await
    }

    pub async fn create_role(
        &self,
        name: &str,
        kind: &str,
        permissions: &[&str],
        deadline: Deadline,
    ) -> Result<Role, TwilioError> {
        let mut call = self.call(reqwest::Method::POST, &["Roles"]);
        call.form.push(("FriendlyName", name.to_owned()));
        call.form.push(("Type", kind.to_owned()));
        call.form.extend(permissions.iter().map(|p| ("Permission", (*p).to_owned())));
        self.send(call, deadline).await
    }

    /// The user `identity`; `None` when Twilio has none.
    pub async fn fetch_user(&self, identity: &str, deadline: Deadline) -> Result<Option<User>, TwilioError> {
        not_found_is_none(self.send(self.call(reqwest::Method::GET, &["Users", identity]), deadline).await)
    }

    /// Gives the user `identity` the service role `role_sid`.
    pub async fn set_user_role(&self, identity: &str, role_sid: &str, deadline: Deadline) -> Result<(), TwilioError> {
        let mut call = self.call(reqwest::Method::POST, &["Users", identity]);
        call.form.push(("RoleSid", role_sid.to_owned()));
        let _: serde_json::Value = self.send(call, deadline).await?;
        Ok(())
    }

    /// Replaces a role's permissions.
    pub async fn update_role(&self, sid: &str, permissions: &[&str], deadline: Deadline) -> Result<Role, TwilioError> {
        let mut call = self.call(reqwest::Method::POST, &["Roles", sid]);
        call.form.extend(permissions.iter().map(|p| ("Permission", (*p).to_owned())));
        self.send(call, deadline).await
    }

    pub async fn configuration(&self, deadline: Deadline) -> Result<ServiceConfiguration, TwilioError> {
        self.send(self.call(reqwest::Method::GET, &["Configuration"]), deadline).await
    }

    /// Sets the service's default roles: users on first connect, participants, creators.
    pub async fn set_default_roles(
        &self,
        service_role: &str,
        conversation_role: &str,
        creator_role: &str,
        deadline: Deadline,
    ) -> Result<ServiceConfiguration, TwilioError> {
        let mut call = self.call(reqwest::Method::POST, &["Configuration"]);
        call.form.push(("DefaultChatServiceRoleSid", service_role.to_owned()));
        call.form.push(("DefaultConversationRoleSid", conversation_role.to_owned()));
        call.form.push(("DefaultConversationCreatorRoleSid", creator_role.to_owned()));
        self.send(call, deadline).await
    }

    /// Points the pre- and post-event webhooks at `url` with `filters` (both kinds in one list).
    pub async fn set_webhooks(&self, url: &str, filters: &[&str], deadline: Deadline) -> Result<Webhooks, TwilioError> {
        let mut call = self.call(reqwest::Method::POST, &["Configuration", "Webhooks"]);
        call.form.push(("PreWebhookUrl", url.to_owned()));
        call.form.push(("PostWebhookUrl", url.to_owned()));
        call.form.push(("Method", "POST".to_owned()));
        call.form.extend(filters.iter().map(|f| ("Filters", (*f).to_owned())));
        self.send(call, deadline).await
    }

    pub async fn webhooks(&self, deadline: Deadline) -> Result<Webhooks, TwilioError> {
        self.send(self.call(reqwest::Method::GET, &["Configuration", "Webhooks"]), deadline).await
    }
}

fn not_found_is_none<T>(result: Result<T, TwilioError>) -> Result<Option<T>, TwilioError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(TwilioError::Api { code: codes::NOT_FOUND, .. } | TwilioError::Api { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A random wait in `0..=min(cap, base * 2^(attempt-1))`.
fn full_jitter(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.saturating_sub(1).min(10)).min(BACKOFF_CAP);
    Duration::from_millis(rand::random_range(0..=ceiling.as_millis() as u64))
}

/// Everything but RFC 3986's unreserved characters is encoded in a path segment.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode_segment(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("u-1_a.b~c"), "u-1_a.b~c");
        assert_eq!(encode_segment("a/b c#?é"), "a%2Fb%20c%23%3F%C3%A9");
    }

    #[test]
    fn jitter_stays_under_the_cap() {
        for attempt in 1..20 {
            assert!(full_jitter(attempt) <= BACKOFF_CAP);
        }
    }
}
