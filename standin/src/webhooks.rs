//! The service's pre- and post-event webhooks: the parameters Twilio sends, signed as Twilio
//! signs them, with Twilio's verdict rules, and a record of every delivery.
//!
//! Twilio's rules, as the stand-in keeps them: a pre-event (`onMessageAdd`, …) goes out before
//! the action when the service has a `PreWebhookUrl` and the event is in its `Filters`; a 2xx
//! answer lets the action through, any other status refuses it, and no answer within the
//! pre-event timeout (default 5 s) lets it through unchanged (fail-open). A webhook that cannot
//! be reached at all is treated like one that does not answer. A post-event (`onMessageAdded`,
//! …) goes out after the action, in the background, and its answer is ignored. REST calls never
//! fire pre-events, and fire post-events (`Source=API`, no `ClientIdentity`) only when the
//! request carries `X-Twilio-Webhook-Enabled: true`. A 2xx answer's JSON body (Twilio would apply
//! its `Body` or `Attributes`) is ignored: the action is published as the client asked.

use std::sync::Arc;

use base64::Engine as _;
use hyper::Method;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use ring::hmac;

use crate::Shared;
use crate::error::Rejection;
use crate::harness::lock;
use crate::model::{Conversation, Message, Participant};
use crate::outbound;
use crate::state::iso8601;

/// The header Twilio signs webhooks with.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The REST request header that makes Twilio fire post-events for the call (when `true`).
pub(crate) const WEBHOOK_ENABLED_HEADER: &str = "x-twilio-webhook-enabled";

/// An event and its own parameters (those every event carries are added on delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub name: &'static str,
    pub params: Vec<(String, String)>,
}

impl Event {
    pub fn new(name: &'static str) -> Self {
        Self { name, params: Vec::new() }
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.push((name.to_owned(), value.into()));
        self
    }

    /// Adds the parameter only when there is a value.
    pub fn with_some(self, name: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(value) => self.with(name, value),
            None => self,
        }
    }
}

/// Whether Twilio waits for the webhook's verdict (pre) or only tells it (post).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The webhook answered with this HTTP status.
    Answered(u16),
    /// No answer within the pre-event timeout (post-events are bounded by it too).
    TimedOut,
    /// The URL could not be reached (or is not plain `http://`); the reason, for test messages.
    Unreachable(String),
}

/// One webhook delivery as the stand-in made it, for tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `onMessageAdd`, `onMessageAdded`, …: also the `EventType` parameter.
    pub event_type: String,
    pub phase: Phase,
    /// The configured URL (a `GET` delivery adds the parameters as its query).
    pub url: String,
    /// `POST` (form body) or `GET` (query), as the webhook configuration's `Method` says.
    pub method: String,
    /// Every parameter, in the order sent.
    pub params: Vec<(String, String)>,
    /// The `X-Twilio-Signature` sent; `None` when the stand-in has no auth token to sign with.
    pub signature: Option<String>,
    pub outcome: Outcome,
}

impl Delivery {
    /// The value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The status the webhook answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Answered(status) => Some(status),
            _ => None,
        }
    }
}

/// base64(HMAC-SHA1(auth token, URL + each name and value, sorted by name)): Twilio's
/// `X-Twilio-Signature` of a form-encoded POST to `url` (for a GET, `params` is empty and `url`
/// carries the query).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut signed = url.to_owned();
    for (name, value) in sorted {
        signed.push_str(name);
        signed.push_str(value);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, signed.as_bytes()).as_ref())
}

/// Offers the action to the pre-event webhook, if one listens for `event`; `Err` when it refuses.
pub(crate) async fn pre_event(shared: &Shared, actor: &str, event: Event) -> Result<(), Rejection> {
    let Some(target) = target(shared, Phase::Pre, event.name) else { return Ok(()) };
    match deliver(shared, Phase::Pre, &target, Some(actor), event).await {
        Outcome::Answered(status) if !(200..300).contains(&status) => Err(Rejection::rejected_by_webhook()),
        // 2xx allows; silence (or no way through) publishes the action unchanged, as Twilio does.
        _ => Ok(()),
    }
}

/// Tells the post-event webhook, if one listens for `event`, in the background. `actor` is the
/// SDK identity that acted (`Source=SDK`, `ClientIdentity`), or `None` for a REST call (`Source=API`).
pub(crate) fn post_event(shared: &Arc<Shared>, actor: Option<&str>, event: Event) {
    let Some(target) = target(shared, Phase::Post, event.name) else { return };
    let shared = shared.clone();
    let actor = actor.map(str::to_owned);
    tokio::spawn(async move {
        deliver(&shared, Phase::Post, &target, actor.as_deref(), event).await;
    });
}

/// Where a webhook for `event` goes, and how.
#[derive(Debug)]
struct Target {
    url: String,
    method: Method,
}

