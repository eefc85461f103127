//! The rule "an asset conversation's participants are always readers of its asset", applied.
//! Given what may have shrunk ([`Scope`]), the reconciler re-reads the ACL (strongly consistent),
//! decides with the one [`decide`](crate::domain::decide), and removes from Twilio exactly the
//! participants who can no longer read. It never acts on a change record's images, so applying a
//! scope late, twice, or after access came back removes nobody who can read. The table's stream
//! (the `reconciler` function), the expiry sweep, offboarding, the operator CLI and `chatgate
//! dev` all come here.

mod batch;
mod expiry;
mod legacy;
#[cfg(feature = "local-stream")]
pub mod local;
mod pass;

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;

pub use batch::{BatchItem, BatchOutcome};
pub use expiry::{SWEEP_LIMIT, SweepReport};
pub use legacy::{LegacyName, LegacyReport};
pub use pass::{PASS_LIMIT, PassReport};

use crate::acl::{AclReader, CatalogWriter, MAX_BATCH_ASSETS, Rosters, StoreError};
use crate::audit;
use crate::clock::Clock;
use crate::clock::Deadline;
use crate::domain::{
    AssetId, ConversationAttributes, ConversationKind, ConversationNames, Identity, Principal, Scope, Tenant,
    roster_name,
};
use crate::twilio::rest::{ConversationsClient, TwilioError, UserConversation};

/// Removals in flight at once: well inside Twilio's 30 actions per second per conversation.
const REMOVAL_CONCURRENCY: usize = 8;

/// Who does the removing, in audit lines.
pub const RECONCILER_ACTOR: &str = "chatgate:reconciler";

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("could not read the ACL")]
    Store(#[from] StoreError),
    #[error("could not reach Twilio")]
    Twilio(#[from] TwilioError),
}

impl ReconcileError {
    /// Whether a retry can cure it: Twilio or the table unavailable (an outage, throttling).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Store(StoreError::Unavailable(_) | StoreError::Conflict)
                | Self::Twilio(TwilioError::Unavailable { .. } | TwilioError::RaceLost)
        )
    }
}

/// One participant taken out of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    pub identity: Identity,
    /// The conversation's SID, or its unique name when that is how it was addressed.
    pub conversation: String,
    /// The asset the conversation is about, when it is an asset conversation.
    pub asset: Option<AssetId>,
}

/// What offboarding a user did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Offboarded {
    pub groups_left: usize,
    pub grants_deleted: usize,
    pub removals: Vec<Removal>,
}

/// The reconciler over a store `R` and one Twilio Conversations service; built once.
#[derive(Debug)]
pub struct Reconciler<R> {
    store: Arc<R>,
    twilio: ConversationsClient,
    /// How an asset's conversation is named, so it can be found from the asset.
    names: ConversationNames,
    clock: Arc<dyn Clock>,
    /// Whether the deployment has tenants: its audit lines then name the tenant of each change.
    tenants: bool,
}

impl<R> Clone for Reconciler<R> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            twilio: self.twilio.clone(),
            names: self.names.clone(),
            clock: self.clock.clone(),
            tenants: self.tenants,
        }
    }
}

impl<R> Reconciler<R> {
    /// Its Twilio calls are [`ConversationsClient::persistent`]: removals keep their place in
    /// Twilio's rate when user traffic yields it.
    pub fn new(store: Arc<R>, twilio: ConversationsClient, names: ConversationNames, clock: Arc<dyn Clock>) -> Self {
        Self { store, twilio: twilio.persistent(), names, clock, tenants: false }
    }

    /// The same rule in a tenant deployment (docs/tenancy.md). Every id it reads is qualified with
    /// its tenant, so it never decides across tenants by construction; this names the tenant in
    /// its audit lines.
    #[must_use]
    pub fn with_tenants(self, tenants: bool) -> Self {
        Self { tenants, ..self }
    }

