//! The HTTP face of the stand-in: basic auth, injected faults, outages, lost responses,
//! recording, form parsing, the routes of the Conversations v1 paths chatgate uses, and the
//! post-events of REST calls that ask for them.

use std::sync::Arc;

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::Value;
use tokio::time::Instant;

use crate::error::{Rejection, codes};
use crate::harness::lock;
use crate::paging::{PageRequest, page_body};
use crate::state::{Form, State, new_sid};
use crate::webhooks::{self, Event, WEBHOOK_ENABLED_HEADER, conversation_event, message_event, participant_event};
use crate::{Fault, Recorded, Shared, sdk};

const MAX_BODY: usize = 1024 * 1024;
/// Where the SDK face's routes live, beside the REST face's `/v1/…`.
pub(crate) const SDK_PREFIX: &str = "/sdk/";
/// Page-size ceilings, per list, as the spec's `PageSize.maximum` gives them.
const CONVERSATIONS_MAX: usize = 100;
const PARTICIPANTS_MAX: usize = 100;
const MESSAGES_MAX: usize = 100;
const USERS_MAX: usize = 50;
const USER_CONVERSATIONS_MAX: usize = 50;
const ROLES_MAX: usize = 50;
/// The rate-limit bucket of service-wide creates (conversations, users, roles).
const SERVICE_BUCKET: &str = "service";
/// What `/v1/{…}` serves as the account's default service (the one service there is).
const DEFAULT_SERVICE_RESOURCES: [&str; 3] = ["Conversations", "Users", "Roles"];

pub(crate) type StandInResponse = Response<Full<Bytes>>;

/// What a request asked for, parsed once.
pub(crate) struct Call {
    pub method: Method,
    /// As sent: still percent-encoded, without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The query string could not be parsed (`query` is then empty).
    pub bad_query: bool,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    /// The request read whole; refused when its body cannot be read or is too large.
    pub async fn read(request: Request<Incoming>) -> Result<Self, Rejection> {
        let (parts, body) = request.into_parts();
        let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(Rejection::invalid("Unreadable body")),
        };
        let query = parts.uri.query().map(serde_urlencoded::from_str::<Vec<(String, String)>>);
        let (query, bad_query) = match query {
            None => (Vec::new(), false),
            Some(Ok(pairs)) => (pairs, false),
            Some(Err(_)) => (Vec::new(), true),
        };
        Ok(Self {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query,
            bad_query,
            headers: parts.headers,
            body,
        })
    }
}

pub(crate) enum Answer {
    Json(StatusCode, Value),
    NoContent,
    Rejected(Rejection),
}

impl From<Rejection> for Answer {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected(rejection)
    }
}

pub(crate) fn ok(value: Value) -> Result<Answer, Rejection> {
    Ok(Answer::Json(StatusCode::OK, value))
}

pub(crate) fn created(value: Value) -> Result<Answer, Rejection> {
    Ok(Answer::Json(StatusCode::CREATED, value))
}

pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> StandInResponse {
    // The SDK face is another client's traffic: not chatgate's REST calls, so not recorded,
    // delayed, faulted or counted in flight.
    if request.uri().path().starts_with(SDK_PREFIX) {
        return sdk::face::handle(shared, request).await;
    }
    let arrived = Instant::now();
    let _in_flight = shared.in_flight.enter();
    let path = request.uri().path().to_owned();
    let call = match Call::read(request).await {
        Ok(call) => call,
        Err(rejection) => return respond(&path, Answer::Rejected(rejection)),
    };
    shared.delay.wait().await;
    shared.slow.wait(call.method.as_str(), &call.path).await;
    let served = if call.bad_query {
        Served::refused(Rejection::invalid("Malformed query string"), Form::default())
    } else {
        answer(&shared, &call, arrived)
    };
    if webhooks_enabled(&call.headers) {
        for event in served.posts {
            webhooks::post_event(&shared, None, event);
        }
    }
    let response = respond(&call.path, served.answer);
    record(&shared, &call, served.form, response.status().as_u16());
    response
}

/// What a REST request came to: the answer, the form it carried, and the post-events of what it
/// did (sent only when the request asks for them).
struct Served {
    answer: Answer,
    form: Form,
    posts: Vec<Event>,
}

impl Served {
    fn refused(rejection: Rejection, form: Form) -> Self {
        Self { answer: rejection.into(), form, posts: Vec::new() }
    }
}

