// herald.js: the browser client for Herald. A dependency-free ES module:
//
//   import { HeraldClient } from "@heraldrt/herald";   // or "/herald.js" from Herald
//   const client = new HeraldClient({ getToken: () => myApi.heraldToken() });
//   client.on("oracle_upload_progress", (data) => bar(data.step_number));
//   client.lifecycle.on("transport", (t) => pill(t ?? "offline"));
//   client.connect();
//
// WebSocket first (envelope format, so every message carries its cursor),
// Server-Sent Events when WebSocket does not get through; while on SSE it
// probes WebSocket in the background and moves back when it works. Every
// (re)connect and transport switch resumes from the last cursor seen
// (?since=), so the app sees each message once, in order.
//
// Tabs of one origin share one connection (share: true, the default): they
// elect a leader with the Web Locks API; only the leader connects and it
// relays every message over a BroadcastChannel. When the leader goes, the
// next tab takes the lock and resumes from the oldest position any tab
// holds; each tab drops what it already saw by comparing cursors. See
// docs/client.md.

const WS_PATH = "/ws/notifications/";
const SSE_PATH = "/sse/notifications/";
const HISTORY_PATH = "/api/me/history";
const MAX_TIMER = 0x7fffffff; // setTimeout's largest delay
const SYNC_WAIT = 300; // a new leader waits at most this long (ms) for the other tabs' positions

const DEFAULTS = {
  url: "", // Herald's base URL ("https://rt.example.com"); "" = this page's origin
  getToken: null, // () => token | Promise<token>; called before every connect and refresh
  token: null, // a fixed token instead of getToken
  transports: ["websocket", "sse"], // preference order; ["sse"] forces SSE
  wsOpenTimeout: 5000, // WebSocket must deliver its first message within this (ms)
  probeInterval: 30000, // while on SSE, try WebSocket again this often (ms)
  minDelay: 500, // backoff: first retry waits up to this long (ms) ...
  maxDelay: 15000, // ... doubling per failed attempt up to this (full jitter)
  refreshLead: 60000, // WebSocket: refresh the token this long before it expires (ms)
  withCredentials: false, // SSE and history: send cookies cross-origin (cookie auth)
  cursor: null, // resume from this cursor on the first connect
  types: null, // initial type filter, as setTypes()
  notify: null, // { types, title, body, icon, onlyWhenHidden, onClick(data, event) }
  share: true, // share one connection between this origin's tabs (Web Locks + BroadcastChannel)
  shareName: "", // tabs with the same url and shareName share; set per user if tabs may differ
  WebSocket: undefined, // default: globalThis.WebSocket; injectable (Node's "ws", tests)
  EventSource: undefined, // default: globalThis.EventSource
};

// Control events Herald sends on its own (on SSE they carry no envelope).
const CONTROL = new Set(["connection_established", "stream_reset", "disconnect", "token_expiring", "refreshed", "error"]);

/** An emitter: on(name, fn) returns a function that removes fn. */
class Emitter {
  constructor() {
    this._h = new Map();
  }

  on(name, fn) {
    if (typeof fn !== "function") throw new TypeError("herald: on(" + JSON.stringify(name) + ", fn): fn must be a function");
    if (!this._h.has(name)) this._h.set(name, new Set());
    this._h.get(name).add(fn);
    return () => this.off(name, fn);
  }

  off(name, fn) {
    const set = this._h.get(name);
    if (set) set.delete(fn);
  }

  emit(name, ...args) {
    const set = this._h.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        // Report (console, window.onerror) but keep the client running.
        if (globalThis.reportError) globalThis.reportError(err);
        else setTimeout(() => { throw err; });
      }
    }
  }
}

/** Errors herald.js throws or reports: code names the problem. */
export class HeraldError extends Error {
  constructor(code, message) {
    super("herald: " + message);
    this.name = "HeraldError";
    this.code = code;
  }
}