    /// The same rule on another clock (the tests' hand-moved one).
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// The tenant a stored id belongs to, in a tenant deployment.
    pub fn tenant_of<'a>(&self, stored: &'a str) -> Option<&'a str> {
        Tenant::id_of(self.tenants, stored)
    }

    pub fn names(&self) -> &ConversationNames {
        &self.names
    }

    pub fn store(&self) -> &Arc<R> {
        &self.store
    }

    pub fn twilio(&self) -> &ConversationsClient {
        &self.twilio
    }
}

/// Whom to take out of which conversation: the conversation as Twilio is asked (SID or unique
/// name) and as its roster is named (unique name, else SID), and the asset it is about.
#[derive(Debug, Clone)]
struct Leaving {
    user: Identity,
    conversation: String,
    roster: String,
    asset: Option<AssetId>,
}

impl Leaving {
    /// A conversation as Twilio lists it for a user.
    fn from_listed(user: &Identity, listed: &UserConversation, asset: Option<AssetId>) -> Self {
        Self {
            user: user.clone(),
            conversation: listed.conversation_sid.clone(),
            roster: roster_name(listed.unique_name.as_deref(), &listed.conversation_sid),
            asset,
        }
    }
}

impl<R: Rosters> Reconciler<R> {
    /// Takes the user out of the conversation, and off its roster; `None` when they were not in it.
    async fn remove(
        &self,
        leaving: &Leaving,
        cause: &str,
        deadline: Deadline,
    ) -> Result<Option<Removal>, ReconcileError> {
        let Leaving { user, conversation, roster, asset } = leaving;
        let removed = self.twilio.remove_user_from_conversation(user.as_str(), conversation, deadline).await?;
        self.store.write_roster(roster, &[], std::slice::from_ref(user)).await?;
        if !removed {
            return Ok(None);
        }
        let asset = asset.as_ref();
        let removal = Removal { identity: user.clone(), conversation: conversation.to_owned(), asset: asset.cloned() };
        audit::record(&audit::Entry {
            event: "participant.removed",
            tenant: self.tenant_of(user.as_str()),
            actor: RECONCILER_ACTOR,
            asset: asset.map(AssetId::as_str),
            principal: Some(&Principal::User(user.clone()).to_string()),
            conversation: Some(conversation),
            detail: Some(cause),
        });
        Ok(Some(removal))
    }

    /// Removes each, a few at a time; the first failure wins.
    async fn remove_all(
        &self,
        leaving: Vec<Leaving>,
        cause: &str,
        deadline: Deadline,
    ) -> Result<Vec<Removal>, ReconcileError> {
        let removed: Vec<Option<Removal>> = futures_util::stream::iter(leaving)
            .map(|leaving| async move { self.remove(&leaving, cause, deadline).await })
            .buffer_unordered(REMOVAL_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(removed.into_iter().flatten().collect())
    }
}

impl<R: AclReader + Rosters> Reconciler<R> {
    /// Applies the rule to `scope` now: removes whoever it covers who can no longer read.
    pub async fn apply(&self, scope: &Scope, deadline: Deadline) -> Result<Vec<Removal>, ReconcileError> {
        let cause = scope.to_string();
        let removals = match scope {
            Scope::Reader { asset, user } => self.reader(asset, user, &cause, deadline).await?,
            Scope::Asset(asset) => self.audience(asset, &cause, deadline).await?,
            Scope::User(user) => self.user(user, &cause, deadline).await?,
        };
        tracing::info!(scope = %scope, removed = removals.len(), "reconciled");
        Ok(removals)
    }

    /// One user in one asset's conversation: one decision, and at most one Twilio call.
    async fn reader(
        &self,
        asset: &AssetId,
        user: &Identity,
        cause: &str,
        deadline: Deadline,
    ) -> Result<Vec<Removal>, ReconcileError> {
        let name = self.names.asset(asset);
        let facts = self.store.check_facts(user, std::slice::from_ref(asset)).await?;
        if facts.decision(user, self.clock.now()).can_read() {
            return Ok(Vec::new());
        }
        let leaving =
            Leaving { user: user.clone(), conversation: name.clone(), roster: name, asset: Some(asset.clone()) };
        let removal = self.remove(&leaving, cause, deadline).await?;
        Ok(removal.into_iter().collect())
    }

