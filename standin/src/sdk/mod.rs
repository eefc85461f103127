//! The SDK face: what a Conversations SDK does with an access token, served over HTTP under
//! `{base_url}/sdk/v1/…` so a test can play a client (a hostile one included) against a stand-in
//! running in another process, and [`SdkClient`], the client that plays it.
//!
//! Every request carries `Authorization: Bearer <access token>` (see the crate documentation for
//! what is checked) and first does what an SDK's connect does: Twilio creates the user of a new
//! identity with the service's default service role. Then, with the user's and the participant's
//! roles as they are at that moment:
//!
//! | Route | Needs | Webhooks |
//! |---|---|---|
//! | `POST /sdk/v1/connect` | a valid token | (`onUserAdded` for a new user) |
//! | `POST /sdk/v1/Conversations` (`UniqueName`, `FriendlyName`, `Attributes`) | service `createConversation` | `onConversationAdd`, `onConversationAdded`, `onParticipantAdded` (the creator) |
//! | `GET /sdk/v1/Conversations/{sid or unique name}`, `…/Messages`, `…/Messages/{sid}`, `…/Participants` | being a participant | |
//! | `POST /sdk/v1/Conversations/{key}` (`UniqueName`, `FriendlyName`, `Attributes`) | `editConversationName` / `editConversationAttributes` | `onConversationUpdate`, `onConversationUpdated` |
//! | `POST /sdk/v1/Conversations/{key}/Participants` (`Identity`, default the actor; `Attributes`) | joining: service `joinConversation`; adding another: `addParticipant` | `onParticipantAdd`, `onParticipantAdded` |
//! | `DELETE /sdk/v1/Conversations/{key}/Participants/{identity or sid}` | leaving: `leaveConversation`; removing another: `removeParticipant` | `onParticipantRemove`, `onParticipantRemoved` |
//! | `POST /sdk/v1/Conversations/{key}/Messages` (`Body`, `Attributes`) | `sendMessage` | `onMessageAdd`, `onMessageAdded` |
//! | `POST /sdk/v1/Conversations/{key}/Messages/{sid}` (`Body`, `Attributes`) | own message: `editOwnMessage` / `editOwnMessageAttributes`; another's: `editAnyMessage` / `editAnyMessageAttributes` | `onMessageUpdate`, `onMessageUpdated` |
//!
//! A conversation permission is granted by the participant's conversation role or by the user's
//! service role (Twilio's rule), and only to a participant. Refusals use Twilio's error body:
//! 401 code 20101 for a bad token, 403 code 50107 for a missing permission (or reading a
//! conversation one is not in), 403 code 50050 (the stand-in's choice) when the pre-event
//! webhook refuses, 404 code 20404, 409 codes 50353 / 50433, 400 code 20001, and 400 codes
//! 50417 / 50214 when joining, adding or creating would pass Twilio's limits on participants per
//! conversation or conversations per identity (checked before the pre-event). The configuration
//! the roles come from is `POST /v1/Services/{IS}/Configuration` on the REST face.

mod client;
pub(crate) mod face;
pub(crate) mod token;

pub use crate::outbound::TransportError;
pub use client::{SdkClient, SdkError};
