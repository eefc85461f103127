//! Conversations chatgate created before v1.2 carry names anyone could compute (v1.1's public
//! hashes), which the keyed names of v1.2 do not find. `chatgate reconcile rename-legacy` renames
//! each one whose name and attributes prove it is chatgate's to its keyed name, so create-or-join
//! and the reconciler find it again, and re-decides an asset conversation's participants at once
//! (someone may have squatted the public name before the upgrade). What cannot be proven is
//! reported and left alone. The same walk registers every asset conversation for the scheduled
//! pass (v1.2 registers the ones it creates or joins; those made before are found here), so the
//! pass covers them from the upgrade on, not from their next join.

use super::{ReconcileError, Reconciler, Removal};
use crate::acl::{AclReader, ConversationRegistry, Rosters};
use crate::clock::Deadline;
use crate::domain::{ConversationAttributes, ConversationKey, ConversationKind, Identity, Scope, legacy_unique_name};
use crate::twilio::rest::{Conversation, codes};

/// What became of one conversation under a v1.1 name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyName {
    /// Renamed (or, in a dry run, would be) from `from` to `to`; for an asset conversation, the
    /// participants who could not read the asset were removed.
    Renamed { sid: String, from: String, to: String, removed: Vec<Removal> },
    /// Left under its v1.1 name: a conversation made after the upgrade already has the new one.
    Taken { sid: String, from: String },
}

/// The outcome of a pass: each conversation found under a v1.1 name, how many chatgate
/// conversations could not be checked (named groups, whose creator and name cannot be recovered,
/// and direct conversations without exactly two participants), and how many asset
/// conversations are (or, in a dry run, would be) in the scheduled pass's registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyReport {
    pub conversations: Vec<LegacyName>,
    pub unchecked: usize,
    pub registered: usize,
}

impl<R: AclReader + ConversationRegistry + Rosters> Reconciler<R> {
    /// Every conversation under a v1.1 name, renamed when `apply` (else only reported); every
    /// asset conversation registered for the scheduled pass when `apply` (registering is
    /// idempotent, so running this again is harmless).
    pub async fn rename_legacy(&self, apply: bool, deadline: Deadline) -> Result<LegacyReport, ReconcileError> {
        let mut report = LegacyReport::default();
        for conversation in self.twilio.list_conversations(deadline).await? {
            let Ok(Some(about)) = ConversationAttributes::parse(conversation.attributes.as_deref()) else { continue };
            if let Some(asset) = &about.asset {
                if apply {
                    self.store.register_conversation(asset, self.clock.now()).await?;
                }
                report.registered += 1;
            }
            let Some(from) = conversation.unique_name.clone() else { continue };
            let Some(key) = self.legacy_key(&conversation, &about, deadline).await? else {
                report.unchecked += usize::from(about.kind != ConversationKind::Room);
                continue;
            };
            if legacy_unique_name(&key).as_deref() != Some(from.as_str()) {
                continue;
            }
            let (sid, to) = (conversation.sid.clone(), self.names.unique_name(&key));
            if !apply {
                report.conversations.push(LegacyName::Renamed { sid, from, to, removed: Vec::new() });
                continue;
            }
            match self.twilio.rename_conversation(&sid, &to, deadline).await {
                Ok(_) => {}
                Err(e) if e.code() == Some(codes::CONVERSATION_EXISTS) => {
                    report.conversations.push(LegacyName::Taken { sid, from });
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            // Someone may have taken the public name before the upgrade: the rule decides who stays.
            let removed = match &about.asset {
                Some(asset) => self.apply(&Scope::Asset(asset.clone()), deadline).await?,
                None => Vec::new(),
            };
            report.conversations.push(LegacyName::Renamed { sid, from, to, removed });
        }
        Ok(report)
    }

    /// What a v1.1 conversation's name was made of: the asset of an asset conversation, the two
    /// participants of a direct one; `None` when that cannot be recovered.
    async fn legacy_key(
        &self,
        conversation: &Conversation,
        about: &ConversationAttributes,
        deadline: Deadline,
    ) -> Result<Option<ConversationKey>, ReconcileError> {
        Ok(match (about.kind, &about.asset) {
            (ConversationKind::Asset, Some(asset)) => Some(ConversationKey::Asset(asset.clone())),
            (ConversationKind::Direct, _) => {
                let participants = self.twilio.participants(&conversation.sid, deadline).await?.unwrap_or_default();
                let pair: Vec<Identity> = participants
                    .into_iter()
                    .filter_map(|p| p.identity.and_then(|i| Identity::try_from(i).ok()))
                    .collect();
                match pair.as_slice() {
                    [a, b] => Some(ConversationKey::Direct(a.clone(), b.clone())),
                    _ => None,
                }
            }
            _ => None,
        })
    }
}