    /// Whether the asset's conversation has a roster that does not list `user`: then they never
    /// joined through chatgate, and the expiry sweep asks Twilio nothing for them. Only the sweep
    /// relies on it (the pass is its net); revocations and the re-check after a join ask Twilio.
    async fn off_roster(&self, asset: &AssetId, user: &Identity) -> Result<bool, ReconcileError> {
        let roster = self.store.rosters(&[self.names.asset(asset)]).await?.into_iter().next().unwrap_or_default();
        Ok(!roster.is_empty() && !roster.contains(user))
    }

    /// Everyone in one asset's conversation: one listing, one wave of decisions, one call per
    /// removal; and its roster made what Twilio says (who stays). The roster is read before
    /// Twilio's list, so whoever it shows was added before that list was taken.
    async fn audience(&self, asset: &AssetId, cause: &str, deadline: Deadline) -> Result<Vec<Removal>, ReconcileError> {
        let name = self.names.asset(asset);
        let roster = self.store.rosters(std::slice::from_ref(&name)).await?.into_iter().next().unwrap_or_default();
        let participants = self.twilio.participants(&name, deadline).await?;
        let Some(participants) = participants else {
            // No conversation (any more): no roster either.
            self.store.write_roster(&name, &[], &roster).await?;
            return Ok(Vec::new());
        };
        // Participants without a chat identity (SMS, WhatsApp) are never added by chatgate and
        // cannot be decided for; they are left alone.
        let users: Vec<Identity> = participants
            .iter()
            .filter_map(|p| p.identity.as_deref())
            .filter_map(|id| Identity::try_from(id).ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let facts = if users.is_empty() { None } else { Some(self.store.audience_facts(asset, &users).await?) };
        let decisions = facts.map(|f| f.decisions(&users, self.clock.now())).unwrap_or_default();
        let (staying, leaving): (Vec<_>, Vec<_>) =
            users.into_iter().zip(decisions).partition(|(_, decision)| decision.can_read());
        // The roster as Twilio has it: who stays and is not on it joins it, who is on it and not
        // in Twilio leaves it (the leaving leave it as they are removed).
        let joined: Vec<Identity> = staying.iter().map(|(u, _)| u).filter(|u| !roster.contains(u)).cloned().collect();
        let in_twilio = |u: &Identity| staying.iter().chain(&leaving).any(|(v, _)| v == u);
        let gone: Vec<Identity> = roster.iter().filter(|u| !in_twilio(u)).cloned().collect();
        if !joined.is_empty() || !gone.is_empty() {
            self.store.write_roster(&name, &joined, &gone).await?;
        }
        // Removals name the conversation by its SID, as an operator finds it in Twilio.
        let sid = participants.first().map_or_else(|| name.clone(), |p| p.conversation_sid.clone());
        let leaving = leaving
            .into_iter()
            .map(|(user, _)| Leaving {
                user,
                conversation: sid.clone(),
                roster: name.clone(),
                asset: Some(asset.clone()),
            })
            .collect();
        self.remove_all(leaving, cause, deadline).await
    }

    /// One user in every asset conversation they are in: their conversations from Twilio, one
    /// wave of decisions per 100 assets, one call per removal.
    async fn user(&self, user: &Identity, cause: &str, deadline: Deadline) -> Result<Vec<Removal>, ReconcileError> {
        let conversations = self.twilio.all_user_conversations(user.as_str(), deadline).await?.unwrap_or_default();
        let in_assets: Vec<(&UserConversation, AssetId)> = conversations
            .iter()
            .filter_map(|c| match managed(c) {
                Some(ConversationAttributes { kind: ConversationKind::Asset, asset: Some(asset) }) => Some((c, asset)),
                _ => None,
            })
            .collect();
        let now = self.clock.now();
        let mut leaving = Vec::new();
        for chunk in in_assets.chunks(MAX_BATCH_ASSETS) {
            let assets: Vec<AssetId> = chunk.iter().map(|(_, asset)| asset.clone()).collect();
            let decisions = self.store.check_facts(user, &assets).await?.decisions(user, now);
            leaving.extend(
                chunk
                    .iter()
                    .zip(decisions)
                    .filter(|(_, decision)| !decision.can_read())
                    .map(|((listed, asset), _)| Leaving::from_listed(user, listed, Some(asset.clone()))),
            );
        }
        self.remove_all(leaving, cause, deadline).await
    }
}

impl<R: AclReader + CatalogWriter + Rosters> Reconciler<R> {
    /// Offboarding: the user leaves every group, then every conversation chatgate manages for
    /// them (direct, group, asset, room). Idempotent: run again, it finishes what a failure left.
    pub async fn offboard(
        &self,
        user: &Identity,
        actor: &str,
        deadline: Deadline,
    ) -> Result<Offboarded, ReconcileError> {
        // The state first: from here on nobody adds them anywhere, and the guard refuses them,
        // while the rest is undone (a retry finishes what a failure leaves).
        self.store.set_offboarded(user, true, self.clock.now()).await?;
        let grants = self.store.delete_user_grants(user).await?;
        let groups = self.store.check_facts(user, &[]).await?.groups;
        futures_util::future::try_join_all(groups.iter().map(|group| self.store.remove_member(group, user))).await?;
        let principal = Principal::User(user.clone()).to_string();
        let tenant = self.tenant_of(user.as_str());
        for group in &groups {
            audit::record(&audit::Entry {
                event: "member.removed",
                tenant,
                actor,
                principal: Some(&principal),
                detail: Some(&format!("group:{group}; offboarding")),
                ..audit::Entry::default()
            });
        }
        let conversations = self.twilio.all_user_conversations(user.as_str(), deadline).await?.unwrap_or_default();
        // Every conversation that claims chatgate's attributes, broken ones included: an
        // offboarded user leaves when in doubt.
        let leaving = conversations
            .iter()
            .filter_map(|c| match ConversationAttributes::parse(c.attributes.as_deref()) {
                Ok(None) => None,
                Ok(Some(about)) => Some(Leaving::from_listed(user, c, about.asset)),
                Err(_) => Some(Leaving::from_listed(user, c, None)),
            })
            .collect();
        let removals = self.remove_all(leaving, "offboarding", deadline).await?;
        audit::record(&audit::Entry {
            event: "user.offboarded",
            tenant,
            actor,
            principal: Some(&principal),
            detail: Some(&format!(
                "{} grant(s), {} group(s), {} conversation(s)",
                grants.len(),
                groups.len(),
                removals.len()
            )),
            ..audit::Entry::default()
        });
        Ok(Offboarded { groups_left: groups.len(), grants_deleted: grants.len(), removals })
    }

