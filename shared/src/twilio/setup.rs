//! Twilio's side of chatgate, set up closed and checked: the service role every user gets (it may
//! edit its own profile and nothing else, so no client creates or joins a conversation), the
//! conversation role every participant gets, both made the service's defaults (the users Twilio
//! creates on an SDK's first connect get them too), and the webhooks: the pre-events the guard
//! decides, and the post-events a backstop re-checks (subscribed now; the guard answers them 200
//! until the backstop of "Converges" re-checks them). `chatgate twilio setup` applies it, `chatgate twilio check` reads it
//! back, and `chatgate dev` applies it to its stand-in.

use super::rest::{ConversationsClient, Role, TwilioError};
use crate::clock::Deadline;

/// The service role of every user: chatgate's users may not create or join conversations.
pub const USER_ROLE_NAME: &str = "chatgate user";
pub const USER_ROLE_PERMISSIONS: &[&str] = &["editOwnUserInfo"];

/// The conversation role of every participant (and of a conversation's creator): speak, edit and
/// delete their own messages, leave. Not add or remove others, not rename or retarget.
pub const PARTICIPANT_ROLE_NAME: &str = "chatgate participant";
pub const PARTICIPANT_ROLE_PERMISSIONS: &[&str] = &[
    "sendMessage",
    "sendMediaMessage",
    "leaveConversation",
    "editOwnMessage",
    "editOwnMessageAttributes",
    "deleteOwnMessage",
    "editOwnParticipantAttributes",
];

/// The pre-events the guard decides.
pub const PRE_EVENTS: &[&str] =
    &["onConversationAdd", "onMessageAdd", "onMessageUpdate", "onParticipantAdd", "onConversationUpdate"];
/// The post-events for the backstop (a message Twilio published past a guard that did not answer
/// in time); until it is built the guard answers them 200.
pub const POST_EVENTS: &[&str] = &["onMessageAdded", "onMessageUpdated"];

/// The roles chatgate's set-up made or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedRoles {
    pub user_role_sid: String,
    pub participant_role_sid: String,
}

/// Makes the service closed; returns the roles and one line per change (empty: nothing changed).
pub async fn apply(
    twilio: &ConversationsClient,
    webhook_url: &str,
    deadline: Deadline,
) -> Result<(ClosedRoles, Vec<String>), TwilioError> {
    let mut changes = Vec::new();
    let roles = twilio.roles(deadline).await?;
    let user_role =
        ensure_role(twilio, &roles, USER_ROLE_NAME, "service", USER_ROLE_PERMISSIONS, &mut changes, deadline).await?;
    let participant_role = ensure_role(
        twilio,
        &roles,
        PARTICIPANT_ROLE_NAME,
        "conversation",
        PARTICIPANT_ROLE_PERMISSIONS,
        &mut changes,
        deadline,
    )
    .await?;
    let closed = ClosedRoles { user_role_sid: user_role, participant_role_sid: participant_role };

    let configuration = twilio.configuration(deadline).await?;
    let defaults = [
        configuration.default_chat_service_role_sid.as_deref(),
        configuration.default_conversation_role_sid.as_deref(),
        configuration.default_conversation_creator_role_sid.as_deref(),
    ];
    let wanted = [closed.user_role_sid.as_str(), closed.participant_role_sid.as_str(), &closed.participant_role_sid];
    if defaults.iter().zip(wanted).any(|(has, wants)| *has != Some(wants)) {
        twilio
            .set_default_roles(
                &closed.user_role_sid,
                &closed.participant_role_sid,
                &closed.participant_role_sid,
                deadline,
            )
            .await?;
        changes.push(format!(
            "default roles: users `{USER_ROLE_NAME}` ({}), participants and creators `{PARTICIPANT_ROLE_NAME}` ({})",
            closed.user_role_sid, closed.participant_role_sid
        ));
    }

    let webhooks = twilio.webhooks(deadline).await?;
    if !webhook_drift(&webhooks, webhook_url).is_empty() {
        let filters: Vec<&str> = PRE_EVENTS.iter().chain(POST_EVENTS).copied().collect();
        twilio.set_webhooks(webhook_url, &filters, deadline).await?;
        changes.push(format!(
            "webhooks: pre- and post-events at {webhook_url} ({}) (was {}, filters {})",
            filters.join(", "),
            webhooks.pre_webhook_url.as_deref().unwrap_or("none"),
            if webhooks.filters.is_empty() { "none".to_owned() } else { webhooks.filters.join(", ") }
        ));
    }
    Ok((closed, changes))
}

