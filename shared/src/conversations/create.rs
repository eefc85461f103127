//! Create-or-join: the request as a tagged enum, turned into a [`Plan`] (which conversation, who
//! should be in it) with `TryFrom`, then carried out idempotently: the same request twice, the
//! same pair from either side, or many at once, give one Twilio conversation.

use std::collections::BTreeSet;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::Conversations;
use crate::acl::ConversationsStore;
use crate::audit;
use crate::clock::Deadline;
use crate::domain::Caller;
use crate::domain::{
    AssetId, ConversationAttributes, ConversationKey, ConversationKind, ConversationNames, Identity, Scope, Tenant,
    TenantId, roster_name,
};
use crate::http::ApiError;
use crate::twilio::rest::{Conversation, Limit, TwilioError, codes};

/// Most participants one request may name (Twilio allows 1000 per conversation).
pub const MAX_PARTICIPANTS: usize = 50;
/// Twilio's limit on a conversation's friendly name, in characters.
const MAX_FRIENDLY_NAME: usize = 256;

/// A friendly name chatgate makes up (two identities, an asset's catalogue name) cut to Twilio's
/// limit: it is for display only.
fn friendly(name: String) -> String {
    match name.char_indices().nth(MAX_FRIENDLY_NAME) {
        Some((end, _)) => name[..end].to_owned(),
        None => name,
    }
}
/// Participant additions in flight at once.
const ADD_CONCURRENCY: usize = 8;

/// `POST /conversations`'s body, by `type`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum CreateCommand {
    Direct {
        participant: String,
    },
    Group {
        friendly_name: String,
        #[serde(default)]
        participants: Vec<String>,
        #[serde(default)]
        unique_name: Option<String>,
    },
    Asset {
        asset_id: String,
        #[serde(default)]
        participants: Vec<String>,
    },
    Room {
        name: String,
    },
}

/// A command and who sent it: what a [`Plan`] is made from.
#[derive(Debug, Clone)]
pub struct Requested {
    pub caller: Caller,
    pub command: CreateCommand,
}

/// A validated create-or-join request: which conversation, and who should be in it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: ConversationKind,
    /// What names the conversation; an unnamed group's is a fresh random name (a new group every
    /// time), or the name its idempotency key kept.
    pub key: ConversationKey,
    /// An asset conversation's is the asset's name, known once access has been checked.
    pub friendly_name: String,
    pub asset: Option<AssetId>,
    /// The caller first, then the others, without repeats.
    pub wanted: Vec<Identity>,
    /// Whose ids the request named: every id above is qualified with it, and the answer shows
    /// them relative to it again.
    pub tenant: Tenant,
}

impl TryFrom<Requested> for Plan {
    type Error = ApiError;

