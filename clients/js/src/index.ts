// @chatgate/client: the browser side of chatgate. Typed calls to every session route, access
// checks coalesced into batches for rendering asset cards, and a Twilio Conversations client
// whose token never lapses. No dependency beyond `fetch`.

import type { components } from "./schema.js";

type Schemas = components["schemas"];

export type TokenRequest = Schemas["TokenRequest"];
export type TokenResponse = Schemas["TokenResponse"];
export type CreateConversationRequest = Schemas["CreateConversationRequest"];
export type ConversationView = Schemas["ConversationView"];
export type ConversationListing = Schemas["ConversationListing"];
export type ListedConversation = Schemas["ListedConversation"];
export type MessageView = Schemas["MessageView"];
export type AccessAnswer = Schemas["AccessAnswer"];
export type GrantsListing = Schemas["GrantsListing"];
export type GrantRequest = Schemas["GrantRequest"];
export type AssetGrant = Schemas["AssetGrant"];
export type Principal = Schemas["Principal"];
export type Problem = Schemas["Problem"];
export type ProblemCode = Schemas["ProblemCode"];

/** `GET /conversations`'s query. */
export interface ListingQuery {
  /** Last messages per conversation, 0 to 20 (default 0). */
  messages?: number;
  /** The `next_page_token` of the previous page. */
  page_token?: string;
}

/** Where chatgate is and who the user is. */
export interface ChatgateOptions {
  /** chatgate's base URL, e.g. `https://api.example.com` or `http://127.0.0.1:3000`. */
  baseUrl: string;
  /** The user's session JWT, asked for on every request (sessions rotate). */
  session: () => string | Promise<string>;
  /** How long an `access()` answer is reused, in milliseconds (default 10 000). */
  accessCacheMs?: number;
  /** The `fetch` to use (default the global one). */
  fetch?: typeof fetch;
}

/** Every non-2xx answer from chatgate: its problem+json, read. */
export class ChatgateError extends Error {
  readonly status: number;
  /** chatgate's stable code (`forbidden`, `upstream_unavailable`, ...); `null` if the body had none. */
  readonly code: ProblemCode | null;
  /** What was wrong, for a 4xx; `null` when chatgate says nothing more (5xx). */
  readonly detail: string | null;
  /** Seconds to wait before retrying (`Retry-After`), when chatgate said. */
  readonly retryAfter: number | null;

