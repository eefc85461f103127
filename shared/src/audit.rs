//! Audit lines: every change to who may see what (grants, memberships, assets), every removal by
//! the rule, every offboarding and every guard refusal is one structured log line with
//! `"audit": true`, so a log query finds them all. Never a token, a secret or a message body.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One audit line's content. `actor` is the session identity, the IAM principal of an admin
/// call, or [`crate::reconcile::RECONCILER_ACTOR`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Entry<'a> {
    /// What happened, `noun.verb`: `grant.put`, `grant.deleted`, `asset.put`, `asset.deleted`,
    /// `member.added`, `member.removed`, `participant.removed`, `user.offboarded`, `guard.refused`.
    pub event: &'static str,
    /// The tenant every id of the line belongs to, in a tenant deployment (docs/tenancy.md).
    pub tenant: Option<&'a str>,
    pub actor: &'a str,
    pub asset: Option<&'a str>,
    /// `user:<id>` or `group:<id>`.
    pub principal: Option<&'a str>,
    pub conversation: Option<&'a str>,
    /// A short reason or cause, written by chatgate (never user content).
    pub detail: Option<&'a str>,
}

/// Writes the line, at info level with the target `audit`.
pub fn record(entry: &Entry<'_>) {
    let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    tracing::info!(
        target: "audit",
        audit = true,
        event = entry.event,
        tenant = entry.tenant,
        actor = entry.actor,
        asset_id = entry.asset,
        principal = entry.principal,
        conversation = entry.conversation,
        detail = entry.detail,
        at,
        "audit"
    );
}