/// Everything that is not as [`apply`] leaves it, one line each (empty: all holds). `user_role`
/// is the role the functions give the users they create (`TWILIO_USER_ROLE_SID`), when known.
pub async fn check(
    twilio: &ConversationsClient,
    webhook_url: &str,
    user_role: Option<&str>,
    deadline: Deadline,
) -> Result<Vec<String>, TwilioError> {
    let (roles, configuration, webhooks) =
        tokio::try_join!(twilio.roles(deadline), twilio.configuration(deadline), twilio.webhooks(deadline))?;
    let mut drift = Vec::new();
    let user = role_drift(&roles, USER_ROLE_NAME, "service", USER_ROLE_PERMISSIONS, true, &mut drift);
    let participant =
        role_drift(&roles, PARTICIPANT_ROLE_NAME, "conversation", PARTICIPANT_ROLE_PERMISSIONS, false, &mut drift);
    let defaults = [
        ("DefaultChatServiceRoleSid", configuration.default_chat_service_role_sid, &user, USER_ROLE_NAME),
        (
            "DefaultConversationRoleSid",
            configuration.default_conversation_role_sid,
            &participant,
            PARTICIPANT_ROLE_NAME,
        ),
        (
            "DefaultConversationCreatorRoleSid",
            configuration.default_conversation_creator_role_sid,
            &participant,
            PARTICIPANT_ROLE_NAME,
        ),
    ];
    for (setting, has, wants, name) in defaults {
        if let Some(wants) = wants
            && has.as_deref() != Some(wants.as_str())
        {
            drift.push(format!("{setting} is {}, not `{name}` ({wants})", has.as_deref().unwrap_or("unset")));
        }
    }
    if let (Some(configured), Some(user)) = (user_role, &user)
        && configured != user
    {
        drift.push(format!("TWILIO_USER_ROLE_SID is {configured}, not `{USER_ROLE_NAME}` ({user})"));
    }
    drift.extend(webhook_drift(&webhooks, webhook_url));
    Ok(drift)
}

/// How the webhook configuration differs from chatgate's: the URLs, the method, missing events.
fn webhook_drift(webhooks: &super::rest::Webhooks, url: &str) -> Vec<String> {
    let mut drift = Vec::new();
    for (what, has) in [("pre-event", &webhooks.pre_webhook_url), ("post-event", &webhooks.post_webhook_url)] {
        if has.as_deref() != Some(url) {
            drift.push(format!("the {what} webhook URL is {}, not {url}", has.as_deref().unwrap_or("unset")));
        }
    }
    if webhooks.method.as_deref().is_some_and(|m| !m.eq_ignore_ascii_case("POST")) {
        drift.push("the webhook method is not POST".to_owned());
    }
    let missing: Vec<&str> =
        PRE_EVENTS.iter().chain(POST_EVENTS).copied().filter(|e| !webhooks.filters.iter().any(|f| f == e)).collect();
    if !missing.is_empty() {
        drift.push(format!("the webhook filters lack {}", missing.join(", ")));
    }
    drift
}

/// The role's SID when it exists with `permissions` (exactly, or at most them when not `exact`: a
/// participant role narrowed further is still closed); a drift line otherwise.
fn role_drift(
    roles: &[Role],
    name: &str,
    kind: &str,
    permissions: &[&str],
    exact: bool,
    drift: &mut Vec<String>,
) -> Option<String> {
    let Some(role) = roles.iter().find(|r| r.friendly_name == name && r.kind == kind) else {
        drift.push(format!("the {kind} role `{name}` is missing"));
        return None;
    };
    let within = role.permissions.iter().all(|p| permissions.contains(&p.as_str()));
    if !within || (exact && !same_permissions(&role.permissions, permissions)) {
        drift.push(format!(
            "the role `{name}` ({}) has permissions {}, not {}",
            role.sid,
            role.permissions.join(", "),
            permissions.join(", ")
        ));
    }
    Some(role.sid.clone())
}

fn same_permissions(has: &[String], wants: &[&str]) -> bool {
    let mut has: Vec<&str> = has.iter().map(String::as_str).collect();
    let mut wants = wants.to_vec();
    has.sort_unstable();
    has.dedup();
    wants.sort_unstable();
    has == wants
}

/// The role named `name` of `kind`, created or corrected to exactly `permissions`.
async fn ensure_role(
    twilio: &ConversationsClient,
    roles: &[Role],
    name: &str,
    kind: &str,
    permissions: &[&str],
    changes: &mut Vec<String>,
    deadline: Deadline,
) -> Result<String, TwilioError> {
    match roles.iter().find(|r| r.friendly_name == name && r.kind == kind) {
        Some(role) if same_permissions(&role.permissions, permissions) => Ok(role.sid.clone()),
        Some(role) => {
            twilio.update_role(&role.sid, permissions, deadline).await?;
            changes.push(format!(
                "role `{name}` ({}): permissions {} (were {})",
                role.sid,
                permissions.join(", "),
                role.permissions.join(", ")
            ));
            Ok(role.sid.clone())
        }
        None => {
            let role = twilio.create_role(name, kind, permissions, deadline).await?;
            changes.push(format!("created {kind} role `{name}`: {} ({})", role.sid, permissions.join(", ")));
            Ok(role.sid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_compare_as_sets() {
        assert!(same_permissions(&["b".into(), "a".into()], &["a", "b"]));
        assert!(!same_permissions(&["a".into()], &["a", "b"]));
        assert!(!same_permissions(&["a".into(), "b".into(), "createConversation".into()], &["a", "b"]));
    }

    #[test]
    fn the_participant_role_cannot_add_or_retarget() {
        for forbidden in ["addParticipant", "removeParticipant", "editConversationAttributes", "editConversationName"] {
            assert!(!PARTICIPANT_ROLE_PERMISSIONS.contains(&forbidden), "{forbidden}");
        }
        assert_eq!(USER_ROLE_PERMISSIONS, ["editOwnUserInfo"]);
    }
}