    fn try_from(
        Requested { caller: Caller { tenant, identity: caller }, command }: Requested,
    ) -> Result<Self, ApiError> {
        let mut wanted = vec![caller.clone()];
        let identity =
            |raw: String, what: &str| tenant.user(&raw).map_err(|e| ApiError::BadRequest(format!("{what}: {e}")));
        let mut add_others = |others: Vec<String>| -> Result<(), ApiError> {
            if others.len() > MAX_PARTICIPANTS {
                return Err(ApiError::BadRequest(format!("at most {MAX_PARTICIPANTS} participants")));
            }
            for (i, other) in others.into_iter().enumerate() {
                let other = identity(other, &format!("participants[{i}]"))?;
                if !wanted.contains(&other) {
                    wanted.push(other);
                }
            }
            Ok(())
        };
        match command {
            CreateCommand::Direct { participant } => {
                let other = identity(participant, "participant")?;
                if other == caller {
                    return Err(ApiError::BadRequest("a direct conversation needs another user".into()));
                }
                let (a, b) = if caller <= other { (&caller, &other) } else { (&other, &caller) };
                let friendly_name = friendly(format!("{} & {}", tenant.shown(a.as_str()), tenant.shown(b.as_str())));
                let key = ConversationKey::Direct(caller.clone(), other.clone());
                wanted.push(other);
                Ok(Self { kind: ConversationKind::Direct, key, friendly_name, asset: None, wanted, tenant })
            }
            CreateCommand::Group { friendly_name, participants, unique_name } => {
                if friendly_name.trim().is_empty()
                    || friendly_name.len() > 256
                    || friendly_name.chars().any(char::is_control)
                {
                    return Err(ApiError::BadRequest(
                        "friendly_name must be 1 to 256 bytes without control characters".into(),
                    ));
                }
                let key = match unique_name {
                    Some(name) if name.is_empty() || name.len() > 256 => {
                        return Err(ApiError::BadRequest("unique_name must be 1 to 256 bytes".into()));
                    }
                    Some(name) => ConversationKey::Group { creator: caller.clone(), name },
                    None => ConversationKey::Fresh(ConversationNames::fresh_group()),
                };
                add_others(participants)?;
                Ok(Self { kind: ConversationKind::Group, key, friendly_name, asset: None, wanted, tenant })
            }
            CreateCommand::Asset { asset_id, participants } => {
                let asset = tenant.asset(&asset_id).map_err(|e| ApiError::BadRequest(format!("asset_id: {e}")))?;
                add_others(participants)?;
                Ok(Self {
                    kind: ConversationKind::Asset,
                    key: ConversationKey::Asset(asset.clone()),
                    friendly_name: asset_id,
                    asset: Some(asset),
                    wanted,
                    tenant,
                })
            }
            CreateCommand::Room { name } => {
                let room = tenant.room(&name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
                Ok(Self {
                    kind: ConversationKind::Room,
                    friendly_name: name,
                    key: ConversationKey::Room(room),
                    asset: None,
                    wanted,
                    tenant,
                })
            }
        }
    }
}

/// A participant as the caller names them (relative to their tenant).
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantView {
    pub identity: String,
    pub added: bool,
}

/// The conversation a create-or-join request ended in.
#[derive(Debug, Clone, Serialize)]
pub struct Joined {
    pub sid: String,
    pub unique_name: Option<String>,
    pub friendly_name: Option<String>,
    #[serde(rename = "type")]
    pub kind: ConversationKind,
    /// As the caller names it (relative to their tenant).
    pub asset_id: Option<String>,
    pub created: bool,
    pub participants: Vec<ParticipantView>,
}

/// The conversation a request lands in: its SID, its name, whether this request created it, and
/// who was in it already (empty when unknown; adding is idempotent anyway).
struct Target {
    sid: String,
    friendly_name: Option<String>,
    created: bool,
    present: BTreeSet<String>,
}

/// What adding one wanted identity came to.
enum Addition {
    AlreadyIn,
    /// The participant's SID, unless Twilio's answer was lost (the retry found them in).
    Added {
        participant_sid: Option<String>,
    },
}

/// What a `403` says when an asset conversation cannot be joined: the same whether the asset does
/// not exist or the caller cannot read it, and naming nobody.
const CANNOT_READ: &str = "you cannot read this asset";
const NOT_EVERY_PARTICIPANT: &str = "not every participant can be in this conversation";

impl<R: ConversationsStore> Conversations<R> {
    /// Carries the plan out. An asset conversation admits only readers of the asset (checked
    /// before any Twilio call), and whoever it gains is checked again once in: a grant revoked
    /// while they were being added cannot leave them inside. Nobody offboarded is ever added, a
    /// conversation found under chatgate's name must be chatgate's, and new conversations spend
    /// the caller's budget.
    pub async fn create_or_join(&self, mut plan: Plan, deadline: Deadline) -> Result<Joined, ApiError> {
        let caller = plan.wanted[0].clone();
        match &plan.asset {
            Some(asset) => plan.friendly_name = self.require_readers(asset, &plan.wanted, &plan.tenant).await?,
            None => self.require_standing(&plan.wanted).await?,
        }
        let unique_name = self.names().unique_name(&plan.key);
        // An asset conversation is registered before it can exist (and again on every join, which
        // registers those made before the registry), so the scheduled pass walks every one.
        if let Some(asset) = &plan.asset {
            self.store.register_conversation(asset, self.clock.now()).await?;
        }
        let target = self.target(&plan, &unique_name, &caller, deadline).await?;
        tracing::Span::current().record("conversation_sid", target.sid.as_str());

        let missing: Vec<Identity> =
            plan.wanted.iter().filter(|who| !target.present.contains(who.as_str())).cloned().collect();
        self.ensure_users(missing, deadline).await?;
        let additions: Vec<Result<Addition, ApiError>> = futures_util::stream::iter(plan.wanted.clone())
            .map(|who| self.add(&target, who, &caller, deadline))
            .buffered(ADD_CONCURRENCY)
            .collect()
            .await;
        let added: Vec<bool> = additions.iter().map(|a| matches!(a, Ok(Addition::Added { .. }))).collect();
        // Whoever is in now goes on the conversation's roster (the listing reads it instead of
        // Twilio), before the re-check, which takes anyone it removes off it again.
        let roster = roster_name(Some(&unique_name), &target.sid);
        let inside: Vec<Identity> =
            plan.wanted.iter().zip(&additions).filter(|(_, a)| a.is_ok()).map(|(w, _)| w.clone()).collect();
        let rostered = self.store.write_roster(&roster, &inside, &[]).await;

        // The rule on whoever this request put in, whatever else failed: a revocation (or an
        // offboarding) that landed while they were being added is seen here if its own look
        // came too early.
        let newcomers: Vec<&Identity> = plan.wanted.iter().zip(&added).filter(|(_, a)| **a).map(|(w, _)| w).collect();
        let rechecked = match &plan.asset {
            Some(asset) => self.recheck(asset, &newcomers, deadline).await,
            None => self.recheck_standing(&target.sid, &roster, &newcomers, deadline).await,
        };
        let additions = additions.into_iter().collect::<Result<Vec<Addition>, ApiError>>()?;
        rechecked?;
        rostered?;
        if !target.created {
            self.start_read_horizons(&target.sid, &additions, deadline).await?;
        }
        tracing::info!(
            kind = plan.kind.as_str(),
            created = target.created,
            added = added.iter().filter(|a| **a).count(),
            "conversation ready"
        );
        Ok(Joined {
            sid: target.sid,
            unique_name: Some(unique_name),
            friendly_name: target.friendly_name,
            kind: plan.kind,
            asset_id: plan.asset.map(|asset| plan.tenant.shown(asset.as_str())),
            created: target.created,
            participants: plan
                .wanted
                .iter()
                .zip(added)
                .map(|(identity, added)| ParticipantView { identity: plan.tenant.shown(identity.as_str()), added })
                .collect(),
        })
    }

