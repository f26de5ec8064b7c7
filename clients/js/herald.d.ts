// Types for herald.js (hand-written; checked by `tsc --noEmit` in the tests).

/** Where a message came from. */
export interface MessageMeta {
  /** Position after this message (opaque); pass it back as `cursor` to resume. */
  cursor?: string;
  /** The channel (WebSocket only), e.g. "user:42". */
  channel?: string;
  /** The transport that brought it (the leader tab's, when shared). */
  transport?: Transport;
  /** true for Herald's own events (connection_established, stream_reset, ...). */
  control?: boolean;
}

export type Transport = "websocket" | "sse";
export type State = "idle" | "connecting" | "open" | "closed";
export type Role = "leader" | "follower" | "solo";

/** A message payload as published; `type` names it when it is an object. */
export type Message = { type?: string; [key: string]: unknown } | string | number | boolean | null | unknown[];

export type MessageHandler<T = any> = (data: T, meta: MessageMeta) => void;

export interface DisconnectedEvent {
  transport: Transport;
  /** WebSocket close code, or the HTTP status of a refused event stream. */
  code?: number;
  /** Herald's disconnect reason, "connection_lost", "client" (disconnect()) or "leader" (shared tab). */
  reason: string;
  reconnect: boolean;
}

/** Lifecycle events: the client's own, never a message type. */
export interface LifecycleEvents {
  state: (state: State) => void;
  connected: (e: { transport: Transport; shared?: boolean }) => void;
  disconnected: (e: DisconnectedEvent) => void;
  transport: (transport: Transport | null) => void;
  role: (role: Role) => void;
  token_error: (e: { error: unknown }) => void;
  error: (e: HeraldError) => void;
}

export interface Lifecycle {
  on<K extends keyof LifecycleEvents>(name: K, fn: LifecycleEvents[K]): () => void;
  off<K extends keyof LifecycleEvents>(name: K, fn: LifecycleEvents[K]): void;
}

export interface NotifyOptions {
  /** Message types that show an OS notification. */
  types: string[];
  title?: string | ((data: any) => string);
  body?: string | ((data: any) => string);
  icon?: string | ((data: any) => string);
  /** Default true: only while no tab of the app is visible. */
  onlyWhenHidden?: boolean;
  onClick?: (data: any, event: Event) => void;
}

export interface HeraldOptions {
  /** Herald's base URL, e.g. "https://rt.example.com"; default the page's origin (required outside a page). */
  url?: string;
  /** Returns a JWT for the user; called before every connect and WebSocket refresh. */
  getToken?: () => string | null | Promise<string | null>;
  /** A fixed token instead of getToken. */
  token?: string | null;
  /** Preference order; ["sse"] forces SSE. Default ["websocket", "sse"]. */
  transports?: Transport[];
  wsOpenTimeout?: number;
  probeInterval?: number;
  minDelay?: number;
  maxDelay?: number;
  refreshLead?: number;
  /** SSE and history(): send cookies cross-origin. */
  withCredentials?: boolean;
  /** Resume from this cursor on the first connect. */
  cursor?: string | null;
  /** Initial type filter, as setTypes(). */
  types?: string[] | null;
  notify?: NotifyOptions | null;
  /** Share one connection between this origin's tabs (default true). */
  share?: boolean;
  /** Tabs with the same url and shareName share a connection. */
  shareName?: string;
  /** A WebSocket constructor (Node: the "ws" package); default globalThis.WebSocket. */
  WebSocket?: any;
  /** An EventSource constructor (Node: the "eventsource" package); default globalThis.EventSource. */
  EventSource?: any;
}

export interface HistoryMessage {
  channel: string;
  epoch: number;
  offset: number;
  published_at: string;
  data: Message;
}

export interface HistoryPage {
  messages: HistoryMessage[];
  /** Pass as `before` for the next page; "" when done. */
  next: string;
}

/** Thrown at construction (missing_url, bad_url, no_transport) or reported on lifecycle "error" (e.g. origin_not_allowed). */
export declare class HeraldError extends Error {
  readonly code: string;
  constructor(code: string, message: string);
}

export declare class HeraldClient {
  constructor(options?: HeraldOptions);
  readonly opts: Required<Omit<HeraldOptions, "getToken" | "token" | "cursor" | "types" | "notify">> & HeraldOptions;
  /** The connection's last position (opaque). */
  cursor: string | null;
  transport: Transport | null;
  state: State;
  /** null before connect(). */
  role: Role | null;
  readonly lifecycle: Lifecycle;

  /** Messages whose "type" is type, or "*" for every message. Returns an unsubscribe function. */
  on<T = any>(type: string, fn: MessageHandler<T>): () => void;
  off(type: string, fn: MessageHandler): void;
  connect(): this;
  disconnect(): void;
  setTypes(types: string[]): void;
  history(options?: { limit?: number; before?: string }): Promise<HistoryPage>;
  static requestNotificationPermission(): Promise<NotificationPermission | "denied">;
}

export default HeraldClient;
