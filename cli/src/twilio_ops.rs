//! Operator commands against the Twilio Conversations service: rooms, and the set-up that keeps
//! the service closed ([`chatgate::twilio::setup`]) with its check. Each says what it changed.

use std::time::Duration;

use chatgate::clock::Deadline;
use chatgate::config::Settings;
use chatgate::domain::{ConversationAttributes, ConversationKind, RoomName, Tenant};
use chatgate::twilio::rest::{ConversationsClient, codes};
use chatgate::twilio::setup;
use clap::Subcommand;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

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
    /// Set the service up closed: the roles `chatgate user` (service) and `chatgate participant`
    /// (conversation) made the service's defaults, and the pre- and post-event webhooks pointed
    /// at chatgate's /twilio/events.
    Setup {
        /// The public URL of POST /twilio/events (also TWILIO_WEBHOOK_URL for the message guard).
        #[arg(long, env = "TWILIO_WEBHOOK_URL")]
        webhook_url: String,
    },
    /// Read all of it back; exit 1 with one line per drift (for a deploy pipeline).
    Check {
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

pub async fn rooms(command: RoomsCommand, tenant: &Tenant) -> Result<()> {
    let twilio = client().await?;
    let room = |name: &str| -> Result<RoomName> { Ok(tenant.room(name)?) };
    match command {
        RoomsCommand::List => {
            for c in twilio.list_conversations(deadline()).await? {
                let room = c.unique_name.as_deref().and_then(RoomName::from_unique_name);
                // With --tenant, that tenant's rooms alone, as it names them.
                if let Some(name) = room.as_ref().and_then(|room| tenant.local(room.as_str())) {
                    println!("{name}\t{}\t{}", c.sid, c.friendly_name.unwrap_or_default());
                }
            }
        }
        RoomsCommand::Create { name, friendly_name } => {
            let room = room(&name)?;
            let friendly = friendly_name.unwrap_or_else(|| name.clone());
            let attributes = ConversationAttributes::new(ConversationKind::Room, None).to_json();
            match twilio.create_conversation(Some(&room.unique_name()), &friendly, &attributes, deadline()).await {
                Ok(c) => println!("created room {name} ({})", c.sid),
                Err(e) if e.code() == Some(codes::CONVERSATION_EXISTS) => {
                    return Err(format!("room {name} exists already").into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        RoomsCommand::Delete { name } => {
            let room = room(&name)?;
            let found = twilio.fetch_conversation(&room.unique_name(), deadline()).await?;
            let conversation = found.ok_or_else(|| format!("no room {name}"))?;
            twilio.delete_conversation(&conversation.sid, deadline()).await?;
            println!("deleted room {name} ({})", conversation.sid);
        }
    }
    Ok(())
}

pub async fn twilio(command: TwilioCommand) -> Result<()> {
    let (TwilioCommand::Setup { webhook_url } | TwilioCommand::Check { webhook_url }) = &command;
    if !webhook_url.starts_with("https://") && !webhook_url.starts_with("http://") {
        return Err("the webhook URL must be an http(s) URL".into());
    }
    let twilio = client().await?;
    match command {
        TwilioCommand::Setup { webhook_url } => {
            let (roles, changes) = setup::apply(&twilio, &webhook_url, deadline()).await?;
            if changes.is_empty() {
                println!("the service is set up closed (unchanged)");
            }
            for change in changes {
                println!("{change}");
            }
            println!("set TWILIO_USER_ROLE_SID={}", roles.user_role_sid);
        }
        TwilioCommand::Check { webhook_url } => {
            let configured = Settings::from_env().get("TWILIO_USER_ROLE_SID").map(str::to_owned);
            let drift = setup::check(&twilio, &webhook_url, configured.as_deref(), deadline()).await?;
            if drift.is_empty() {
                println!("the service is set up closed");
            } else {
                for line in &drift {
                    println!("drift: {line}");
                }
                return Err(format!("{} drift(s): run `chatgate twilio setup`", drift.len()).into());
            }
        }
    }
    Ok(())
}