    /// Adds `who` unless the conversation had them. A retried add answered 50433 may be this
    /// request's own first attempt (its answer lost): it counts as added, so the rule looks at
    /// them again. Twilio's limits are refusals that name the limit.
    async fn add(
        &self,
        target: &Target,
        who: Identity,
        caller: &Identity,
        deadline: Deadline,
    ) -> Result<Addition, ApiError> {
        if target.present.contains(who.as_str()) {
            return Ok(Addition::AlreadyIn);
        }
        match self.twilio.add_participant(&target.sid, who.as_str(), deadline).await {
            Ok(participant) => Ok(Addition::Added { participant_sid: Some(participant.sid) }),
            Err(e) if e.code() == Some(codes::PARTICIPANT_EXISTS) && e.retried() => {
                Ok(Addition::Added { participant_sid: None })
            }
            Err(e) if e.code() == Some(codes::PARTICIPANT_EXISTS) => Ok(Addition::AlreadyIn),
            Err(e) if e.limit() == Some(Limit::UserConversations) && who == *caller => Err(ApiError::Conflict(
                "you are in as many conversations as Twilio allows one user; leave one first".into(),
            )),
            Err(e) => Err(ApiError::from(e)),
        }
    }

    /// Participants who join a conversation with history start with it read: their read horizon
    /// is its last message, so Twilio counts their unread messages from there (without one,
    /// Twilio reports no count at all). One call for the last message, one per newcomer.
    async fn start_read_horizons(
        &self,
        conversation: &str,
        additions: &[Addition],
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        let newcomers: Vec<&String> = additions
            .iter()
            .filter_map(|a| match a {
                Addition::Added { participant_sid } => participant_sid.as_ref(),
                Addition::AlreadyIn => None,
            })
            .collect();
        if newcomers.is_empty() {
            return Ok(());
        }
        let Some(last) = self.twilio.last_messages(conversation, 1, deadline).await?.pop() else { return Ok(()) };
        futures_util::future::try_join_all(
            newcomers.into_iter().map(|sid| self.twilio.set_last_read(conversation, sid, last.index, deadline)),
        )
        .await?;
        Ok(())
    }

