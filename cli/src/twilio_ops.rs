//! Operator commands against the Twilio Conversations service: rooms, and the one-time set-up
//! (the restricted user role, the pre-event webhook). Each says what it changed.

use std::time::Duration;

use chatgate::clock::Deadline;
use chatgate::config::Settings;
use chatgate::domain::{ConversationAttributes, ConversationKind, RoomName};
use chatgate::twilio::rest::{ConversationsClient, codes};
use clap::Subcommand;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The name of the service role chatgate gives the users it creates.
const USER_ROLE_NAME: &str = "chatgate user";
/// Users may edit their own profile and nothing else at service level: no createConversation,
/// no joinConversation. What they may do inside a conversation comes from its participant role.
const USER_ROLE_PERMISSIONS: &[&str] = &["editOwnUserInfo"];
/// The pre-event webhooks the guard decides: messages added or edited, participants added, and
/// conversation updates (so a client cannot retarget a conversation chatgate created).
const WEBHOOK_FILTERS: &[&str] = &["onMessageAdd", "onMessageUpdate", "onParticipantAdd", "onConversationUpdate"];

#[derive(Debug, Subcommand)]
pub enum RoomsCommand {
    /// List the rooms.
    List,
    /// Create a room users can join with `{"type": "room", "name": ...}`.
    Create {
        name: String,
        /// What users see; the name by default.
        #[arg(long)]
        friendly_name: Option<String>,
    },
    /// Delete a room (the conversation and its messages).
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TwilioCommand {
    /// Create the restricted user role if missing, and point the pre-event webhook
    /// (onMessageAdd, onMessageUpdate, onParticipantAdd, onConversationUpdate) at chatgate's
    /// /twilio/events.
    Setup {
        /// The public URL of POST /twilio/events (also TWILIO_WEBHOOK_URL for the message guard).
        #[arg(long, env = "TWILIO_WEBHOOK_URL")]
        webhook_url: String,
    },
}

async fn client() -> Result<ConversationsClient> {
    let settings = Settings::from_env();
    let secrets = crate::ops::twilio_secrets(&settings).await?;
    Ok(ConversationsClient::from_settings(&settings, &secrets)?)
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

fn room(name: &str) -> Result<RoomName> {
    Ok(RoomName::try_from(name)?)
}

pub async fn rooms(command: RoomsCommand) -> Result<()> {
    let twilio = client().await?;
    match command {
        RoomsCommand::List => {
            for c in twilio.list_conversations(deadline()).await? {
                if let Some(room) = c.unique_name.as_deref().and_then(RoomName::from_unique_name) {
                    println!("{room}\t{}\t{}", c.sid, c.friendly_name.unwrap_or_default());
                }
            }
        }
        RoomsCommand::Create { name, friendly_name } => {
            let room = room(&name)?;
            let friendly = friendly_name.unwrap_or_else(|| room.to_string());
            let attributes = ConversationAttributes::new(ConversationKind::Room, None).to_json();
            match twilio.create_conversation(Some(&room.unique_name()), &friendly, &attributes, deadline()).await {
                Ok(c) => println!("created room {room} ({})", c.sid),
                Err(e) if e.code() == Some(codes::CONVERSATION_EXISTS) => {
                    return Err(format!("room {room} exists already").into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        RoomsCommand::Delete { name } => {
            let room = room(&name)?;
            let found = twilio.fetch_conversation(&room.unique_name(), deadline()).await?;
            let conversation = found.ok_or_else(|| format!("no room {room}"))?;
            twilio.delete_conversation(&conversation.sid, deadline()).await?;
            println!("deleted room {room} ({})", conversation.sid);
        }
    }
    Ok(())
}

pub async fn twilio(command: TwilioCommand) -> Result<()> {
    let TwilioCommand::Setup { webhook_url } = command;
    if !webhook_url.starts_with("https://") && !webhook_url.starts_with("http://") {
        return Err("the webhook URL must be an http(s) URL".into());
    }
    let twilio = client().await?;
    let roles = twilio.roles(deadline()).await?;
    match roles.iter().find(|r| r.friendly_name == USER_ROLE_NAME && r.kind == "service") {
        Some(role) => println!("role `{USER_ROLE_NAME}` exists: {} (unchanged)", role.sid),
        None => {
            let role = twilio.create_role(USER_ROLE_NAME, "service", USER_ROLE_PERMISSIONS, deadline()).await?;
            println!("created role `{USER_ROLE_NAME}`: {} (permissions: {})", role.sid, role.permissions.join(", "));
        }
    }
    let role_sid = twilio
        .roles(deadline())
        .await?
        .into_iter()
        .find(|r| r.friendly_name == USER_ROLE_NAME)
        .map(|r| r.sid)
        .ok_or("the role is missing after creating it")?;
    println!("set TWILIO_USER_ROLE_SID={role_sid}");

    let current = twilio.webhooks(deadline()).await?;
    let mut filters = current.filters.clone();
    filters.sort();
    let mut wanted: Vec<String> = WEBHOOK_FILTERS.iter().map(|f| (*f).to_owned()).collect();
    wanted.sort();
    if current.pre_webhook_url.as_deref() == Some(webhook_url.as_str()) && filters == wanted {
        println!("pre-event webhook: {webhook_url} ({}) (unchanged)", WEBHOOK_FILTERS.join(", "));
    } else {
        twilio.set_pre_webhook(&webhook_url, WEBHOOK_FILTERS, deadline()).await?;
        let before = current.pre_webhook_url.unwrap_or_else(|| "none".into());
        let before_filters = if current.filters.is_empty() { "none".into() } else { current.filters.join(", ") };
        println!(
            "pre-event webhook: {webhook_url} ({}) (was {before}, filters {before_filters})",
            WEBHOOK_FILTERS.join(", ")
        );
    }
    Ok(())
}