fn target(shared: &Shared, phase: Phase, event: &str) -> Option<Target> {
    let state = lock(&shared.state);
    let webhooks = state.webhooks();
    let url = match phase {
        Phase::Pre => webhooks.pre_webhook_url.as_ref(),
        Phase::Post => webhooks.post_webhook_url.as_ref(),
    }?;
    if !webhooks.filters.iter().any(|f| f == event) {
        return None;
    }
    let method = if webhooks.method.as_deref() == Some("GET") { Method::GET } else { Method::POST };
    Some(Target { url: url.clone(), method })
}

async fn deliver(shared: &Shared, phase: Phase, target: &Target, actor: Option<&str>, event: Event) -> Outcome {
    let mut params = common_params(shared, event.name, actor);
    params.extend(event.params);
    let encoded = serde_urlencoded::to_string(&params).unwrap_or_default();
    let (url, body, signed_params): (String, Bytes, &[(String, String)]) = if target.method == Method::GET {
        let separator = if target.url.contains('?') { '&' } else { '?' };
        (format!("{}{separator}{encoded}", target.url), Bytes::new(), &[])
    } else {
        (target.url.clone(), Bytes::from(encoded), &params)
    };
    let signature = shared.auth_token.as_deref().map(|token| signature(token, &url, signed_params));
    let mut headers = vec![(USER_AGENT, HeaderValue::from_static("TwilioProxy/1.1"))];
    if target.method == Method::POST {
        headers.push((CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8")));
    }
    if let Some(value) = signature.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
        headers.push((HeaderName::from_static("x-twilio-signature"), value));
    }
    let sent = outbound::send(target.method.clone(), &url, &headers, body);
    let outcome = match tokio::time::timeout(shared.pre_event_timeout, sent).await {
        Ok(Ok(reply)) => Outcome::Answered(reply.status),
        Ok(Err(e)) => Outcome::Unreachable(error_chain(&e)),
        Err(_) => Outcome::TimedOut,
    };
    lock(&shared.deliveries).push(Delivery {
        event_type: event.name.to_owned(),
        phase,
        url: target.url.clone(),
        method: target.method.as_str().to_owned(),
        params,
        signature,
        outcome: outcome.clone(),
    });
    outcome
}

/// What every event carries: its type, where it came from and the service it is in.
fn common_params(shared: &Shared, event: &str, actor: Option<&str>) -> Vec<(String, String)> {
    let source = if actor.is_some() { "SDK" } else { "API" };
    let mut params = vec![("EventType", event), ("Source", source)];
    if let Some(actor) = actor {
        params.push(("ClientIdentity", actor));
    }
    params.extend([
        ("AccountSid", shared.account_sid.as_str()),
        ("ChatServiceSid", shared.service_sid.as_str()),
        ("RetryCount", "0"),
    ]);
    params.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

// ---- post-event parameters: the resulting resource ----

pub(crate) fn conversation_event(name: &'static str, c: &Conversation) -> Event {
    Event::new(name)
        .with("ConversationSid", &c.sid)
        .with_some("UniqueName", c.unique_name.clone())
        .with_some("FriendlyName", c.friendly_name.clone())
        .with("Attributes", &c.attributes)
        .with("State", &c.state)
        .with("DateCreated", iso8601(c.date_created))
        .with("DateUpdated", iso8601(c.date_updated))
}

pub(crate) fn participant_event(name: &'static str, p: &Participant) -> Event {
    Event::new(name)
        .with("ConversationSid", &p.conversation_sid)
        .with("ParticipantSid", &p.sid)
        .with("Identity", &p.identity)
        .with_some("RoleSid", p.role_sid.clone())
        .with("Attributes", &p.attributes)
        .with("DateCreated", iso8601(p.date_created))
}

pub(crate) fn message_event(name: &'static str, m: &Message) -> Event {
    Event::new(name)
        .with("ConversationSid", &m.conversation_sid)
        .with("MessageSid", &m.sid)
        .with("Index", m.index.to_string())
        .with("Author", &m.author)
        .with_some("Body", m.body.clone())
        .with("Attributes", &m.attributes)
        .with_some("ParticipantSid", m.participant_sid.clone())
        .with("DateCreated", iso8601(m.date_created))
        .with("DateUpdated", iso8601(m.date_updated))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// The example of Twilio's webhook-security guide, as its helper libraries test it.
    #[test]
    fn the_signature_matches_twilios_documented_example() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }

    #[test]
    fn parameters_are_signed_sorted_by_name_whatever_order_they_are_sent_in() {
        let sent = pairs(&[("b", "2"), ("a", "1")]);
        let sorted = pairs(&[("a", "1"), ("b", "2")]);
        assert_eq!(signature("t", "http://h/x", &sent), signature("t", "http://h/x", &sorted));
        assert_ne!(signature("t", "http://h/x", &sent), signature("u", "http://h/x", &sent));
    }
}