    /// Every identity must be able to read the asset: one round trip of reads. Returns the
    /// asset's name for the conversation's friendly name. The refusal tells nothing: the caller
    /// who cannot read learns nothing about the asset, and others are named only to a caller who
    /// may list the asset's grants anyway (its owner or a writer).
    async fn require_readers(&self, asset: &AssetId, wanted: &[Identity], tenant: &Tenant) -> Result<String, ApiError> {
        let facts = self.store.audience_facts(asset, wanted).await?;
        let decisions = facts.decisions(wanted, self.clock.now());
        let caller = &decisions[0];
        if !caller.can_read() {
            return Err(ApiError::Forbidden(CANNOT_READ.into()));
        }
        let lacking: Vec<String> = wanted
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| !d.can_read())
            .map(|(who, _)| tenant.shown(who.as_str()))
            .collect();
        if !lacking.is_empty() {
            return Err(if caller.can_write() {
                ApiError::Forbidden(format!(
                    "cannot read asset {}: {}",
                    tenant.shown(asset.as_str()),
                    lacking.join(", ")
                ))
            } else {
                ApiError::Forbidden(NOT_EVERY_PARTICIPANT.into())
            });
        }
        let name = facts.asset.asset.map(|record| record.name).filter(|n| !n.is_empty());
        Ok(friendly(name.unwrap_or_else(|| tenant.shown(asset.as_str()))))
    }

    /// Nobody offboarded joins or is added: one round trip of reads. Names nobody.
    async fn require_standing(&self, wanted: &[Identity]) -> Result<(), ApiError> {
        let offboarded = self.store.offboarded(wanted).await?;
        match offboarded.iter().position(|o| *o) {
            None => Ok(()),
            Some(0) => Err(ApiError::Forbidden("your account cannot join conversations".into())),
            Some(_) => Err(ApiError::Forbidden(NOT_EVERY_PARTICIPANT.into())),
        }
    }

    /// The access rule, applied to the participants this request added: if a revocation landed
    /// between the check at the door and the addition, the revocation's own reconciliation may
    /// have looked before they were in; this look comes after, so one of the two removes them.
    async fn recheck(&self, asset: &AssetId, newcomers: &[&Identity], deadline: Deadline) -> Result<(), ApiError> {
        let scopes: Vec<Scope> =
            newcomers.iter().map(|user| Scope::Reader { asset: asset.clone(), user: (*user).clone() }).collect();
        let removed = futures_util::future::try_join_all(scopes.iter().map(|s| self.rule.apply(s, deadline))).await?;
        if removed.iter().all(Vec::is_empty) { Ok(()) } else { Err(ApiError::Forbidden(NOT_EVERY_PARTICIPANT.into())) }
    }