/// Everything up to the resource: auth, the form, outages and faults, then the request is carried
/// out, and its answer may be lost.
fn answer(shared: &Shared, call: &Call, arrived: Instant) -> Served {
    let method = call.method.as_str();
    if !authenticated(shared, &call.headers) {
        return Served::refused(Rejection::unauthenticated(), Form::default());
    }
    let form = match parse_form(call) {
        Ok(form) => form,
        Err(rejection) => return Served::refused(rejection, Form::default()),
    };
    let fault = shared.outages.pick(arrived, method, &call.path).or_else(|| shared.pick_fault(method, &call.path));
    if let Some(fault) = fault {
        return Served::refused(fault.rejection(), form);
    }
    let mut posts = Vec::new();
    let mut answer = carry_out(shared, call, &form, &mut posts);
    if shared.pick_loss(method, &call.path) {
        answer = Fault::BAD_GATEWAY.rejection().into();
    }
    Served { answer, form, posts }
}

/// The service's resource the path names, done: the answer, with its post-events in `posts`.
fn carry_out(shared: &Shared, call: &Call, form: &Form, posts: &mut Vec<Event>) -> Answer {
    let Some(segments) = segments(&call.path) else { return Rejection::not_found().into() };
    let rest = match segments.as_slice() {
        [v1, services, service, rest @ ..]
            if v1 == "v1" && services == "Services" && *service == shared.service_sid =>
        {
            rest
        }
        // Twilio's paths without a service are those of the account's default service.
        [v1, rest @ ..]
            if v1 == "v1" && rest.first().is_some_and(|r| DEFAULT_SERVICE_RESOURCES.contains(&r.as_str())) =>
        {
            rest
        }
        _ => return Rejection::not_found().into(),
    };
    let list_url = format!("{}{}", shared.base_url, call.path);
    let mut state = lock(&shared.state);
    route(&mut state, call, rest, form, &list_url, posts).unwrap_or_else(Answer::Rejected)
}

/// `X-Twilio-Webhook-Enabled: true`: the REST call fires post-event webhooks.
fn webhooks_enabled(headers: &HeaderMap) -> bool {
    headers
        .get(WEBHOOK_ENABLED_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn authenticated(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(credentials) = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
    else {
        return false;
    };
    credentials
        .split_once(':')
        .is_some_and(|(user, password)| user == shared.api_key_sid && password == shared.api_key_secret)
}

/// The form of a POST; other methods have none. A body that is not form-encoded is refused.
pub(crate) fn parse_form(call: &Call) -> Result<Form, Rejection> {
    if call.method != Method::POST || call.body.is_empty() {
        return Ok(Form::default());
    }
    let content_type = call.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(Rejection::unsupported_media_type());
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&call.body)
        .map(Form)
        .map_err(|_| Rejection::invalid("Malformed form body"))
}

/// The path's segments, percent-decoded one by one (an encoded `/` stays inside its segment).
pub(crate) fn segments(path: &str) -> Option<Vec<String>> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8().ok().map(|s| s.into_owned()))
        .collect()
}

