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
  /**
   * How long one request may take, in milliseconds, answer body included (default 10 000). A
   * request that outlasts it is aborted and rejects with a `ChatgateTimeoutError`.
   */
  timeoutMs?: number;
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

/**
 * A request chatgate did not answer within `timeoutMs`; the request is aborted. A `TypeError`, as
 * `fetch`'s own network failures are, so whatever handles one handles the other.
 */
export class ChatgateTimeoutError extends TypeError {
  readonly timeoutMs: number;

  constructor(method: string, path: string, timeoutMs: number) {
    super(`chatgate did not answer ${method} ${path} within ${timeoutMs} ms`);
    this.name = "ChatgateTimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

export interface CreateOrJoinOptions {
  /**
   * The `Idempotency-Key` to send: 1 to 128 visible ASCII characters. A random UUID when absent;
   * pass your own to make your own later retry (after this call has failed) the same logical call.
   */
  idempotencyKey?: string;
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
  /**
   * `POST /conversations`: create-or-join. Sends an `Idempotency-Key` and retries network errors,
   * timeouts, 502, 503 and 504 (at most twice, within seconds) with the same key.
   */
  createOrJoin(body: CreateConversationRequest, options?: CreateOrJoinOptions): Promise<ConversationView>;
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
   * while (`accessCacheMs`) by the same user only, unless `invalidate` clears them. Failures are
   * not kept.
   */
  access(assetId: string): Promise<AccessAnswer>;
  /** Forgets cached access answers: one asset's, or all (call it when the user signs out). */
  invalidate(assetId?: string): void;
  /**
   * Keeps a Twilio Conversations client's token fresh: on `tokenAboutToExpire` and on
   * `tokenExpired`, fetches a new token and calls `updateToken`, retrying network errors,
   * timeouts and 502/503/504/429 with backoff (honouring `Retry-After`); one refresh in flight at
   * a time.
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

/** A failure worth another try: the network, a timeout, or a gateway or upstream that was down. */
const transient = (error: unknown) =>
  error instanceof TypeError || (error instanceof ChatgateError && [502, 503, 504].includes(error.status));

/** Exponential backoff with full jitter, but never sooner than `Retry-After` said. */
function backoffMs(attempt: number, baseMs: number, maxMs: number, error: unknown): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  const told = error instanceof ChatgateError && error.retryAfter !== null ? error.retryAfter * 1000 : 0;
  return Math.max(told, Math.random() * ceiling);
}

// createOrJoin's own retries: a user is waiting, so a few, soon, or none.
const CREATE_ATTEMPTS = 3;
const CREATE_BASE_DELAY_MS = 200;
const CREATE_LONGEST_WAIT_MS = 5_000;

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/** A random UUID; `crypto.randomUUID` exists only in secure contexts, `getRandomValues` everywhere. */
function newIdempotencyKey(): string {
  if (typeof globalThis.crypto.randomUUID === "function") return globalThis.crypto.randomUUID();
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Claims that change each time the same session is renewed.
const RENEWED_CLAIMS = new Set(["iat", "exp", "nbf", "jti"]);

/**
 * Whose session this is, as the key of the access cache. Not the `sub` claim alone: chatgate's
 * identity is whichever claim its `IDENTITY_CLAIM` names, which the browser does not know, and a
 * `sub` is unique only within its issuer. Not the identity `POST /token` answered: the page may
 * never have asked for one under this session, and one asked for before another user signed in
 * would file the new user's answers under the old user's name. So: every claim of the
 * (unverified) session JWT but those renewed with each token, which stay put while the user does
 * and change when another user signs in; a session that is not a JWT is its own key. Whatever
 * else a claim holds, it can only make the cache colder, never shared.
 */
function sessionKey(session: string): string {
  const claims = jwtClaims(session);
  if (claims === null) return `session ${session}`;
  const lasting = Object.keys(claims)
    .filter((name) => !RENEWED_CLAIMS.has(name))
    .sort()
    .map((name) => [name, claims[name]]);
  return `claims ${JSON.stringify(lasting)}`;
}

/** A JWT's payload, read without verifying (chatgate verifies); `null` if it is not one. */
function jwtClaims(token: string): Record<string, unknown> | null {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[1] === undefined) return null;
  try {
    const binary = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const claims: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    return typeof claims === "object" && claims !== null && !Array.isArray(claims)
      ? (claims as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

interface Waiting {
  resolve: (answer: AccessAnswer) => void;
  reject: (error: unknown) => void;
}

interface CachedAnswer {
  promise: Promise<AccessAnswer>;
  expires: number;
}

export function createChatgate(options: ChatgateOptions): Chatgate {
  const base = options.baseUrl.replace(/\/+$/, "");
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const cacheMs = options.accessCacheMs ?? 10_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  // setTimeout fires at once past 2^31 - 1 ms.
  if (!(timeoutMs > 0 && timeoutMs <= 2_147_483_647)) {
    throw new RangeError(`timeoutMs must be between 1 and 2147483647, not ${timeoutMs}`);
  }

  interface CallOptions {
    /** The session to send; asked for when absent. */
    session?: string;
    headers?: Record<string, string>;
  }

  async function call<T>(method: string, path: string, body?: unknown, extra: CallOptions = {}): Promise<T> {
    const session = extra.session ?? (await options.session());
    const headers: Record<string, string> = { authorization: `Bearer ${session}`, ...extra.headers };
    if (body !== undefined) headers["content-type"] = json;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Raced as well as aborted, so that a fetch which ignores its signal cannot hang the call.
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new ChatgateTimeoutError(method, path, timeoutMs);
        controller.abort(error);
        reject(error);
      }, timeoutMs);
    });
    const exchange = async (): Promise<T> => {
      const response = await doFetch(`${base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok) throw await problem(response);
      if (response.status === 204) return undefined as T;
      return (await response.json()) as T;
    };
    try {
      return await Promise.race([exchange(), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

  async function createOrJoin(body: CreateConversationRequest, opts: CreateOrJoinOptions = {}): Promise<ConversationView> {
    // One key per logical call, the same on every retry: chatgate answers a repeated key with what
    // the first request answered and creates nothing more.
    const key = opts.idempotencyKey ?? newIdempotencyKey();
    if (!IDEMPOTENCY_KEY.test(key)) throw new RangeError("idempotencyKey must be 1 to 128 visible ASCII characters");
    for (let attempt = 1; ; attempt++) {
      try {
        return await call<ConversationView>("POST", "/conversations", body, { headers: { "Idempotency-Key": key } });
      } catch (error) {
        if (attempt >= CREATE_ATTEMPTS || !transient(error)) throw error;
        const wait = backoffMs(attempt, CREATE_BASE_DELAY_MS, CREATE_LONGEST_WAIT_MS, error);
        if (wait > CREATE_LONGEST_WAIT_MS) throw error;
        await sleep(wait);
      }
    }
  }

  // access(): the answers of one session's user, in flight or cached; the session of the
  // current synchronous run; and the ids missed this tick, by the session they were asked under.
  let cache: { key: string; answers: Map<string, CachedAnswer> } | null = null;
  let sessionNow: Promise<string> | null = null;
  let pending: Map<string, Map<string, Waiting[]>> | null = null;

  /** The session, asked for once per synchronous run of `access()` calls, however many. */
  function currentSession(): Promise<string> {
    if (sessionNow === null) {
      sessionNow = Promise.resolve().then(() => options.session());
      queueMicrotask(() => {
        sessionNow = null;
      });
    }
    return sessionNow;
  }

  /** The answers cached for `session`'s user; another user's are dropped. */
  function answersOf(session: string): Map<string, CachedAnswer> {
    const key = sessionKey(session);
    if (cache?.key !== key) cache = { key, answers: new Map() };
    return cache.answers;
  }

  function enqueue(session: string, assetId: string, waiting: Waiting): void {
    if (pending === null) {
      pending = new Map();
      setTimeout(flush, 0);
    }
    const misses = pending.get(session) ?? new Map<string, Waiting[]>();
    pending.set(session, misses);
    misses.set(assetId, [...(misses.get(assetId) ?? []), waiting]);
  }

  function flush(): void {
    const batches = pending ?? new Map<string, Map<string, Waiting[]>>();
    pending = null;
    // Each batch goes out with the session it was asked under, so an answer is only ever cached
    // for the user it was asked for.
    for (const [session, misses] of batches) {
      const ids = [...misses.keys()];
      for (let start = 0; start < ids.length; start += MAX_BATCH) {
        const chunk = ids.slice(start, start + MAX_BATCH);
        call<Schemas["CheckResponse"]>("POST", "/access/check", { asset_ids: chunk }, { session }).then(
          ({ results }) => {
            chunk.forEach((id, i) => {
              const answer = results[i];
              for (const waiting of misses.get(id) ?? []) {
                if (answer) waiting.resolve(answer);
                else waiting.reject(new Error(`chatgate gave no answer for ${id}`));
              }
            });
          },
          (error: unknown) => {
            for (const id of chunk) for (const waiting of misses.get(id) ?? []) waiting.reject(error);
          },
        );
      }
    }
  }

  async function access(assetId: string): Promise<AccessAnswer> {
    const session = await currentSession();
    const answers = answersOf(session);
    const known = answers.get(assetId);
    if (known && known.expires > Date.now()) return known.promise;
    const promise = new Promise<AccessAnswer>((resolve, reject) => enqueue(session, assetId, { resolve, reject }));
    // The cache counts from the answer's arrival; until then the promise is shared. A failure is
    // not kept: the next call asks again.
    answers.set(assetId, { promise, expires: Number.POSITIVE_INFINITY });
    promise.then(
      () => {
        const entry = answers.get(assetId);
        if (entry?.promise === promise) entry.expires = Date.now() + cacheMs;
      },
      () => {
        if (answers.get(assetId)?.promise === promise) answers.delete(assetId);
      },
    );
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
    // A timeout is a TypeError too: retried, so a hung request never leaves a refresh in flight.
    const retryable = (error: unknown) => transient(error) || (error instanceof ChatgateError && error.status === 429);

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
          await sleep(backoffMs(attempt, baseDelay, maxDelay, error));
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
    createOrJoin,
    listConversations,
    conversationPages,
    grants: (assetId) => call("GET", `/assets/${segment(assetId)}/grants`),
    share: (assetId, principal, body) =>
      call("PUT", `/assets/${segment(assetId)}/grants/${segment(principal)}`, body),
    unshare: (assetId, principal) => call("DELETE", `/assets/${segment(assetId)}/grants/${segment(principal)}`),
    access,
    invalidate: (assetId?: string) => {
      if (assetId === undefined) cache = null;
      else cache?.answers.delete(assetId);
    },
    keepTokenFresh,
  };
}