    /// Offboarding that landed while newcomers were being added lists their conversations before
    /// this one had them: this look comes after, so one of the two takes them out.
    async fn recheck_standing(
        &self,
        conversation: &str,
        roster: &str,
        newcomers: &[&Identity],
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        if newcomers.is_empty() {
            return Ok(());
        }
        let users: Vec<Identity> = newcomers.iter().map(|u| (*u).clone()).collect();
        let offboarded = self.store.offboarded(&users).await?;
        let leaving: Vec<&Identity> = users.iter().zip(&offboarded).filter(|(_, o)| **o).map(|(u, _)| u).collect();
        if leaving.is_empty() {
            return Ok(());
        }
        futures_util::future::try_join_all(
            leaving.iter().map(|u| self.twilio.remove_user_from_conversation(u.as_str(), conversation, deadline)),
        )
        .await?;
        let leaving: Vec<Identity> = leaving.into_iter().cloned().collect();
        self.store.write_roster(roster, &[], &leaving).await?;
        Err(ApiError::Forbidden(NOT_EVERY_PARTICIPANT.into()))
    }

    /// Finds or creates the conversation the plan means. A conversation found under the name must
    /// be chatgate's and about what the plan asks; a new one spends the caller's budget first.
    async fn target(
        &self,
        plan: &Plan,
        unique: &str,
        caller: &Identity,
        deadline: Deadline,
    ) -> Result<Target, ApiError> {
        let new = |(sid, friendly_name, created)| Target { sid, friendly_name, created, present: BTreeSet::new() };
        if let ConversationKey::Fresh(_) = plan.key {
            // A new group under a name nobody has: made without looking. Users first: a failure
            // there leaves no empty conversation and spends nothing.
            self.ensure_users(plan.wanted.clone(), deadline).await?;
            let spent_at = self.spend_budget(plan).await?;
            return Ok(new(self.create(plan, unique, spent_at, deadline).await?));
        }
        if plan.kind == ConversationKind::Room {
            // Rooms can be large: fetch the room, then add the caller (50433 when already in).
            let room = self
                .twilio
                .fetch_conversation(unique, deadline)
                .await?
                .ok_or_else(|| ApiError::NotFound("no such room".into()))?;
            self.require_ours(plan, &room, caller)?;
            return Ok(new((room.sid, room.friendly_name, false)));
        }
        // Who is in it and what it is about, in one round trip.
        let (participants, found) = tokio::try_join!(
            self.twilio.participants(unique, deadline),
            self.twilio.fetch_conversation(unique, deadline)
        )?;
        match found {
            Some(conversation) => {
                self.require_ours(plan, &conversation, caller)?;
                let participants = participants.unwrap_or_default();
                Ok(Target {
                    sid: conversation.sid,
                    friendly_name: conversation.friendly_name.or_else(|| Some(plan.friendly_name.clone())),
                    created: false,
                    present: participants.into_iter().filter_map(|p| p.identity).collect(),
                })
            }
            None => {
                self.ensure_users(plan.wanted.clone(), deadline).await?;
                let spent_at = match self.spend_budget(plan).await {
                    Ok(at) => at,
                    // Past the budget, a conversation this very user is creating in a concurrent
                    // request (a retry, a second tab) is still theirs to join once it exists.
                    Err(spent) => {
                        return match self.created_meanwhile(plan, unique, caller, deadline).await? {
                            Some(conversation) => Ok(new((conversation.sid, conversation.friendly_name, false))),
                            None => Err(spent),
                        };
                    }
                };
                Ok(new(self.create(plan, unique, spent_at, deadline).await?))
            }
        }
    }