  constructor(status: number, code: ProblemCode | null, detail: string | null, retryAfter: number | null) {
    super(detail ?? `chatgate answered ${status}${code ? ` (${code})` : ""}`);
    this.name = "ChatgateError";
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

/** What `keepTokenFresh` needs of a Twilio Conversations `Client`: its token events and `updateToken`. */
export interface TokenRefreshable {
  on(event: "tokenAboutToExpire" | "tokenExpired", listener: () => void): unknown;
  removeListener(event: "tokenAboutToExpire" | "tokenExpired", listener: () => void): unknown;
  updateToken(token: string): Promise<unknown>;
}

export interface KeepTokenFreshOptions {
  /** The lifetime to ask for (`ttl_seconds`); chatgate's default when absent. */
  ttlSeconds?: number;
  /** Attempts per refresh before giving up (default 6). */
  attempts?: number;
  /** First backoff in milliseconds (default 500), doubled per attempt, with full jitter. */
  baseDelayMs?: number;
  /** Longest backoff in milliseconds (default 30 000). */
  maxDelayMs?: number;
  /** Told when a refresh gives up (a 401: the session itself has ended; or attempts exhausted). */
  onError?: (error: unknown) => void;
  /** Told after each successful refresh. */
  onRefresh?: (token: TokenResponse) => void;
}

export interface Chatgate {
  /** `POST /token`: a Twilio access token for the session's user. */
  token(body?: TokenRequest): Promise<TokenResponse>;
  /** `POST /conversations`: create-or-join (idempotent). */
  createOrJoin(body: CreateConversationRequest): Promise<ConversationView>;
  /** `GET /conversations`: one page of the start-up listing. */
  listConversations(query?: ListingQuery): Promise<ConversationListing>;
  /** Every page of the listing, one after the other. */
  conversationPages(query?: Omit<ListingQuery, "page_token">): AsyncIterableIterator<ConversationListing>;
  /** `GET /assets/{asset_id}/grants` (owner or writer). */
  grants(assetId: string): Promise<GrantsListing>;
  /** `PUT /assets/{asset_id}/grants/{principal}` (owner). */
  share(assetId: string, principal: Principal, body: GrantRequest): Promise<AssetGrant>;
  /** `DELETE /assets/{asset_id}/grants/{principal}` (owner). */
  unshare(assetId: string, principal: Principal): Promise<void>;
  /**
   * The user's access to an asset. Calls made in the same tick are sent together as
   * `POST /access/check` batches of at most 100 distinct ids; answers are reused for a short
   * while (`accessCacheMs`) unless `invalidate` clears them.
   */
  access(assetId: string): Promise<AccessAnswer>;
  /** Forgets cached access answers: one asset's, or all (call it when the user signs out). */
  invalidate(assetId?: string): void;
  /**
   * Keeps a Twilio Conversations client's token fresh: on `tokenAboutToExpire` and on
   * `tokenExpired`, fetches a new token and calls `updateToken`, retrying network errors and
   * 502/503/429 with backoff (honouring `Retry-After`); one refresh in flight at a time.
   * Returns a function that unsubscribes.
   */
  keepTokenFresh(client: TokenRefreshable, options?: KeepTokenFreshOptions): () => void;
}

/** Most ids in one `POST /access/check`. */
export const MAX_BATCH = 100;

const json = "application/json";

/** `Retry-After` as seconds: a number of seconds, or an HTTP date. */
function retryAfterSeconds(value: string | null): number | null {
  if (value === null || value.trim() === "") return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

async function problem(response: Response): Promise<ChatgateError> {
  let body: Partial<Problem> = {};
  try {
    body = (await response.json()) as Partial<Problem>;
  } catch {
    // Not JSON: the status says it all.
  }
  return new ChatgateError(
    response.status,
    typeof body.code === "string" ? body.code : null,
    typeof body.detail === "string" ? body.detail : null,
    retryAfterSeconds(response.headers.get("retry-after")),
  );
}

const segment = (id: string) => encodeURIComponent(id);

interface Waiting {
  resolve: (answer: AccessAnswer) => void;
  reject: (error: unknown) => void;
}

export function createChatgate(options: ChatgateOptions): Chatgate {
  const base = options.baseUrl.replace(/\/+$/, "");
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const cacheMs = options.accessCacheMs ?? 10_000;

  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${await options.session()}` };
    if (body !== undefined) headers["content-type"] = json;
    const response = await doFetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw await problem(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  // access(): answers by id, in flight or cached; the ids asked for in this tick.
  const answers = new Map<string, { promise: Promise<AccessAnswer>; expires: number }>();
  let queued = new Map<string, Waiting[]>();
  let flushScheduled = false;

  async function flush(): Promise<void> {
    flushScheduled = false;
    const batch = queued;
    queued = new Map();
    const ids = [...batch.keys()];
    for (let start = 0; start < ids.length; start += MAX_BATCH) {
      const chunk = ids.slice(start, start + MAX_BATCH);
      call<Schemas["CheckResponse"]>("POST", "/access/check", { asset_ids: chunk }).then(
        ({ results }) => {
          chunk.forEach((id, i) => {
            const answer = results[i];
            for (const waiting of batch.get(id) ?? []) {
              if (answer) waiting.resolve(answer);
              else waiting.reject(new Error(`chatgate gave no answer for ${id}`));
            }
          });
        },
        (error: unknown) => {
          for (const id of chunk) {
            answers.delete(id);
            for (const waiting of batch.get(id) ?? []) waiting.reject(error);
          }
        },
      );
    }
  }

  function access(assetId: string): Promise<AccessAnswer> {
    const known = answers.get(assetId);
    if (known && known.expires > Date.now()) return known.promise;
    const promise = new Promise<AccessAnswer>((resolve, reject) => {
      const waiting = queued.get(assetId) ?? [];
      waiting.push({ resolve, reject });
      queued.set(assetId, waiting);
    });
    // The cache counts from the answer's arrival; until then the promise is shared.
    answers.set(assetId, { promise, expires: Number.POSITIVE_INFINITY });
    promise.then(
      () => {
        const entry = answers.get(assetId);
        if (entry?.promise === promise) entry.expires = Date.now() + cacheMs;
      },
      () => undefined,
    );
    if (!flushScheduled) {
      flushScheduled = true;
      setTimeout(() => void flush(), 0);
    }
    return promise;
  }

  async function* conversationPages(query: Omit<ListingQuery, "page_token"> = {}) {
    let pageToken: string | null | undefined = undefined;
    do {
      const page: ConversationListing = await listConversations({ ...query, page_token: pageToken ?? undefined });
      yield page;
      pageToken = page.next_page_token;
    } while (pageToken);
  }

  function listConversations(query: ListingQuery = {}): Promise<ConversationListing> {
    const params = new URLSearchParams();
    if (query.messages !== undefined) params.set("messages", String(query.messages));
    if (query.page_token) params.set("page_token", query.page_token);
    const qs = params.toString();
    return call("GET", `/conversations${qs ? `?${qs}` : ""}`);
  }

  function keepTokenFresh(client: TokenRefreshable, opts: KeepTokenFreshOptions = {}): () => void {
    const attempts = opts.attempts ?? 6;
    const baseDelay = opts.baseDelayMs ?? 500;
    const maxDelay = opts.maxDelayMs ?? 30_000;
    let inFlight: Promise<void> | null = null;
    let stopped = false;
    const timers = new Set<ReturnType<typeof setTimeout>>();
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          resolve();
        }, ms);
        timers.add(timer);
      });
    const retryable = (error: unknown) =>
      error instanceof TypeError ||
      (error instanceof ChatgateError && [429, 502, 503, 504].includes(error.status));

    async function refresh(): Promise<void> {
      for (let attempt = 1; !stopped; attempt++) {
        try {
          const fresh = await call<TokenResponse>(
            "POST",
            "/token",
            opts.ttlSeconds === undefined ? undefined : { ttl_seconds: opts.ttlSeconds },
          );
          if (stopped) return;
          await client.updateToken(fresh.token);
          opts.onRefresh?.(fresh);
          return;
        } catch (error) {
          if (!retryable(error) || attempt >= attempts) {
            opts.onError?.(error);
            return;
          }
          const ceiling = Math.min(maxDelay, baseDelay * 2 ** (attempt - 1));
          const told = error instanceof ChatgateError && error.retryAfter !== null ? error.retryAfter * 1000 : 0;
          await sleep(Math.max(told, Math.random() * ceiling));
        }
      }
    }

    const onEvent = () => {
      if (stopped || inFlight) return;
      inFlight = refresh().finally(() => {
        inFlight = null;
      });
    };
    client.on("tokenAboutToExpire", onEvent);
    client.on("tokenExpired", onEvent);
    return () => {
      stopped = true;
      client.removeListener("tokenAboutToExpire", onEvent);
      client.removeListener("tokenExpired", onEvent);
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    };
  }

  return {
    token: (body?: TokenRequest) => call("POST", "/token", body),
    createOrJoin: (body) => call("POST", "/conversations", body),
    listConversations,
    conversationPages,
    grants: (assetId) => call("GET", `/assets/${segment(assetId)}/grants`),
    share: (assetId, principal, body) =>
      call("PUT", `/assets/${segment(assetId)}/grants/${segment(principal)}`, body),
    unshare: (assetId, principal) => call("DELETE", `/assets/${segment(assetId)}/grants/${segment(principal)}`),
    access,
    invalidate: (assetId?: string) => {
      if (assetId === undefined) answers.clear();
      else answers.delete(assetId);
    },
    keepTokenFresh,
  };
}