    /// Lifts offboarding: the user may be added to conversations again. Their grants and groups
    /// stay gone; the SaaS back end grants what they should have anew.
    pub async fn lift_offboarding(&self, user: &Identity, actor: &str) -> Result<(), ReconcileError> {
        self.store.set_offboarded(user, false, self.clock.now()).await?;
        audit::record(&audit::Entry {
            event: "user.offboarding_lifted",
            tenant: self.tenant_of(user.as_str()),
            actor,
            principal: Some(&Principal::User(user.clone()).to_string()),
            ..audit::Entry::default()
        });
        Ok(())
    }
}

/// chatgate's attributes on a conversation, when chatgate created it. A conversation whose
/// attributes claim chatgate's format but break it is left alone and logged: nobody can say what
/// it is about.
fn managed(conversation: &UserConversation) -> Option<ConversationAttributes> {
    match ConversationAttributes::parse(conversation.attributes.as_deref()) {
        Ok(about) => about,
        Err(e) => {
            tracing::warn!(conversation_sid = conversation.conversation_sid, error = %e, "unreadable conversation attributes");
            None
        }
    }
}

// What the caller sees when reconciling fails: each cause as its own boundary maps it.
#[cfg(all(feature = "twilio-rest", feature = "dynamodb"))]
impl From<ReconcileError> for crate::http::ApiError {
    fn from(e: ReconcileError) -> Self {
        match e {
            ReconcileError::Store(e) => e.into(),
            ReconcileError::Twilio(e) => e.into(),
        }
    }
}