    /// The conversation named `unique`, if one appears within about a second (a concurrent
    /// request's create landing); it must be chatgate's, like any found under the name.
    async fn created_meanwhile(
        &self,
        plan: &Plan,
        unique: &str,
        caller: &Identity,
        deadline: Deadline,
    ) -> Result<Option<Conversation>, ApiError> {
        for wait_ms in [100, 200, 300, 400] {
            if deadline.remaining() < std::time::Duration::from_millis(wait_ms + 500) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
            if let Some(found) = self.twilio.fetch_conversation(unique, deadline).await? {
                self.require_ours(plan, &found, caller)?;
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// A conversation chatgate found under one of its names is used only if its attributes are
    /// chatgate's and about what was asked; anything else is someone else's (a client that
    /// created it before the service was closed, an operator's mistake) and is refused, audited.
    fn require_ours(&self, plan: &Plan, found: &Conversation, caller: &Identity) -> Result<(), ApiError> {
        let about = ConversationAttributes::parse(found.attributes.as_deref());
        let ours = matches!(&about, Ok(Some(a)) if a.kind == plan.kind && a.asset == plan.asset);
        if ours {
            return Ok(());
        }
        audit::record(&audit::Entry {
            event: "conversation.name_taken",
            tenant: plan.tenant.id().map(TenantId::as_str),
            actor: caller.as_str(),
            asset: plan.asset.as_ref().map(AssetId::as_str),
            detail: Some(&format!("{} holds a {} name; not used", found.sid, plan.kind.as_str())),
            ..audit::Entry::default()
        });
        Err(ApiError::Conflict(
            "a conversation chatgate did not create holds this conversation's name; an operator must remove it".into(),
        ))
    }

    /// Spends one of the caller's new conversations (and one of their tenant's); the moment it
    /// counted in, for a refund.
    async fn spend_budget(&self, plan: &Plan) -> Result<u64, ApiError> {
        let now = self.clock.now();
        self.store.spend_new_conversation(&plan.wanted[0], plan.tenant.id(), self.budgets, now).await??;
        Ok(now)
    }

    /// Creates the conversation; a concurrent creator's 50353 means it exists, which is fetched
    /// (and must be chatgate's, like any conversation found under the name).
    async fn create(
        &self,
        plan: &Plan,
        unique: &str,
        spent_at: u64,
        deadline: Deadline,
    ) -> Result<(String, Option<String>, bool), ApiError> {
        let attributes = ConversationAttributes::new(plan.kind, plan.asset.clone()).to_json();
        match self.twilio.create_conversation(Some(unique), &plan.friendly_name, &attributes, deadline).await {
            Ok(c) => Ok((c.sid, c.friendly_name, true)),
            // This very request made it, and Twilio's answer was lost on the way (the retry
            // found the name taken): it is this request's creation.
            Err(e) if e.code() == Some(codes::CONVERSATION_EXISTS) && e.retried() => {
                let c = self.fetch_created(plan, unique, deadline).await?;
                Ok((c.sid, c.friendly_name, true))
            }
            Err(e) if e.code() == Some(codes::CONVERSATION_EXISTS) => {
                // Another request created it: this one joins, and its budget is given back.
                self.refund_budget(plan, spent_at).await;
                let c = self.fetch_created(plan, unique, deadline).await?;
                Ok((c.sid, c.friendly_name, false))
            }
            Err(e) => {
                self.refund_budget(plan, spent_at).await;
                Err(e.into())
            }
        }
    }

    /// The conversation a create found existing under its name; it must be chatgate's, like any
    /// conversation found under a name.
    async fn fetch_created(&self, plan: &Plan, unique: &str, deadline: Deadline) -> Result<Conversation, ApiError> {
        let c = self.twilio.fetch_conversation(unique, deadline).await?.ok_or(TwilioError::RaceLost)?;
        self.require_ours(plan, &c, &plan.wanted[0])?;
        Ok(c)
    }

    /// Best effort: a refund that fails leaves the budget a little tighter, never looser.
    async fn refund_budget(&self, plan: &Plan, spent_at: u64) {
        let refunded = self.store.refund_new_conversation(&plan.wanted[0], plan.tenant.id(), self.budgets, spent_at);
        if let Err(e) = refunded.await {
            tracing::warn!(error = %crate::http::ErrorChain(&e), "budget not refunded");
        }
    }

    /// Makes sure each user exists in Twilio with chatgate's restricted role: created with it, or,
    /// when Twilio already has the user (an SDK connected first, so Twilio gave it the service's
    /// default role, or someone changed it), given it. Users this instance has seen are skipped.
    async fn ensure_users(&self, who: Vec<Identity>, deadline: Deadline) -> Result<(), ApiError> {
        let unknown: Vec<Identity> = {
            let known = self.known_users();
            who.into_iter().filter(|id| !known.contains(id)).collect()
        };
        let role = self.user_role.as_str();
        futures_util::future::try_join_all(unknown.iter().map(|id| async move {
            match self.twilio.create_user(id.as_str(), role, deadline).await {
                Ok(()) => Ok(()),
                Err(e) if e.code() == Some(codes::USER_EXISTS) => {
                    let user = self.twilio.fetch_user(id.as_str(), deadline).await?;
                    if user.is_some_and(|u| u.role_sid.as_deref() != Some(role)) {
                        self.twilio.set_user_role(id.as_str(), role, deadline).await?;
                        tracing::info!(identity = id.as_str(), "user given chatgate's role");
                    }
                    Ok(())
                }
                Err(e) => Err(ApiError::from(e)),
            }
        }))
        .await?;
        let mut known = self.known_users();
        if known.len() + unknown.len() > super::KNOWN_USERS_CAP {
            known.clear();
        }
        known.extend(unknown);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(body: &str) -> Result<Plan, ApiError> {
        let command: CreateCommand =
            serde_json::from_str(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
        let caller = Caller { tenant: Tenant::Single, identity: Identity::try_from("u-1").expect("caller") };
        Plan::try_from(Requested { caller, command })
    }

    #[test]
    fn commands_are_tagged_by_type_and_refuse_fields_of_other_types() {
        let direct = plan(r#"{"type":"direct","participant":"u-2"}"#).expect("direct");
        assert_eq!(direct.wanted.len(), 2);
        assert_eq!(direct.friendly_name, "u-1 & u-2");
        for bad in [
            r#"{"type":"direct","participant":"u-2","participants":["u-3"]}"#,
            r#"{"type":"room","name":"support","asset_id":"a-1"}"#,
            r#"{"type":"secret"}"#,
            r#"{"participant":"u-2"}"#,
            r#"{"type":"direct"}"#,
            r#"{"type":"direct","participant":"u-1"}"#,
            r#"{"type":"group","friendly_name":"  "}"#,
            r#"{"type":"room","name":"Not A Room"}"#,
        ] {
            assert!(matches!(plan(bad), Err(ApiError::BadRequest(_))), "{bad}");
        }
    }

    #[test]
    fn made_up_friendly_names_fit_twilios_limit() {
        let long = "é".repeat(256);
        let direct = plan(&format!(r#"{{"type":"direct","participant":"{long}"}}"#)).expect("direct");
        assert_eq!(direct.friendly_name.chars().count(), MAX_FRIENDLY_NAME);
        assert!(direct.friendly_name.starts_with("u-1 & éé"));
        assert_eq!(friendly("short".into()), "short");
    }

    #[test]
    fn participants_are_deduplicated_after_the_caller() {
        let asset = plan(r#"{"type":"asset","asset_id":"a-1","participants":["u-2","u-1","u-2"]}"#).expect("asset");
        let wanted: Vec<&str> = asset.wanted.iter().map(Identity::as_str).collect();
        assert_eq!(wanted, ["u-1", "u-2"]);
        let many: Vec<String> = (0..=MAX_PARTICIPANTS).map(|i| format!("\"u-{i}\"")).collect();
        let body = format!(r#"{{"type":"group","friendly_name":"g","participants":[{}]}}"#, many.join(","));
        assert!(plan(&body).is_err());
    }
}
