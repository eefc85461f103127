//! The start-up listing: one page of the user's conversations with their unread counts,
//! participants and last messages, so the SPA renders before the SDK connects. It spends as
//! little of Twilio's rate as it can: one call for the page, participants from chatgate's rosters,
//! and one call per conversation only for the messages asked for.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use serde_json::Value;

use super::Conversations;
use crate::acl::Rosters;
use crate::clock::Deadline;
use crate::domain::Caller;
use crate::domain::{ConversationAttributes, Identity, roster_name};
use crate::http::ApiError;
use crate::twilio::rest::TwilioError;

/// Most messages per conversation in the listing.
pub const MAX_MESSAGES: u8 = 20;
/// Conversations of a listing page whose messages (or, without a roster, participants) are
/// fetched at once: a page of 50 in two waves, well inside Twilio's account-wide concurrency.
const LISTING_CONCURRENCY: usize = 25;

/// `GET /conversations`'s query: `messages` (0–20) and `page_token`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingQuery {
    pub messages: u8,
    /// Twilio's `Page` and `PageToken`, decoded from `page_token`.
    page: Option<(String, String)>,
}

impl ListingQuery {
    /// Parses the query string; unknown parameters are refused.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut parsed = Self::default();
        for (key, value) in serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map_err(|_| ApiError::BadRequest("malformed query string".into()))?
        {
            match key.as_str() {
                "messages" => {
                    parsed.messages = value.parse().ok().filter(|n| *n <= MAX_MESSAGES).ok_or_else(|| {
                        ApiError::BadRequest(format!("messages must be a whole number from 0 to {MAX_MESSAGES}"))
                    })?;
                }
                "page_token" => parsed.page = Some(decode_page_token(&value)?),
                other => return Err(ApiError::BadRequest(format!("unknown query parameter `{other}`"))),
            }
        }
        Ok(parsed)
    }
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
    kind: Option<&'static str>,
    asset_id: Option<String>,
    unread_count: Option<u64>,
    last_read_index: Option<u64>,
    participants: Vec<String>,
    messages: Vec<MessageView>,
}

/// One page of the listing.
#[derive(Debug, Serialize)]
pub struct Listing {
    conversations: Vec<ListedConversation>,
    next_page_token: Option<String>,
}

impl Listing {
    pub fn len(&self) -> usize {
        self.conversations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conversations.is_empty()
    }
}

fn json_attributes(raw: Option<&str>) -> Value {
    raw.and_then(|a| serde_json::from_str(a).ok()).unwrap_or(Value::Null)
}