/// The resource's operation; what it did goes into `posts` as post-events.
fn route(
    state: &mut State,
    call: &Call,
    rest: &[String],
    form: &Form,
    list_url: &str,
    posts: &mut Vec<Event>,
) -> Result<Answer, Rejection> {
    let method = &call.method;
    let query = &call.query;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (rest.as_slice(), method) {
        (["Conversations"], &Method::GET) => {
            let page = PageRequest::parse(query, CONVERSATIONS_MAX)?;
            let wanted = query.iter().find(|(k, _)| k == "State").map(|(_, v)| v.as_str());
            let items = state
                .conversations()
                .iter()
                .filter(|c| wanted.is_none_or(|s| c.state == s))
                .map(|c| state.conversation_json(c))
                .collect();
            ok(page_body("conversations", items, page, list_url, query))
        }
        (["Conversations"], &Method::POST) => {
            state.check_rate(SERVICE_BUCKET)?;
            let conversation = state.create_conversation(form)?;
            posts.push(conversation_event("onConversationAdded", &conversation));
            created(state.conversation_json(&conversation))
        }
        (["Conversations", key], &Method::GET) => {
            let conversation = state.conversation(key).ok_or_else(Rejection::not_found)?;
            ok(state.conversation_json(conversation))
        }
        (["Conversations", key], &Method::POST) => {
            let conversation = state.update_conversation(key, form)?;
            posts.push(conversation_event("onConversationUpdated", &conversation));
            ok(state.conversation_json(&conversation))
        }
        (["Conversations", key], &Method::DELETE) => {
            let conversation = state.delete_conversation(key)?;
            posts.push(conversation_event("onConversationRemoved", &conversation));
            Ok(Answer::NoContent)
        }
        (["Conversations", key, "Participants"], &Method::GET) => {
            let page = PageRequest::parse(query, PARTICIPANTS_MAX)?;
            let conversation = state.conversation(key).ok_or_else(Rejection::not_found)?;
            let items = conversation.participants.iter().map(|p| state.participant_json(p)).collect();
            ok(page_body("participants", items, page, list_url, query))
        }
        (["Conversations", key, "Participants"], &Method::POST) => {
            conversation_rate(state, key)?;
            let participant = state.add_participant(key, form)?;
            posts.push(participant_event("onParticipantAdded", &participant));
            created(state.participant_json(&participant))
        }
        (["Conversations", key, "Participants", participant], &Method::GET) => {
            ok(state.participant_json(state.participant(key, participant)?))
        }
        (["Conversations", key, "Participants", participant], &Method::POST) => {
            conversation_rate(state, key)?;
            let participant = state.update_participant(key, participant, form)?;
            posts.push(participant_event("onParticipantUpdated", &participant));
            ok(state.participant_json(&participant))
        }
        (["Conversations", key, "Participants", participant], &Method::DELETE) => {
            conversation_rate(state, key)?;
            let participant = state.remove_participant(key, participant)?;
            posts.push(participant_event("onParticipantRemoved", &participant));
            Ok(Answer::NoContent)
        }
        (["Conversations", key, "Messages"], &Method::GET) => {
            let page = PageRequest::parse(query, MESSAGES_MAX)?;
            let descending = match query.iter().find(|(k, _)| k == "Order").map(|(_, v)| v.as_str()) {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => return Err(Rejection::invalid(format!("Order must be asc or desc, not {other:?}"))),
            };
            let conversation = state.conversation(key).ok_or_else(Rejection::not_found)?;
            let mut items: Vec<Value> = conversation.messages.iter().map(|m| state.message_json(m)).collect();
            if descending {
                items.reverse();
            }
            ok(page_body("messages", items, page, list_url, query))
        }
        (["Conversations", key, "Messages"], &Method::POST) => {
            conversation_rate(state, key)?;
            let message = state.add_message(key, form)?;
            posts.push(message_event("onMessageAdded", &message));
            created(state.message_json(&message))
        }
        (["Conversations", key, "Messages", sid], &Method::GET) => ok(state.message_json(state.message(key, sid)?)),
        (["Conversations", key, "Messages", sid], &Method::POST) => {
            conversation_rate(state, key)?;
            let message = state.update_message(key, sid, form)?;
            posts.push(message_event("onMessageUpdated", &message));
            ok(state.message_json(&message))
        }
        (["Conversations", key, "Messages", sid], &Method::DELETE) => {
            conversation_rate(state, key)?;
            let message = state.remove_message(key, sid)?;
            posts.push(message_event("onMessageRemoved", &message));
            Ok(Answer::NoContent)
        }
        (["Users"], &Method::GET) => {
            let page = PageRequest::parse(query, USERS_MAX)?;
            let items = state.users().iter().map(|u| state.user_json(u)).collect();
            ok(page_body("users", items, page, list_url, query))
        }
        (["Users"], &Method::POST) => {
            state.check_rate(SERVICE_BUCKET)?;
            let user = state.create_user(form)?;
            created(state.user_json(&user))
        }
        (["Users", key], &Method::GET) => ok(state.user_json(state.user(key).ok_or_else(Rejection::not_found)?)),
        (["Users", key], &Method::POST) => {
            let user = state.update_user(key, form)?;
            ok(state.user_json(&user))
        }
        (["Users", key], &Method::DELETE) => {
            state.delete_user(key)?;
            Ok(Answer::NoContent)
        }
        (["Users", key, "Conversations"], &Method::GET) => {
            let page = PageRequest::parse(query, USER_CONVERSATIONS_MAX)?;
            let user = state.user(key).ok_or_else(Rejection::not_found)?;
            let items = state.user_conversations_json(user, None);
            ok(page_body("conversations", items, page, list_url, query))
        }
        (["Users", key, "Conversations", conversation], &Method::GET) => {
            let user = state.user(key).ok_or_else(Rejection::not_found)?;
            let item = state.user_conversations_json(user, Some(conversation)).into_iter().next();
            ok(item.ok_or_else(Rejection::not_found)?)
        }
        // Twilio removes the user's participant from the conversation (SID or unique name).
        (["Users", key, "Conversations", conversation], &Method::DELETE) => {
            let identity = state.user(key).ok_or_else(Rejection::not_found)?.identity.clone();
            conversation_rate(state, conversation)?;
            let participant = state.remove_participant(conversation, &identity)?;
            posts.push(participant_event("onParticipantRemoved", &participant));
            Ok(Answer::NoContent)
        }
        (["Roles"], &Method::GET) => {
            let page = PageRequest::parse(query, ROLES_MAX)?;
            let items = state.roles().iter().map(|r| state.role_json(r)).collect();
            ok(page_body("roles", items, page, list_url, query))
        }
        (["Roles"], &Method::POST) => {
            state.check_rate(SERVICE_BUCKET)?;
            let role = state.create_role(form)?;
            created(state.role_json(&role))
        }
        (["Roles", sid], &Method::GET) => ok(state.role_json(state.role(sid).ok_or_else(Rejection::not_found)?)),
        (["Roles", sid], &Method::POST) => {
            let role = state.update_role(sid, form)?;
            ok(state.role_json(&role))
        }
        (["Roles", sid], &Method::DELETE) => {
            state.delete_role(sid)?;
            Ok(Answer::NoContent)
        }
        (["Configuration"], &Method::GET) => ok(state.configuration_json()),
        (["Configuration"], &Method::POST) => {
            state.update_configuration(form)?;
            ok(state.configuration_json())
        }
        (["Configuration", "Webhooks"], &Method::GET) => ok(state.webhooks_json()),
        (["Configuration", "Webhooks"], &Method::POST) => {
            state.update_webhooks(form)?;
            ok(state.webhooks_json())
        }
        (path, _) if known_path(path) => Err(Rejection::method_not_allowed()),
        _ => Err(Rejection::not_found()),
    }
}

