//! Conversations, as chatgate manages them: create-or-join (`POST /conversations`) and the
//! start-up listing (`GET /conversations`), written once over the ACL port and the Twilio client,
//! so the Lambda function and `chatgate dev` call the same code. The back end puts users into
//! conversations; users get a restricted Twilio role that cannot create or join on its own.

mod create;
mod listing;
mod once;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub use create::{CreateCommand, Joined, MAX_PARTICIPANTS, ParticipantView, Plan, Requested};
pub use listing::{Listing, ListingQuery, MAX_MESSAGES};
pub use once::IdempotencyKey;

use crate::acl::BudgetLimits;
use crate::clock::Clock;
use crate::domain::{ConversationNames, Identity, RoleSid};
use crate::reconcile::Reconciler;
use crate::twilio::rest::ConversationsClient;

/// Identities this warm instance has seen exist in Twilio, so it does not create them again.
const KNOWN_USERS_CAP: usize = 10_000;

/// The use cases' state, built once at cold start over a store `R`.
pub struct Conversations<R> {
    store: Arc<R>,
    twilio: ConversationsClient,
    user_role: RoleSid,
    clock: Arc<dyn Clock>,
    /// Applies the access rule to whoever an asset conversation gains (see `create_or_join`).
    rule: Reconciler<R>,
    known_users: Mutex<HashSet<Identity>>,
    /// Each user's limits on new conversations.
    budgets: BudgetLimits,
}

impl<R> std::fmt::Debug for Conversations<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations")
            .field("twilio", &self.twilio)
            .field("user_role", &self.user_role)
            .finish_non_exhaustive()
    }
}

impl<R> Conversations<R> {
    pub fn new(
        store: Arc<R>,
        twilio: ConversationsClient,
        names: ConversationNames,
        user_role: RoleSid,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let rule = Reconciler::new(store.clone(), twilio.clone(), names, clock.clone());
        Self { store, twilio, user_role, clock, rule, known_users: Mutex::default(), budgets: BudgetLimits::default() }
    }

    /// The same with `budgets` instead of the defaults (20 a minute, 200 a day).
    pub fn with_budgets(mut self, budgets: BudgetLimits) -> Self {
        self.budgets = budgets;
        self
    }

    /// The same use cases on another clock (the tests' hand-moved one), the rule's included.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock: clock.clone(), rule: self.rule.with_clock(clock), ..self }
    }

    /// The same use cases in a tenant deployment: the rule's audit lines name the tenant.
    #[must_use]
    pub fn with_tenants(self, tenants: bool) -> Self {
        Self { rule: self.rule.with_tenants(tenants), ..self }
    }

    /// How this deployment names the conversations it finds again.
    pub fn names(&self) -> &ConversationNames {
        self.rule.names()
    }

    fn known_users(&self) -> std::sync::MutexGuard<'_, HashSet<Identity>> {
        self.known_users.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