export class HeraldClient {
  constructor(options = {}) {
    const o = { ...DEFAULTS, ...options };
    o.WebSocket = options.WebSocket !== undefined ? options.WebSocket : globalThis.WebSocket;
    o.EventSource = options.EventSource !== undefined ? options.EventSource : globalThis.EventSource;
    const base = o.url || (globalThis.location && globalThis.location.origin !== "null" ? globalThis.location.origin : "");
    if (!base) {
      throw new HeraldError("missing_url", 'no "url" option and no page origin: pass url, e.g. new HeraldClient({ url: "https://rt.example.com", ... })');
    }
    try {
      this._base = new URL(base);
    } catch {
      throw new HeraldError("bad_url", '"url" is not an absolute URL: ' + JSON.stringify(base));
    }
    const ws = typeof o.WebSocket === "function" && o.transports.includes("websocket");
    const sse = typeof o.EventSource === "function" && o.transports.includes("sse");
    if (!ws && !sse) {
      throw new HeraldError("no_transport",
        "no WebSocket or EventSource here (transports: " + JSON.stringify(o.transports) + "). " +
        'In Node pass the "WebSocket" option (e.g. WebSocket from the "ws" package) or "EventSource" ' +
        '(e.g. EventSource from the "eventsource" package).');
    }
    this.opts = o;
    this.cursor = o.cursor || null; // the connection's last position (opaque)
    this.transport = null; // "websocket" | "sse" while connected, else null
    this.state = "idle"; // "idle" | "connecting" | "open" | "closed"
    this.role = null; // "leader" | "follower" (sharing) | "solo" (own connection), null before connect()
    this.lifecycle = new Emitter(); // state, connected, disconnected, transport, role, token_error, error
    this._msg = new Emitter(); // message types and "*"
    this._types = Array.isArray(o.types) ? o.types.slice() : [];
    this._match = typeMatcher(this._types);
    this._pos = new Map(); // channel hash -> [epoch, offset]: what this tab has delivered
    if (this.cursor) mergePos(this._pos, this.cursor);
    this._gen = 0; // bumps on every new connection; stale callbacks check it
    this._attempt = 0; // failed attempts since the last good connection
    this._wsBroken = false; // WebSocket failed: start with SSE and probe
    this._stopped = true;
    this._timers = {};
    this._ws = this._es = null;
    this._final = null; // the server's disconnect event, if any
    this._online = () => this._retryNow();
    this._id = Math.random().toString(36).slice(2) + Date.now().toString(36);
    this._tabs = new Map(); // leader: tab id -> {types, visible}
    this._roster = new Set(); // the other tabs sharing with this one (ids), as last heard
  }

  /**
   * on(type, fn): fn(data, meta) for messages whose "type" is type (Herald's
   * own events too: connection_established, stream_reset, disconnect...);
   * "*" for every message. Lifecycle events are on client.lifecycle.
   */
  on(type, fn) {
    return this._msg.on(type, fn);
  }

  off(type, fn) {
    this._msg.off(type, fn);
  }

  connect() {
    if (!this._stopped) return this;
    this._stopped = false;
    if (this._canShare()) this._joinTabs();
    else {
      this._setRole("solo");
      this._start();
    }
    return this;
  }

  disconnect() {
    const was = this.transport;
    this._stopped = true;
    this._teardown();
    if (globalThis.removeEventListener) globalThis.removeEventListener("online", this._online);
    this._leaveTabs();
    this._setState("closed");
    this._setTransport(null);
    if (was) this.lifecycle.emit("disconnected", { transport: was, reason: "client", reconnect: false });
  }

  /**
   * setTypes keeps only messages whose "type" matches one of the patterns
   * ("oracle_upload_*", "-oracle_upload_progress" to exclude; [] for all).
   * A live connection reconnects from its cursor with the new filter, so
   * nothing is lost or repeated. Shared: each tab filters for itself and
   * the connection uses the filter when all tabs agree on it.
   */
  setTypes(types) {
    this._types = Array.isArray(types) ? types.slice() : [];
    this._match = typeMatcher(this._types);
    if (this._stopped) return;
    if (this.role === "follower") this._post({ t: "types", id: this._id, types: this._types });
    else this._retune();
  }