impl<R: Rosters> Conversations<R> {
    /// The user's conversations, one page of Twilio's (at most 50), each with its participants
    /// and, when asked, its last messages. One Twilio call for the page, and the participants from
    /// the conversations' rosters in one round trip of table reads; Twilio is asked for a
    /// conversation's participants only when it has no roster yet (one made before rosters),
    /// whose roster is then written. With `messages`, one more call per conversation.
    pub async fn list(&self, caller: &Caller, query: &ListingQuery, deadline: Deadline) -> Result<Listing, ApiError> {
        let (user, tenant) = (&caller.identity, &caller.tenant);
        let twilio = &self.twilio;
        let page = query.page.as_ref().map(|(p, t)| (p.as_str(), t.as_str()));
        let listed = match twilio.user_conversations(user.as_str(), page, deadline).await {
            // Twilio refuses a page token it did not issue (or one that expired): the caller's.
            Err(TwilioError::Api { status: 400, .. }) if page.is_some() => {
                return Err(ApiError::BadRequest("invalid page_token: expired, or not from this listing".into()));
            }
            other => other?,
        };
        let Some(page) = listed else {
            // Twilio has never seen this user: nothing to list.
            return Ok(Listing { conversations: Vec::new(), next_page_token: None });
        };
        let names: Vec<String> =
            page.items.iter().map(|c| roster_name(c.unique_name.as_deref(), &c.conversation_sid)).collect();
        let rosters = self.store.rosters(&names).await?;
        let messages = query.messages;
        let conversations: Vec<ListedConversation> =
            futures_util::stream::iter(page.items.into_iter().zip(names).zip(rosters))
                .map(|((c, name), roster)| async move {
                    let sid = c.conversation_sid.clone();
                    let (participants, mut recent) =
                        tokio::try_join!(self.participants_of(&sid, &name, roster, deadline), async {
                            if messages == 0 {
                                Ok(Vec::new())
                            } else {
                                twilio.last_messages(&sid, messages, deadline).await.map_err(ApiError::from)
                            }
                        })?;
                    // Without a read horizon Twilio gives no unread count: nothing is read yet, so
                    // every message is unread, which the last message's index tells when the
                    // messages were asked for; without them it stays unknown (`null`), as Twilio's
                    // SDK reports it.
                    let horizonless = c.unread_messages_count.is_none() && c.last_read_message_index.is_none();
                    let unread_count = match c.unread_messages_count {
                        Some(count) => Some(count),
                        None if horizonless && messages > 0 => Some(recent.last().map_or(0, |m| m.index + 1)),
                        None => None,
                    };
                    recent.drain(..recent.len().saturating_sub(usize::from(messages)));
                    // A conversation chatgate did not create (or whose attributes someone broke) lists
                    // without a type.
                    let about = ConversationAttributes::parse(c.attributes.as_deref()).ok().flatten();
                    Ok::<_, ApiError>(ListedConversation {
                        sid,
                        unique_name: c.unique_name,
                        friendly_name: c.friendly_name,
                        kind: about.as_ref().map(|a| a.kind.as_str()),
                        asset_id: about.and_then(|a| a.asset).map(|a| tenant.shown(a.as_str())),
                        unread_count,
                        last_read_index: c.last_read_message_index,
                        // As the caller names them; message authors stay Twilio identities, what
                        // the SDK shows and `POST /token` answers.
                        participants: participants.iter().filter_map(|p| tenant.local(p)).map(str::to_owned).collect(),
                        messages: recent
                            .into_iter()
                            .map(|m| MessageView {
                                index: m.index,
                                author: m.author,
                                body: m.body,
                                attributes: json_attributes(m.attributes.as_deref()),
                                date_created: m.date_created,
                            })
                            .collect(),
                    })
                })
                .buffered(LISTING_CONCURRENCY)
                .try_collect()
                .await?;
        let next_page_token = page.next_page_url.as_deref().and_then(encode_page_token);
        Ok(Listing { conversations, next_page_token })
    }

    /// A conversation's participants: its roster, or, without one, Twilio's list, which becomes
    /// its roster (identities only: SMS or WhatsApp participants are not listed).
    async fn participants_of(
        &self,
        sid: &str,
        name: &str,
        roster: Vec<Identity>,
        deadline: Deadline,
    ) -> Result<Vec<String>, ApiError> {
        if !roster.is_empty() {
            return Ok(roster.into_iter().map(|u| u.to_string()).collect());
        }
        let listed: Vec<String> = self
            .twilio
            .participants(sid, deadline)
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.identity)
            .collect();
        let members: Vec<Identity> = listed.iter().filter_map(|id| Identity::try_from(id.as_str()).ok()).collect();
        if let Err(e) = self.store.write_roster(name, &members, &[]).await {
            tracing::warn!(error = %crate::http::ErrorChain(&e), "roster not written; the next listing asks Twilio again");
        }
        Ok(listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_carry_only_twilios_page_and_token() {
        let url = "https://conversations.twilio.com/v1/Services/IS1/Users/u-1/Conversations?PageSize=50&Page=1&PageToken=PTabc";
        let token = encode_page_token(url).expect("token");
        let query = ListingQuery::parse(&format!("page_token={token}&messages=3")).expect("query");
        assert_eq!(query.page, Some(("1".into(), "PTabc".into())));
        assert_eq!(query.messages, 3);
        let forged = URL_SAFE_NO_PAD.encode(br#"["1","https://evil.example/"]"#);
        assert!(ListingQuery::parse(&format!("page_token={forged}")).is_err());
        assert!(ListingQuery::parse("messages=21").is_err());
        assert!(ListingQuery::parse("other=1").is_err());
    }
}
