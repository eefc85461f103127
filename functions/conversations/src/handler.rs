//! `POST /conversations` (create-or-join a direct, group, asset or room conversation) and
//! `GET /conversations` (the start-up listing). The back end puts users into conversations; users
//! get a restricted Twilio role that cannot create or join conversations on its own.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatgate::acl::AclReader;
use chatgate::auth::SessionRoutes;
use chatgate::config::{ConfigError, Settings, TwilioSecrets};
use chatgate::domain::{
    AssetId, ConversationKind, Identity, RoleSid, RoomName, asset_unique_name, conversation_attributes, decide,
    direct_unique_name, group_unique_name,
};
use chatgate::http::{self, ApiError};
use chatgate::twilio::rest::{ConversationsClient, Deadline, TwilioError, codes};
use futures_util::{StreamExt as _, TryStreamExt as _};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt as _, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument as _;

/// Most participants one request may name (Twilio allows 1000 per conversation).
pub const MAX_PARTICIPANTS: usize = 50;
/// Most messages per conversation in the listing.
pub const MAX_MESSAGES: u8 = 20;
/// Conversations of a listing page fetched at once: a page of 50 in two waves, two calls each,
/// well inside Twilio's per-conversation limit and its account-wide concurrency.
const LISTING_CONCURRENCY: usize = 25;
/// Identities this warm instance has seen exist in Twilio, so it does not create them again.
const KNOWN_USERS_CAP: usize = 10_000;
/// Budget for the Twilio calls of one request when the runtime gives no deadline (local server).
const DEFAULT_BUDGET: Duration = Duration::from_secs(8);

pub struct ConversationsState<R> {
    pub session: SessionRoutes,
    pub store: Arc<R>,
    pub twilio: ConversationsClient,
    pub user_role: RoleSid,
    known_users: Mutex<HashSet<Identity>>,
}

impl<R> std::fmt::Debug for ConversationsState<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversationsState")
            .field("twilio", &self.twilio)
            .field("user_role", &self.user_role)
            .finish_non_exhaustive()
    }
}

