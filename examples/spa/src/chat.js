// The Twilio Conversations connection: only with real Twilio credentials behind chatgate
// (VITE_TWILIO=1). On chatgate dev's stand-in there is no Twilio to connect to, and the app says
// so instead of pretending.
export const twilioEnabled = import.meta.env.VITE_TWILIO === "1";

/** Connects the Conversations SDK with a chatgate token kept fresh; returns a disconnect function. */
export async function connect(chatgate, onState) {
  if (!twilioEnabled) {
    onState("not connected: chatgate dev runs on its Twilio stand-in (set VITE_TWILIO=1 with real Twilio credentials)");
    return () => {};
  }
  const { Client } = await import("@twilio/conversations");
  const { token } = await chatgate.token();
  const client = new Client(token);
  client.on("connectionStateChanged", (state) => onState(state));
  const stop = chatgate.keepTokenFresh(client, { onError: (e) => onState(`token refresh failed: ${e.message}`) });
  return () => {
    stop();
    client.shutdown();
  };
}