  /**
   * history fetches the user's past messages, newest first:
   * { messages: [{channel, epoch, offset, published_at, data}], next }.
   * Pass next as before for the following page ("" when done).
   */
  async history({ limit = 50, before = "" } = {}) {
    const token = await this._token();
    const u = new URL(HISTORY_PATH, this._base);
    if (token) u.searchParams.set("token", token);
    u.searchParams.set("limit", String(limit));
    if (before) u.searchParams.set("before", before);
    const r = await fetch(u.toString(), { credentials: this.opts.withCredentials ? "include" : "same-origin" });
    if (!r.ok) throw new HeraldError("http_" + r.status, "history: HTTP " + r.status);
    return r.json();
  }

  /** Ask for permission to show OS notifications (call from a click handler). */
  static requestNotificationPermission() {
    if (typeof Notification === "undefined") return Promise.resolve("denied");
    return Notification.requestPermission();
  }

  // ---- delivery ----

  // _incoming: the connection delivered data (a message, or a control
  // event when meta.control). The leader relays it to the other tabs.
  _incoming(data, meta) {
    if (this.role === "leader") this._post({ t: "msg", data, meta });
    this._deliver(data, meta);
  }

  // _deliver hands data to this tab's handlers once: stream messages (and
  // stream_reset) whose cursor is not ahead of what this tab has seen are
  // replays another connection already brought, and are dropped.
  _deliver(data, meta, relayed) {
    const stream = !meta.control || (data && data.type === "stream_reset");
    if (stream && meta.cursor && !mergePos(this._pos, meta.cursor)) return;
    if (!meta.control && !this._match(data && typeof data === "object" ? data.type : undefined)) return;
    if (data && typeof data === "object" && typeof data.type === "string") this._msg.emit(data.type, data, meta);
    this._msg.emit("*", data, meta);
    if (!relayed && !meta.control) this._notify(data);
  }