/// Participant and message writes count against the conversation (if there is one: an
/// unknown conversation is answered with 404 by the operation).
fn conversation_rate(state: &mut State, key: &str) -> Result<(), Rejection> {
    match state.conversation(key).map(|c| c.sid.clone()) {
        Some(sid) => state.check_rate(&sid),
        None => Ok(()),
    }
}

fn known_path(path: &[&str]) -> bool {
    matches!(
        path,
        ["Conversations"]
            | ["Conversations", _]
            | ["Conversations", _, "Participants" | "Messages"]
            | ["Conversations", _, "Participants" | "Messages", _]
            | ["Users"]
            | ["Users", _]
            | ["Users", _, "Conversations"]
            | ["Users", _, "Conversations", _]
            | ["Roles"]
            | ["Roles", _]
            | ["Configuration"]
            | ["Configuration", "Webhooks"]
    )
}

pub(crate) fn respond(path: &str, answer: Answer) -> StandInResponse {
    let (status, body, retry_after, authenticate) = match answer {
        Answer::Json(status, value) => (status, Some(value), None, false),
        Answer::NoContent => (StatusCode::NO_CONTENT, None, None, false),
        Answer::Rejected(mut rejection) => {
            if rejection.code == codes::NOT_FOUND && rejection.message.is_empty() {
                rejection.message = format!("The requested resource {path} was not found");
            }
            let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, Some(rejection.body()), rejection.retry_after, rejection.code == codes::AUTHENTICATE)
        }
    };
    let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let has_body = !bytes.is_empty();
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if has_body {
        headers.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Ok(id) = HeaderValue::from_str(&new_sid("RQ")) {
        headers.insert("twilio-request-id", id);
    }
    if let Some(seconds) = retry_after {
        headers.insert(hyper::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if authenticate {
        headers.insert(hyper::header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Twilio API\""));
    }
    response
}

fn record(shared: &Shared, call: &Call, form: Form, status: u16) {
    let headers = call
        .headers
        .iter()
        .map(|(name, value)| {
            // The secret stays out of recordings; whether auth was sent is still visible.
            let value = if name == hyper::header::AUTHORIZATION {
                "[redacted]".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect();
    let recorded = Recorded {
        method: call.method.as_str().to_owned(),
        path: call.path.clone(),
        query: call.query.clone(),
        form: form.0,
        headers,
        status,
    };
    lock(&shared.recorded).push(recorded);
}

impl Fault {
    pub(crate) fn message(self) -> &'static str {
        match self.code {
            codes::RATE_LIMITED => "Too Many Requests",
            codes::INTERNAL_ERROR => "Internal Server Error",
            codes::BAD_GATEWAY => "Bad Gateway",
            codes::SERVICE_UNAVAILABLE => "Service Unavailable",
            _ => "Injected fault",
        }
    }

    /// Twilio's error answer with this status and code.
    pub(crate) fn rejection(self) -> Rejection {
        Rejection::new(self.status, self.code, self.message())
    }
}
