// The one chatgate client of the app, and the React context that hands it to components.
import { createContext, useContext } from "react";

export const ChatgateContext = createContext(null);

export function useChatgate() {
  const chatgate = useContext(ChatgateContext);
  if (!chatgate) throw new Error("no chatgate client: sign in first");
  return chatgate;
}

/** A ChatgateError (or any failure) as one line for the error banner. */
export function describe(error) {
  if (error && typeof error.status === "number") {
    return `${error.status} ${error.code ?? ""}: ${error.detail ?? error.message}`.trim();
  }
  return String(error?.message ?? error);
}