  _setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.lifecycle.emit("state", s);
    if (this.role === "leader") this._status();
  }

  _setTransport(kind) {
    if (this.transport === kind) return;
    this.transport = kind;
    this.lifecycle.emit("transport", kind);
    if (this.role === "leader") this._status();
  }

  _setRole(r) {
    if (this.role === r) return;
    this.role = r;
    this.lifecycle.emit("role", r);
  }

  // ---- sharing between tabs ----

  _canShare() {
    return this.opts.share !== false && typeof globalThis.BroadcastChannel === "function" &&
      !!(globalThis.navigator && navigator.locks && typeof navigator.locks.request === "function");
  }

  _joinTabs() {
    const name = "herald:" + this._base.origin + ":" + (this.opts.shareName || "");
    this._bc = new BroadcastChannel(name);
    this._bc.onmessage = (ev) => this._onTab(ev.data);
    this._abort = typeof AbortController === "function" ? new AbortController() : null;
    this._setRole("follower");
    this._post({ t: "hello", id: this._id, types: this._types, visible: visible() });
    this._vis = () => this._post({ t: "vis", id: this._id, visible: visible() });
    this._bye = () => this._post({ t: "bye", id: this._id });
    if (globalThis.document) document.addEventListener("visibilitychange", this._vis);
    if (globalThis.addEventListener) globalThis.addEventListener("pagehide", this._bye);
    navigator.locks.request("herald-leader:" + name, this._abort ? { signal: this._abort.signal } : {}, () => {
      if (this._stopped) return undefined;
      return new Promise((release) => {
        this._release = release;
        this._lead();
      });
    }).catch(() => { /* aborted by disconnect() */ });
  }

  _leaveTabs() {
    if (!this._bc) return;
    this._bye();
    if (globalThis.document) document.removeEventListener("visibilitychange", this._vis);
    if (globalThis.removeEventListener) globalThis.removeEventListener("pagehide", this._bye);
    if (this._abort) this._abort.abort();
    if (this._release) this._release();
    this._bc.close();
    this._bc = this._release = null;
    this._tabs.clear();
  }

  _post(m) {
    if (this._bc) {
      try { this._bc.postMessage(m); } catch { /* closed */ }
    }
  }

  // _lead: this tab got the lock. It asks the other tabs where they are,
  // resumes from the oldest position (each tab drops what it saw already)
  // and connects.
  async _lead() {
    this._setRole("leader");
    this._setTransport(null); // the old leader's connection is gone
    this._tabs.clear();
    this._tabs.set(this._id, { types: this._types, visible: visible() });
    const positions = [[...this._pos]];
    const fallback = new Map();
    if (this._connCursor) mergePos(fallback, this._connCursor);
    // Wait for every tab of the roster but the old leader, or SYNC_WAIT
    // (a tab that crashed never answers; timers of background tabs may be
    // throttled, so the common case must not need the timer).
    const waiting = new Set([...this._roster].filter((id) => id !== this._leaderId));
    await new Promise((done) => {
      const timer = setTimeout(done, SYNC_WAIT);
      this._syncing = (m) => {
        if (m.pos) positions.push(m.pos);
        if (m.conn) mergePos(fallback, m.conn);
        waiting.delete(m.id);
        if (!waiting.size) {
          clearTimeout(timer);
          done();
        }
      };
      this._post({ t: "sync?" });
      if (!waiting.size) {
        clearTimeout(timer);
        done();
      }
    });
    this._syncing = null;
    if (this._stopped || this.role !== "leader") return;
    const from = oldest(positions, fallback);
    if (from.size) this.cursor = encodeCursor(from);
    else if (this._connCursor) this.cursor = this._connCursor;
    this._start();
    this._status();
  }

  _status() {
    this._post({ t: "status", id: this._id, state: this.state, transport: this.transport, cursor: this.cursor });
  }

  _onTab(m) {
    if (!m || typeof m !== "object" || this._stopped) return;
    if (m.id && m.id !== this._id) {
      if (m.t === "bye") this._roster.delete(m.id);
      else this._roster.add(m.id);
    }
    switch (m.t) {
      case "here": // an answer to hello: the roster is all it is for
        break;
      case "msg": // from the leader (or, while this tab takes over, the last words of the old one)
        if (this.role === "leader" && !this._syncing) return;
        if (m.meta && m.meta.cursor) this._connCursor = this.cursor = m.meta.cursor;
        this._deliver(m.data, m.meta || {}, true);
        break;
      case "status":
        if (this.role !== "follower") return;
        this._leaderId = m.id;
        if (m.cursor) {
          this._connCursor = this.cursor = m.cursor;
          if (!this._pos.size) mergePos(this._pos, m.cursor); // joined now: earlier messages are not ours
        }
        this._mirror(m);
        break;
      case "sync?": // a new leader asks where we are
        if (this.role === "follower") {
          this._post({ t: "sync", id: this._id, pos: [...this._pos], conn: this._connCursor, types: this._types, visible: visible() });
        }
        break;
      case "sync":
        if (this.role !== "leader") return;
        if (this._syncing) this._syncing(m);
        this._tabs.set(m.id, { types: m.types || [], visible: !!m.visible });
        this._retune();
        break;
      case "hello":
      case "types":
      case "vis":
        if (m.t === "hello") this._post({ t: "here", id: this._id });
        if (this.role !== "leader") return;
        this._tabs.set(m.id, { ...this._tabs.get(m.id), ...(m.types ? { types: m.types } : {}), ...("visible" in m ? { visible: !!m.visible } : {}) });
        if (m.t === "hello") this._status();
        else if (m.t === "types") this._retune();
        break;
      case "bye":
        if (this.role === "leader" && this._tabs.delete(m.id)) this._retune();
        break;
    }
  }

  // _mirror: a follower learns the leader's connection state.
  _mirror(m) {
    const was = this.transport;
    if (m.state === "open" && this.state !== "open") this.lifecycle.emit("connected", { transport: m.transport, shared: true });
    this._setState(m.state === "idle" ? "connecting" : m.state);
    this._setTransport(m.transport || null);
    if (was && !m.transport) this.lifecycle.emit("disconnected", { transport: was, reason: "leader", reconnect: true });
  }

  // _wantTypes: the connection's filter: the tabs' common one, else none
  // (each tab filters for itself).
  _wantTypes() {
    if (this.role !== "leader") return this._types;
    let common = null;
    for (const [id, tab] of this._tabs) {
      const k = ((id === this._id ? this._types : tab.types) || []).join(",");
      if (common === null) common = k;
      else if (common !== k) return [];
    }
    return common ? common.split(",") : [];
  }

  // _retune reopens the connection from its cursor when its filter changes.
  _retune() {
    const want = this._wantTypes().join(",");
    if (this._connTypes === undefined || want === this._connTypes || this._stopped) return;
    this._teardown();
    this._open(this._first());
  }

  // ---- the connection (solo or leader) ----

  _start() {
    if (globalThis.addEventListener) globalThis.addEventListener("online", this._online);
    this._open(this._first());
  }

  _first() {
    const t = this.opts.transports;
    if (!this.opts.WebSocket || !t.includes("websocket")) return "sse";
    if (this._wsBroken && this._sseUsable()) return "sse";
    return "websocket";
  }

  _sseUsable() {
    return !!this.opts.EventSource && this.opts.transports.includes("sse");
  }

  _clear(name) {
    clearTimeout(this._timers[name]);
    delete this._timers[name];
  }

  _later(name, ms, fn) {
    this._clear(name);
    this._timers[name] = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER));
  }

  // _teardown closes the current transport (first, so its messages cannot
  // overlap with the next one's) and cancels every timer.
  _teardown() {
    this._gen++;
    for (const name of Object.keys(this._timers)) this._clear(name);
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try { ws.close(1000); } catch { /* already closed */ }
    }
    if (this._es) {
      const es = this._es;
      this._es = null;
      es.onopen = es.onmessage = es.onerror = null;
      es.close();
    }
  }

  async _token() {
    if (this.opts.getToken) return await this.opts.getToken();
    return this.opts.token;
  }

  _url(path, token, extra) {
    const u = new URL(path, this._base);
    if (token) u.searchParams.set("token", token);
    if (this.cursor) u.searchParams.set("since", this.cursor);
    const types = this._connTypes;
    if (types) u.searchParams.set("types", types);
    for (const [k, v] of Object.entries(extra || {})) u.searchParams.set(k, v);
    return u;
  }

  _wsURL(token, withCursor) {
    const u = this._url(WS_PATH, token, { format: "envelope" });
    if (!withCursor) u.searchParams.delete("since");
    u.protocol = u.protocol === "https:" ? "wss:" : u.protocol === "http:" ? "ws:" : u.protocol;
    return u.toString();
  }

  async _open(kind) {
    this._teardown();
    const gen = this._gen;
    this._setState("connecting");
    this._connTypes = this._wantTypes().join(",");
    let token;
    try {
      token = await this._token();
    } catch (err) {
      if (gen !== this._gen || this._stopped) return;
      this.lifecycle.emit("token_error", { error: err });
      this._retry(null);
      return;
    }
    if (gen !== this._gen || this._stopped) return;
    this._tokenValue = token;
    if (kind === "websocket") this._openWS(gen, token);
    else this._openSSE(gen, token);
  }

  _openWS(gen, token) {
    let got = false;
    let ws;
    try {
      ws = new this.opts.WebSocket(this._wsURL(token, true));
    } catch {
      this._lost("websocket", false, 0);
      return;
    }
    this._ws = ws;
    this._later("open", this.opts.wsOpenTimeout, () => {
      if (gen === this._gen && !got) this._lost("websocket", false, 0);
    });
    ws.onmessage = (ev) => {
      if (gen !== this._gen) return;
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (!got) {
        got = true;
        this._clear("open");
        this._connected("websocket", token);
      }
      if (m && typeof m === "object" && !("type" in m) && "channel" in m && "data" in m) {
        if (m.cursor) this.cursor = m.cursor;
        this._incoming(m.data, { cursor: m.cursor, channel: m.channel, transport: "websocket" });
      } else {
        if (m && m.cursor) this.cursor = m.cursor;
        this._control(m, "websocket");
      }
    };
    ws.onclose = (ev) => {
      if (gen !== this._gen) return;
      this._ws = null;
      this._lost("websocket", got, ev.code);
    };
  }

  _openSSE(gen, token) {
    let got = false;
    const url = this._url(SSE_PATH, token).toString();
    const es = new this.opts.EventSource(url, { withCredentials: this.opts.withCredentials });
    this._es = es;
    es.onmessage = (ev) => {
      if (gen !== this._gen) return;
      let m;
      try { m = JSON.parse(ev.data); } catch { m = ev.data; }
      if (ev.lastEventId) this.cursor = ev.lastEventId;
      if (!got) {
        got = true;
        this._connected("sse", token);
      }
      if (m && typeof m === "object" && typeof m.type === "string" && CONTROL.has(m.type)) this._control(m, "sse", ev.lastEventId);
      else this._incoming(m, { cursor: ev.lastEventId || this.cursor, transport: "sse" });
    };
    es.onerror = () => {
      if (gen !== this._gen) return;
      // Take over from EventSource's own reconnect: we pick the token, the
      // delay and the transport.
      es.onmessage = es.onerror = null;
      es.close();
      this._es = null;
      if (got) this._lost("sse", true, 0);
      else this._refused(gen, url);
    };
  }

  // _refused: the event stream failed before its first event. EventSource
  // hides the HTTP status, so ask once more with fetch to tell the app why
  // (origin_not_allowed is final: retrying cannot help).
  async _refused(gen, url) {
    let why = null;
    if (typeof fetch === "function" && typeof AbortController === "function" && this.opts.EventSource === globalThis.EventSource) {
      const ac = new AbortController();
      try {
        const r = await fetch(url, {
          headers: { Accept: "text/event-stream" }, signal: ac.signal,
          credentials: this.opts.withCredentials ? "include" : "same-origin",
        });
        if (r.status >= 400 && r.status < 500) {
          const body = await r.json().catch(() => ({}));
          why = { status: r.status, code: body.error || "http_" + r.status, message: body.message || "" };
        }
      } catch { /* network error or CORS: nothing to tell */ }
      ac.abort();
    }
    if (gen !== this._gen || this._stopped) return;
    if (why) this.lifecycle.emit("error", new HeraldError(why.code, "connection refused (HTTP " + why.status + "): " + (why.message || why.code)));
    if (why && why.code === "origin_not_allowed") this._final = { reason: why.code, reconnect: false };
    this._lost("sse", false, why ? why.status : 0);
  }

  _connected(kind, token) {
    this._attempt = 0;
    this._setTransport(kind);
    this._setState("open");
    this.lifecycle.emit("connected", { transport: kind });
    if (kind === "websocket") {
      this._wsBroken = false;
      this._scheduleRefresh(jwtExp(token));
    } else if (this.opts.WebSocket && this.opts.transports.includes("websocket")) {
      this._scheduleProbe();
    }
  }

  // _control handles Herald's control events, then hands them to the app.
  _control(m, kind, cursor) {
    switch (m && m.type) {
      case "disconnect":
        this._final = m;
        break;
      case "token_expiring":
        if (kind === "websocket") this._refresh();
        else this._later("switch", 0, () => this._open("sse")); // reconnect with a fresh token
        break;
      case "refreshed":
        this._scheduleRefresh(m.expires_at);
        break;
    }
    this._incoming(m, { cursor: (m && m.cursor) || cursor, transport: kind, control: true });
  }

  // _lost: the transport ended (or never got going).
  _lost(kind, hadMessages, code) {
    const final = this._final;
    this._final = null;
    this._teardown();
    if (this._stopped) return;
    if (this.transport) {
      this.lifecycle.emit("disconnected", {
        transport: kind, code, reason: final ? final.reason : "connection_lost",
        reconnect: !(final && final.reconnect === false),
      });
    }
    this._setTransport(null);
    if (final && final.reconnect === false) {
      this._stopped = true;
      this._setState("closed");
      return;
    }
    if (kind === "websocket" && !hadMessages && this._sseUsable()) {
      // Blocked or broken WebSocket: fall back now, probe it from SSE.
      this._wsBroken = true;
      this._open("sse");
      return;
    }
    this._retry(final && final.retry_ms);
  }

  _retry(retryMs) {
    this._setState("connecting");
    const cap = Math.min(this.opts.maxDelay, this.opts.minDelay * 2 ** this._attempt);
    this._attempt = Math.min(this._attempt + 1, 30);
    const delay = retryMs > 0 ? retryMs : Math.random() * cap; // full jitter
    const gen = this._gen;
    this._later("retry", delay, () => {
      if (gen === this._gen && !this._stopped) this._open(this._first());
    });
  }

  _retryNow() {
    if (this._timers.retry && !this._stopped) this._open(this._first());
  }

  // ---- WebSocket token refresh ----

  _scheduleRefresh(expSec) {
    if (!this.opts.getToken || !expSec) return;
    const ms = expSec * 1000 - Date.now() - this.opts.refreshLead;
    const gen = this._gen;
    this._later("refresh", Math.max(1000, ms), () => {
      if (gen === this._gen) this._refresh();
    });
  }

  async _refresh() {
    if (!this.opts.getToken || !this._ws) return;
    const gen = this._gen;
    let token;
    try { token = await this.opts.getToken(); } catch (err) {
      this.lifecycle.emit("token_error", { error: err });
      return;
    }
    // The same token again would not extend anything; Herald's
    // token_expiring and token_expired events get another chance.
    if (gen !== this._gen || !this._ws || this._ws.readyState !== 1 || token === this._tokenValue) return;
    this._tokenValue = token;
    this._ws.send(JSON.stringify({ type: "refresh", token }));
  }

  // ---- back to WebSocket from SSE ----

  _scheduleProbe() {
    const gen = this._gen;
    this._later("probe", this.opts.probeInterval, () => {
      if (gen === this._gen && this.transport === "sse") this._probe(gen);
    });
  }

  // _probe opens a throwaway WebSocket; when Herald's first message comes
  // through, SSE is closed and WebSocket resumes from the last cursor.
  async _probe(gen) {
    let token;
    try { token = await this._token(); } catch { token = this._tokenValue; }
    if (gen !== this._gen) return;
    let ws;
    try { ws = new this.opts.WebSocket(this._wsURL(token, false)); } catch { this._scheduleProbe(); return; }
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000); } catch { /* ignore */ }
      if (gen !== this._gen || this._stopped) return;
      if (ok) {
        this._wsBroken = false;
        this._open("websocket");
      } else {
        this._scheduleProbe();
      }
    };
    const timer = setTimeout(() => finish(false), this.opts.wsOpenTimeout);
    ws.onmessage = () => finish(true);
    ws.onclose = () => finish(false);
  }

  // ---- OS notifications (the leader's, or a solo tab's) ----

  _notify(data) {
    const n = this.opts.notify;
    if (!n || !data || typeof data !== "object" || !(n.types || []).includes(data.type)) return;
    if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
    if (n.onlyWhenHidden !== false && this._anyVisible()) return;
    const pick = (v, d) => (typeof v === "function" ? v(data) : v != null ? v : d);
    try {
      const note = new Notification(pick(n.title, data.type.replace(/_/g, " ")), {
        body: pick(n.body, data.message || ""),
        icon: pick(n.icon, undefined),
        tag: data.type + ":" + (data.transaction_id != null ? data.transaction_id : ""),
      });
      if (typeof n.onClick === "function") note.onclick = (ev) => n.onClick(data, ev);
    } catch { /* e.g. Android Chrome needs a service worker */ }
  }

  _anyVisible() {
    if (visible()) return true;
    if (this.role !== "leader") return false;
    for (const t of this._tabs.values()) if (t.visible) return true;
    return false;
  }
}