impl<R: AclReader> ConversationsState<R> {
    pub fn from_settings(settings: &Settings, secrets: &TwilioSecrets, store: Arc<R>) -> Result<Self, ConfigError> {
        let twilio = ConversationsClient::from_settings(settings, secrets)?;
        Ok(Self {
            session: SessionRoutes::from_settings(settings)?,
            store,
            twilio,
            user_role: settings.sid("TWILIO_USER_ROLE_SID")?,
            known_users: Mutex::default(),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    #[serde(rename = "type")]
    kind: String,
    participant: Option<String>,
    #[serde(default)]
    participants: Vec<String>,
    friendly_name: Option<String>,
    unique_name: Option<String>,
    asset_id: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Serialize)]
struct ParticipantView {
    identity: Identity,
    added: bool,
}

#[derive(Debug, Serialize)]
struct ConversationView {
    sid: String,
    unique_name: Option<String>,
    friendly_name: Option<String>,
    #[serde(rename = "type")]
    kind: ConversationKind,
    asset_id: Option<AssetId>,
    created: bool,
    participants: Vec<ParticipantView>,
}

/// A validated create-or-join request.
struct Plan {
    kind: ConversationKind,
    unique_name: Option<String>,
    friendly_name: String,
    asset: Option<AssetId>,
    /// The caller first, then the others, without repeats.
    wanted: Vec<Identity>,
}

pub async fn handle<R: AclReader>(state: &ConversationsState<R>, req: Request) -> Response<Body> {
    let span = tracing::info_span!(
        "conversations",
        identity = tracing::field::Empty,
        conversation_sid = tracing::field::Empty
    );
    http::respond(state.session.cors.as_ref(), req, |req| route(state, req)).instrument(span).await
}

async fn route<R: AclReader>(state: &ConversationsState<R>, req: Request) -> Result<Response<Body>, ApiError> {
    let segments = http::path_segments(&req)?;
    if http::match_path(&segments, &["conversations"]).is_none() {
        return Err(ApiError::NotFound("no such route".into()));
    }
    let method = req.method().clone();
    if method != Method::GET && method != Method::POST {
        return Err(ApiError::MethodNotAllowed { allow: "GET, POST" });
    }
    let user = state.session.identity(&req).await?;
    let deadline = deadline(&req);
    if method == Method::POST {
        let body: CreateRequest = http::json_body(&req)?;
        let plan = plan(state, &user, body).await?;
        create_or_join(state, plan, deadline).await
    } else {
        list(state, &user, &req, deadline).await
    }
}

/// The Lambda's own deadline, less a margin to answer in; the default budget locally.
fn deadline(req: &Request) -> Deadline {
    let budget = req
        .lambda_context_ref()
        .and_then(|ctx| {
            let deadline = std::time::UNIX_EPOCH + Duration::from_millis(ctx.deadline);
            deadline.duration_since(std::time::SystemTime::now()).ok()
        })
        .map_or(DEFAULT_BUDGET, |left| left.saturating_sub(Duration::from_millis(500)).min(DEFAULT_BUDGET));
    Deadline::after(budget)
}

fn identity(raw: String, what: &str) -> Result<Identity, ApiError> {
    Identity::try_from(raw).map_err(|e| ApiError::BadRequest(format!("{what}: {e}")))
}

/// Checks the request and works out which conversation it means.
async fn plan<R: AclReader>(
    state: &ConversationsState<R>,
    user: &Identity,
    body: CreateRequest,
) -> Result<Plan, ApiError> {
    let kind = ConversationKind::parse(&body.kind)
        .ok_or_else(|| ApiError::BadRequest("type must be direct, group, asset or room".into()))?;
    let unexpected = |field: &str| ApiError::BadRequest(format!("`{field}` does not go with type {}", kind.as_str()));
    let others: Vec<Identity> = body
        .participants
        .into_iter()
        .enumerate()
        .map(|(i, p)| identity(p, &format!("participants[{i}]")))
        .collect::<Result<_, _>>()?;
    if others.len() > MAX_PARTICIPANTS {
        return Err(ApiError::BadRequest(format!("at most {MAX_PARTICIPANTS} participants")));
    }
    let mut wanted = vec![user.clone()];
    let mut seen: BTreeSet<Identity> = [user.clone()].into();
    let mut push = |id: Identity, wanted: &mut Vec<Identity>| {
        if seen.insert(id.clone()) {
            wanted.push(id);
        }
    };
    match kind {
        ConversationKind::Direct => {
            if !others.is_empty()
                || body.friendly_name.is_some()
                || body.unique_name.is_some()
                || body.asset_id.is_some()
                || body.name.is_some()
            {
                return Err(unexpected("participants/friendly_name/unique_name/asset_id/name"));
            }
            let other = identity(
                body.participant.ok_or_else(|| ApiError::BadRequest("`participant` is required".into()))?,
                "participant",
            )?;
            if &other == user {
                return Err(ApiError::BadRequest("a direct conversation needs another user".into()));
            }
            let unique_name = direct_unique_name(user, &other);
            let (a, b) = if user <= &other { (user, &other) } else { (&other, user) };
            let friendly_name = format!("{a} & {b}");
            push(other, &mut wanted);
            Ok(Plan { kind, unique_name: Some(unique_name), friendly_name, asset: None, wanted })
        }
        ConversationKind::Group => {
            if body.participant.is_some() || body.asset_id.is_some() || body.name.is_some() {
                return Err(unexpected("participant/asset_id/name"));
            }
            let friendly_name =
                body.friendly_name.ok_or_else(|| ApiError::BadRequest("`friendly_name` is required".into()))?;
            if friendly_name.trim().is_empty()
                || friendly_name.len() > 256
                || friendly_name.chars().any(char::is_control)
            {
                return Err(ApiError::BadRequest(
                    "friendly_name must be 1 to 256 bytes without control characters".into(),
                ));
            }
            let unique_name = match body.unique_name {
                Some(name) if name.is_empty() || name.len() > 256 => {
                    return Err(ApiError::BadRequest("unique_name must be 1 to 256 bytes".into()));
                }
                Some(name) => Some(group_unique_name(user, &name)),
                None => None,
            };
            for other in others {
                push(other, &mut wanted);
            }
            Ok(Plan { kind, unique_name, friendly_name, asset: None, wanted })
        }
        ConversationKind::Asset => {
            if body.participant.is_some()
                || body.friendly_name.is_some()
                || body.unique_name.is_some()
                || body.name.is_some()
            {
                return Err(unexpected("participant/friendly_name/unique_name/name"));
            }
            let asset =
                AssetId::try_from(body.asset_id.ok_or_else(|| ApiError::BadRequest("`asset_id` is required".into()))?)
                    .map_err(|e| ApiError::BadRequest(format!("asset_id: {e}")))?;
            for other in others {
                push(other, &mut wanted);
            }
            let name = require_readers(state, &asset, &wanted).await?;
            Ok(Plan {
                kind,
                unique_name: Some(asset_unique_name(&asset)),
                friendly_name: name,
                asset: Some(asset),
                wanted,
            })
        }
        ConversationKind::Room => {
            if body.participant.is_some()
                || !others.is_empty()
                || body.friendly_name.is_some()
                || body.unique_name.is_some()
                || body.asset_id.is_some()
            {
                return Err(unexpected("participant(s)/friendly_name/unique_name/asset_id"));
            }
            let room = RoomName::try_from(
                body.name.ok_or_else(|| ApiError::BadRequest("`name` is required".into()))?.as_str(),
            )
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            Ok(Plan {
                kind,
                unique_name: Some(room.unique_name()),
                friendly_name: room.to_string(),
                asset: None,
                wanted,
            })
        }
    }
}

/// Every identity must be able to read the asset: one round trip of checks, run concurrently.
/// Returns the asset's name for the conversation's friendly name.
async fn require_readers<R: AclReader>(
    state: &ConversationsState<R>,
    asset: &AssetId,
    wanted: &[Identity],
) -> Result<String, ApiError> {
    let now = state.session.clock.now();
    let assets = std::slice::from_ref(asset);
    let checks =
        futures_util::future::try_join_all(wanted.iter().map(|who| state.store.check_facts(who, assets))).await?;
    let mut name = None;
    let lacking: Vec<&str> = wanted
        .iter()
        .zip(&checks)
        .filter(|(who, facts)| {
            name = name.take().or_else(|| facts.assets[0].asset.as_ref().map(|a| a.name.clone()));
            !decide(who, &facts.groups, &facts.assets[0], now).can_read()
        })
        .map(|(who, _)| who.as_str())
        .collect();
    if !lacking.is_empty() {
        return Err(ApiError::Forbidden(format!("cannot read asset {asset}: {}", lacking.join(", "))));
    }
    Ok(name.filter(|n| !n.is_empty()).unwrap_or_else(|| asset.to_string()))
}

async fn create_or_join<R>(
    state: &ConversationsState<R>,
    plan: Plan,
    deadline: Deadline,
) -> Result<Response<Body>, ApiError> {
    let twilio = &state.twilio;
    let (sid, friendly_name, created, present) = match (&plan.kind, &plan.unique_name) {
        (ConversationKind::Room, Some(unique)) => {
            // Rooms can be large: fetch the room, then add the caller (50433 when already in).
            let room = twilio
                .fetch_conversation(unique, deadline)
                .await?
                .ok_or_else(|| ApiError::NotFound("no such room".into()))?;
            (room.sid, room.friendly_name, false, BTreeSet::new())
        }
        (_, Some(unique)) => match twilio.participants(unique, deadline).await? {
            // The common case, an existing conversation: this one call says who is in it.
            Some(participants) if !participants.is_empty() => {
                let sid = participants[0].conversation_sid.clone();
                let present: BTreeSet<String> = participants.into_iter().filter_map(|p| p.identity).collect();
                (sid, Some(plan.friendly_name.clone()), false, present)
            }
            _ => {
                // New: create the users while the conversation is created.
                let (conversation, created) = tokio::try_join!(
                    create(state, &plan, Some(unique), deadline),
                    ensure_users(state, plan.wanted.clone(), deadline)
                )?
                .0;
                (conversation.0, conversation.1, created, BTreeSet::new())
            }
        },
        (_, None) => {
            let (conversation, created) = tokio::try_join!(
                create(state, &plan, None, deadline),
                ensure_users(state, plan.wanted.clone(), deadline)
            )?
            .0;
            (conversation.0, conversation.1, created, BTreeSet::new())
        }
    };
    tracing::Span::current().record("conversation_sid", sid.as_str());

    let missing: Vec<Identity> = plan.wanted.iter().filter(|who| !present.contains(who.as_str())).cloned().collect();
    ensure_users(state, missing, deadline).await?;
    let added: Vec<bool> = futures_util::stream::iter(plan.wanted.clone())
        .map(|who| {
            let (sid, present) = (sid.clone(), &present);
            async move {
                if present.contains(who.as_str()) {
                    return Ok(false);
                }
                match twilio.add_participant(&sid, who.as_str(), deadline).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.code() == Some(codes::PARTICIPANT_EXISTS) => Ok(false),
                    Err(e) => Err(ApiError::from(e)),
                }
            }
        })
        .buffered(8)
        .try_collect()
        .await?;

    tracing::info!(
        kind = plan.kind.as_str(),
        created,
        added = added.iter().filter(|a| **a).count(),
        "conversation ready"
    );
    let view = ConversationView {
        sid,
        unique_name: plan.unique_name,
        friendly_name,
        kind: plan.kind,
        asset_id: plan.asset,
        created,
        participants: plan
            .wanted
            .into_iter()
            .zip(added)
            .map(|(identity, added)| ParticipantView { identity, added })
            .collect(),
    };
    Ok(http::json_response(if view.created { StatusCode::CREATED } else { StatusCode::OK }, &view))
}

/// Creates the conversation; a concurrent creator's 50353 means it exists, which is fetched.
async fn create<R>(
    state: &ConversationsState<R>,
    plan: &Plan,
    unique: Option<&String>,
    deadline: Deadline,
) -> Result<((String, Option<String>), bool), ApiError> {
    let attributes = conversation_attributes(plan.kind, plan.asset.as_ref());
    match state.twilio.create_conversation(unique.map(String::as_str), &plan.friendly_name, &attributes, deadline).await
    {
        Ok(c) => Ok(((c.sid, c.friendly_name), true)),
        Err(e) if e.code() == Some(codes::CONVERSATION_EXISTS) => {
            let name = unique.map_or("", String::as_str);
            let c = state.twilio.fetch_conversation(name, deadline).await?.ok_or_else(|| {
                ApiError::from(TwilioError::Unavailable { status: Some(409), retry_after: Some(1), source: None })
            })?;
            Ok(((c.sid, c.friendly_name), false))
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates the Twilio users chatgate has not seen yet, with the restricted role; 50201 means
/// the user exists already.
async fn ensure_users<R>(
    state: &ConversationsState<R>,
    who: Vec<Identity>,
    deadline: Deadline,
) -> Result<(), ApiError> {
    let unknown: Vec<Identity> = {
        let known = state.known_users.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        who.into_iter().filter(|id| !known.contains(id)).collect()
    };
    futures_util::future::try_join_all(unknown.iter().cloned().map(|id| async move {
        match state.twilio.create_user(id.as_str(), state.user_role.as_str(), deadline).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some(codes::USER_EXISTS) => Ok(()),
            Err(e) => Err(ApiError::from(e)),
        }
    }))
    .await?;
    let mut known = state.known_users.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if known.len() + unknown.len() > KNOWN_USERS_CAP {
        known.clear();
    }
    known.extend(unknown);
    Ok(())
}

#[derive(Debug, Serialize)]
struct MessageView {
    index: u64,
    author: Option<String>,
    body: Option<String>,
    attributes: Value,
    date_created: Option<String>,
}

#[derive(Debug, Serialize)]
struct ListedConversation {
    sid: String,
    unique_name: Option<String>,
    friendly_name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    asset_id: Option<String>,
    unread_count: Option<u64>,
    last_read_index: Option<u64>,
    participants: Vec<String>,
    messages: Vec<MessageView>,
}

#[derive(Debug, Serialize)]
struct Listing {
    conversations: Vec<ListedConversation>,
    next_page_token: Option<String>,
}

/// `messages` (0–20) and `page_token` from the query string.
fn listing_query(req: &Request) -> Result<(u8, Option<(String, String)>), ApiError> {
    let mut messages = 0;
    let mut page = None;
    for (key, value) in serde_urlencoded::from_str::<Vec<(String, String)>>(req.uri().query().unwrap_or(""))
        .map_err(|_| ApiError::BadRequest("malformed query string".into()))?
    {
        match key.as_str() {
            "messages" => {
                messages = value.parse().ok().filter(|n| *n <= MAX_MESSAGES).ok_or_else(|| {
                    ApiError::BadRequest(format!("messages must be a whole number from 0 to {MAX_MESSAGES}"))
                })?;
            }
            "page_token" => page = Some(decode_page_token(&value)?),
            other => return Err(ApiError::BadRequest(format!("unknown query parameter `{other}`"))),
        }
    }
    Ok((messages, page))
}

/// A page token is Twilio's `Page` and `PageToken`, nothing else: chatgate rebuilds the URL itself,
/// so a token can never send the API key anywhere but the user's own listing.
fn decode_page_token(token: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::BadRequest("invalid page_token".into());
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let (page, page_token): (String, String) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let safe = |s: &str| {
        !s.is_empty() && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if safe(&page) && safe(&page_token) { Ok((page, page_token)) } else { Err(bad()) }
}

fn encode_page_token(next_page_url: &str) -> Option<String> {
    let query = next_page_url.split_once('?')?.1;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    let find = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let token = (find("Page")?, find("PageToken")?);
    Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).ok()?))
}

async fn list<R>(
    state: &ConversationsState<R>,
    user: &Identity,
    req: &Request,
    deadline: Deadline,
) -> Result<Response<Body>, ApiError> {
    let (messages, page) = listing_query(req)?;
    let twilio = &state.twilio;
    let page = twilio
        .user_conversations(user.as_str(), page.as_ref().map(|(p, t)| (p.as_str(), t.as_str())), deadline)
        .await?;
    let Some(page) = page else {
        // Twilio has never seen this user: nothing to list.
        return Ok(http::json_response(StatusCode::OK, &Listing { conversations: Vec::new(), next_page_token: None }));
    };
    let conversations: Vec<ListedConversation> = futures_util::stream::iter(page.items)
        .map(|c| async move {
            let sid = c.conversation_sid.clone();
            let (participants, recent) = tokio::try_join!(twilio.participants(&sid, deadline), async {
                if messages == 0 { Ok(Vec::new()) } else { twilio.last_messages(&sid, messages, deadline).await }
            })?;
            let attributes: Value =
                c.attributes.as_deref().and_then(|a| serde_json::from_str(a).ok()).unwrap_or(Value::Null);
            Ok::<_, ApiError>(ListedConversation {
                sid,
                unique_name: c.unique_name,
                friendly_name: c.friendly_name,
                kind: attributes["type"].as_str().map(str::to_owned),
                asset_id: attributes["asset_id"].as_str().map(str::to_owned),
                unread_count: c.unread_messages_count,
                last_read_index: c.last_read_message_index,
                participants: participants.unwrap_or_default().into_iter().filter_map(|p| p.identity).collect(),
                messages: recent
                    .into_iter()
                    .map(|m| MessageView {
                        index: m.index,
                        author: m.author,
                        body: m.body,
                        attributes: m
                            .attributes
                            .as_deref()
                            .and_then(|a| serde_json::from_str(a).ok())
                            .unwrap_or(Value::Null),
                        date_created: m.date_created,
                    })
                    .collect(),
            })
        })
        .buffered(LISTING_CONCURRENCY)
        .try_collect()
        .await?;
    let next_page_token = page.next_page_url.as_deref().and_then(encode_page_token);
    tracing::info!(conversations = conversations.len(), "conversations listed");
    Ok(http::json_response(StatusCode::OK, &Listing { conversations, next_page_token }))
}