function visible() {
  return !!(globalThis.document && document.visibilityState === "visible");
}

// typeMatcher returns (type) => boolean for setTypes patterns, as Herald's
// ?types= filter: globs with * and ?, "-" excludes; messages without a
// type pass unless there are include patterns.
function typeMatcher(patterns) {
  const inc = [], exc = [];
  for (let p of patterns) {
    p = String(p).trim();
    if (!p) continue;
    const neg = p[0] === "-";
    const re = new RegExp("^" + (neg ? p.slice(1) : p).replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$", "s");
    (neg ? exc : inc).push(re);
  }
  if (!inc.length && !exc.length) return () => true;
  return (t) => {
    if (typeof t !== "string") return !inc.length;
    return (!inc.length || inc.some((r) => r.test(t))) && !exc.some((r) => r.test(t));
  };
}

// ---- cursors ----
// A cursor is base64url (no padding) of a version byte (1) and, per channel,
// a 4-byte big-endian channel hash, a uvarint epoch and a uvarint offset.
// Tabs compare them to drop replays; a new leader encodes the oldest one.

function parseCursor(s) {
  let bin;
  try { bin = atob(s.replace(/-/g, "+").replace(/_/g, "/")); } catch { return null; }
  if (!bin.length || bin.charCodeAt(0) !== 1) return null;
  const out = [];
  let i = 1;
  const uvarint = () => {
    let v = 0n, shift = 0n;
    for (;;) {
      if (i >= bin.length) throw new Error("truncated");
      const b = bin.charCodeAt(i++);
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
    }
  };
  try {
    while (i < bin.length) {
      if (i + 4 > bin.length) return null;
      const h = ((bin.charCodeAt(i) << 24) | (bin.charCodeAt(i + 1) << 16) | (bin.charCodeAt(i + 2) << 8) | bin.charCodeAt(i + 3)) >>> 0;
      i += 4;
      out.push([h, uvarint(), uvarint()]);
    }
  } catch { return null; }
  return out;
}

function encodeCursor(pos) {
  let bin = "\x01";
  const uvarint = (v) => {
    v = BigInt(v);
    while (v >= 0x80n) {
      bin += String.fromCharCode(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    bin += String.fromCharCode(Number(v));
  };
  for (const [h, [e, o]] of pos) {
    bin += String.fromCharCode((h >>> 24) & 255, (h >>> 16) & 255, (h >>> 8) & 255, h & 255);
    uvarint(e);
    uvarint(o);
  }
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// later: is position a ([epoch, offset]) after b (or b unknown)?
function later(a, b) {
  if (!b) return true;
  const ea = BigInt(a[0]), eb = BigInt(b[0]);
  return ea !== eb ? ea > eb : BigInt(a[1]) > BigInt(b[1]);
}

// mergePos moves pos forward to cursor and reports whether any channel
// moved (the message is news); an unreadable cursor counts as news.
function mergePos(pos, cursor) {
  const entries = parseCursor(cursor);
  if (!entries) return true;
  let moved = false;
  for (const [h, e, o] of entries) {
    if (later([e, o], pos.get(h))) {
      pos.set(h, [e.toString(), o.toString()]);
      moved = true;
    }
  }
  return moved;
}

// oldest: per channel, the oldest position any tab holds (tabs that never
// saw a channel do not count); channels no tab saw come from fallback (the
// connection's own cursor).
function oldest(positions, fallback) {
  const out = new Map();
  for (const list of positions) {
    for (const [h, p] of list || []) {
      const have = out.get(h);
      if (!have || later(have, p)) out.set(h, p);
    }
  }
  for (const [h, p] of fallback) if (!out.has(h)) out.set(h, p);
  return out;
}

// jwtExp returns a JWT's exp claim (seconds), or 0.
function jwtExp(token) {
  try {
    const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(p + "===".slice((p.length + 3) % 4))).exp;
    return typeof exp === "number" ? exp : 0;
  } catch {
    return 0;
  }
}

export default HeraldClient;
